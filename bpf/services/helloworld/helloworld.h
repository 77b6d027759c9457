/* helloworld's table, shared with its control plane (Swift imports this header). */
#ifndef HELLOWORLD_H
#define HELLOWORLD_H
#include <linux/types.h>

enum helloworld_action {
    HELLOWORLD_DROP = 0,
    HELLOWORLD_SLOWPATH = 1,
    HELLOWORLD_FORWARD = 2,
};

/* The single entry of table `helloworld_config`. */
struct helloworld_config {
    __u32 action;     /* enum helloworld_action */
    __u16 ports[2];   /* the two ports FORWARD joins (PCN_NO_PORT while missing) */
};

/* Why a packet is dropped (counted per cube under the names helloworld.c gives them). */
enum helloworld_drop_reason {
    HELLOWORLD_DROP_ACTION = 0,      /* the action is DROP */
    HELLOWORLD_DROP_OTHER_PORT = 1,  /* FORWARD, but from a port that is not one of the two */
};
#endif

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
#endif

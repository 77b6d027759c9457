/* simpleforwarder's table, shared with its control plane. */
#ifndef SIMPLEFORWARDER_H
#define SIMPLEFORWARDER_H
#include <linux/types.h>

enum simpleforwarder_action {
    SIMPLEFORWARDER_DROP = 0,
    SIMPLEFORWARDER_SLOWPATH = 1,
    SIMPLEFORWARDER_FORWARD = 2,
};

/* Table `simpleforwarder_actions`, keyed by input port index. */
struct simpleforwarder_entry {
    __u16 action;    /* enum simpleforwarder_action */
    __u16 out_port;  /* FORWARD: the output port's index */
};

/* Why a packet is dropped (counted per cube under the names simpleforwarder.c gives them). */
enum simpleforwarder_drop_reason {
    SIMPLEFORWARDER_DROP_NO_ACTION = 0,   /* no action for the port it came in on */
    SIMPLEFORWARDER_DROP_ACTION = 1,      /* the port's action is DROP */
    SIMPLEFORWARDER_DROP_NO_OUTPORT = 2,  /* FORWARD, but no outport set yet */
};
#endif

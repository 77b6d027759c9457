/* transparenthelloworld's table, shared with its control plane. */
#ifndef TRANSPARENTHELLOWORLD_H
#define TRANSPARENTHELLOWORLD_H
#include <linux/types.h>

enum transparenthelloworld_action {
    TRANSPARENTHELLOWORLD_PASS = 0,
    TRANSPARENTHELLOWORLD_DROP = 1,
    TRANSPARENTHELLOWORLD_SLOWPATH = 2,
};

/* Table `transparenthelloworld_actions`: index 0 ingress, 1 egress. */
struct transparenthelloworld_entry {
    __u32 action;   /* enum transparenthelloworld_action */
};

/* Why a packet is dropped (counted per cube under the name transparenthelloworld.c gives it). */
enum transparenthelloworld_drop_reason {
    TRANSPARENTHELLOWORLD_DROP_ACTION = 0,   /* the direction's action is DROP */
};
#endif

/* lbdsr's tables, shared with its control plane.
 *
 * Direct server return at layer 2: a frame for the VIP gets the chosen backend's MAC as its
 * destination and leaves through the BACKEND port; the backends (holding the VIP on `lo`) answer
 * the client directly. Backends are chosen like lbrp's (a Maglev table, `lbdsr_slots`), and a flow
 * stays with its backend (`lbdsr_sessions`) unless that backend is removed. */
#ifndef LBDSR_H
#define LBDSR_H
#include <linux/types.h>

#define LBDSR_SLOTS 131072
#define LBDSR_SESSIONS 65536

/* Table `lbdsr_config` (array, 1). */
struct lbdsr_config {
    __be32 vip;                /* 0: none set */
    __u8 mac[6];               /* the frontend's MAC: ARP answers for the VIP carry it */
    __u16 reserved;
    __u32 frontend_port;
    __u32 backend_port;
    __u32 size;                /* slots in the table in use; 0: no backend */
    __u32 generation;          /* which of two slot sets is in use */
};

/* Table `lbdsr_slots` (array, 2 * LBDSR_SLOTS): generation * LBDSR_SLOTS + slot -> a backend. */
struct lbdsr_backend {
    __u8 mac[6];
    __u16 id;                  /* its counters in lbdsr_counters, by pool id */
};

/* Table `lbdsr_sessions` (LRU hash): a flow's 5-tuple -> its backend. */
struct lbdsr_flow {
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u8 proto;
    __u8 reserved[3];
};

/* Table `lbdsr_counters` (per-CPU array, 65536): packets sent to each backend, by pool id. */

enum lbdsr_drop_reason {
    LBDSR_DROP_NO_BACKEND = 0,
    LBDSR_DROP_PORT = 1,       /* a port that is neither FRONTEND nor BACKEND */
};
#endif

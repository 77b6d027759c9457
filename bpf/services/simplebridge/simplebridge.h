/* simplebridge's tables, shared with its control plane. */
#ifndef SIMPLEBRIDGE_H
#define SIMPLEBRIDGE_H
#include <linux/types.h>

#define SIMPLEBRIDGE_FDB_MAX 4096

/* Table `simplebridge_fdb`: MAC address (6 bytes in the low bytes of a __u64, in wire order) -> entry. */
struct simplebridge_fdb_entry {
    __u32 port;        /* port index */
    __u32 flags;       /* SIMPLEBRIDGE_STATIC: configured, never aged or moved by learning */
    __u64 timestamp;   /* last seen, seconds of CLOCK_MONOTONIC */
};
#define SIMPLEBRIDGE_STATIC 1

/* The single entry of table `simplebridge_config`. */
struct simplebridge_config {
    __u32 aging_time;  /* seconds after which a learned entry no longer counts */
    __u32 flood_members; /* XDP: the ports of flood group 1 (a bit per port) when every port leads to a
                          * netdev; 0: floods go through the slow path */
};

/* Slow-path reason: flood this frame out of every port but the one it came in on (md[0] = 1: only
 * the ports that lead to cubes, the kernel did the others). */
#define SIMPLEBRIDGE_REASON_FLOOD 1
#endif

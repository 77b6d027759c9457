/* ddosmitigator's tables, shared with its control plane. */
#ifndef DDOSMITIGATOR_H
#define DDOSMITIGATOR_H
#include <linux/types.h>

/* Tables `ddos_blacklist_src` and `ddos_blacklist_dst` (per-CPU hashes): IPv4 address (network
 * order) -> packets dropped because of that entry. Table `ddos_stats` (per-CPU array): the cube's
 * totals, which outlive the entries. */
enum ddos_stat {
    DDOS_STAT_SEEN = 0,     /* IPv4 packets entering */
    DDOS_STAT_DROPPED = 1,  /* of those, dropped */
    DDOS_STATS = 2,
};
#define DDOS_BLACKLIST_MAX 4096
/* Why a packet is dropped (counted per cube under the names ddosmitigator.c gives them). */
enum ddos_drop_reason {
    DDOS_DROP_SOURCE = 0,        /* its source is blacklisted */
    DDOS_DROP_DESTINATION = 1,   /* its destination is blacklisted */
};
#endif

/* Per-cube counters and the one drop path. */
#ifndef PCN_STATS_H
#define PCN_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared.h"
#include "context.h"

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct pcn_cube_stats);
} pcn_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PCN_MAX_PORTS);
    __type(key, __u32);
    __type(value, struct pcn_port_stats);
} pcn_port_stats SEC(".maps");

static __always_inline struct pcn_port_stats *pcn_port_stats_slot(__u32 port) {
    return bpf_map_lookup_elem(&pcn_port_stats, &port);
}

static __always_inline struct pcn_cube_stats *pcn_stats_slot(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&pcn_stats, &zero);
}

/* Every drop goes through here, so each one is counted with its reason. */
static __always_inline int pcn_drop(void *ctx, enum pcn_drop_reason reason) {
    struct pcn_cube_stats *stats = pcn_stats_slot();
    if (stats && reason < PCN_DROP_REASONS)
        stats->drops[reason]++;
    return PCN_ACT_DROP;
}

#endif

/* simplebridge: a learning bridge. The fast path learns source MACs, ages entries, forwards known
 * unicast and floods broadcast, multicast and unknown destinations in the kernel (pcn/flood.h);
 * only copies to cube peers (and, in XDP, floods when a port leads to a cube) take the slow path. */
#include <pcn/cube.h>
#include <pcn/flood.h>
#include <pcn/packet.h>
#include "simplebridge.h"

PCN_TABLE(BPF_MAP_TYPE_HASH, __u64, struct simplebridge_fdb_entry, simplebridge_fdb, SIMPLEBRIDGE_FDB_MAX);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct simplebridge_config, simplebridge_config, 1);

static __always_inline __u64 mac_key(const __u8 *mac) {
    __u64 key = 0;
    __builtin_memcpy(&key, mac, ETH_ALEN);
    return key;
}

static __always_inline void learn(__u64 source, __u32 port, __u64 now) {
    struct simplebridge_fdb_entry *entry = bpf_map_lookup_elem(&simplebridge_fdb, &source);
    if (entry && ((entry->flags & SIMPLEBRIDGE_STATIC) || (entry->port == port && entry->timestamp == now)))
        return;
    struct simplebridge_fdb_entry fresh = {.port = port, .flags = 0, .timestamp = now};
    bpf_map_update_elem(&simplebridge_fdb, &source, &fresh, BPF_ANY);
}

#ifdef PCN_HOOK_TC
#define SIMPLEBRIDGE_FLOOD_CASE(i) \
    if (i != md->in_port) { \
        if (pcn_port_to_netdev(i)) \
            pcn_flood_clone(ctx, i); \
        else if (pcn_port_to_cube(i)) \
            cubes = 1; \
    }

/* A copy out of every other netdev port; cube peers through the slow path (a tail call cannot come
 * back for the next copy). */
static __always_inline int flood(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct simplebridge_config *config) {
    int cubes = 0;
    PCN_PORT_CASES(SIMPLEBRIDGE_FLOOD_CASE)
    if (!cubes)
        return PCN_RX_SENT;
    __u32 metadata[3] = {1, 0, 0};
    return pcn_pkt_controller_with_metadata(ctx, md, SIMPLEBRIDGE_REASON_FLOOD, metadata);
}
#else
/* One broadcast to flood group 1 (every port, when all lead to netdevs); else the slow path floods. */
static __always_inline int flood(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct simplebridge_config *config) {
    if (config->flood_members)
        return pcn_flood_broadcast(ctx, md, 1, config->flood_members);
    return pcn_pkt_controller(ctx, md, SIMPLEBRIDGE_REASON_FLOOD);
}
#endif

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return RX_DROP;
    __u32 zero = 0;
    struct simplebridge_config *config = bpf_map_lookup_elem(&simplebridge_config, &zero);
    if (!config)
        return RX_DROP;
    __u64 now = bpf_ktime_get_ns() / 1000000000ULL;
    if (!pcn_mac_is_multicast(eth->h_source))
        learn(mac_key(eth->h_source), md->in_port, now);
    if (!pcn_mac_is_multicast(eth->h_dest)) {
        __u64 destination = mac_key(eth->h_dest);
        struct simplebridge_fdb_entry *entry = bpf_map_lookup_elem(&simplebridge_fdb, &destination);
        if (entry && ((entry->flags & SIMPLEBRIDGE_STATIC) || now - entry->timestamp <= config->aging_time)) {
            if (entry->port == md->in_port)
                return RX_DROP;
            return pcn_pkt_redirect(ctx, md, entry->port);
        }
    }
    return flood(ctx, md, config);
}

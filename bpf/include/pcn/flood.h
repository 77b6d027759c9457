/* Flooding in the kernel: copies of one frame out of several netdev ports.
 *
 * TC: pcn_flood_clone() per port (bpf_clone_redirect; the frame can be changed between copies, e.g.
 * its VLAN tag), then `return PCN_RX_SENT` (the original is consumed).
 * XDP cannot clone: it has one broadcast redirect to a flood group, a devmap of netdev ports that
 * the control plane fills (table pcn_flood_group_<n>, port index -> ifindex), every copy the same
 * frame; the netdev the frame came in on is left out. What a group cannot serve (ports that need
 * different tags, cube peers) a service floods through its slow path. */
#ifndef PCN_FLOOD_H
#define PCN_FLOOD_H

#include "cube.h"

_Static_assert(PCN_FLOOD_GROUPS == 4, "one devmap and one case below per flood group: keep them in step");

PCN_TABLE(BPF_MAP_TYPE_DEVMAP_HASH, __u32, __u32, pcn_flood_group_1, PCN_MAX_PORTS);
PCN_TABLE(BPF_MAP_TYPE_DEVMAP_HASH, __u32, __u32, pcn_flood_group_2, PCN_MAX_PORTS);
PCN_TABLE(BPF_MAP_TYPE_DEVMAP_HASH, __u32, __u32, pcn_flood_group_3, PCN_MAX_PORTS);
PCN_TABLE(BPF_MAP_TYPE_DEVMAP_HASH, __u32, __u32, pcn_flood_group_4, PCN_MAX_PORTS);

/* Whether port `port` (a constant) leads to a netdev, or to another cube. */
static __always_inline int pcn_port_to_netdev(const __u32 port) {
    return port < pcn_config.port_count && (pcn_config.peers[port].kind == PCN_PEER_NETDEV || pcn_config.peers[port].kind == PCN_PEER_VETH);
}

static __always_inline int pcn_port_to_cube(const __u32 port) {
    return port < pcn_config.port_count && pcn_config.peers[port].kind == PCN_PEER_CUBE;
}

#ifdef PCN_HOOK_TC
/* A copy of the frame as it is now out of netdev port `port` (a constant), counted as sent. */
static __always_inline void pcn_flood_clone(struct CTXTYPE *ctx, const __u32 port) {
    if (bpf_clone_redirect(ctx, pcn_config.peers[port].target, 0) == 0)
        pcn_count_tx(ctx, port);
}
#else
#define PCN_FLOOD_COUNT_CASE(i) \
    if ((sent >> i) & 1) \
        pcn_count_tx(ctx, i);

/* One copy out of each port of flood group `group` (1..PCN_FLOOD_GROUPS) but the netdev the frame
 * came in on; `members`: the group's ports (a bit per port index), counted as sent. */
static __always_inline int pcn_flood_broadcast(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 group, __u32 members) {
    const __u64 flags = BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS;
    long action;
    switch (group) {
    case 1: action = bpf_redirect_map(&pcn_flood_group_1, 0, flags); break;
    case 2: action = bpf_redirect_map(&pcn_flood_group_2, 0, flags); break;
    case 3: action = bpf_redirect_map(&pcn_flood_group_3, 0, flags); break;
    case 4: action = bpf_redirect_map(&pcn_flood_group_4, 0, flags); break;
    default: return pcn_drop(ctx, PCN_DROP_NO_PEER);
    }
    if (action != XDP_REDIRECT)
        return pcn_drop(ctx, PCN_DROP_NO_PEER);
    __u32 sent = members & ~(1u << (md->in_port & 31));
    PCN_PORT_CASES(PCN_FLOOD_COUNT_CASE)
    return PCN_RX_SENT;
}
#endif

#endif

/* What a standard cube's source includes. The service defines
 *     static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md);
 * and nothing about ports, peers or hooks. This header provides the helpers of the paper's Table I
 * and the entry program that wraps handle_rx. */
#ifndef PCN_CUBE_H
#define PCN_CUBE_H

#ifdef PCN_XDP
#error "XDP cubes are not built yet"
#else
#include "context_tc.h"
#endif
#include "shared.h"
#include "maps.h"
#include "stats.h"

/* Filled by pcn-core at load time. */
const volatile struct pcn_cube_config pcn_config SEC(".rodata.pcn") = {};

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md);

/* Send the packet out of `out_port`. */
static __always_inline int pcn_pkt_redirect(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 out_port) {
    md->reason = out_port;
    return RX_REDIRECT;
}

static __always_inline int pcn_pkt_drop(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    return RX_DROP;
}

/* Forwards through a port whose index is a constant: the peer is a load-time constant, so the
 * tail call uses a constant key (a direct jump once JITed). */
static __always_inline int pcn_forward_const(struct CTXTYPE *ctx, struct pkt_metadata *md, const __u32 port) {
    const __u32 kind = pcn_config.peers[port].kind;
    const __u32 target = pcn_config.peers[port].target;
    if (kind == PCN_PEER_NETDEV)
        return pcn_redirect_netdev(ctx, target);
    if (kind == PCN_PEER_CUBE) {
        pcn_md_store(ctx, md, pcn_config.peers[port].peer_port);
        bpf_tail_call(ctx, &pcn_nodes_tc, target);
        return pcn_drop(ctx, PCN_DROP_MISSED_TAIL_CALL);
    }
    return pcn_drop(ctx, PCN_DROP_NO_PEER);
}

static __always_inline int pcn_forward(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
#pragma unroll
    for (__u32 i = 0; i < PCN_MAX_PORTS; i++) {
        if (i < pcn_config.port_count && port == i)
            return pcn_forward_const(ctx, md, i);
    }
    return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
}

SEC("tc")
int pcn_cube_ingress(struct CTXTYPE *ctx) {
    struct pkt_metadata md = {};
    pcn_md_load(ctx, &md);
    struct pcn_cube_stats *stats = pcn_stats_slot();
    if (stats) {
        stats->rx_packets++;
        stats->rx_bytes += md.packet_len;
    }
    int verdict = handle_rx(ctx, &md);
    switch (verdict) {
    case RX_REDIRECT:
        if (stats)
            stats->redirected++;
        return pcn_forward(ctx, &md, md.reason);
    case RX_OK:
        if (stats)
            stats->passed++;
        return PCN_ACT_PASS;
    case RX_DROP:
        return pcn_drop(ctx, PCN_DROP_SERVICE);
    default:
        return pcn_drop(ctx, PCN_DROP_BAD_VERDICT);
    }
}

char LICENSE[] SEC("license") = "GPL";

#endif

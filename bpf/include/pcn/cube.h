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

/* Which µCube this object is: 0 is the MASTER (the cube's entry), 1.. are SLAVEs reached with
 * call_ingress_program(). pcn-core compiles each with -DPCN_UCUBE_INDEX=i. */
#ifndef PCN_UCUBE_INDEX
#define PCN_UCUBE_INDEX 0
#endif

/* Filled by pcn-core at load time. */
const volatile struct pcn_cube_config pcn_config SEC(".rodata.pcn") = {};

/* This cube's µCubes (SHARED by all of them: pcn-core gives every µCube the cube's pinned maps). */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_UCUBES);
    __type(key, __u32);
    __type(value, __u32);
} pcn_ingress_programs SEC(".maps");

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md);

/* Send the packet out of `out_port`. */
static __always_inline int pcn_pkt_redirect(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 out_port) {
    md->reason = out_port;
    return RX_REDIRECT;
}

static __always_inline int pcn_pkt_drop(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    return RX_DROP;
}

/* Continues in µCube `index` of this cube; its handle_rx sees the metadata as it is in `md` now.
 * Use as `return call_ingress_program_with_metadata(ctx, md, 1);`: if that µCube is not loaded the
 * packet is dropped and counted as a missed tail call. */
static __always_inline int call_ingress_program_with_metadata(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 index) {
    pcn_md_store(ctx, md, md->in_port);
    bpf_tail_call(ctx, &pcn_ingress_programs, index);
    pcn_drop(ctx, PCN_DROP_MISSED_TAIL_CALL);
    return PCN_RX_DROPPED_COUNTED;
}

/* The same without carrying changes made to md (the µCube sees the metadata the cube received). */
static __always_inline int call_ingress_program(struct CTXTYPE *ctx, __u32 index) {
    bpf_tail_call(ctx, &pcn_ingress_programs, index);
    pcn_drop(ctx, PCN_DROP_MISSED_TAIL_CALL);
    return PCN_RX_DROPPED_COUNTED;
}

/* Sends a copy of the packet, with `reason` and `metadata`, to the cube's slow path (its cube-host,
 * through pcn-core). Returns the verdict "handled by the slow path": `return` it to stop here, or
 * ignore it and return another verdict to forward the packet as well. If the ring is full the packet
 * is dropped and counted (slow-path-full). */
static __always_inline int pcn_pkt_controller_with_metadata(struct CTXTYPE *ctx, struct pkt_metadata *md,
                                                            __u16 reason, __u32 metadata[3]) {
    struct pcn_packet_in *record = bpf_ringbuf_reserve(&pcn_packet_in, sizeof(*record), 0);
    if (!record) {
        pcn_drop(ctx, PCN_DROP_SLOW_PATH_FULL);
        return PCN_RX_DROPPED_COUNTED;
    }
    __u32 len = pcn_len(ctx);
    record->cube_id = pcn_config.cube_id;
    record->port = md->in_port;
#ifdef PCN_EGRESS
    record->direction = 1;
#else
    record->direction = 0;
#endif
    record->reason = reason;
    record->reserved = 0;
    record->packet_len = len;
    if (len > PCN_PACKET_IN_MAX)
        len = PCN_PACKET_IN_MAX;
    record->captured_len = len;
    record->md[0] = metadata[0];
    record->md[1] = metadata[1];
    record->md[2] = metadata[2];
    if (len < 1 || pcn_load_bytes(ctx, 0, record->data, len) < 0) {
        bpf_ringbuf_discard(record, 0);
        pcn_drop(ctx, PCN_DROP_SLOW_PATH_FULL);
        return PCN_RX_DROPPED_COUNTED;
    }
    bpf_ringbuf_submit(record, 0);
    return PCN_RX_SLOW_PATH;
}

static __always_inline int pcn_pkt_controller(struct CTXTYPE *ctx, struct pkt_metadata *md, __u16 reason) {
    __u32 none[3] = {0, 0, 0};
    return pcn_pkt_controller_with_metadata(ctx, md, reason, none);
}

/* A tail call into patch-panel slot `node` that clang cannot merge with another one: each call site
 * carries its own immediate (`site`). Merged sites would reach one call with different keys, and the
 * verifier then falls back from a direct jump to an indirect (retpolined) one. */
static __always_inline void pcn_tail_call_node(struct CTXTYPE *ctx, __u32 node, const __u32 site) {
    asm volatile("r0 = %[site]\n\t"
                 "r1 = %[ctx]\n\t"
                 "r2 = %[map] ll\n\t"
                 "r3 = %[node]\n\t"
                 "call 12\n\t"
                 :: [ctx] "r"(ctx), [map] "i"(&pcn_nodes_tc), [node] "r"(node), [site] "i"(site)
                 : "r0", "r1", "r2", "r3", "r4", "r5");
}

/* Forwards through a port whose index is a constant: the peer is a load-time constant, so the
 * tail call uses a constant key (a direct jump once JITed). */
static __always_inline int pcn_forward_const(struct CTXTYPE *ctx, struct pkt_metadata *md, const __u32 port) {
    const __u32 kind = pcn_config.peers[port].kind;
    struct pcn_port_stats *out = pcn_port_stats_slot(port);
    if (out && kind != PCN_PEER_NONE) {
        out->tx_packets++;
        out->tx_bytes += pcn_len(ctx);
    }
    const __u32 target = pcn_config.peers[port].target;
    if (kind == PCN_PEER_NETDEV)
        return pcn_redirect_netdev(ctx, target);
    if (kind == PCN_PEER_CUBE) {
        pcn_md_store(ctx, md, pcn_config.peers[port].peer_port);
        pcn_tail_call_node(ctx, target, port);
        return pcn_drop(ctx, PCN_DROP_MISSED_TAIL_CALL);
    }
    return pcn_drop(ctx, PCN_DROP_NO_PEER);
}

_Static_assert(PCN_MAX_PORTS == 16, "pcn_forward has one case per port: keep them in step");

#define PCN_FORWARD_CASE(i) \
    case i: \
        return pcn_forward_const(ctx, md, i);

/* One case per port, each with its literal index (the verifier drops the cases of ports not in use). */
static __always_inline int pcn_forward(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
    if (port >= pcn_config.port_count)
        return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
    switch (port) {
    PCN_FORWARD_CASE(0) PCN_FORWARD_CASE(1) PCN_FORWARD_CASE(2) PCN_FORWARD_CASE(3)
    PCN_FORWARD_CASE(4) PCN_FORWARD_CASE(5) PCN_FORWARD_CASE(6) PCN_FORWARD_CASE(7)
    PCN_FORWARD_CASE(8) PCN_FORWARD_CASE(9) PCN_FORWARD_CASE(10) PCN_FORWARD_CASE(11)
    PCN_FORWARD_CASE(12) PCN_FORWARD_CASE(13) PCN_FORWARD_CASE(14) PCN_FORWARD_CASE(15)
    default:
        return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
    }
}

/* How both entry programs end for every verdict but a redirect. */
static __always_inline int pcn_finish(struct CTXTYPE *ctx, struct pcn_cube_stats *stats, int verdict) {
    switch (verdict) {
    case RX_OK:
        if (stats)
            stats->passed++;
        return PCN_ACT_PASS;
    case RX_DROP:
        return pcn_drop(ctx, PCN_DROP_SERVICE);
    case PCN_RX_DROPPED_COUNTED:
        return PCN_ACT_DROP;
    case PCN_RX_SLOW_PATH:
        if (stats)
            stats->to_slow_path++;
        return PCN_ACT_DROP;
    default:
        return pcn_drop(ctx, PCN_DROP_BAD_VERDICT);
    }
}

#ifndef PCN_EGRESS
SEC("tc")
int pcn_cube_ingress(struct CTXTYPE *ctx) {
    struct pkt_metadata md = {};
    pcn_md_load(ctx, &md);
    struct pcn_cube_stats *stats = pcn_stats_slot();
#if PCN_UCUBE_INDEX == 0
    /* A packet is received once per cube: by its MASTER. */
    struct pcn_port_stats *in = pcn_port_stats_slot(md.in_port);
    if (in) {
        in->rx_packets++;
        in->rx_bytes += md.packet_len;
    }
#endif
    int verdict = handle_rx(ctx, &md);
    if (verdict == RX_REDIRECT) {
        if (stats)
            stats->redirected++;
        return pcn_forward(ctx, &md, md.reason);
    }
    return pcn_finish(ctx, stats, verdict);
}
#else
/* The port whose peer is the netdev with `ifindex`, or PCN_NO_PORT. */
static __always_inline __u16 pcn_port_of_netdev(__u32 ifindex) {
#pragma unroll
    for (__u32 i = 0; i < PCN_MAX_PORTS; i++) {
        if (i < pcn_config.port_count && pcn_config.peers[i].kind == PCN_PEER_NETDEV && pcn_config.peers[i].target == ifindex)
            return i;
    }
    return PCN_NO_PORT;
}

/* The cube's egress program, at the TC egress hook of each netdev that is the peer of one of its
 * ports: it sees what the cube sends there and what the host stack sends there. md->in_port is that
 * port. RX_OK lets the packet leave; a redirect is not possible here (counted as a bad verdict). */
SEC("tc")
int pcn_cube_egress(struct CTXTYPE *ctx) {
    struct pkt_metadata md = {};
    md.in_port = pcn_port_of_netdev(ctx->ifindex);
    md.packet_len = pcn_len(ctx);
    return pcn_finish(ctx, pcn_stats_slot(), handle_rx(ctx, &md));
}
#endif

char LICENSE[] SEC("license") = "GPL";

#endif

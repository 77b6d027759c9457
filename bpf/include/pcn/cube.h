/* What a standard cube's source includes. The service defines
 *     static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md);
 * and nothing about ports, peers or hooks. This header provides the helpers of the paper's Table I
 * and the entry program that wraps handle_rx. */
#ifndef PCN_CUBE_H
#define PCN_CUBE_H

#include "context.h"
#include "shared.h"
#include "maps.h"
#include "stats.h"
#include "drop_reasons.h"
#include "tables.h"

/* Which µCube this object is: 0 is the MASTER (the entry), 1.. are SLAVEs reached with
 * call_ingress_program() / call_egress_program(). pcn-core compiles each with -DPCN_UCUBE_INDEX=i. */
#ifndef PCN_UCUBE_INDEX
#define PCN_UCUBE_INDEX 0
#endif

/* Filled by pcn-core at load time. */
const volatile struct pcn_cube_config pcn_config SEC(".rodata.pcn") = {};

#include "log.h"

/* This cube's µCubes (SHARED by all of them: pcn-core gives every µCube the cube's pinned maps).
 * A prog array holds one program type, so an XDP cube's egress programs built for TC (the host
 * stack's traffic) have their own array. */
#if !defined(PCN_EGRESS)
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_UCUBES);
    __type(key, __u32);
    __type(value, __u32);
} pcn_ingress_programs SEC(".maps");
#define PCN_UCUBES pcn_ingress_programs
#elif defined(PCN_XDP)
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_UCUBES);
    __type(key, __u32);
    __type(value, __u32);
} pcn_egress_programs_xdp SEC(".maps");
#define PCN_UCUBES pcn_egress_programs_xdp
#else
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_UCUBES);
    __type(key, __u32);
    __type(value, __u32);
} pcn_egress_programs SEC(".maps");
#define PCN_UCUBES pcn_egress_programs
#endif

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md);

/* Send the packet out of `out_port`. */
static __always_inline int pcn_pkt_redirect(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 out_port) {
    md->reason = out_port;
    return RX_REDIRECT;
}

static __always_inline int pcn_pkt_drop(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    return RX_DROP;
}

/* Drops the packet, counted under one of the service's own reasons (bpf/include/pcn/drop_reasons.h). */
static __always_inline int pcn_pkt_drop_reason(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 reason) {
    return pcn_drop_service_reason(reason);
}

/* Continues in µCube `index` of this cube's program of the same direction; its handle_rx sees
 * the metadata as it is in `md` now. Use as `return call_ingress_program_with_metadata(ctx, md, 1);`:
 * if that µCube is not loaded the packet is dropped and counted as a missed tail call. */
static __always_inline int pcn_call_ucube(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 index) {
    if (md)
        pcn_md_store(ctx, md, md->in_port);
    bpf_tail_call(ctx, &PCN_UCUBES, index);
    pcn_drop(ctx, PCN_DROP_MISSED_TAIL_CALL);
    return PCN_RX_DROPPED_COUNTED;
}

#ifndef PCN_EGRESS
static __always_inline int call_ingress_program_with_metadata(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 index) {
    return pcn_call_ucube(ctx, md, index);
}

/* The same without carrying changes made to md (the µCube sees the metadata the cube received). */
static __always_inline int call_ingress_program(struct CTXTYPE *ctx, __u32 index) {
    return pcn_call_ucube(ctx, 0, index);
}
#else
static __always_inline int call_egress_program_with_metadata(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 index) {
    return pcn_call_ucube(ctx, md, index);
}

static __always_inline int call_egress_program(struct CTXTYPE *ctx, __u32 index) {
    return pcn_call_ucube(ctx, 0, index);
}
#endif

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
    __u64 len = pcn_frame_len(ctx);
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
                 :: [ctx] "r"(ctx), [map] "i"(&PCN_NODES), [node] "r"(node), [site] "i"(site)
                 : "r0", "r1", "r2", "r3", "r4", "r5");
}

/* Sends the packet to a hop whose fields are load-time constants: the tail call uses a constant
 * key (a direct jump once JITed). `site` must differ between call sites. */
static __always_inline int pcn_go(struct CTXTYPE *ctx, struct pkt_metadata *md, const volatile struct pcn_port_peer *hop,
                                  const __u32 site) {
    const __u32 kind = hop->kind;
    if (kind == PCN_PEER_NETDEV)
        return pcn_redirect_netdev(ctx, hop->target);
    if (kind == PCN_PEER_VETH)
        return pcn_redirect_veth(ctx, hop->target);
    if (kind == PCN_PEER_CUBE) {
        pcn_md_store(ctx, md, hop->peer_port);
        pcn_tail_call_node(ctx, hop->target, site);
        return pcn_drop(ctx, PCN_DROP_MISSED_TAIL_CALL);
    }
    if (kind == PCN_PEER_STACK)
        return PCN_ACT_PASS;
    return pcn_drop(ctx, PCN_DROP_NO_PEER);
}

static __always_inline void pcn_count_tx(struct CTXTYPE *ctx, __u32 port) {
    struct pcn_port_stats *out = pcn_port_stats_slot(port);
    if (out) {
        out->tx_packets++;
        out->tx_bytes += pcn_len(ctx);
    }
}

static __always_inline void pcn_count_rx(struct pkt_metadata *md, __u32 port) {
    struct pcn_port_stats *in = pcn_port_stats_slot(port);
    if (in) {
        in->rx_packets++;
        in->rx_bytes += md->packet_len;
    }
}

_Static_assert((PCN_MAX_PORTS & (PCN_MAX_PORTS - 1)) == 0, "pcn_port_index masks with PCN_MAX_PORTS - 1");

/* `port` as an index the verifier knows is below PCN_MAX_PORTS: the mask is in asm, so clang cannot
 * drop it as redundant after a bounds check the verifier may not follow (a copy in another register). */
static __always_inline __u32 pcn_port_index(__u32 port) {
    asm volatile("%[port] &= %[mask]" : [port] "+r"(port) : [mask] "i"(PCN_MAX_PORTS - 1));
    return port;
}

/* Shadow cubes (pcn_config.shadow): each port has a twin interface in the namespace pcn-<cube>.
 * What the service hands to the namespace goes up the twin's stack; what the namespace sends comes
 * back on PCN_SHADOW_PORT(i) and leaves through port i as it is. With span, every packet received
 * or sent on a port is also copied to its twin, so the namespace already has what the service would
 * hand it. Dead code (the verifier removes it) in cubes without a shadow. */
static __always_inline int pcn_shadow_ifindex(__u32 port) {
    return port < PCN_MAX_PORTS ? pcn_config.shadow_ifindex[pcn_port_index(port)] : 0;
}

/* Copies the packet to port `port`'s twin (span). TC only: XDP has no in-kernel copy. */
static __always_inline void pcn_span_copy(struct CTXTYPE *ctx, __u32 port) {
#ifdef PCN_HOOK_TC
    if (!pcn_config.span)
        return;
    __u32 ifindex = pcn_shadow_ifindex(port);
    if (ifindex)
        bpf_clone_redirect(ctx, ifindex, 0);
#endif
}

/* Hands the packet to the shadow namespace through port `port`'s twin: the packet is for Linux
 * tools there (a routing daemon, ping), not for the cube. A cube without a shadow drops it (no-peer). */
static __always_inline int pcn_pkt_redirect_ns(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
    md->reason = PCN_SHADOW_PORT(port);
    return RX_REDIRECT;
}

/* True in a cube created with shadow=true: services send what is not theirs to the namespace. */
static __always_inline int pcn_is_shadow(void) { return pcn_config.shadow != 0; }

static __always_inline int pcn_to_shadow(struct CTXTYPE *ctx, __u32 port) {
    __u32 ifindex = pcn_shadow_ifindex(port);
    if (!pcn_config.shadow || !ifindex)
        return pcn_drop(ctx, PCN_DROP_NO_PEER);
#ifdef PCN_HOOK_TC
    /* The span copy already took it there. */
    if (pcn_config.span)
        return PCN_ACT_DROP;
#endif
    return pcn_redirect_netdev(ctx, ifindex);
}

/* Forwards through port `port` (an index the verifier can bound); `site` is its tail call's. */
static __always_inline int pcn_forward_port(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port, const __u32 site) {
    if (pcn_config.peers[port].kind != PCN_PEER_NONE) {
        pcn_count_tx(ctx, port);
        pcn_span_copy(ctx, port);
    }
    return pcn_go(ctx, md, &pcn_config.peers[port], site);
}

/* Forwards through a port whose index is a constant (its own site). */
static __always_inline int pcn_forward_const(struct CTXTYPE *ctx, struct pkt_metadata *md, const __u32 port) {
    return pcn_forward_port(ctx, md, port, port);
}

_Static_assert(PCN_CONST_PORTS == 16, "the port switches have one case per constant port: keep them in step");

/* Tail-call sites (pcn_tail_call_node): ports' own 0..15, egress 16..31, a transparent cube's exit
 * 32, from the shadow 48..63; the shared paths of ports from PCN_CONST_PORTS up below. */
#define PCN_SITE_FORWARD_ANY 64
#define PCN_SITE_EGRESS_ANY 65
#define PCN_SITE_SHADOW_ANY 66

/* A port from PCN_CONST_PORTS up: its hop is read at a variable index, so its tail call's key is not
 * a constant (an indirect jump, a few ns more than a constant port's). */
static __always_inline int pcn_forward_any(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
    if (port >= PCN_MAX_PORTS)
        return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
    return pcn_forward_port(ctx, md, pcn_port_index(port), PCN_SITE_FORWARD_ANY);
}

#define PCN_PORT_CASES(CASE) \
    CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) \
    CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15)

#define PCN_FORWARD_CASE(i) \
    case i: \
        return pcn_forward_const(ctx, md, i);

/* One case per port, each with its literal index (the verifier drops the cases of ports not in use). */
static __always_inline int pcn_forward(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
    if (pcn_config.shadow && port >= PCN_SHADOW_PORT(0))
        return pcn_to_shadow(ctx, port - PCN_SHADOW_PORT(0));
    if (port >= pcn_config.port_count)
        return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
    switch (port) {
    PCN_PORT_CASES(PCN_FORWARD_CASE)
    default:
        return pcn_forward_any(ctx, md, port);
    }
}

/* What the namespace sent through port `port`'s twin, out of the port (counted, not spanned back). */
static __always_inline int pcn_shadow_out(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port, const __u32 site) {
    if (pcn_config.peers[port].kind != PCN_PEER_NONE)
        pcn_count_tx(ctx, port);
    return pcn_go(ctx, md, &pcn_config.peers[port], site);
}

#define PCN_FROM_SHADOW_CASE(i) \
    case i: \
        return pcn_shadow_out(ctx, md, i, 48 + i);

/* A packet the namespace sent through port `port`'s twin: out of the port, untouched by the service. */
static __always_inline int pcn_from_shadow(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
    if (port >= pcn_config.port_count)
        return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
    switch (port) {
    PCN_PORT_CASES(PCN_FROM_SHADOW_CASE)
    default:
        if (port >= PCN_MAX_PORTS)
            return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
        return pcn_shadow_out(ctx, md, pcn_port_index(port), PCN_SITE_SHADOW_ANY);
    }
}

/* How the entry programs end for every verdict they do not route themselves. */
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
    case PCN_RX_SENT:
        if (stats)
            stats->redirected++;
        return PCN_ACT_SENT;
    default:
        return pcn_drop(ctx, PCN_DROP_BAD_VERDICT);
    }
}

#if defined(PCN_TRANSPARENT)
/* A transparent cube: no ports. handle_rx sees md->in_port = the direction (0 ingress, 1 egress);
 * RX_OK sends the packet on to the next hop of its chain (peers[0]); port counters 0 and 1 count
 * what entered and left in each direction. */
#ifdef PCN_EGRESS
#define PCN_TRANSPARENT_DIRECTION 1
#else
#define PCN_TRANSPARENT_DIRECTION 0
#endif
SEC(PCN_SECTION)
int pcn_transparent(struct CTXTYPE *ctx) {
    struct pkt_metadata md = {};
    pcn_md_load(ctx, &md);
    md.in_port = PCN_TRANSPARENT_DIRECTION;
    md.reason = 0;
    /* One slot counts both what entered and what left in this direction: one lookup, not two. */
    struct pcn_port_stats *counters = pcn_port_stats_slot(PCN_TRANSPARENT_DIRECTION);
#if PCN_UCUBE_INDEX == 0
    if (counters) {
        counters->rx_packets++;
        counters->rx_bytes += md.packet_len;
    }
#endif
    int verdict = handle_rx(ctx, &md);
    struct pcn_cube_stats *stats = pcn_stats_slot();
    if (verdict == RX_OK) {
        if (stats)
            stats->passed++;
        if (counters) {
            counters->tx_packets++;
            counters->tx_bytes += pcn_len(ctx);
        }
        return pcn_go(ctx, &md, &pcn_config.peers[0], 32);
    }
    if (verdict == RX_REDIRECT)
        return pcn_drop(ctx, PCN_DROP_BAD_VERDICT);
    return pcn_finish(ctx, stats, verdict);
}
#elif defined(PCN_EGRESS)
#define PCN_EGRESS_CASE(i) \
    case i: \
        return pcn_go(ctx, md, &pcn_config.egress_next[i], 16 + i);

/* Where a packet the egress program lets through port `port` goes: the netdev's egress chain. */
static __always_inline int pcn_egress_next(struct CTXTYPE *ctx, struct pkt_metadata *md, __u32 port) {
    switch (port) {
    PCN_PORT_CASES(PCN_EGRESS_CASE)
    default:
        if (port >= PCN_MAX_PORTS)
            return pcn_drop(ctx, PCN_DROP_UNKNOWN_PORT);
        return pcn_go(ctx, md, &pcn_config.egress_next[pcn_port_index(port)], PCN_SITE_EGRESS_ANY);
    }
}

/* A standard cube's egress program: runs for what leaves a port whose peer is a netdev, both what
 * the cube forwards there and what the host stack sends there. md->in_port is that port. RX_OK
 * lets the packet go on; a redirect is not possible here (counted as a bad verdict). */
SEC(PCN_SECTION)
int pcn_cube_egress(struct CTXTYPE *ctx) {
    struct pkt_metadata md = {};
    pcn_md_load(ctx, &md);
    int verdict = handle_rx(ctx, &md);
    if (verdict == RX_OK)
        return pcn_egress_next(ctx, &md, md.in_port);
    return pcn_finish(ctx, pcn_stats_slot(), verdict == RX_REDIRECT ? -1 : verdict);
}
#else
SEC(PCN_SECTION)
int pcn_cube_ingress(struct CTXTYPE *ctx) {
    struct pkt_metadata md = {};
    pcn_md_load(ctx, &md);
    struct pcn_cube_stats *stats = pcn_stats_slot();
#if PCN_UCUBE_INDEX == 0
    if (pcn_config.shadow && md.in_port >= PCN_SHADOW_PORT(0))
        return pcn_from_shadow(ctx, &md, md.in_port - PCN_SHADOW_PORT(0));
    /* A packet is received once per cube: by its MASTER. */
    pcn_count_rx(&md, md.in_port);
    pcn_span_copy(ctx, md.in_port);
#endif
    int verdict = handle_rx(ctx, &md);
    if (verdict == RX_REDIRECT) {
        if (stats)
            stats->redirected++;
        return pcn_forward(ctx, &md, md.reason);
    }
    return pcn_finish(ctx, stats, verdict);
}
#endif

char LICENSE[] SEC("license") = "GPL";

#endif

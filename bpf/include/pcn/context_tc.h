/* The context-neutral accessors for TC (struct __sk_buff). A service's handle_rx uses only these,
 * so the same source builds for TC and, with context_xdp.h, for XDP. */
#ifndef PCN_CONTEXT_TC_H
#define PCN_CONTEXT_TC_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "shared.h"

#define CTXTYPE __sk_buff
#define PCN_HOOK_TC 1
#define PCN_SECTION "tc"

static __always_inline void *pcn_data(struct __sk_buff *ctx) { return (void *)(long)ctx->data; }
static __always_inline void *pcn_data_end(struct __sk_buff *ctx) { return (void *)(long)ctx->data_end; }
static __always_inline __u32 pcn_len(struct __sk_buff *ctx) { return ctx->len; }
/* The frame's length as a value the verifier can bound: for sizes given to helpers. */
static __always_inline __u64 pcn_frame_len(struct __sk_buff *ctx) { return ctx->len; }

/* Metadata between cubes travels in skb->cb[0..4]: in_port|reason<<16, traffic_class, md[0..2]. */
static __always_inline void pcn_md_load(struct __sk_buff *ctx, struct pkt_metadata *md) {
    md->in_port = ctx->cb[0] & 0xffff;
    md->reason = ctx->cb[0] >> 16;
    md->traffic_class = ctx->cb[1];
    md->md[0] = ctx->cb[2];
    md->md[1] = ctx->cb[3];
    md->md[2] = ctx->cb[4];
    md->packet_len = ctx->len;
}

static __always_inline void pcn_md_store(struct __sk_buff *ctx, const struct pkt_metadata *md, __u16 in_port) {
    ctx->cb[0] = in_port; /* reason 0 */
    ctx->cb[1] = md->traffic_class;
    ctx->cb[2] = md->md[0];
    ctx->cb[3] = md->md[1];
    ctx->cb[4] = md->md[2];
}

static __always_inline int pcn_load_bytes(struct __sk_buff *ctx, __u32 offset, void *to, __u32 len) {
    return bpf_skb_load_bytes(ctx, offset, to, len);
}

#define PCN_ACT_DROP TC_ACT_SHOT
#define PCN_ACT_PASS TC_ACT_OK
/* The packet went out as clones (bpf_clone_redirect): the original is consumed, not dropped. */
#define PCN_ACT_SENT TC_ACT_STOLEN

static __always_inline int pcn_redirect_netdev(struct __sk_buff *ctx, __u32 ifindex) {
    return bpf_redirect(ifindex, 0);
}

/* Out of veth `ifindex` is into its twin: delivered there at once (cubes run at TC ingress). */
static __always_inline int pcn_redirect_veth(struct __sk_buff *ctx, __u32 ifindex) {
    return bpf_redirect_peer(ifindex, 0);
}

#endif

/* The context-neutral accessors for XDP (struct xdp_md): the same names as context_tc.h, so one
 * service source builds for both hooks. */
#ifndef PCN_CONTEXT_XDP_H
#define PCN_CONTEXT_XDP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
/* This header is the XDP build: the maps that go with it are the XDP ones. */
#ifndef PCN_XDP
#define PCN_XDP 1
#endif
#include "shared.h"
#include "maps.h"

#define CTXTYPE xdp_md
#define PCN_HOOK_XDP 1
#define PCN_SECTION "xdp"

static __always_inline void *pcn_data(struct xdp_md *ctx) { return (void *)(long)ctx->data; }
static __always_inline void *pcn_data_end(struct xdp_md *ctx) { return (void *)(long)ctx->data_end; }
static __always_inline __u32 pcn_len(struct xdp_md *ctx) { return ctx->data_end - ctx->data; }
/* The frame's length as a value the verifier can bound (a difference of packet pointers is not):
 * for sizes given to helpers. */
static __always_inline __u64 pcn_frame_len(struct xdp_md *ctx) { return bpf_xdp_get_buff_len(ctx); }

static __always_inline struct pkt_metadata *pcn_md_slot(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&pcn_xdp_md, &zero);
}

/* Metadata between cubes travels in this CPU's slot of pcn_xdp_md. */
static __always_inline void pcn_md_load(struct xdp_md *ctx, struct pkt_metadata *md) {
    struct pkt_metadata *slot = pcn_md_slot();
    if (slot)
        *md = *slot;
    md->packet_len = pcn_len(ctx);
}

static __always_inline void pcn_md_store(struct xdp_md *ctx, const struct pkt_metadata *md, __u16 in_port) {
    struct pkt_metadata *slot = pcn_md_slot();
    if (!slot)
        return;
    *slot = *md;
    slot->in_port = in_port;
    slot->reason = 0;
}

static __always_inline int pcn_load_bytes(struct xdp_md *ctx, __u32 offset, void *to, __u32 len) {
    return bpf_xdp_load_bytes(ctx, offset, to, len);
}

#define PCN_ACT_DROP XDP_DROP
#define PCN_ACT_PASS XDP_PASS
/* The packet goes where bpf_redirect_map() (a broadcast) put it. */
#define PCN_ACT_SENT XDP_REDIRECT

static __always_inline int pcn_redirect_netdev(struct xdp_md *ctx, __u32 ifindex) {
    return bpf_redirect(ifindex, 0);
}

static __always_inline int pcn_redirect_veth(struct xdp_md *ctx, __u32 ifindex) {
    return bpf_redirect(ifindex, 0);
}

#endif

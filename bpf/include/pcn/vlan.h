/* 802.1Q tags, the same for TC and XDP: read, push and pop. TC keeps a tag the kernel took out of
 * the frame in the skb (vlan_present, vlan_tci) and pushes into it; XDP sees tags in the frame and
 * moves the MAC addresses to push or pop one. Helpers that change the frame invalidate packet
 * pointers: parse again after them. */
#ifndef PCN_VLAN_H
#define PCN_VLAN_H

#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include "context.h"

#define PCN_ETH_P_8021Q 0x8100
#define PCN_VLAN_VID_MASK 0x0fff

struct pcn_vlan_hdr {
    __be16 tci;
    __be16 proto;   /* the EtherType of what follows the tag */
};

/* 1 with the VLAN id in *vid when the frame has a tag (VLAN 0: priority-tagged), else 0. */
static __always_inline int pcn_vlan_tag(struct CTXTYPE *ctx, __u16 *vid) {
#ifdef PCN_HOOK_TC
    if (ctx->vlan_present) {
        *vid = ctx->vlan_tci & PCN_VLAN_VID_MASK;
        return 1;
    }
#endif
    struct ethhdr *eth = pcn_data(ctx);
    struct pcn_vlan_hdr *tag = (void *)(eth + 1);
    if ((void *)(tag + 1) > pcn_data_end(ctx) || eth->h_proto != bpf_htons(PCN_ETH_P_8021Q))
        return 0;
    *vid = bpf_ntohs(tag->tci) & PCN_VLAN_VID_MASK;
    return 1;
}

/* Removes the outer tag; 0 when done, negative when the frame has none or it cannot be removed. */
static __always_inline int pcn_vlan_pop(struct CTXTYPE *ctx) {
#ifdef PCN_HOOK_TC
    return bpf_skb_vlan_pop(ctx);
#else
    struct ethhdr *eth = pcn_data(ctx);
    struct pcn_vlan_hdr *tag = (void *)(eth + 1);
    if ((void *)(tag + 1) > pcn_data_end(ctx) || eth->h_proto != bpf_htons(PCN_ETH_P_8021Q))
        return -1;
    __u8 addresses[2 * ETH_ALEN];
    __builtin_memcpy(addresses, eth, sizeof(addresses));
    __builtin_memcpy((void *)eth + sizeof(*tag), addresses, sizeof(addresses));
    return bpf_xdp_adjust_head(ctx, sizeof(*tag));
#endif
}

/* Adds a tag with `vid` (priority 0); 0 when done. */
static __always_inline int pcn_vlan_push(struct CTXTYPE *ctx, __u16 vid) {
#ifdef PCN_HOOK_TC
    return bpf_skb_vlan_push(ctx, bpf_htons(PCN_ETH_P_8021Q), vid);
#else
    if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct pcn_vlan_hdr)))
        return -1;
    struct ethhdr *eth = pcn_data(ctx);
    struct pcn_vlan_hdr *tag = (void *)(eth + 1);
    if ((void *)(tag + 1) > pcn_data_end(ctx))
        return -1;
    __u8 addresses[2 * ETH_ALEN];
    __builtin_memcpy(addresses, (void *)eth + sizeof(*tag), sizeof(addresses));
    __builtin_memcpy(eth, addresses, sizeof(addresses));
    eth->h_proto = bpf_htons(PCN_ETH_P_8021Q);
    tag->tci = bpf_htons(vid & PCN_VLAN_VID_MASK);
    /* tag->proto is where the frame's EtherType already was. */
    return 0;
#endif
}

/* Makes the frame carry `vid` tagged (want_tagged) or no tag; *tagged is its state, kept up to date. */
static __always_inline int pcn_vlan_set(struct CTXTYPE *ctx, int *tagged, int want_tagged, __u16 vid) {
    if (*tagged == want_tagged)
        return 0;
    int failed = want_tagged ? pcn_vlan_push(ctx, vid) : pcn_vlan_pop(ctx);
    if (!failed)
        *tagged = want_tagged;
    return failed;
}

#endif

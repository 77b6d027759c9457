/* Rewriting an IPv4 packet's addresses and ports with their checksums, the same call for TC and
 * XDP. Offsets are from the start of the frame; `l4_check` is the offset of the L4 checksum to fix
 * (0: none). TC goes through the kernel's helpers, which know a checksum the stack left for the
 * device to finish (CHECKSUM_PARTIAL: the field holds only the pseudo-header sum); XDP frames carry
 * complete checksums and are fixed in place. Helpers invalidate packet pointers: take them again. */
#ifndef PCN_REWRITE_H
#define PCN_REWRITE_H

#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include "context.h"
#include "packet.h"

#define PCN_IP_CHECK_OFFSET (ETH_HLEN + offsetof(struct iphdr, check))
/* Offsets are masked to this, so the verifier can bound them. */
#define PCN_REWRITE_OFFSET_MASK 0x3ff

/* RFC 1624 incremental update of `check` when a 32-bit word changes. */
static __always_inline void pcn_csum_replace32(__sum16 *check, __be32 from, __be32 to) {
    pcn_csum_replace16(check, (__be16)(from & 0xffff), (__be16)(to & 0xffff));
    pcn_csum_replace16(check, (__be16)(from >> 16), (__be16)(to >> 16));
}

#ifdef PCN_HOOK_TC
static __always_inline int pcn_rewrite_addr(struct CTXTYPE *ctx, __u32 offset, __be32 from, __be32 to, __u32 l4_check, int udp) {
    if (bpf_skb_store_bytes(ctx, offset, &to, sizeof(to), 0) < 0 ||
        bpf_l3_csum_replace(ctx, PCN_IP_CHECK_OFFSET, from, to, sizeof(to)) < 0)
        return -1;
    if (l4_check)
        return bpf_l4_csum_replace(ctx, l4_check, from, to, BPF_F_PSEUDO_HDR | sizeof(to) | (udp ? BPF_F_MARK_MANGLED_0 : 0));
    return 0;
}

static __always_inline int pcn_rewrite_port(struct CTXTYPE *ctx, __u32 offset, __be16 from, __be16 to, __u32 l4_check, int udp) {
    if (bpf_skb_store_bytes(ctx, offset, &to, sizeof(to), 0) < 0)
        return -1;
    if (l4_check)
        return bpf_l4_csum_replace(ctx, l4_check, from, to, sizeof(to) | (udp ? BPF_F_MARK_MANGLED_0 : 0));
    return 0;
}
#else
/* An L4 checksum fixed in place; UDP's 0 means "none" and stays, a result of 0 is sent as 0xffff. */
static __always_inline int pcn_fix_l4_check(struct CTXTYPE *ctx, __u32 l4_check, __be32 from, __be32 to, int wide, int udp) {
    __sum16 *check = pcn_data(ctx) + (l4_check & PCN_REWRITE_OFFSET_MASK);
    if ((void *)(check + 1) > pcn_data_end(ctx))
        return -1;
    if (udp && *check == 0)
        return 0;
    if (wide)
        pcn_csum_replace32(check, from, to);
    else
        pcn_csum_replace16(check, (__be16)from, (__be16)to);
    if (udp && *check == 0)
        *check = 0xffff;
    return 0;
}

static __always_inline int pcn_rewrite_addr(struct CTXTYPE *ctx, __u32 offset, __be32 from, __be32 to, __u32 l4_check, int udp) {
    void *data = pcn_data(ctx);
    __be32 *field = data + (offset & PCN_REWRITE_OFFSET_MASK);
    struct iphdr *ip = data + ETH_HLEN;
    if ((void *)(field + 1) > pcn_data_end(ctx) || (void *)(ip + 1) > pcn_data_end(ctx))
        return -1;
    *field = to;
    pcn_csum_replace32(&ip->check, from, to);
    return l4_check ? pcn_fix_l4_check(ctx, l4_check, from, to, 1, udp) : 0;
}

static __always_inline int pcn_rewrite_port(struct CTXTYPE *ctx, __u32 offset, __be16 from, __be16 to, __u32 l4_check, int udp) {
    __be16 *field = pcn_data(ctx) + (offset & PCN_REWRITE_OFFSET_MASK);
    if ((void *)(field + 1) > pcn_data_end(ctx))
        return -1;
    *field = to;
    return l4_check ? pcn_fix_l4_check(ctx, l4_check, from, to, 0, udp) : 0;
}
#endif

/* A flow's ends as a packet carries them; ICMP echo: the identifier in both ports. */
struct pcn_flow {
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
};

/* Rewrites a TCP, UDP or ICMP echo packet from `from` (its ends now) to `to`, every checksum with
 * it; `l4` is the L4 header's frame offset. ICMP addresses are in no ICMP checksum; its identifier is. */
static __always_inline int pcn_rewrite_flow(struct CTXTYPE *ctx, __u32 l4, __u8 proto, const struct pcn_flow *from, const struct pcn_flow *to) {
    __u32 check = 0;
    int udp = 0;
    if (proto == 6) {
        check = l4 + 16;
    } else if (proto == 17) {
        check = l4 + 6;
        udp = 1;
    }
    if (to->src != from->src && pcn_rewrite_addr(ctx, ETH_HLEN + offsetof(struct iphdr, saddr), from->src, to->src, check, udp) < 0)
        return -1;
    if (to->dst != from->dst && pcn_rewrite_addr(ctx, ETH_HLEN + offsetof(struct iphdr, daddr), from->dst, to->dst, check, udp) < 0)
        return -1;
    if (proto == PCN_IPPROTO_ICMP)
        return to->sport != from->sport ? pcn_rewrite_port(ctx, l4 + 4, from->sport, to->sport, l4 + 2, 0) : 0;
    if (to->sport != from->sport && pcn_rewrite_port(ctx, l4, from->sport, to->sport, check, udp) < 0)
        return -1;
    if (to->dport != from->dport && pcn_rewrite_port(ctx, l4 + 2, from->dport, to->dport, check, udp) < 0)
        return -1;
    return 0;
}

#endif

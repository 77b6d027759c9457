/* Header parsing and rewriting for services, the same for TC and XDP (direct packet access; TC
 * programs that write get an unshared skb from the kernel). Each parser returns NULL when the
 * header does not fit in the frame, so a service checks one pointer. */
#ifndef PCN_PACKET_H
#define PCN_PACKET_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include "context.h"

/* From linux/if_arp.h and linux/icmp.h, which pull in libc headers a BPF build cannot use. */
#define PCN_ARPHRD_ETHER 1
#define PCN_ARPOP_REQUEST 1
#define PCN_ARPOP_REPLY 2
#define PCN_IPPROTO_ICMP 1
#define PCN_ICMP_ECHOREPLY 0
#define PCN_ICMP_ECHO 8

struct pcn_icmphdr {
    __u8 type;
    __u8 code;
    __sum16 checksum;
    __be16 id;
    __be16 sequence;
};

/* The ports at the start of a TCP or UDP header. */
struct pcn_l4_ports {
    __be16 source;
    __be16 dest;
};

/* An ARP packet for IPv4 over Ethernet. */
struct pcn_arp {
    __be16 hw_type;
    __be16 proto_type;
    __u8 hw_len;
    __u8 proto_len;
    __be16 op;
    __u8 sender_mac[ETH_ALEN];
    __be32 sender_ip;
    __u8 target_mac[ETH_ALEN];
    __be32 target_ip;
} __attribute__((packed));

static __always_inline struct ethhdr *pcn_eth(struct CTXTYPE *ctx) {
    struct ethhdr *eth = pcn_data(ctx);
    if ((void *)(eth + 1) > pcn_data_end(ctx))
        return NULL;
    return eth;
}

/* The IPv4 header after `eth` (options allowed), or NULL. */
static __always_inline struct iphdr *pcn_ipv4(struct CTXTYPE *ctx, struct ethhdr *eth) {
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return NULL;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > pcn_data_end(ctx) || ip->ihl < 5)
        return NULL;
    return ip;
}

static __always_inline struct pcn_arp *pcn_arp(struct CTXTYPE *ctx, struct ethhdr *eth) {
    if (eth->h_proto != bpf_htons(ETH_P_ARP))
        return NULL;
    struct pcn_arp *arp = (void *)(eth + 1);
    if ((void *)(arp + 1) > pcn_data_end(ctx) || arp->hw_type != bpf_htons(PCN_ARPHRD_ETHER) ||
        arp->proto_type != bpf_htons(ETH_P_IP))
        return NULL;
    return arp;
}

/* The ICMP header of a packet without IP options, or NULL. */
static __always_inline struct pcn_icmphdr *pcn_icmp(struct CTXTYPE *ctx, struct iphdr *ip) {
    if (ip->protocol != PCN_IPPROTO_ICMP || ip->ihl != 5)
        return NULL;
    struct pcn_icmphdr *icmp = (void *)(ip + 1);
    if ((void *)(icmp + 1) > pcn_data_end(ctx))
        return NULL;
    return icmp;
}

static __always_inline int pcn_mac_is_broadcast(const __u8 *mac) {
    return (mac[0] & mac[1] & mac[2] & mac[3] & mac[4] & mac[5]) == 0xff;
}

static __always_inline int pcn_mac_is_multicast(const __u8 *mac) { return mac[0] & 1; }

static __always_inline void pcn_mac_copy(__u8 *to, const __u8 *from) { __builtin_memcpy(to, from, ETH_ALEN); }

/* Folds a 32-bit one's complement sum into 16 bits. */
static __always_inline __u16 pcn_csum_fold(__u32 sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)sum;
}

/* RFC 1624 incremental update of `check` when a 16-bit word changes from `from` to `to`. */
static __always_inline void pcn_csum_replace16(__sum16 *check, __be16 from, __be16 to) {
    __u32 sum = (__u16)~*check + (__u16)~from + (__u16)to;
    *check = ~pcn_csum_fold(sum);
}

/* Decrements the TTL and fixes the header checksum. */
static __always_inline void pcn_ipv4_decrement_ttl(struct iphdr *ip) {
    __be16 before = *(__be16 *)&ip->ttl;
    ip->ttl--;
    pcn_csum_replace16(&ip->check, before, *(__be16 *)&ip->ttl);
}

#endif

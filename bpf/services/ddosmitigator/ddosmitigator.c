/* ddosmitigator (transparent): drops IPv4 packets whose source or destination is blacklisted,
 * counting the drops per entry. Packets leaving (egress) pass untouched. */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include "ddosmitigator.h"

PCN_TABLE(BPF_MAP_TYPE_PERCPU_HASH, __be32, __u64, ddos_blacklist_src, DDOS_BLACKLIST_MAX);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_HASH, __be32, __u64, ddos_blacklist_dst, DDOS_BLACKLIST_MAX);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, ddos_stats, DDOS_STATS);

PCN_DROP_REASON(DDOS_DROP_SOURCE, "blacklisted-source");
PCN_DROP_REASON(DDOS_DROP_DESTINATION, "blacklisted-destination");

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    if (md->in_port != 0)
        return RX_OK;
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return RX_OK;
    struct iphdr *ip = pcn_ipv4(ctx, eth);
    if (!ip)
        return RX_OK;
    __u32 stat = DDOS_STAT_SEEN;
    __u64 *seen = bpf_map_lookup_elem(&ddos_stats, &stat);
    if (seen)
        *seen += 1;
    __be32 source = ip->saddr, destination = ip->daddr;
    __u32 reason = DDOS_DROP_SOURCE;
    __u64 *drops = bpf_map_lookup_elem(&ddos_blacklist_src, &source);
    if (!drops) {
        drops = bpf_map_lookup_elem(&ddos_blacklist_dst, &destination);
        reason = DDOS_DROP_DESTINATION;
    }
    if (drops) {
        *drops += 1;
        stat = DDOS_STAT_DROPPED;
        __u64 *dropped = bpf_map_lookup_elem(&ddos_stats, &stat);
        if (dropped)
            *dropped += 1;
        return pcn_pkt_drop_reason(ctx, md, reason);
    }
    return RX_OK;
}

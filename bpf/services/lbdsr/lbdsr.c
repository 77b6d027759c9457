/* lbdsr: a layer-2 direct-server-return load balancer for one VIP. From the FRONTEND port: ARP
 * requests for the VIP are answered with the frontend's MAC; frames for the VIP (to that MAC) are
 * given a backend's MAC and sent out of the BACKEND port; everything else passes to the BACKEND
 * side. From the BACKEND port everything passes to the FRONTEND side (answers do not come this way:
 * the backends send them to the client directly). */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include <pcn/flow_hash.h>
#include "lbdsr.h"

#define LBDSR_TCP 6
#define LBDSR_UDP 17

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct lbdsr_config, lbdsr_config, 1);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct lbdsr_backend, lbdsr_slots, 2 * LBDSR_SLOTS);
PCN_TABLE(BPF_MAP_TYPE_LRU_HASH, struct lbdsr_flow, struct lbdsr_backend, lbdsr_sessions, LBDSR_SESSIONS);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, lbdsr_counters, 65536);

PCN_DROP_REASON(LBDSR_DROP_NO_BACKEND, "no-backend");
PCN_DROP_REASON(LBDSR_DROP_PORT, "port-without-type");

static __always_inline int same_mac(const __u8 *a, const __u8 *b) {
    return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* Answers an ARP request for the VIP in place, out of the port it came in on. */
static __always_inline int answer_arp(struct CTXTYPE *ctx, struct pkt_metadata *md, struct ethhdr *eth, struct pcn_arp *arp, const struct lbdsr_config *config) {
    __be32 asker = arp->sender_ip;
    arp->op = bpf_htons(PCN_ARPOP_REPLY);
    pcn_mac_copy(arp->target_mac, arp->sender_mac);
    arp->target_ip = asker;
    pcn_mac_copy(arp->sender_mac, config->mac);
    arp->sender_ip = config->vip;
    pcn_mac_copy(eth->h_dest, eth->h_source);
    pcn_mac_copy(eth->h_source, config->mac);
    return pcn_pkt_redirect(ctx, md, md->in_port);
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u32 zero = 0;
    struct lbdsr_config *config = bpf_map_lookup_elem(&lbdsr_config, &zero);
    if (!config)
        return pcn_pkt_drop_reason(ctx, md, LBDSR_DROP_PORT);
    if (md->in_port == config->backend_port)
        return pcn_pkt_redirect(ctx, md, config->frontend_port);
    if (md->in_port != config->frontend_port)
        return pcn_pkt_drop_reason(ctx, md, LBDSR_DROP_PORT);
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return pcn_pkt_redirect(ctx, md, config->backend_port);
    struct pcn_arp *arp = pcn_arp(ctx, eth);
    if (arp) {
        if (config->vip && arp->op == bpf_htons(PCN_ARPOP_REQUEST) && arp->target_ip == config->vip)
            return answer_arp(ctx, md, eth, arp, config);
        return pcn_pkt_redirect(ctx, md, config->backend_port);
    }
    struct iphdr *ip = pcn_ipv4(ctx, eth);
    if (!ip || !config->vip || ip->daddr != config->vip || !same_mac(eth->h_dest, config->mac))
        return pcn_pkt_redirect(ctx, md, config->backend_port);

    struct lbdsr_flow flow = {.src = ip->saddr, .dst = ip->daddr, .proto = ip->protocol};
    if ((ip->protocol == LBDSR_TCP || ip->protocol == LBDSR_UDP) && !(ip->frag_off & bpf_htons(0x1fff))) {
        struct pcn_l4_ports *ports = (void *)ip + (ip->ihl & 0xf) * 4;
        if ((void *)(ports + 1) <= pcn_data_end(ctx)) {
            flow.sport = ports->source;
            flow.dport = ports->dest;
        }
    }
    struct lbdsr_backend chosen;
    struct lbdsr_backend *known = bpf_map_lookup_elem(&lbdsr_sessions, &flow);
    if (known) {
        chosen = *known;
    } else {
        if (!config->size)
            return pcn_pkt_drop_reason(ctx, md, LBDSR_DROP_NO_BACKEND);
        __u32 slot = (config->generation & 1) * LBDSR_SLOTS + pcn_flow_hash(flow.src, flow.dst, flow.sport, flow.dport, flow.proto) % config->size;
        struct lbdsr_backend *backend = bpf_map_lookup_elem(&lbdsr_slots, &slot);
        if (!backend)
            return pcn_pkt_drop_reason(ctx, md, LBDSR_DROP_NO_BACKEND);
        chosen = *backend;
        bpf_map_update_elem(&lbdsr_sessions, &flow, &chosen, BPF_ANY);
    }
    __u32 id = chosen.id;
    __u64 *counter = bpf_map_lookup_elem(&lbdsr_counters, &id);
    if (counter)
        *counter += 1;
    eth = pcn_eth(ctx);
    if (!eth)
        return pcn_pkt_drop_reason(ctx, md, LBDSR_DROP_NO_BACKEND);
    pcn_mac_copy(eth->h_dest, chosen.mac);
    return pcn_pkt_redirect(ctx, md, config->backend_port);
}

/* pbforwarder: policy-based forwarding. The first rule (lowest id) matching the packet's input port,
 * MACs, 802.1Q VLAN, IPv4 addresses (prefixes), L4 protocol and ports decides: DROP, FORWARD to a
 * port, or SLOWPATH. The search is one hash lookup per rule shape (pbforwarder.h), however many
 * rules there are; a packet no rule matches is dropped. */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include <pcn/vlan.h>
#include "pbforwarder.h"

#define PBF_TCP 6
#define PBF_UDP 17

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct pbf_shape, pbf_shapes, 2 * PBF_MAX_SHAPES);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, __u32, pbf_shape_counts, 2);
PCN_TABLE(BPF_MAP_TYPE_HASH, struct pbf_rule_key, struct pbf_rule_match, pbf_rules, 2 * 2 * PBF_MAX_RULES);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct pbf_config, pbf_config, 1);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct pbf_counter, pbf_counters, PBF_MAX_RULES);

PCN_DROP_REASON(PBF_DROP_RULE, "rule");
PCN_DROP_REASON(PBF_DROP_NO_RULE, "no-rule");

/* The packet's fields, as a key with every field present (a shape masks it). */
static __always_inline void parse(struct CTXTYPE *ctx, struct ethhdr *eth, __u32 in_port, struct pbf_rule_key *p) {
    void *end = pcn_data_end(ctx);
    p->in_port = in_port;
    __builtin_memcpy(p->src_mac, eth->h_source, 6);
    __builtin_memcpy(p->dst_mac, eth->h_dest, 6);
    __u16 vid;
    if (pcn_vlan_tag(ctx, &vid))
        p->vlan = vid;
    __be16 proto = eth->h_proto;
    void *next = eth + 1;
    if (proto == bpf_htons(PCN_ETH_P_8021Q)) {
        /* A tag still in the frame (XDP; TC when the kernel did not take it out). */
        struct pcn_vlan_hdr *tag = next;
        if ((void *)(tag + 1) > end)
            return;
        proto = tag->proto;
        next = tag + 1;
    }
    if (proto != bpf_htons(ETH_P_IP))
        return;
    struct iphdr *ip = next;
    if ((void *)(ip + 1) > end)
        return;
    p->src = ip->saddr;
    p->dst = ip->daddr;
    p->proto = ip->protocol;
    if ((ip->protocol != PBF_TCP && ip->protocol != PBF_UDP) || (ip->frag_off & bpf_htons(0x1fff)))
        return;
    struct pcn_l4_ports *ports = (void *)ip + (ip->ihl & 0xf) * 4;
    if ((void *)(ports + 1) > end)
        return;
    p->sport = ports->source;
    p->dport = ports->dest;
}

struct pbf_search {
    const struct pbf_rule_key *p;
    __u32 base;
    __u32 count;
    struct pbf_rule_match best;
};

static long search_shape(__u32 i, void *data) {
    struct pbf_search *s = data;
    if (i >= s->count)
        return 1;
    __u32 index = s->base + i;
    struct pbf_shape *shape = bpf_map_lookup_elem(&pbf_shapes, &index);
    if (!shape || shape->first_rule > s->best.rule)
        return 1;             /* in the order of their first rule: no later shape does better */
    const struct pbf_rule_key *p = s->p;
    struct pbf_rule_key key = {
        .shape = index,
        .in_port = shape->fields & PBF_FIELD_IN_PORT ? p->in_port : 0,
        .src = p->src & shape->src_mask,
        .dst = p->dst & shape->dst_mask,
        .sport = shape->fields & PBF_FIELD_SPORT ? p->sport : 0,
        .dport = shape->fields & PBF_FIELD_DPORT ? p->dport : 0,
        .vlan = shape->fields & PBF_FIELD_VLAN ? p->vlan : 0,
        .proto = shape->fields & PBF_FIELD_PROTO ? p->proto : 0,
    };
    if (shape->fields & PBF_FIELD_SRC_MAC)
        __builtin_memcpy(key.src_mac, p->src_mac, 6);
    if (shape->fields & PBF_FIELD_DST_MAC)
        __builtin_memcpy(key.dst_mac, p->dst_mac, 6);
    struct pbf_rule_match *match = bpf_map_lookup_elem(&pbf_rules, &key);
    if (match && match->rule < s->best.rule)
        s->best = *match;
    return 0;
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return pcn_pkt_drop_reason(ctx, md, PBF_DROP_NO_RULE);
    struct pbf_rule_key p = {};
    parse(ctx, eth, md->in_port, &p);
    __u32 zero = 0;
    struct pbf_config *config = bpf_map_lookup_elem(&pbf_config, &zero);
    __u32 generation = config ? config->generation & 1 : 0;
    __u32 *count = bpf_map_lookup_elem(&pbf_shape_counts, &generation);
    struct pbf_search s = {
        .p = &p,
        .base = generation * PBF_MAX_SHAPES,
        .count = count ? *count : 0,
        .best = {.rule = PBF_NO_RULE},
    };
    bpf_loop(PBF_MAX_SHAPES, search_shape, &s, 0);
    if (s.best.rule == PBF_NO_RULE)
        return pcn_pkt_drop_reason(ctx, md, PBF_DROP_NO_RULE);
    __u32 rule = s.best.rule;
    struct pbf_counter *counter = bpf_map_lookup_elem(&pbf_counters, &rule);
    if (counter) {
        counter->packets += 1;
        counter->bytes += md->packet_len;
    }
    switch (s.best.action) {
    case PBF_FORWARD:
        return pcn_pkt_redirect(ctx, md, s.best.out_port);
    case PBF_SLOWPATH:
        return pcn_pkt_controller(ctx, md, (__u16)rule);
    default:
        return pcn_pkt_drop_reason(ctx, md, PBF_DROP_RULE);
    }
}

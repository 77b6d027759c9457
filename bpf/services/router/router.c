/* router: IPv4 static router. The fast path answers ARP for the router's addresses and learns the
 * senders, answers ICMP echo to its addresses, routes by longest prefix match and rewrites the
 * frame for the next hop. The slow path resolves unknown next hops (holding their packets) and
 * sends ICMP time exceeded. A shadow router hands its namespace what it does not route itself:
 * packets for its addresses, ARP replies (after learning them), frames not for it, packets without
 * a route (the namespace's own routes, a routing daemon's, may know one). */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include "router.h"

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct router_port, router_ports, PCN_MAX_PORTS);
PCN_TABLE(BPF_MAP_TYPE_HASH, __be32, struct router_local_address, router_local, PCN_MAX_PORTS * (1 + ROUTER_MAX_SECONDARY));
PCN_TABLE(BPF_MAP_TYPE_HASH, __be32, struct router_arp_entry, router_arp, ROUTER_ARP_MAX);
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, ROUTER_ROUTES_MAX);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct router_route_key);
    __type(value, struct router_route);
} router_routes SEC(".maps");

static __always_inline int mac_equal(const __u8 *a, const __u8 *b) {
    return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* Every ARP packet from a neighbour confirms it: its entry is (re)written with the time. */
static __always_inline void learn_neighbour(__be32 address, const __u8 *mac, __u32 port) {
    struct router_arp_entry *known = bpf_map_lookup_elem(&router_arp, &address);
    if (known && (known->flags & ROUTER_ARP_STATIC))
        return;
    __u64 now = bpf_ktime_get_ns();
    if (known && known->port == port && mac_equal(known->mac, mac)) {
        known->confirmed = now;
        return;
    }
    struct router_arp_entry entry = {.port = port, .flags = 0, .confirmed = now};
    pcn_mac_copy(entry.mac, mac);
    bpf_map_update_elem(&router_arp, &address, &entry, BPF_ANY);
}

PCN_DROP_REASON(ROUTER_DROP_MALFORMED, "malformed");
PCN_DROP_REASON(ROUTER_DROP_PORT_UNCONFIGURED, "port-not-configured");
PCN_DROP_REASON(ROUTER_DROP_NOT_FOR_US, "not-for-the-router");
PCN_DROP_REASON(ROUTER_DROP_ARP_OPERATION, "arp-operation");
PCN_DROP_REASON(ROUTER_DROP_LOCAL_NOT_ECHO, "local-not-echo");
PCN_DROP_REASON(ROUTER_DROP_NO_ROUTE, "no-route");

/* Dropped, or in a shadow router left to the namespace (multicast of a routing protocol, IPv6). */
static __always_inline int not_for_us(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    if (pcn_is_shadow())
        return pcn_pkt_redirect_ns(ctx, md, md->in_port);
    return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_NOT_FOR_US);
}

static __always_inline int handle_arp(struct CTXTYPE *ctx, struct pkt_metadata *md, struct ethhdr *eth,
                                      struct pcn_arp *arp, struct router_port *port) {
    __be32 target = arp->target_ip;
    struct router_local_address *local = bpf_map_lookup_elem(&router_local, &target);
    if (!local || local->port != md->in_port)
        return not_for_us(ctx, md);
    __be32 sender = arp->sender_ip;
    learn_neighbour(sender, arp->sender_mac, md->in_port);
    if (arp->op == bpf_htons(PCN_ARPOP_REPLY)) {
        __u32 data[3] = {sender, md->in_port, 0};
        int verdict = pcn_pkt_controller_with_metadata(ctx, md, ROUTER_REASON_ARP_REPLY, data);
        /* The namespace asks its neighbours too: it gets their answers as well. */
        if (pcn_is_shadow() && verdict == PCN_RX_SLOW_PATH)
            return pcn_pkt_redirect_ns(ctx, md, md->in_port);
        return verdict;
    }
    if (arp->op != bpf_htons(PCN_ARPOP_REQUEST))
        return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_ARP_OPERATION);
    /* Answer in place: the asker becomes the target. */
    arp->op = bpf_htons(PCN_ARPOP_REPLY);
    pcn_mac_copy(arp->target_mac, arp->sender_mac);
    arp->target_ip = sender;
    pcn_mac_copy(arp->sender_mac, port->mac);
    arp->sender_ip = target;
    pcn_mac_copy(eth->h_dest, eth->h_source);
    pcn_mac_copy(eth->h_source, port->mac);
    return pcn_pkt_redirect(ctx, md, md->in_port);
}

/* A packet for one of the router's addresses: ICMP echo is answered, the rest dropped. */
static __always_inline int handle_local(struct CTXTYPE *ctx, struct pkt_metadata *md, struct ethhdr *eth,
                                        struct iphdr *ip, struct router_port *port) {
    struct pcn_icmphdr *icmp = pcn_icmp(ctx, ip);
    if (!icmp || icmp->type != PCN_ICMP_ECHO || icmp->code != 0)
        return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_LOCAL_NOT_ECHO);
    __be16 before = *(__be16 *)icmp;
    icmp->type = PCN_ICMP_ECHOREPLY;
    pcn_csum_replace16(&icmp->checksum, before, *(__be16 *)icmp);
    __be32 asker = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = asker;
    before = *(__be16 *)&ip->ttl;
    ip->ttl = 64;
    pcn_csum_replace16(&ip->check, before, *(__be16 *)&ip->ttl);
    pcn_mac_copy(eth->h_dest, eth->h_source);
    pcn_mac_copy(eth->h_source, port->mac);
    return pcn_pkt_redirect(ctx, md, md->in_port);
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_MALFORMED);
    __u32 in_port = md->in_port;
    struct router_port *port = bpf_map_lookup_elem(&router_ports, &in_port);
    if (!port || port->ip == 0)
        return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_PORT_UNCONFIGURED);
    struct pcn_arp *arp = pcn_arp(ctx, eth);
    if (arp)
        return handle_arp(ctx, md, eth, arp, port);
    struct iphdr *ip = pcn_ipv4(ctx, eth);
    if (!ip || !mac_equal(eth->h_dest, port->mac))
        return not_for_us(ctx, md);
    __be32 destination = ip->daddr;
    if (bpf_map_lookup_elem(&router_local, &destination)) {
        if (pcn_is_shadow())
            return pcn_pkt_redirect_ns(ctx, md, md->in_port);
        return handle_local(ctx, md, eth, ip, port);
    }
    if (ip->ttl <= 1)
        return pcn_pkt_controller(ctx, md, ROUTER_REASON_TTL_EXCEEDED);
    struct router_route_key key = {.prefixlen = 32, .network = destination};
    struct router_route *route = bpf_map_lookup_elem(&router_routes, &key);
    if (!route) {
        if (pcn_is_shadow())
            return pcn_pkt_redirect_ns(ctx, md, md->in_port);
        return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_NO_ROUTE);
    }
    __u32 out_index = route->port;
    __be32 nexthop = route->nexthop ? route->nexthop : destination;
    struct router_port *out = bpf_map_lookup_elem(&router_ports, &out_index);
    struct router_arp_entry *neighbour = bpf_map_lookup_elem(&router_arp, &nexthop);
    if (!out)
        return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_NO_ROUTE);
    if (!neighbour) {
        __u32 data[3] = {nexthop, out_index, 0};
        return pcn_pkt_controller_with_metadata(ctx, md, ROUTER_REASON_ARP_MISS, data);
    }
    pcn_mac_copy(eth->h_source, out->mac);
    pcn_mac_copy(eth->h_dest, neighbour->mac);
    pcn_ipv4_decrement_ttl(ip);
    return pcn_pkt_redirect(ctx, md, out_index);
}

/* lbrp: a reverse-proxy L4 load balancer between FRONTEND ports (clients) and one BACKEND port.
 * A packet from a client to a service {vip, vport, proto} is sent to a backend chosen by Maglev
 * hashing of its 5-tuple (lbrp.h) with its destination rewritten; the session keeps the flow on that
 * backend and translates the answers back. Everything else passes between the two sides unchanged
 * (MULTI: towards the FRONTEND port of the destination address; ARP by its target). */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include <pcn/flow_hash.h>
#include <pcn/rewrite.h>
#include "lbrp.h"

#define LB_TCP 6
#define LB_UDP 17
#define LB_SECOND 1000000000ull

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct lb_config, lb_config, 1);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, __u32, lb_ports, PCN_MAX_PORTS);
PCN_TABLE(BPF_MAP_TYPE_HASH, struct lb_service_key, struct lb_service, lb_services, LB_SERVICES);
PCN_TABLE(BPF_MAP_TYPE_LRU_HASH, struct lb_session_key, struct lb_session, lb_sessions, LB_SESSIONS);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct lb_counter, lb_backend_counters, LB_BACKENDS);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct lb_counter, lb_service_drops, LB_BACKENDS);
PCN_TABLE(BPF_MAP_TYPE_HASH, __be32, __u32, lb_frontends, LB_FRONTENDS);
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, LB_SLOTS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct lb_slot_key);
    __type(value, struct lb_backend);
} lb_slots SEC(".maps");

PCN_DROP_REASON(LB_DROP_NO_BACKEND, "no-backend");
PCN_DROP_REASON(LB_DROP_NO_FRONTEND, "no-frontend");
PCN_DROP_REASON(LB_DROP_REWRITE, "rewrite-failed");
PCN_DROP_REASON(LB_DROP_PORT, "port-without-type");

struct lb_packet {
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u32 l4;
    __u8 proto;
    __u8 icmp_type;
    __u8 ok;                  /* a flow's packet: TCP, UDP, ICMP echo */
};

static __always_inline void parse(struct CTXTYPE *ctx, struct iphdr *ip, struct lb_packet *p) {
    p->src = ip->saddr;
    p->dst = ip->daddr;
    p->proto = ip->protocol;
    if (ip->frag_off & bpf_htons(0x1fff))
        return;
    __u32 ihl = ip->ihl & 0xf;
    p->l4 = ETH_HLEN + ihl * 4;
    void *l4 = (void *)ip + ihl * 4;
    if (ip->protocol == LB_TCP || ip->protocol == LB_UDP) {
        struct pcn_l4_ports *ports = l4;
        if ((void *)(ports + 1) > pcn_data_end(ctx))
            return;
        p->sport = ports->source;
        p->dport = ports->dest;
        p->ok = 1;
    } else if (ip->protocol == PCN_IPPROTO_ICMP) {
        struct pcn_icmphdr *icmp = l4;
        if ((void *)(icmp + 1) > pcn_data_end(ctx))
            return;
        p->icmp_type = icmp->type;
        if (icmp->type == PCN_ICMP_ECHO || icmp->type == PCN_ICMP_ECHOREPLY) {
            p->sport = p->dport = icmp->id;
            p->ok = 1;
        }
    }
}

static __always_inline __u64 lifetime(__u8 proto) {
    return (proto == LB_TCP ? LB_TIMEOUT_TCP : proto == LB_UDP ? LB_TIMEOUT_UDP : LB_TIMEOUT_ICMP) * LB_SECOND;
}

static __always_inline void key_of(struct lb_session_key *key, __be32 src, __be32 dst, __be16 sport, __be16 dport, __u8 proto, __u8 direction) {
    key->src = src;
    key->dst = dst;
    key->sport = sport;
    key->dport = dport;
    key->proto = proto;
    key->direction = direction;
    key->reserved = 0;
}

static __always_inline int apply(struct CTXTYPE *ctx, const struct lb_packet *p, const struct lb_session *s) {
    struct pcn_flow from = {p->src, p->dst, p->sport, p->dport}, to = {s->src, s->dst, s->sport, s->dport};
    return pcn_rewrite_flow(ctx, p->l4, p->proto, &from, &to);
}

static __always_inline void count_backend(__u32 id, __u32 bytes) {
    struct lb_counter *counter = bpf_map_lookup_elem(&lb_backend_counters, &id);
    if (counter) {
        counter->packets += 1;
        counter->bytes += bytes;
    }
}

/* From a client: to a backend if for a service, else on to the BACKEND port unchanged. */
static __always_inline int from_frontend(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct lb_config *config, const struct lb_packet *p) {
    if (!p->ok)
        return pcn_pkt_redirect(ctx, md, config->backend_port);
    __u64 now = bpf_ktime_get_ns();
    struct lb_session_key key;
    key_of(&key, p->src, p->dst, p->sport, p->dport, p->proto, 0);
    struct lb_session *known = bpf_map_lookup_elem(&lb_sessions, &key);
    struct lb_session s;
    if (known && now - known->last_seen <= lifetime(p->proto)) {
        known->last_seen = now;
        s = *known;
    } else {
        if (p->proto == PCN_IPPROTO_ICMP && p->icmp_type != PCN_ICMP_ECHO)
            return pcn_pkt_redirect(ctx, md, config->backend_port);
        struct lb_service_key service_key = {.vip = p->dst, .vport = p->proto == PCN_IPPROTO_ICMP ? 0 : p->dport, .proto = p->proto};
        struct lb_service *service = bpf_map_lookup_elem(&lb_services, &service_key);
        if (!service)
            return pcn_pkt_redirect(ctx, md, config->backend_port);
        if (!service->size) {
            __u32 slot = service->counter;
            struct lb_counter *drops = bpf_map_lookup_elem(&lb_service_drops, &slot);
            if (drops) {
                drops->packets += 1;
                drops->bytes += md->packet_len;
            }
            return pcn_pkt_drop_reason(ctx, md, LB_DROP_NO_BACKEND);
        }
        struct lb_slot_key slot_key = {.table = service->index * 2 + (service->generation & 1), .slot = pcn_flow_hash(p->src, p->dst, p->sport, p->dport, p->proto) % service->size};
        struct lb_backend *backend = bpf_map_lookup_elem(&lb_slots, &slot_key);
        if (!backend)
            return pcn_pkt_drop_reason(ctx, md, LB_DROP_NO_BACKEND);
        __be32 src = p->src;
        if (config->rewrite_mask && (src & config->rewrite_mask) == config->rewrite_from)
            src = config->rewrite_to | (src & ~config->rewrite_mask);
        s = (struct lb_session){
            .src = src, .dst = backend->ip, .sport = p->sport,
            .dport = p->proto == PCN_IPPROTO_ICMP ? p->dport : backend->port,
            .backend = backend->id, .last_seen = now,
        };
        struct lb_session reply = {
            .src = p->dst, .dst = p->src, .sport = p->dport, .dport = p->sport, .backend = backend->id, .last_seen = now,
        };
        struct lb_session_key reply_key;
        key_of(&reply_key, s.dst, s.src, s.dport, s.sport, p->proto, 1);
        bpf_map_update_elem(&lb_sessions, &reply_key, &reply, BPF_ANY);
        bpf_map_update_elem(&lb_sessions, &key, &s, BPF_ANY);
    }
    count_backend(s.backend, md->packet_len);
    if (apply(ctx, p, &s) < 0)
        return pcn_pkt_drop_reason(ctx, md, LB_DROP_REWRITE);
    return pcn_pkt_redirect(ctx, md, config->backend_port);
}

/* The FRONTEND port for a destination. */
static __always_inline int to_frontend(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct lb_config *config, __be32 dst) {
    if (config->mode != LB_MULTI)
        return pcn_pkt_redirect(ctx, md, config->frontend_port);
    __u32 *port = bpf_map_lookup_elem(&lb_frontends, &dst);
    if (!port)
        return pcn_pkt_drop_reason(ctx, md, LB_DROP_NO_FRONTEND);
    return pcn_pkt_redirect(ctx, md, *port);
}

/* From the backends: answers translated back, everything to the FRONTEND side. */
static __always_inline int from_backend(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct lb_config *config, const struct lb_packet *p) {
    __be32 dst = p->dst;
    if (p->ok) {
        struct lb_session_key key;
        key_of(&key, p->src, p->dst, p->sport, p->dport, p->proto, 1);
        struct lb_session *s = bpf_map_lookup_elem(&lb_sessions, &key);
        if (s) {
            s->last_seen = bpf_ktime_get_ns();
            struct lb_session t = *s;
            if (apply(ctx, p, &t) < 0)
                return pcn_pkt_drop_reason(ctx, md, LB_DROP_REWRITE);
            dst = t.dst;
        }
    }
    return to_frontend(ctx, md, config, dst);
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u32 zero = 0, in_port = md->in_port;
    struct lb_config *config = bpf_map_lookup_elem(&lb_config, &zero);
    __u32 *type = bpf_map_lookup_elem(&lb_ports, &in_port);
    if (!config || !type || *type == LB_PORT_NONE)
        return pcn_pkt_drop_reason(ctx, md, LB_DROP_PORT);
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return pcn_pkt_drop_reason(ctx, md, LB_DROP_PORT);
    struct iphdr *ip = pcn_ipv4(ctx, eth);
    if (!ip) {
        if (*type == LB_PORT_FRONTEND)
            return pcn_pkt_redirect(ctx, md, config->backend_port);
        if (config->mode != LB_MULTI)
            return pcn_pkt_redirect(ctx, md, config->frontend_port);
        struct pcn_arp *arp = pcn_arp(ctx, eth);
        if (arp)
            return to_frontend(ctx, md, config, arp->target_ip);
        return pcn_pkt_controller(ctx, md, 0);   /* MULTI: other non-IP is sent to every FRONTEND */
    }
    struct lb_packet p = {};
    parse(ctx, ip, &p);
    return *type == LB_PORT_FRONTEND ? from_frontend(ctx, md, config, &p) : from_backend(ctx, md, config, &p);
}

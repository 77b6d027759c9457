/* nat (transparent): IPv4 SNAT, masquerade, DNAT and port forwarding for TCP, UDP and ICMP echo.
 * The first packet of a flow that a rule covers opens a session (nat.h: an entry per direction,
 * the external port taken from a range without reusing one in use); every other packet of it, and
 * every reply, is rewritten by its session, checksums included. ICMP errors quoting a translated
 * packet are translated too: outer addresses, the quoted header and ports, and every checksum
 * touched. ARP and the rest of non-IPv4 pass, as do IPv4 packets no rule or session covers. */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include <pcn/rewrite.h>
#include "nat.h"

#define NAT_TCP 6
#define NAT_UDP 17
#define NAT_TCP_FIN 0x01
#define NAT_TCP_SYN 0x02
#define NAT_TCP_RST 0x04
#define NAT_TCP_ACK 0x10
#define NAT_SECOND 1000000000ull


PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct nat_config, nat_config, 1);
PCN_TABLE(BPF_MAP_TYPE_LRU_HASH, struct nat_session_key, struct nat_session, nat_sessions, NAT_SESSIONS);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, nat_counters, NAT_COUNTERS);
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, NAT_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct nat_snat_key);
    __type(value, struct nat_snat_rule);
} nat_snat_rules SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 2 * NAT_RULES);   /* port forwarding for TCP and UDP is one entry per protocol */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct nat_dnat_key);
    __type(value, struct nat_dnat_rule);
} nat_dnat_rules SEC(".maps");

PCN_DROP_REASON(NAT_DROP_NO_PORT, "no-port");
PCN_DROP_REASON(NAT_DROP_REWRITE, "rewrite-failed");

/* What translation looks at. */
struct nat_packet {
    __be32 src;
    __be32 dst;
    __be16 sport;             /* ICMP echo: the identifier */
    __be16 dport;
    __u32 l4;                 /* frame offset of the L4 header */
    __u8 proto;
    __u8 flags;               /* TCP */
    __u8 icmp_type;
    __u8 kind;                /* 0: not translatable, 1: a flow's packet, 2: an ICMP error */
};

static __always_inline void parse(struct CTXTYPE *ctx, struct iphdr *ip, struct nat_packet *p) {
    p->src = ip->saddr;
    p->dst = ip->daddr;
    p->proto = ip->protocol;
    if (ip->frag_off & bpf_htons(0x1fff))
        return;               /* a later fragment: no L4 header to translate by */
    __u32 ihl = ip->ihl & 0xf;
    p->l4 = ETH_HLEN + ihl * 4;
    void *l4 = (void *)ip + ihl * 4;
    if (ip->protocol == NAT_TCP) {
        struct pcn_l4_ports *ports = l4;
        __u8 *flags = l4 + 13;
        if ((void *)(flags + 1) > pcn_data_end(ctx))
            return;
        p->sport = ports->source;
        p->dport = ports->dest;
        p->flags = *flags;
        p->kind = 1;
    } else if (ip->protocol == NAT_UDP) {
        struct pcn_l4_ports *ports = l4;
        if ((void *)(ports + 1) > pcn_data_end(ctx))
            return;
        p->sport = ports->source;
        p->dport = ports->dest;
        p->kind = 1;
    } else if (ip->protocol == PCN_IPPROTO_ICMP) {
        struct pcn_icmphdr *icmp = l4;
        if ((void *)(icmp + 1) > pcn_data_end(ctx))
            return;
        p->icmp_type = icmp->type;
        if (icmp->type == PCN_ICMP_ECHO || icmp->type == PCN_ICMP_ECHOREPLY) {
            p->sport = p->dport = icmp->id;
            p->kind = 1;
        } else if (icmp->type == 3 || icmp->type == 11 || icmp->type == 12) {
            p->kind = 2;      /* destination unreachable, time exceeded, parameter problem */
        }
    }
}

static __always_inline void count(__u32 counter) {
    __u64 *value = bpf_map_lookup_elem(&nat_counters, &counter);
    if (value)
        *value += 1;
}

static __always_inline __u64 lifetime(const struct nat_session *s, __u8 proto) {
    __u64 seconds = proto == NAT_TCP ? (s->closing ? NAT_TIMEOUT_TCP_CLOSING : NAT_TIMEOUT_TCP)
                  : proto == NAT_UDP ? NAT_TIMEOUT_UDP : NAT_TIMEOUT_ICMP;
    return seconds * NAT_SECOND;
}

static __always_inline int alive(const struct nat_session *s, __u8 proto, __u64 now) {
    return now - s->last_seen <= lifetime(s, proto);
}

static __always_inline void key_of(struct nat_session_key *key, __be32 src, __be32 dst, __be16 sport, __be16 dport, __u8 proto, __u8 direction) {
    key->src = src;
    key->dst = dst;
    key->sport = sport;
    key->dport = dport;
    key->proto = proto;
    key->direction = direction;
    key->reserved = 0;
}

/* The other direction's entry sees the session's packets too: refreshed once a second at most. */
static __always_inline void touch(struct nat_session *s, __u8 proto, __u8 direction, __u64 now) {
    if (now - s->last_seen < NAT_SECOND)
        return;
    s->last_seen = now;
    struct nat_session_key partner;
    key_of(&partner, s->dst, s->src, s->dport, s->sport, proto, direction ^ 1);
    struct nat_session *other = bpf_map_lookup_elem(&nat_sessions, &partner);
    if (other) {
        other->last_seen = now;
        other->closing |= s->closing;
    }
}

/* Rewrites the packet as its session says. */
static __always_inline int apply(struct CTXTYPE *ctx, const struct nat_packet *p, const struct nat_session *s) {
    struct pcn_flow from = {p->src, p->dst, p->sport, p->dport}, to = {s->src, s->dst, s->sport, s->dport};
    return pcn_rewrite_flow(ctx, p->l4, p->proto, &from, &to);
}

/* A new outgoing flow's external port: the reply entry is claimed for a candidate port (the
 * original one first, if in range, then from a random start), so no port in use with the same
 * far end is handed out twice. */
struct nat_claim {
    struct nat_session_key reply;
    struct nat_session value;
    __u64 now;
    __u32 start;
    __u16 low;
    __u16 span;
    __u16 original;           /* host order; 0: not in range */
    __u16 port;               /* host order, once claimed */
    __u8 claimed;
};

static long claim_port(__u32 i, void *data) {
    struct nat_claim *c = data;
    if (i >= c->span)
        return 1;
    __u16 port = i == 0 && c->original ? c->original : c->low + (__u16)((c->start + i) % c->span);
    c->reply.dport = bpf_htons(port);
    if (c->reply.proto == PCN_IPPROTO_ICMP)
        c->reply.sport = c->reply.dport;
    if (bpf_map_update_elem(&nat_sessions, &c->reply, &c->value, BPF_NOEXIST) == 0) {
        c->port = port;
        c->claimed = 1;
        return 1;
    }
    struct nat_session *held = bpf_map_lookup_elem(&nat_sessions, &c->reply);
    if (held && !alive(held, c->reply.proto, c->now)) {
        *held = c->value;     /* expired: the port is free again */
        c->port = port;
        c->claimed = 1;
        return 1;
    }
    return 0;
}

static __always_inline int opens_flow(const struct nat_packet *p) {
    if (p->proto == NAT_TCP)
        return (p->flags & (NAT_TCP_SYN | NAT_TCP_ACK)) == NAT_TCP_SYN;
    if (p->proto == PCN_IPPROTO_ICMP)
        return p->icmp_type == PCN_ICMP_ECHO;
    return 1;
}

/* SNAT or masquerade for a packet going out without a session (what handle_rx returns). */
static __always_inline int snat(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct nat_packet *p, __u64 now) {
    if (!opens_flow(p))
        return RX_OK;
    struct nat_snat_key rule_key = {.prefixlen = 32, .internal = p->src};
    struct nat_snat_rule *rule = bpf_map_lookup_elem(&nat_snat_rules, &rule_key);
    __u32 zero = 0;
    struct nat_config *config = bpf_map_lookup_elem(&nat_config, &zero);
    if (!config)
        return RX_OK;
    __be32 external;
    struct nat_session forward = {.last_seen = now, .originating = 1};
    if (rule) {
        external = rule->external;
        forward.kind = NAT_SNAT;
        forward.rule = rule->id;
    } else if (config->masquerade_ip) {
        external = config->masquerade_ip;
        forward.kind = NAT_MASQUERADE;
    } else {
        return RX_OK;
    }
    struct nat_claim c = {
        .value = {.src = p->dst, .dst = p->src, .sport = p->dport, .dport = p->sport, .last_seen = now,
                  .rule = forward.rule, .kind = forward.kind},
        .now = now,
        .start = bpf_get_prandom_u32(),
        .low = config->port_low,
        .span = config->port_high >= config->port_low ? config->port_high - config->port_low + 1 : 0,
    };
    if (p->proto == PCN_IPPROTO_ICMP) {
        c.low = 0;            /* echo identifiers: any value */
        c.span = 0xffff;
    }
    __u16 original = bpf_ntohs(p->sport);
    if (original >= c.low && original - c.low < c.span)
        c.original = original;
    key_of(&c.reply, p->dst, external, p->dport, 0, p->proto, NAT_INGRESS);
    bpf_loop(NAT_PORT_TRIES, claim_port, &c, 0);
    if (!c.claimed) {
        count(NAT_COUNT_PORTS_EXHAUSTED);
        return pcn_pkt_drop_reason(ctx, md, NAT_DROP_NO_PORT);
    }
    forward.src = external;
    forward.dst = p->dst;
    forward.sport = bpf_htons(c.port);
    forward.dport = p->proto == PCN_IPPROTO_ICMP ? forward.sport : p->dport;
    struct nat_session_key key;
    key_of(&key, p->src, p->dst, p->sport, p->dport, p->proto, NAT_EGRESS);
    bpf_map_update_elem(&nat_sessions, &key, &forward, BPF_ANY);
    if (apply(ctx, p, &forward) < 0)
        return pcn_pkt_drop_reason(ctx, md, NAT_DROP_REWRITE);
    return RX_OK;
}

/* Port forwarding or DNAT for a packet coming in without a session (what handle_rx returns). */
static __always_inline int dnat(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct nat_packet *p, __u64 now) {
    if (!opens_flow(p))
        return RX_OK;
    struct nat_dnat_key rule_key = {.prefixlen = 56, .external = p->dst, .port = p->dport, .proto = p->proto};
    if (p->proto == PCN_IPPROTO_ICMP)
        rule_key.prefixlen = 32;  /* an echo identifier is no port: DNAT only */
    struct nat_dnat_rule *rule = bpf_map_lookup_elem(&nat_dnat_rules, &rule_key);
    if (!rule)
        return RX_OK;
    struct nat_session forward = {
        .src = p->src, .dst = rule->internal, .sport = p->sport,
        .dport = rule->internal_port && p->proto != PCN_IPPROTO_ICMP ? rule->internal_port : p->dport,
        .last_seen = now, .rule = rule->id, .kind = rule->kind, .originating = 1,
    };
    struct nat_session reply = {
        .src = p->dst, .dst = p->src, .sport = p->dport, .dport = p->sport,
        .last_seen = now, .rule = rule->id, .kind = rule->kind,
    };
    struct nat_session_key key;
    key_of(&key, forward.dst, p->src, forward.dport, p->sport, p->proto, NAT_EGRESS);
    bpf_map_update_elem(&nat_sessions, &key, &reply, BPF_ANY);
    key_of(&key, p->src, p->dst, p->sport, p->dport, p->proto, NAT_INGRESS);
    bpf_map_update_elem(&nat_sessions, &key, &forward, BPF_ANY);
    if (apply(ctx, p, &forward) < 0)
        return pcn_pkt_drop_reason(ctx, md, NAT_DROP_REWRITE);
    return RX_OK;
}

/* A 16-bit word of an ICMP error's body changes: the word, and the ICMP checksum over it. */
static __always_inline void put16(__be16 *word, __be16 value, __sum16 *icmp_check) {
    pcn_csum_replace16(icmp_check, *word, value);
    *word = value;
}

static __always_inline void put32(__be32 *word, __be32 value, __sum16 *icmp_check) {
    pcn_csum_replace32(icmp_check, *word, value);
    *word = value;
}

/* An ICMP error about a translated packet: the quoted packet (as it left, translated) is put back
 * as its sender knows it, and the error goes to that sender. Written in place; ICMP carries full
 * checksums. */
static __always_inline void translate_error(struct CTXTYPE *ctx, __u8 direction, __u64 now) {
    void *data = pcn_data(ctx), *end = pcn_data_end(ctx);
    struct iphdr *ip = data + ETH_HLEN;
    if ((void *)(ip + 1) > end || ip->ihl != 5)
        return;
    struct pcn_icmphdr *icmp = (void *)(ip + 1);
    struct iphdr *inner = (void *)(icmp + 1);
    if ((void *)(inner + 1) > end || inner->ihl != 5)
        return;
    struct pcn_l4_ports *ports = (void *)(inner + 1);
    if ((void *)(ports + 1) > end)
        return;
    __u8 proto = inner->protocol;
    __be16 sport = ports->source, dport = ports->dest;
    struct pcn_icmphdr *echo = (void *)(inner + 1);
    if (proto == PCN_IPPROTO_ICMP) {
        if ((void *)(echo + 1) > end)
            return;
        sport = dport = echo->id;
    } else if (proto != NAT_TCP && proto != NAT_UDP) {
        return;
    }
    /* The quoted packet went the other way: its reply entry is the one for this direction. */
    struct nat_session_key key;
    key_of(&key, inner->daddr, inner->saddr, dport, sport, proto, direction);
    struct nat_session *s = bpf_map_lookup_elem(&nat_sessions, &key);
    if (!s || !alive(s, proto, now))
        return;
    struct nat_session t = *s;
    __be32 quoted_dst = inner->daddr;
    __sum16 *icmp_check = &icmp->checksum;

    /* The quoted header and its checksum. */
    __be16 inner_check_before = inner->check;
    if (inner->saddr != t.dst) {
        pcn_csum_replace32(&inner->check, inner->saddr, t.dst);
        put32(&inner->saddr, t.dst, icmp_check);
    }
    if (inner->daddr != t.src) {
        pcn_csum_replace32(&inner->check, inner->daddr, t.src);
        put32(&inner->daddr, t.src, icmp_check);
    }
    pcn_csum_replace16(icmp_check, inner_check_before, inner->check);

    /* Its ports (or echo identifier) and, when quoted, its L4 checksum. */
    if (proto == PCN_IPPROTO_ICMP) {
        if (echo->id != t.dport) {
            __be16 before = echo->id;
            __be16 check_before = echo->checksum;
            pcn_csum_replace16(&echo->checksum, before, t.dport);
            put16(&echo->id, t.dport, icmp_check);
            pcn_csum_replace16(icmp_check, check_before, echo->checksum);
        }
    } else {
        __sum16 *l4_check = proto == NAT_TCP ? (void *)ports + 16 : (void *)ports + 6;
        int has_check = (void *)(l4_check + 1) <= end && !(proto == NAT_UDP && *l4_check == 0);
        __be16 check_before = has_check ? *l4_check : 0;
        if (has_check) {
            pcn_csum_replace32(l4_check, key.dst, t.dst);      /* key.dst was the quoted source */
            pcn_csum_replace32(l4_check, key.src, t.src);
            pcn_csum_replace16(l4_check, ports->source, t.dport);
            pcn_csum_replace16(l4_check, ports->dest, t.sport);
        }
        if ((void *)(l4_check + 1) <= end && has_check)
            pcn_csum_replace16(icmp_check, check_before, *l4_check);
        if (ports->source != t.dport)
            put16(&ports->source, t.dport, icmp_check);
        if (ports->dest != t.sport)
            put16(&ports->dest, t.sport, icmp_check);
    }

    /* The error itself goes to the quoted packet's sender; from the far end itself, it comes from
     * the address that end was talking to. */
    if (ip->daddr != t.dst) {
        pcn_csum_replace32(&ip->check, ip->daddr, t.dst);
        ip->daddr = t.dst;
    }
    if (ip->saddr == quoted_dst && ip->saddr != t.src) {
        pcn_csum_replace32(&ip->check, ip->saddr, t.src);
        ip->saddr = t.src;
    }
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return RX_OK;
    struct iphdr *ip = pcn_ipv4(ctx, eth);
    if (!ip)
        return RX_OK;         /* not IPv4: ARP and the rest pass */
    __u8 direction = md->in_port ? NAT_EGRESS : NAT_INGRESS;
    struct nat_packet p = {};
    parse(ctx, ip, &p);
    if (!p.kind)
        return RX_OK;
    __u64 now = bpf_ktime_get_ns();
    if (p.kind == 2) {
        translate_error(ctx, direction, now);
        return RX_OK;
    }
    struct nat_session_key key;
    key_of(&key, p.src, p.dst, p.sport, p.dport, p.proto, direction);
    struct nat_session *s = bpf_map_lookup_elem(&nat_sessions, &key);
    if (s && (alive(s, p.proto, now) || !opens_flow(&p))) {
        if (p.proto == NAT_TCP && (p.flags & (NAT_TCP_FIN | NAT_TCP_RST)))
            s->closing = 1;
        else if (p.proto == NAT_TCP && (p.flags & NAT_TCP_SYN) && s->closing && !(p.flags & NAT_TCP_ACK))
            s->closing = 0;   /* the same ends open the connection again */
        struct nat_session t = *s;
        touch(s, p.proto, direction, now);
        if (apply(ctx, &p, &t) < 0)
            return pcn_pkt_drop_reason(ctx, md, NAT_DROP_REWRITE);
        return RX_OK;
    }
    return direction == NAT_EGRESS ? snat(ctx, md, &p, now) : dnat(ctx, md, &p, now);
}

/* firewall (transparent): a stateful IPv4 ACL. Packets entering (ingress) go through the INGRESS
 * chain, packets leaving through EGRESS; each chain finds its first matching rule by a tuple-space
 * search (firewall.h) and applies it, or the chain's default. Connections are tracked in both
 * directions in one table (TCP with its states and a sequence check, UDP and ICMP echo as
 * pseudo-connections, ICMP errors RELATED to the flow they quote). Non-IPv4 traffic (ARP too)
 * passes: the firewall filters IPv4. */
#include <pcn/cube.h>
#include <pcn/packet.h>
#include "firewall.h"

#define FW_TCP 6
#define FW_UDP 17
#define FW_TCP_FIN 0x01
#define FW_TCP_SYN 0x02
#define FW_TCP_RST 0x04
#define FW_TCP_ACK 0x10

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct fw_shape, fw_shapes, FW_CHAINS * 2 * FW_MAX_SHAPES);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, __u32, fw_shape_counts, FW_CHAINS * 2);
PCN_TABLE(BPF_MAP_TYPE_HASH, struct fw_rule_key, struct fw_rule_match, fw_rules, FW_RULE_KEYS);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct fw_chain_config, fw_chain_config, FW_CHAINS);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct fw_counter, fw_counters, FW_SLOTS);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, __u64, fw_timeouts, FW_STATES);
PCN_TABLE(BPF_MAP_TYPE_LRU_HASH, struct fw_connection_key, struct fw_connection, fw_connections, FW_CONNECTIONS);

PCN_DROP_REASON(FW_DROP_RULE, "rule");
PCN_DROP_REASON(FW_DROP_DEFAULT, "default");

/* What classification and tracking look at. */
struct fw_packet {
    __be32 src;
    __be32 dst;
    __be16 sport;             /* ICMP echo: the identifier */
    __be16 dport;
    __u8 proto;
    __u8 flags;               /* TCP */
    __u8 icmp_type;
    __u8 has_l4;              /* 0: a later fragment, or a header cut short */
    __u32 seq;
    __u32 ack;
    __u32 payload;            /* TCP: bytes of data (+1 for SYN and FIN) */
    __u32 window;
    struct fw_connection_key quoted;   /* ICMP errors: the flow of the packet quoted */
    __u8 quotes;
};

static __always_inline void count(__u32 slot, __u32 bytes) {
    struct fw_counter *counter = bpf_map_lookup_elem(&fw_counters, &slot);
    if (counter) {
        counter->packets += 1;
        counter->bytes += bytes;
    }
}

static __always_inline void canonical(struct fw_connection_key *key, __be32 src, __be32 dst, __be16 sport, __be16 dport, __u8 proto, __u8 *source_is_b) {
    __u32 s = bpf_ntohl(src), d = bpf_ntohl(dst);
    int swap = s > d || (s == d && bpf_ntohs(sport) > bpf_ntohs(dport));
    key->a_ip = swap ? dst : src;
    key->b_ip = swap ? src : dst;
    key->a_port = swap ? dport : sport;
    key->b_port = swap ? sport : dport;
    key->proto = proto;
    key->reserved[0] = key->reserved[1] = key->reserved[2] = 0;
    *source_is_b = swap;
}

struct fw_tcp {
    __be16 source;
    __be16 dest;
    __be32 seq;
    __be32 ack_seq;
    __u8 offset;              /* data offset in the high nibble */
    __u8 flags;
    __be16 window;
    __be16 check;
    __be16 urgent;
};

/* The ends of the packet an ICMP error quotes (its IP header and first 8 bytes), as a connection. */
static __always_inline void parse_quoted(struct CTXTYPE *ctx, struct pcn_icmphdr *icmp, struct fw_packet *p) {
    struct iphdr *inner = (void *)(icmp + 1);
    if ((void *)(inner + 1) > pcn_data_end(ctx) || inner->ihl != 5)
        return;
    struct pcn_l4_ports *ports = (void *)(inner + 1);
    if ((void *)(ports + 1) > pcn_data_end(ctx))
        return;
    __be16 sport = 0, dport = 0;
    if (inner->protocol == FW_TCP || inner->protocol == FW_UDP) {
        sport = ports->source;
        dport = ports->dest;
    } else if (inner->protocol == PCN_IPPROTO_ICMP) {
        struct pcn_icmphdr *echo = (void *)(inner + 1);
        if ((void *)(echo + 1) > pcn_data_end(ctx))
            return;
        sport = dport = echo->id;
    } else {
        return;
    }
    __u8 ignored;
    canonical(&p->quoted, inner->saddr, inner->daddr, sport, dport, inner->protocol, &ignored);
    p->quotes = 1;
}

/* Reads what classification and tracking need of an IPv4 packet. */
static __always_inline void parse(struct CTXTYPE *ctx, struct iphdr *ip, struct fw_packet *p) {
    void *end = pcn_data_end(ctx);
    p->src = ip->saddr;
    p->dst = ip->daddr;
    p->proto = ip->protocol;
    if (ip->frag_off & bpf_htons(0x1fff))
        return;               /* a later fragment: no L4 header */
    void *l4 = (void *)ip + ip->ihl * 4;
    if (ip->protocol == FW_TCP) {
        struct fw_tcp *tcp = l4;
        if ((void *)(tcp + 1) > end)
            return;
        p->sport = tcp->source;
        p->dport = tcp->dest;
        p->flags = tcp->flags;
        p->seq = bpf_ntohl(tcp->seq);
        p->ack = bpf_ntohl(tcp->ack_seq);
        p->window = bpf_ntohs(tcp->window);
        __u32 header = (tcp->offset >> 4) * 4;
        __u32 total = bpf_ntohs(ip->tot_len);
        __u32 ip_header = ip->ihl * 4;
        p->payload = total > ip_header + header ? total - ip_header - header : 0;
        if (tcp->flags & (FW_TCP_SYN | FW_TCP_FIN))
            p->payload += 1;
        p->has_l4 = 1;
    } else if (ip->protocol == FW_UDP) {
        struct pcn_l4_ports *udp = l4;
        if ((void *)(udp + 1) > end)
            return;
        p->sport = udp->source;
        p->dport = udp->dest;
        p->has_l4 = 1;
    } else if (ip->protocol == PCN_IPPROTO_ICMP) {
        struct pcn_icmphdr *icmp = l4;
        if ((void *)(icmp + 1) > end)
            return;
        p->icmp_type = icmp->type;
        if (icmp->type == PCN_ICMP_ECHO || icmp->type == PCN_ICMP_ECHOREPLY)
            p->sport = p->dport = icmp->id;
        else if (icmp->type == 3 || icmp->type == 11 || icmp->type == 12)
            parse_quoted(ctx, icmp, p);   /* destination unreachable, time exceeded, parameter problem */
        p->has_l4 = 1;
    }
}

static __always_inline __u64 timeout_of(__u32 state) {
    __u64 *timeout = bpf_map_lookup_elem(&fw_timeouts, &state);
    return timeout && *timeout ? *timeout : 30ull * 1000000000ull;
}

static __always_inline int is_echo(const struct fw_packet *p) {
    return p->proto == PCN_IPPROTO_ICMP && (p->icmp_type == PCN_ICMP_ECHO || p->icmp_type == PCN_ICMP_ECHOREPLY);
}

/* A packet's connection, looked up once per packet: its key, the entry if tracked and alive, and
 * which side sent the packet (0: the originator). */
struct fw_flow {
    struct fw_connection_key key;
    struct fw_connection *c;
    __u8 source_is_b;
    __u8 side;
};

static __always_inline void find_flow(const struct fw_packet *p, struct fw_flow *f, __u64 now) {
    canonical(&f->key, p->src, p->dst, p->sport, p->dport, p->proto, &f->source_is_b);
    struct fw_connection *connection = bpf_map_lookup_elem(&fw_connections, &f->key);
    if (connection && now - connection->last_seen > timeout_of(connection->state))
        connection = 0;
    f->c = connection;
    f->side = connection && connection->originator != f->source_is_b ? 1 : 0;
}

static __always_inline int is_tracked(const struct fw_packet *p) {
    return p->has_l4 && (p->proto == FW_TCP || p->proto == FW_UDP || is_echo(p));
}

/* Is a TCP segment from `side` within what the other side can take? Windows are read as if
 * scaled by up to 2^14 (the options that give the scale are not parsed), so the check refuses
 * segments far outside the connection, not those just past a window's edge. */
static __always_inline int in_window(const struct fw_connection *c, const struct fw_packet *p, __u8 side) {
    __u32 end = c->seq_end[side & 1];
    __u32 window = c->window[(side ^ 1) & 1];
    if (!end || !window)
        return 1;
    __u64 span = (__u64)window << 14;
    if (span > 0x3fffffffull)
        span = 0x3fffffffull;
    __s32 ahead = (__s32)(p->seq - end);
    return ahead <= (__s64)span && ahead >= -(__s64)span;
}

/* The label of a packet: NEW (it would open a connection), ESTABLISHED (part of one), RELATED (an
 * ICMP error about one), INVALID. */
static __always_inline __u32 label_of(const struct fw_packet *p, const struct fw_flow *f, __u64 now) {
    if (!p->has_l4)
        return FW_LABEL_INVALID;
    if (p->proto == PCN_IPPROTO_ICMP && !is_echo(p)) {
        if (!p->quotes)
            return FW_LABEL_NEW;
        struct fw_connection *quoted = bpf_map_lookup_elem(&fw_connections, &p->quoted);
        return quoted && now - quoted->last_seen <= timeout_of(quoted->state) ? FW_LABEL_RELATED : FW_LABEL_INVALID;
    }
    if (p->proto != FW_TCP && p->proto != FW_UDP && !is_echo(p))
        return FW_LABEL_NEW;
    struct fw_connection *c = f->c;
    __u8 side = f->side;
    if (p->proto == FW_TCP) {
        int syn = (p->flags & (FW_TCP_SYN | FW_TCP_ACK)) == FW_TCP_SYN;
        if (!c)
            return syn ? FW_LABEL_NEW : FW_LABEL_INVALID;
        if (syn && side == 0 && (c->state == FW_TCP_TIME_WAIT || c->state == FW_TCP_CLOSE))
            return FW_LABEL_NEW;          /* the same ends open a connection again */
        if (syn && side == 0 && c->state == FW_TCP_SYN_SENT)
            return FW_LABEL_NEW;          /* a retransmitted SYN */
        if (c->state == FW_TCP_SYN_SENT && side == 1 && !(p->flags & FW_TCP_RST) &&
            (p->flags & (FW_TCP_SYN | FW_TCP_ACK)) != (FW_TCP_SYN | FW_TCP_ACK))
            return FW_LABEL_INVALID;      /* only a SYN-ACK (or a RST) answers a SYN */
        if (!(p->flags & FW_TCP_RST) && !in_window(c, p, side))
            return FW_LABEL_INVALID;
        return FW_LABEL_ESTABLISHED;
    }
    if (!c)
        return p->proto == PCN_IPPROTO_ICMP && p->icmp_type == PCN_ICMP_ECHOREPLY ? FW_LABEL_INVALID : FW_LABEL_NEW;
    if (c->state == FW_UDP_UNREPLIED && side == 0)
        return FW_LABEL_NEW;              /* no answer yet: still NEW, as Linux says */
    return FW_LABEL_ESTABLISHED;
}

/* Records an accepted packet in its connection (opened by a NEW one). */
static __always_inline void track(const struct fw_packet *p, struct fw_flow *f, __u32 label, __u64 now) {
    if (!is_tracked(p) || label == FW_LABEL_RELATED || label == FW_LABEL_INVALID)
        return;
    struct fw_connection *c = f->c;
    __u8 side = f->side;
    if (!c || label == FW_LABEL_NEW) {
        if (c && p->proto != FW_TCP) {
            c->last_seen = now;
            return;
        }
        struct fw_connection fresh = {.last_seen = now, .originator = f->source_is_b};
        fresh.state = p->proto == FW_TCP ? FW_TCP_SYN_SENT : p->proto == FW_UDP ? FW_UDP_UNREPLIED : FW_ICMP;
        if (p->proto == FW_TCP) {
            fresh.seq_end[0] = p->seq + p->payload;
            fresh.window[0] = p->window;
        }
        bpf_map_update_elem(&fw_connections, &f->key, &fresh, BPF_ANY);
        return;
    }
    c->last_seen = now;
    if (p->proto == FW_UDP) {
        if (side == 1)
            c->state = FW_UDP_REPLIED;
        return;
    }
    if (p->proto != FW_TCP)
        return;
    __u32 end = p->seq + p->payload;
    if ((__s32)(end - c->seq_end[side & 1]) > 0 || !c->seq_end[side & 1])
        c->seq_end[side & 1] = end;
    if (p->window > c->window[side & 1])
        c->window[side & 1] = p->window;
    if (p->flags & FW_TCP_RST) {
        c->state = FW_TCP_CLOSE;
        return;
    }
    if (p->flags & FW_TCP_FIN)
        c->fin_seen |= side ? 2 : 1;
    switch (c->state) {
    case FW_TCP_SYN_SENT:
        if (side == 1 && (p->flags & FW_TCP_SYN) && (p->flags & FW_TCP_ACK))
            c->state = FW_TCP_SYN_RECV;
        break;
    case FW_TCP_SYN_RECV:
        if (side == 0 && (p->flags & FW_TCP_ACK))
            c->state = FW_TCP_ESTABLISHED;
        break;
    case FW_TCP_ESTABLISHED:
        if (p->flags & FW_TCP_FIN)
            c->state = side == 0 ? FW_TCP_FIN_WAIT : FW_TCP_CLOSE_WAIT;
        break;
    case FW_TCP_FIN_WAIT:
    case FW_TCP_CLOSE_WAIT:
        if (c->fin_seen == 3)
            c->state = FW_TCP_LAST_ACK;
        break;
    case FW_TCP_LAST_ACK:
        if (p->flags & FW_TCP_ACK)
            c->state = FW_TCP_TIME_WAIT;
        break;
    }
}

/* The search: the first rule matching the packet among the shapes of `chain`'s generation. */
struct fw_search {
    struct fw_packet *p;
    __u32 label;
    __u32 base;               /* (chain * 2 + generation) * FW_MAX_SHAPES */
    __u32 count;
    __u32 rule;
    __u32 slot;
    __u32 action;
    __u32 logs;
    __u32 log_rule[FW_LOGS_PER_PACKET];
    __u32 log_slot[FW_LOGS_PER_PACKET];
};

static long search_shape(__u32 i, void *data) {
    struct fw_search *s = data;
    if (i >= s->count)
        return 1;
    __u32 index = s->base + i;
    struct fw_shape *shape = bpf_map_lookup_elem(&fw_shapes, &index);
    if (!shape || shape->first_rule > s->rule)
        return 1;             /* shapes are in the order of their first rule: none later can do better */
    struct fw_packet *p = s->p;
    struct fw_rule_key key = {
        .shape = index,
        .src = p->src & shape->src_mask,
        .dst = p->dst & shape->dst_mask,
        .sport = shape->fields & FW_FIELD_SPORT ? p->sport : 0,
        .dport = shape->fields & FW_FIELD_DPORT ? p->dport : 0,
        .proto = shape->fields & FW_FIELD_PROTO ? p->proto : 0,
        .flags = p->flags & shape->flags_mask,
        .label = shape->fields & FW_FIELD_LABEL ? s->label : 0,
    };
    struct fw_rule_match *match = bpf_map_lookup_elem(&fw_rules, &key);
    if (!match)
        return 0;
    if (match->log_rule < s->rule && s->logs < FW_LOGS_PER_PACKET) {
        s->log_rule[s->logs & (FW_LOGS_PER_PACKET - 1)] = match->log_rule;
        s->log_slot[s->logs & (FW_LOGS_PER_PACKET - 1)] = match->log_slot;
        s->logs++;
    }
    if (match->rule < s->rule) {
        s->rule = match->rule;
        s->slot = match->slot;
        s->action = match->action;
    }
    return 0;
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return RX_OK;
    struct iphdr *ip = pcn_ipv4(ctx, eth);
    if (!ip)
        return RX_OK;         /* not IPv4: ARP and the rest pass */
    __u32 chain = md->in_port ? FW_EGRESS : FW_INGRESS;
    struct fw_chain_config *config = bpf_map_lookup_elem(&fw_chain_config, &chain);
    if (!config)
        return RX_OK;
    __u32 bytes = md->packet_len;
    struct fw_packet p = {};
    parse(ctx, ip, &p);
    __u64 now = bpf_ktime_get_ns();
    struct fw_flow flow = {};
    if (config->conntrack && is_tracked(&p))
        find_flow(&p, &flow, now);
    __u32 label = config->conntrack ? label_of(&p, &flow, now) : FW_LABEL_NONE;

    if (config->accept_established && (label == FW_LABEL_ESTABLISHED || label == FW_LABEL_RELATED)) {
        count(FW_ESTABLISHED_SLOT, bytes);
        track(&p, &flow, label, now);
        return RX_OK;
    }

    __u32 counts = chain * 2 + (config->generation & 1);
    __u32 *count_of_shapes = bpf_map_lookup_elem(&fw_shape_counts, &counts);
    struct fw_search s = {
        .p = &p,
        .label = label,
        .base = counts * FW_MAX_SHAPES,
        .count = count_of_shapes ? *count_of_shapes : 0,
        .rule = FW_NO_RULE,
    };
    bpf_loop(FW_MAX_SHAPES, search_shape, &s, 0);

    for (__u32 i = 0; i < FW_LOGS_PER_PACKET; i++) {
        if (i >= s.logs)
            break;
        if (s.log_rule[i] < s.rule) {
            count(s.log_slot[i], bytes);
            pcn_log(ctx, LOG_INFO, "rule %u: %I -> %I:%P", s.log_rule[i], p.src, p.dst, p.dport);
        }
    }
    __u32 action;
    if (s.rule != FW_NO_RULE) {
        count(s.slot, bytes);
        action = s.action;
    } else {
        count(FW_DEFAULT_SLOT(chain), bytes);
        action = config->default_action;
    }
    if (action == FW_DROP)
        return pcn_pkt_drop_reason(ctx, md, s.rule != FW_NO_RULE ? FW_DROP_RULE : FW_DROP_DEFAULT);
    if (config->conntrack)
        track(&p, &flow, label, now);
    return RX_OK;
}

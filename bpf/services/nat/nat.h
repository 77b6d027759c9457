/* nat's tables, shared with its control plane. Addresses and ports are in network order.
 *
 * A session is two entries of `nat_sessions`, one per direction, each keyed by the packet as it
 * arrives at the cube in that direction and holding what it becomes: the first packet of a flow
 * finds a rule and writes both, every later packet (and every reply) is one lookup. */
#ifndef NAT_H
#define NAT_H
#include <linux/types.h>

#define NAT_RULES 1024           /* per kind */
#define NAT_SESSIONS 131072      /* entries: two per session */
#define NAT_PORT_TRIES 64        /* candidate external ports tried for a new flow */

enum nat_kind {
    NAT_SNAT = 0,
    NAT_DNAT = 1,
    NAT_PORTFORWARDING = 2,
    NAT_MASQUERADE = 3,
};

/* Which way a packet goes through the cube. */
enum nat_direction {
    NAT_INGRESS = 0,         /* coming in from the outside: port forwarding, DNAT, replies to SNAT */
    NAT_EGRESS = 1,          /* going out: SNAT, masquerade, replies to DNAT */
};

/* Table `nat_snat_rules` (LPM trie): the inside prefix -> the external address. Masquerade is not
 * in it (`nat_config`): any SNAT rule wins over it. */
struct nat_snat_key {
    __u32 prefixlen;
    __be32 internal;
};

struct nat_snat_rule {
    __be32 external;
    __u32 id;
};

/* Table `nat_dnat_rules` (LPM trie) on {external address, port, protocol}: port forwarding for one
 * protocol is a /56, for TCP and UDP a /48 (looked up once per protocol), DNAT a /32, so the
 * longest match gives port forwarding > DNAT. */
struct nat_dnat_key {
    __u32 prefixlen;
    __be32 external;
    __be16 port;
    __u8 proto;
    __u8 reserved;
};

struct nat_dnat_rule {
    __be32 internal;
    __be16 internal_port;    /* 0: DNAT, the port stays */
    __u16 kind;              /* enum nat_kind */
    __u32 id;
};

/* Table `nat_config` (array, 1). */
struct nat_config {
    __be32 masquerade_ip;    /* 0: masquerade off, or the attachment has no address yet */
    __u16 port_low;          /* the external ports SNAT and masquerade hand out (host order) */
    __u16 port_high;
};

/* Table `nat_sessions` (LRU hash). */
struct nat_session_key {
    __be32 src;
    __be32 dst;
    __be16 sport;            /* ICMP echo: the identifier, in both */
    __be16 dport;
    __u8 proto;
    __u8 direction;          /* enum nat_direction */
    __u16 reserved;
};

struct nat_session {
    __be32 src;              /* what the packet becomes */
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u64 last_seen;         /* bpf_ktime_get_ns, of either direction */
    __u32 rule;              /* the id of the rule that made it */
    __u8 kind;               /* enum nat_kind */
    __u8 originating;        /* 1: the direction of the flow's first packet */
    __u8 closing;            /* TCP: a FIN or RST was seen */
    __u8 reserved;
};

/* Seconds a session lives unseen. */
#define NAT_TIMEOUT_TCP 7440         /* RFC 5382: at least 2 h 4 min */
#define NAT_TIMEOUT_TCP_CLOSING 120
#define NAT_TIMEOUT_UDP 300          /* RFC 4787: at least 2 min */
#define NAT_TIMEOUT_ICMP 60

/* Table `nat_counters` (per-CPU array). */
enum nat_counter {
    NAT_COUNT_PORTS_EXHAUSTED = 0,
    NAT_COUNTERS = 1,
};

enum nat_drop_reason {
    NAT_DROP_NO_PORT = 0,    /* no free external port for a new flow */
    NAT_DROP_REWRITE = 1,    /* the packet could not be rewritten */
};
#endif

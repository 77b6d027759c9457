/* firewall's tables, shared with its control plane. Addresses and ports are in network order.
 *
 * Classification is a tuple-space search: rules are grouped by their shape (which fields they
 * match, the prefix lengths, the TCP flags they look at); each shape is one hash lookup of the
 * packet's fields masked by it, giving the first rule of that shape for those values. A packet
 * costs one lookup per shape, however many rules there are; shapes are kept ordered by their
 * first rule, so the search stops at the first shape that cannot hold an earlier rule. */
#ifndef FIREWALL_H
#define FIREWALL_H
#include <linux/types.h>

#define FW_MAX_RULES 16384       /* per chain */
#define FW_MAX_SHAPES 64         /* distinct rule shapes per chain */
#define FW_LOGS_PER_PACKET 4     /* LOG rules that fire for one packet, at most */
#define FW_CONNECTIONS 65536
#define FW_NO_RULE 0xffffffffu

enum fw_chain {
    FW_INGRESS = 0,
    FW_EGRESS = 1,
    FW_CHAINS = 2,
};

enum fw_action {
    FW_ACCEPT = 0,
    FW_DROP = 1,
    FW_LOG = 2,
};

/* Connection-tracking labels a rule may match (`conntrack=`). */
enum fw_label {
    FW_LABEL_NONE = 0,        /* conntrack OFF */
    FW_LABEL_NEW = 1,
    FW_LABEL_ESTABLISHED = 2,
    FW_LABEL_RELATED = 3,
    FW_LABEL_INVALID = 4,
};

/* Which fields a shape matches exactly (addresses by their prefix lengths, flags by their mask). */
enum fw_field {
    FW_FIELD_PROTO = 1,
    FW_FIELD_SPORT = 2,
    FW_FIELD_DPORT = 4,
    FW_FIELD_LABEL = 8,
};

/* Table `fw_shapes` (array, FW_CHAINS * 2 generations * FW_MAX_SHAPES): index
 * ((chain * 2 + generation) * FW_MAX_SHAPES + i). `fw_shape_counts` (array, FW_CHAINS * 2) holds
 * how many are in use; a shape is written before the count that includes it. */
struct fw_shape {
    __be32 src_mask;
    __be32 dst_mask;
    __u8 fields;              /* enum fw_field bits */
    __u8 flags_mask;          /* TCP flags looked at */
    __u16 reserved;
    __u32 first_rule;         /* the lowest rule id of the shape */
};

/* Table `fw_rules` (hash): a packet's fields masked by a shape -> the first rules for them. */
struct fw_rule_key {
    __u32 shape;              /* (chain * 2 + generation) * FW_MAX_SHAPES + i */
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u8 proto;
    __u8 flags;
    __u8 label;
    __u8 reserved;
};

struct fw_rule_match {
    __u32 rule;               /* the first ACCEPT or DROP rule, FW_NO_RULE if none */
    __u32 slot;               /* its counters */
    __u32 action;             /* enum fw_action */
    __u32 log_rule;           /* the first LOG rule before it, FW_NO_RULE if none */
    __u32 log_slot;
};

/* Table `fw_chain_config` (array, FW_CHAINS). */
struct fw_chain_config {
    __u32 generation;         /* which generation of shapes and rules classifies */
    __u32 default_action;     /* enum fw_action: ACCEPT or DROP */
    __u32 conntrack;          /* 1: labels computed and connections tracked */
    __u32 accept_established; /* 1: ESTABLISHED and RELATED accepted before the rules */
};

/* Table `fw_counters` (per-CPU array): per rule slot; slots 0 and 1 count the chains' defaults,
 * FW_ESTABLISHED_SLOT what accept-established let through. */
struct fw_counter {
    __u64 packets;
    __u64 bytes;
};
#define FW_DEFAULT_SLOT(chain) (chain)
#define FW_ESTABLISHED_SLOT 2
#define FW_FIRST_RULE_SLOT 3
#define FW_SLOTS (FW_FIRST_RULE_SLOT + FW_CHAINS * FW_MAX_RULES)
#define FW_RULE_KEYS (2 * 2 * FW_CHAINS * FW_MAX_RULES) /* a port rule without protocol has two keys; two generations */

/* Connection states, as nf_conntrack names them. */
enum fw_state {
    FW_TCP_SYN_SENT = 0,
    FW_TCP_SYN_RECV = 1,
    FW_TCP_ESTABLISHED = 2,
    FW_TCP_FIN_WAIT = 3,
    FW_TCP_CLOSE_WAIT = 4,
    FW_TCP_LAST_ACK = 5,
    FW_TCP_TIME_WAIT = 6,
    FW_TCP_CLOSE = 7,
    FW_UDP_UNREPLIED = 8,
    FW_UDP_REPLIED = 9,
    FW_ICMP = 10,
    FW_STATES = 11,
};

/* Table `fw_timeouts` (array, FW_STATES): nanoseconds a connection in that state lives unseen. */

/* Table `fw_connections` (LRU hash): a connection by its ends in a canonical order (the lower
 * address and port first), whichever way the packet goes. */
struct fw_connection_key {
    __be32 a_ip;
    __be32 b_ip;
    __be16 a_port;            /* ICMP echo: the identifier, on both */
    __be16 b_port;
    __u8 proto;
    __u8 reserved[3];
};

struct fw_connection {
    __u64 last_seen;          /* bpf_ktime_get_ns */
    __u32 state;              /* enum fw_state */
    __u8 originator;          /* 0: a opened it, 1: b did */
    __u8 fin_seen;            /* bit 0: from the originator, bit 1: from the reply side */
    __u16 reserved;
    __u32 seq_end[2];         /* TCP: highest sequence end seen, by side (0 originator) */
    __u32 window[2];          /* TCP: largest window seen, by side */
};

/* Why a packet is dropped (counted per cube under the names firewall.c gives them). */
enum fw_drop_reason {
    FW_DROP_RULE = 0,         /* a DROP rule */
    FW_DROP_DEFAULT = 1,      /* the chain's default action */
};
#endif

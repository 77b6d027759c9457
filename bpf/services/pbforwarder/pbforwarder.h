/* pbforwarder's tables, shared with its control plane. Addresses and ports are in network order.
 *
 * Rules are found by a tuple-space search, as the firewall's (firewall.h): rules grouped by shape
 * (which fields they match, the prefix lengths), one hash lookup per shape of the packet's fields
 * masked by it, the lowest rule id wins; shapes ordered by their first rule, so the search stops at
 * the first shape that cannot hold an earlier one. Two generations: a change builds the other one
 * and swaps to it with one write. */
#ifndef PBFORWARDER_H
#define PBFORWARDER_H
#include <linux/types.h>

#define PBF_MAX_RULES 4096       /* rule ids 0..4095 */
#define PBF_MAX_SHAPES 32
#define PBF_NO_RULE 0xffffffffu

enum pbf_action {
    PBF_DROP = 0,
    PBF_SLOWPATH = 1,
    PBF_FORWARD = 2,
};

/* Which fields a shape matches exactly (addresses by their prefix lengths). */
enum pbf_field {
    PBF_FIELD_IN_PORT = 1,
    PBF_FIELD_SRC_MAC = 2,
    PBF_FIELD_DST_MAC = 4,
    PBF_FIELD_VLAN = 8,
    PBF_FIELD_PROTO = 16,
    PBF_FIELD_SPORT = 32,
    PBF_FIELD_DPORT = 64,
};

/* Table `pbf_shapes` (array, 2 generations * PBF_MAX_SHAPES), `pbf_shape_counts` (array, 2). */
struct pbf_shape {
    __be32 src_mask;
    __be32 dst_mask;
    __u32 fields;             /* enum pbf_field bits */
    __u32 first_rule;
};

/* Table `pbf_rules` (hash): a packet's fields masked by a shape -> the first rule for them. */
struct pbf_rule_key {
    __u32 shape;              /* generation * PBF_MAX_SHAPES + i */
    __u32 in_port;
    __u8 src_mac[6];
    __u8 dst_mac[6];
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u16 vlan;               /* 802.1Q id, 0: untagged */
    __u8 proto;
    __u8 reserved;
};

struct pbf_rule_match {
    __u32 rule;
    __u32 action;             /* enum pbf_action */
    __u32 out_port;           /* FORWARD */
};

/* Table `pbf_config` (array, 1). */
struct pbf_config {
    __u32 generation;
};

/* Table `pbf_counters` (per-CPU array, PBF_MAX_RULES): by rule id. */
struct pbf_counter {
    __u64 packets;
    __u64 bytes;
};

enum pbf_drop_reason {
    PBF_DROP_RULE = 0,        /* a DROP rule */
    PBF_DROP_NO_RULE = 1,     /* no rule matched */
};
#endif

/* bridge: an 802.1Q learning bridge. The fast path classifies each frame into a VLAN, enforces the
 * spanning-tree state of its ports, learns per (VLAN, MAC), forwards known unicast with the tag the
 * output port needs and floods the rest in the kernel (pcn/flood.h). BPDUs, and floods the kernel
 * cannot do (cube peers; XDP with ports that need different tags), go to the slow path. */
#include <pcn/cube.h>
#include <pcn/flood.h>
#include <pcn/packet.h>
#include <pcn/vlan.h>
#include "bridge.h"

PCN_TABLE(BPF_MAP_TYPE_HASH, struct bridge_fdb_key, struct bridge_fdb_entry, bridge_fdb, BRIDGE_FDB_MAX);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct bridge_port, bridge_ports, PCN_MAX_PORTS);
PCN_TABLE(BPF_MAP_TYPE_HASH, __u32, struct bridge_vlan, bridge_vlans, BRIDGE_VLANS_MAX);
PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct bridge_config, bridge_config, 1);

PCN_DROP_REASON(BRIDGE_DROP_VLAN, "vlan-not-allowed");
PCN_DROP_REASON(BRIDGE_DROP_STP, "stp-not-forwarding");
PCN_DROP_REASON(BRIDGE_DROP_LINK_LOCAL, "link-local");
PCN_DROP_REASON(BRIDGE_DROP_SAME_PORT, "same-port");
PCN_DROP_REASON(BRIDGE_DROP_TAG, "vlan-tag");

static __always_inline int is_link_local(const __u8 *mac) {
    return mac[0] == 0x01 && mac[1] == 0x80 && mac[2] == 0xc2 && mac[3] == 0 && mac[4] == 0 && (mac[5] & 0xf0) == 0;
}

static __always_inline void learn(const __u8 *mac, __u16 vlan, __u32 port, __u64 now) {
    struct bridge_fdb_key key = {.vlan = vlan};
    __builtin_memcpy(key.mac, mac, ETH_ALEN);
    struct bridge_fdb_entry *entry = bpf_map_lookup_elem(&bridge_fdb, &key);
    if (entry && ((entry->flags & BRIDGE_FDB_STATIC) || (entry->port == port && entry->timestamp == now)))
        return;
    struct bridge_fdb_entry fresh = {.port = port, .flags = 0, .timestamp = now};
    bpf_map_update_elem(&bridge_fdb, &key, &fresh, BPF_ANY);
}

/* The port a known unicast destination is behind, or PCN_NO_PORT. */
static __always_inline __u32 destination(const __u8 *mac, __u16 vlan, __u64 now, __u32 aging_time) {
    struct bridge_fdb_key key = {.vlan = vlan};
    __builtin_memcpy(key.mac, mac, ETH_ALEN);
    struct bridge_fdb_entry *entry = bpf_map_lookup_elem(&bridge_fdb, &key);
    if (!entry || (!(entry->flags & BRIDGE_FDB_STATIC) && now - entry->timestamp > aging_time))
        return PCN_NO_PORT;
    return entry->port;
}

static __always_inline int to_slow_path(struct CTXTYPE *ctx, struct pkt_metadata *md, __u16 reason, __u16 vlan, __u32 cubes_only) {
    __u32 metadata[3] = {vlan, cubes_only, 0};
    return pcn_pkt_controller_with_metadata(ctx, md, reason, metadata);
}

#ifdef PCN_HOOK_TC
#define BRIDGE_FLOOD_CASE(i) \
    if ((targets >> i) & 1) { \
        if (pcn_port_to_netdev(i)) { \
            if (pcn_vlan_set(ctx, &tagged, !((vlan->untagged >> i) & 1), vid)) \
                return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_TAG); \
            pcn_flood_clone(ctx, i); \
        } else if (pcn_port_to_cube(i)) { \
            cubes = 1; \
        } \
    }

/* A copy out of every forwarding port of the VLAN but the input one, each with its tagging; cube
 * peers through the slow path (a tail call cannot come back for the next copy). */
static __always_inline int flood(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct bridge_vlan *vlan, __u16 vid, int tagged) {
    __u32 targets = vlan->forwarding & vlan->members & ~(1u << (md->in_port & 31));
    int cubes = 0;
    PCN_PORT_CASES(BRIDGE_FLOOD_CASE)
    if (cubes)
        return to_slow_path(ctx, md, BRIDGE_REASON_FLOOD, vid, 1);
    return PCN_RX_SENT;
}
#else
/* One broadcast when a flood group holds the VLAN's forwarding ports; else the slow path floods. */
static __always_inline int flood(struct CTXTYPE *ctx, struct pkt_metadata *md, const struct bridge_vlan *vlan, __u16 vid, int tagged) {
    if (!vlan->flood_group)
        return to_slow_path(ctx, md, BRIDGE_REASON_FLOOD, vid, 0);
    if (pcn_vlan_set(ctx, &tagged, !vlan->flood_untagged, vid))
        return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_TAG);
    return pcn_flood_broadcast(ctx, md, vlan->flood_group, vlan->forwarding & vlan->members);
}
#endif

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u32 zero = 0, in_port = md->in_port;
    struct bridge_config *config = bpf_map_lookup_elem(&bridge_config, &zero);
    struct bridge_port *port = bpf_map_lookup_elem(&bridge_ports, &in_port);
    if (!config || !port)
        return RX_DROP;

    __u16 vid = 0;
    int tagged = pcn_vlan_tag(ctx, &vid);
    if (tagged && vid == 0) {
        /* Priority-tagged: the frame is in the port's VLAN, and leaves tagged with that or untagged. */
        if (pcn_vlan_pop(ctx))
            return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_TAG);
        tagged = 0;
    }
    if (tagged && port->access && vid != port->pvid)
        return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_VLAN);
    if (!tagged)
        vid = port->pvid;
    struct ethhdr *eth = pcn_eth(ctx);
    if (!eth)
        return RX_DROP;
    __u32 key = vid;
    struct bridge_vlan *found = vid ? bpf_map_lookup_elem(&bridge_vlans, &key) : 0;
    __u32 bit = 1u << (in_port & 31);
    if (!found || !(found->members & bit))
        return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_VLAN);
    struct bridge_vlan vlan = *found;

    if (is_link_local(eth->h_dest)) {
        if (eth->h_dest[5] == 0 && config->stp_enabled)
            return to_slow_path(ctx, md, BRIDGE_REASON_BPDU, vid, 0);
        if (eth->h_dest[5] != 0)
            return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_LINK_LOCAL);
    }
    if (!(vlan.learning & bit))
        return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_STP);
    __u64 now = bpf_ktime_get_ns() / 1000000000ULL;
    if (!pcn_mac_is_multicast(eth->h_source))
        learn(eth->h_source, vid, in_port, now);
    if (!(vlan.forwarding & bit))
        return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_STP);

    if (!pcn_mac_is_multicast(eth->h_dest)) {
        __u32 out = destination(eth->h_dest, vid, now, config->aging_time);
        if (out == in_port)
            return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_SAME_PORT);
        if (out < BRIDGE_MAX_PORTS) {
            __u32 out_bit = 1u << out;
            if (!(vlan.members & vlan.forwarding & out_bit))
                return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_STP);
            if (pcn_vlan_set(ctx, &tagged, !(vlan.untagged & out_bit), vid))
                return pcn_pkt_drop_reason(ctx, md, BRIDGE_DROP_TAG);
            return pcn_pkt_redirect(ctx, md, out);
        }
    }
    return flood(ctx, md, &vlan, vid, tagged);
}

/* bridge's tables, shared with its control plane.
 *
 * Each frame is classified into one VLAN at its input port (bridge_ports: the VLAN of untagged
 * frames; tagged frames carry theirs), then one lookup of that VLAN (bridge_vlans) says which ports
 * are in it, which of them forward or learn (their spanning-tree state) and which send it untagged.
 * Learning is per (VLAN, MAC). */
#ifndef BRIDGE_H
#define BRIDGE_H
#include <linux/types.h>

#define BRIDGE_FDB_MAX 65536
#define BRIDGE_VLANS_MAX 4096
/* Ports of a bridge: its VLANs hold their members as __u32 masks. */
#define BRIDGE_MAX_PORTS 32

/* Table `bridge_fdb`: (MAC, VLAN) -> where the address is. */
struct bridge_fdb_key {
    __u8 mac[6];
    __u16 vlan;
};

struct bridge_fdb_entry {
    __u32 port;          /* port index */
    __u32 flags;         /* BRIDGE_FDB_STATIC: configured, never aged or moved by learning */
    __u64 timestamp;     /* last seen, seconds of CLOCK_MONOTONIC */
};
#define BRIDGE_FDB_STATIC 1

/* Table `bridge_ports` (array by port index). */
struct bridge_port {
    __u16 pvid;          /* the VLAN of untagged (and priority-tagged) frames; 0: they are dropped */
    __u16 access;        /* 1: an access port, tagged frames of another VLAN than pvid are dropped */
};

/* Table `bridge_vlans`: VLAN id -> its ports, a bit per port index. */
struct bridge_vlan {
    __u32 members;       /* ports in the VLAN */
    __u32 learning;      /* members whose source addresses are learned (spanning tree: learning, forwarding) */
    __u32 forwarding;    /* members that receive and send frames (spanning tree: forwarding) */
    __u32 untagged;      /* members that send the VLAN untagged (access ports, a trunk's native VLAN) */
    __u32 flood_group;   /* XDP: the flood group holding exactly the forwarding members, all netdevs
                          * with the same tagging (pcn/flood.h); 0: flood through the slow path */
    __u32 flood_untagged; /* XDP: 1 when that group's ports send untagged */
};

/* The single entry of table `bridge_config`. */
struct bridge_config {
    __u32 aging_time;    /* seconds after which a learned entry no longer counts */
    __u32 stp_enabled;   /* 1: BPDUs go to the slow path; 0: they are flooded as other multicast */
};

enum bridge_reason {
    BRIDGE_REASON_FLOOD = 1,   /* flood to the ports the kernel could not reach; md[0] = VLAN, md[1] = 1 for cube peers only */
    BRIDGE_REASON_BPDU = 2,    /* a spanning-tree BPDU; md[0] = VLAN */
};

enum bridge_drop_reason {
    BRIDGE_DROP_VLAN = 0,      /* the input port is not in the frame's VLAN */
    BRIDGE_DROP_STP = 1,       /* the input port is blocking, listening or learning */
    BRIDGE_DROP_LINK_LOCAL = 2, /* 01:80:c2:00:00:0x, which bridges do not forward */
    BRIDGE_DROP_SAME_PORT = 3, /* the destination is behind the port the frame came in on */
    BRIDGE_DROP_TAG = 4,       /* a VLAN tag could not be pushed or popped */
};
#endif

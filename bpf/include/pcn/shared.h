/* Structs and constants read by both the datapath and Swift (imported through the PCNDatapathABI
 * target). Defined once, here. Plain C types so that both BPF and host compilers agree on layout. */
#ifndef PCN_SHARED_H
#define PCN_SHARED_H

#include <linux/types.h>

/* Ports per cube: a node's lbrp has one per pod. The first PCN_CONST_PORTS have a path each whose
 * tail call key is a constant (a direct jump once JITed); the others share one (pcn/cube.h). */
#define PCN_MAX_PORTS 256
#define PCN_CONST_PORTS 16
#define PCN_MAX_NODES 1024
/* µCubes per cube: index 0 is the MASTER (the entry), 1.. are SLAVEs. */
#define PCN_MAX_UCUBES 64
/* XDP flood groups per cube (pcn/flood.h): devmaps pcn_flood_group_1..PCN_FLOOD_GROUPS. */
#define PCN_FLOOD_GROUPS 4
/* Port index meaning "no port". */
#define PCN_NO_PORT 0xffff
/* A shadow cube's packets from its namespace arrive on port PCN_SHADOW_PORT(i): the twin of port i
 * (they go straight out of port i). */
#define PCN_SHADOW_PORT(i) (PCN_MAX_PORTS + (i))

/* What a service's handle_rx returns. Chosen far from TC_ACT_* (0..8), XDP_* (0..4) and helper
 * return codes (0, negative errno) so a verdict is never mistaken for one of them. */
enum pcn_verdict {
    RX_OK = 0x7c00,
    RX_DROP = 0x7c01,
    RX_REDIRECT = 0x7c02,
    /* Internal: dropped and already counted (a failed call_ingress_program). */
    PCN_RX_DROPPED_COUNTED = 0x7c03,
    /* Internal: sent to the slow path (pcn_pkt_controller*), not forwarded. */
    PCN_RX_SLOW_PATH = 0x7c04,
    /* Internal: the service sent the packet out itself (pcn/flood.h), nothing more to do. */
    PCN_RX_SENT = 0x7c05,
};

/* Bytes of a frame copied to the slow path. */
#define PCN_PACKET_IN_MAX 1514

/* One packet-in record in the ring `pcn_packet_in`: this header, then `captured_len` bytes. */
struct pcn_packet_in {
    __u32 cube_id;       /* the cube's node */
    __u16 port;          /* port the packet arrived on */
    __u16 direction;     /* 0 ingress, 1 egress */
    __u16 reason;        /* the service's reason code */
    __u16 reserved;
    __u32 packet_len;    /* length of the whole frame */
    __u32 captured_len;  /* bytes that follow (at most PCN_PACKET_IN_MAX) */
    __u32 md[3];         /* the service's metadata for its slow path */
    __u8 data[PCN_PACKET_IN_MAX];
};

/* Per-packet metadata given to handle_rx. */
struct pkt_metadata {
    __u16 in_port;       /* port the packet arrived on */
    __u16 reason;        /* slow-path reason; for RX_REDIRECT, the output port */
    __u32 packet_len;
    __u32 traffic_class;
    __u32 md[3];         /* free for the service; travels with the packet to the next cube */
};

/* Packet-out. pcn-core writes the frame followed by this trailer onto its injection veth; the
 * injection program strips the trailer and sends the frame on. */
#define PCN_PACKET_OUT_MAGIC 0x70636e6fU /* "pcno" */
enum pcn_packet_out_kind {
    PCN_OUT_TO_CUBE = 1,     /* enter TC program `target` (node) at port `port` */
    PCN_OUT_TO_NETDEV = 2,   /* leave through netdev `target` (ifindex), its egress chain included */
    PCN_OUT_TO_CUBE_XDP = 3, /* enter XDP program `target` (node) at port `port` */
    PCN_OUT_TO_STACK = 4,    /* up the host stack of netdev `target`, past its entry program */
    PCN_OUT_TO_WIRE = 5,     /* out of netdev `target`, past its egress chain */
    /* Leave through netdev `target` as an XDP cube's redirect does. A frame the TC injector redirected
     * would reach a generic XDP program behind that netdev's veth peer marked as redirected, and
     * the kernel does not run generic XDP on those: XDP cubes' frames go out from XDP instead. */
    PCN_OUT_TO_NETDEV_XDP = 6,
};

/* skb->mark of a packet-out that must pass a netdev's entry program untouched (TO_STACK, TO_WIRE);
 * the entry program clears it. */
#define PCN_MARK_PASS 0x70636e21U
struct pcn_packet_out_trailer {
    __u32 target;
    __u16 port;
    __u16 kind;
    __u32 md[3];
    __u32 magic;
};

/* A packet-out request on the bus: this header, then the frame. Names are NUL-terminated. */
#define PCN_NAME_MAX 40
enum pcn_direction {
    PCN_DIRECTION_INGRESS = 0,  /* as if the frame arrived on the port */
    PCN_DIRECTION_EGRESS = 1,   /* out of the port, to its peer */
};
struct pcn_packet_out_request {
    char cube[PCN_NAME_MAX];
    char port[PCN_NAME_MAX];
    __u32 direction;
    __u32 md[3];
};

/* Where a packet goes next (a "hop"): out of a port, or on from a transparent cube. */
enum pcn_peer_kind {
    PCN_PEER_NONE = 0,    /* nowhere: dropped and counted (no-peer) */
    PCN_PEER_NETDEV = 1,  /* bpf_redirect to netdev `target` */
    PCN_PEER_CUBE = 2,    /* tail call into program `target` of the patch panel, arriving on `peer_port` */
    PCN_PEER_STACK = 3,   /* let the packet go on: up the stack (ingress) or to the wire (egress) */
    PCN_PEER_VETH = 4,    /* TC: bpf_redirect_peer into the twin of veth `target` (in another namespace),
                           * skipping the veth's egress and the backlog queue; XDP: as PCN_PEER_NETDEV */
};

struct pcn_port_peer {
    __u32 kind;          /* enum pcn_peer_kind */
    __u32 target;        /* netdev ifindex, or a patch-panel node */
    __u32 peer_port;     /* the port the next cube sees the packet arrive on (PCN_PEER_CUBE) */
    __u32 reserved;
};

/* Load-time constants of one cube's programs (section .rodata.pcn: the verifier sees them as
 * known values, so jumps use constant keys and dead branches disappear). */
struct pcn_cube_config {
    __u32 cube_id;       /* the cube's identity (its first patch-panel node) */
    __u32 log_level;     /* enum pcn_log_level: pcn_log statements below it are removed */
    __u32 port_count;
    __u32 log_source;    /* names this program's table of log formats (see pcn_log_record) */
    /* Standard cube: where each port leads. Transparent cube: peers[0] is the next hop. */
    struct pcn_port_peer peers[PCN_MAX_PORTS];
    /* Standard cube's egress program: where a packet it lets go through port i goes next (the
     * netdev's transparent cubes, then the wire). */
    struct pcn_port_peer egress_next[PCN_MAX_PORTS];
    /* A shadow cube (pcn-<cube> namespace): per port, the ifindex of the veth end whose twin in the
     * namespace carries the port's addresses (0: none). `span` copies every packet of a port there. */
    __u32 shadow;
    __u32 span;
    __u32 shadow_ifindex[PCN_MAX_PORTS];
};

/* Load-time constants of a netdev's entry program. */
struct pcn_netdev_config {
    __u32 target_node;   /* patch-panel node to enter */
    __u32 target_port;   /* the port it sees the packet arrive on */
};

/* Why a packet was dropped or lost; counted per cube (one drop path: pcn_drop). */
enum pcn_drop_reason {
    PCN_DROP_SERVICE = 0,       /* handle_rx returned RX_DROP */
    PCN_DROP_UNKNOWN_PORT = 1,  /* redirect to a port index the cube does not have */
    PCN_DROP_NO_PEER = 2,       /* redirect to a port with no peer */
    PCN_DROP_MISSED_TAIL_CALL = 3, /* the next cube's program was not there */
    PCN_DROP_BAD_VERDICT = 4,   /* handle_rx returned something that is not a verdict */
    PCN_DROP_SLOW_PATH_FULL = 5, /* the packet-in ring had no room */
    PCN_DROP_REASONS = 6,
};

/* A service's own drop reasons (declared with PCN_DROP_REASON, bpf/include/pcn/drop_reasons.h)
 * are counted after the framework's: slot PCN_DROP_REASONS + the service's reason. */
#define PCN_SERVICE_DROP_REASONS 16

/* One service drop reason's name, in the object's section .rodata.pcn_drops (read by pcn-core). */
struct pcn_drop_name {
    __u32 reason;
    char name[28];
};

/* Per-cube counters (per-CPU array value, index 0). What the cube received is the sum of its ports'
 * rx counters (struct pcn_port_stats), not counted twice. */
struct pcn_cube_stats {
    __u64 redirected;
    __u64 passed;
    __u64 to_slow_path;
    __u64 drops[PCN_DROP_REASONS + PCN_SERVICE_DROP_REASONS];
};

/* Per-port counters (per-CPU array value, index = port). */
struct pcn_port_stats {
    __u64 rx_packets;
    __u64 rx_bytes;
    __u64 tx_packets;
    __u64 tx_bytes;
};

/* Datapath log levels, lowest first; a cube at level L keeps the pcn_log statements of level >= L. */
enum pcn_log_level {
    PCN_LOG_TRACE = 0,
    PCN_LOG_DEBUG = 1,
    PCN_LOG_INFO = 2,
    PCN_LOG_WARN = 3,
    PCN_LOG_ERR = 4,
    PCN_LOG_CRITICAL = 5,
    PCN_LOG_OFF = 6,
};

#define PCN_LOG_MAX_ARGS 4

/* One record in the ring `pcn_log_ring`. The format string is not in it: `format` is the id of
 * the pcn_log call site in the program's section .rodata.pcn_log, which pcn-core reads at load time
 * and hands to pcn-logd keyed by `source`. */
struct pcn_log_record {
    __u32 cube_id;
    __u32 source;
    __u16 format;
    __u8 level;
    __u8 arg_count;
    __u32 reserved;
    __u64 args[PCN_LOG_MAX_ARGS];
};

#endif

/* router's tables, shared with its control plane. Addresses are IPv4 in network order. */
#ifndef ROUTER_H
#define ROUTER_H
#include <linux/types.h>

#define ROUTER_MAX_SECONDARY 5
#define ROUTER_ROUTES_MAX 16384
#define ROUTER_ARP_MAX 4096

/* Table `router_ports`, indexed by port index; a port with ip 0 is not configured (its packets are dropped). */
struct router_port {
    __be32 ip;
    __be32 netmask;
    __be32 secondary_ip[ROUTER_MAX_SECONDARY];
    __be32 secondary_netmask[ROUTER_MAX_SECONDARY];
    __u8 mac[6];
    __u8 secondary_count;
    __u8 reserved;
};

/* Table `router_local`: each of the router's own addresses -> the port holding it. */
struct router_local_address {
    __u32 port;
};

/* Table `router_routes` (LPM trie): the best route per prefix. */
struct router_route_key {
    __u32 prefixlen;
    __be32 network;
};
struct router_route {
    __be32 nexthop;   /* 0: the destination is on the port's link */
    __u32 port;
};

/* Table `router_arp`: neighbour address -> where it is. */
struct router_arp_entry {
    __u8 mac[6];
    __u16 port;
    __u32 flags;      /* ROUTER_ARP_STATIC: configured; learning does not replace it */
    __u64 confirmed;  /* bpf_ktime_get_ns() when the neighbour was last heard from (ARP); the control
                         plane probes and then forgets an entry not confirmed for arp-reachable-time */
};
#define ROUTER_ARP_STATIC 1

/* Slow-path reasons. md[0] and md[1] carry the reason's data. */
enum router_reason {
    ROUTER_REASON_ARP_MISS = 1,      /* md[0] next hop, md[1] output port: hold the packet, ask with ARP */
    ROUTER_REASON_ARP_REPLY = 2,     /* md[0] the address now known: release what waits for it */
    ROUTER_REASON_TTL_EXCEEDED = 3,  /* answer ICMP time exceeded */
};

/* Why the router drops a packet (counted per cube under the names router.c gives them). */
enum router_drop_reason {
    ROUTER_DROP_MALFORMED = 0,          /* no Ethernet header */
    ROUTER_DROP_PORT_UNCONFIGURED = 1,  /* arrived on a port without an address */
    ROUTER_DROP_NOT_FOR_US = 2,         /* neither IPv4 to our MAC nor ARP for our address on that port */
    ROUTER_DROP_ARP_OPERATION = 3,      /* ARP other than request or reply */
    ROUTER_DROP_LOCAL_NOT_ECHO = 4,     /* to one of our addresses, but not an ICMP echo request */
    ROUTER_DROP_NO_ROUTE = 5,           /* no route to the destination */
};
#endif

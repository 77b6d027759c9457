/* lbrp's tables, shared with its control plane. Addresses and ports are in network order.
 *
 * A service {vip, vport, proto} owns a Maglev table of `size` slots (`lb_slots`, keyed by the
 * service's index and the slot), each naming a backend; a new flow takes the slot its 5-tuple hashes
 * to, and a session (two entries of `lb_sessions`, one per direction) keeps it on that backend
 * whatever the backend set becomes later. Services only touch their own slots: adding a backend
 * rewrites one service's table. */
#ifndef LBRP_H
#define LBRP_H
#include <linux/types.h>

#define LB_SERVICES 65536          /* entries of lb_services (a service of proto ALL is three) */
#define LB_SLOTS (1 << 21)         /* Maglev slots of all services together */
#define LB_BACKENDS 65536          /* backend counters */
#define LB_SESSIONS 262144         /* entries: two per flow */
#define LB_FRONTENDS 4096          /* MULTI: client addresses behind FRONTEND ports */

enum lb_port_type {
    LB_PORT_NONE = 0,
    LB_PORT_FRONTEND = 1,
    LB_PORT_BACKEND = 2,
};

enum lb_mode {
    LB_SINGLE = 0,
    LB_MULTI = 1,
};

/* Table `lb_config` (array, 1). */
struct lb_config {
    __u32 mode;                    /* enum lb_mode */
    __u32 frontend_port;           /* SINGLE: the FRONTEND port's index */
    __u32 backend_port;            /* the BACKEND port's index */
    __be32 rewrite_from;           /* src-ip-rewrite: clients in from/mask get to/mask, host bits kept */
    __be32 rewrite_mask;           /* 0: no rewrite */
    __be32 rewrite_to;
};

/* Table `lb_ports` (array, PCN_MAX_PORTS): by port index, enum lb_port_type. */

/* Table `lb_services` (hash). ICMP echo is looked up with vport 0. */
struct lb_service_key {
    __be32 vip;
    __be16 vport;
    __u8 proto;
    __u8 reserved;
};

struct lb_service {
    __u32 index;                   /* the service's slots in lb_slots */
    __u32 size;                    /* slots; 0: no backend */
    __u32 generation;              /* which of the service's two slot sets is in use */
    __u32 counter;                 /* lb_service_drops slot: packets dropped for want of a backend */
};

/* Table `lb_slots` (hash): {index * 2 + generation, slot} -> the backend. */
struct lb_slot_key {
    __u32 table;
    __u32 slot;
};

struct lb_backend {
    __be32 ip;
    __be16 port;                   /* ICMP: ignored */
    __u16 reserved;
    __u32 id;                      /* its counters in lb_backend_counters */
};

/* Table `lb_sessions` (LRU hash), by the packet as it arrives: from a FRONTEND port (direction 0,
 * the client's tuple) or from the BACKEND port (direction 1, the backend's answer). */
struct lb_session_key {
    __be32 src;
    __be32 dst;
    __be16 sport;                  /* ICMP echo: the identifier, in both */
    __be16 dport;
    __u8 proto;
    __u8 direction;
    __u16 reserved;
};

struct lb_session {
    __be32 src;                    /* what the packet becomes */
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u32 backend;                 /* the backend's id */
    __u64 last_seen;
};

/* Table `lb_backend_counters` (per-CPU array, LB_BACKENDS) by backend id; `lb_service_drops`
 * (per-CPU array, LB_BACKENDS) by service counter slot. */
struct lb_counter {
    __u64 packets;
    __u64 bytes;
};

/* Table `lb_frontends` (hash, LB_FRONTENDS): MULTI, a client address -> its FRONTEND port. */

#define LB_TIMEOUT_TCP 7440
#define LB_TIMEOUT_UDP 300
#define LB_TIMEOUT_ICMP 60

enum lb_drop_reason {
    LB_DROP_NO_BACKEND = 0,        /* a service without backends */
    LB_DROP_NO_FRONTEND = 1,       /* MULTI: no FRONTEND port for the destination */
    LB_DROP_REWRITE = 2,
    LB_DROP_PORT = 3,              /* a port without a type */
};
#endif

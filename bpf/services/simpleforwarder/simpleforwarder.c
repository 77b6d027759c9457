/* simpleforwarder: what to do with a packet depends on its input port only. */
#include <pcn/cube.h>
#include "simpleforwarder.h"

PCN_TABLE(BPF_MAP_TYPE_HASH, __u16, struct simpleforwarder_entry, simpleforwarder_actions, PCN_MAX_PORTS);

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u16 in_port = md->in_port;
    struct simpleforwarder_entry *entry = bpf_map_lookup_elem(&simpleforwarder_actions, &in_port);
    if (!entry)
        return RX_DROP;
    switch (entry->action) {
    case SIMPLEFORWARDER_SLOWPATH:
        return pcn_pkt_controller(ctx, md, 0);
    case SIMPLEFORWARDER_FORWARD:
        return pcn_pkt_redirect(ctx, md, entry->out_port);
    default:
        return RX_DROP;
    }
}

/* simpleforwarder: what to do with a packet depends on its input port only. */
#include <pcn/cube.h>
#include "simpleforwarder.h"

PCN_TABLE(BPF_MAP_TYPE_HASH, __u16, struct simpleforwarder_entry, simpleforwarder_actions, PCN_MAX_PORTS);

PCN_DROP_REASON(SIMPLEFORWARDER_DROP_NO_ACTION, "no-action");
PCN_DROP_REASON(SIMPLEFORWARDER_DROP_ACTION, "action-drop");
PCN_DROP_REASON(SIMPLEFORWARDER_DROP_NO_OUTPORT, "no-outport");

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u16 in_port = md->in_port;
    struct simpleforwarder_entry *entry = bpf_map_lookup_elem(&simpleforwarder_actions, &in_port);
    if (!entry)
        return pcn_pkt_drop_reason(ctx, md, SIMPLEFORWARDER_DROP_NO_ACTION);
    switch (entry->action) {
    case SIMPLEFORWARDER_SLOWPATH:
        return pcn_pkt_controller(ctx, md, 0);
    case SIMPLEFORWARDER_FORWARD:
        /* FORWARD is accepted before its outport is set (as in Polycube): drop until then. */
        if (entry->out_port == PCN_NO_PORT)
            return pcn_pkt_drop_reason(ctx, md, SIMPLEFORWARDER_DROP_NO_OUTPORT);
        return pcn_pkt_redirect(ctx, md, entry->out_port);
    default:
        return pcn_pkt_drop_reason(ctx, md, SIMPLEFORWARDER_DROP_ACTION);
    }
}

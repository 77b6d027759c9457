/* transparenthelloworld: one action per direction (PASS, DROP, SLOWPATH); the slow path sends the
 * packet on in its direction. */
#include <pcn/cube.h>
#include "transparenthelloworld.h"

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct transparenthelloworld_entry, transparenthelloworld_actions, 2);

PCN_DROP_REASON(TRANSPARENTHELLOWORLD_DROP_ACTION, "action-drop");

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u32 direction = md->in_port;
    struct transparenthelloworld_entry *entry = bpf_map_lookup_elem(&transparenthelloworld_actions, &direction);
    if (!entry)
        return RX_OK;
    /* Polycube's transparenthelloworld logs every packet at DEBUG, with its direction; below the
     * cube's level these compile out. */
    switch (entry->action) {
    case TRANSPARENTHELLOWORLD_DROP:
        if (direction == 0)
            pcn_log(ctx, LOG_DEBUG, "[INGRESS] dropping packet");
        else
            pcn_log(ctx, LOG_DEBUG, "[EGRESS] dropping packet");
        return pcn_pkt_drop_reason(ctx, md, TRANSPARENTHELLOWORLD_DROP_ACTION);
    case TRANSPARENTHELLOWORLD_SLOWPATH:
        if (direction == 0)
            pcn_log(ctx, LOG_DEBUG, "[INGRESS] sending packet to the slow path");
        else
            pcn_log(ctx, LOG_DEBUG, "[EGRESS] sending packet to the slow path");
        return pcn_pkt_controller(ctx, md, 0);
    default:
        if (direction == 0)
            pcn_log(ctx, LOG_DEBUG, "[INGRESS] passing packet");
        else
            pcn_log(ctx, LOG_DEBUG, "[EGRESS] passing packet");
        return RX_OK;
    }
}

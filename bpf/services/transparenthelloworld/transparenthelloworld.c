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
    switch (entry->action) {
    case TRANSPARENTHELLOWORLD_DROP:
        return pcn_pkt_drop_reason(ctx, md, TRANSPARENTHELLOWORLD_DROP_ACTION);
    case TRANSPARENTHELLOWORLD_SLOWPATH:
        return pcn_pkt_controller(ctx, md, 0);
    default:
        return RX_OK;
    }
}

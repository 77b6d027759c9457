/* helloworld: two ports and one action for every packet (DROP, SLOWPATH or FORWARD to the other port). */
#include <pcn/cube.h>
#include "helloworld.h"

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct helloworld_config, helloworld_config, 1);

PCN_DROP_REASON(HELLOWORLD_DROP_ACTION, "action-drop");
PCN_DROP_REASON(HELLOWORLD_DROP_OTHER_PORT, "not-a-forwarded-port");

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u32 zero = 0;
    struct helloworld_config *config = bpf_map_lookup_elem(&helloworld_config, &zero);
    if (!config)
        return RX_DROP;
    /* Polycube's helloworld logs every packet at DEBUG; below the cube's level these compile out. */
    pcn_log(ctx, LOG_DEBUG, "Receiving packet from port %u", md->in_port);
    switch (config->action) {
    case HELLOWORLD_SLOWPATH:
        pcn_log(ctx, LOG_DEBUG, "Sending packet to the slow path");
        return pcn_pkt_controller(ctx, md, 0);
    case HELLOWORLD_FORWARD:
        if (md->in_port == config->ports[0]) {
            pcn_log(ctx, LOG_DEBUG, "Forwarding packet to port %u", config->ports[1]);
            return pcn_pkt_redirect(ctx, md, config->ports[1]);
        }
        if (md->in_port == config->ports[1]) {
            pcn_log(ctx, LOG_DEBUG, "Forwarding packet to port %u", config->ports[0]);
            return pcn_pkt_redirect(ctx, md, config->ports[0]);
        }
        return pcn_pkt_drop_reason(ctx, md, HELLOWORLD_DROP_OTHER_PORT);
    default:
        pcn_log(ctx, LOG_DEBUG, "Dropping packet");
        return pcn_pkt_drop_reason(ctx, md, HELLOWORLD_DROP_ACTION);
    }
}

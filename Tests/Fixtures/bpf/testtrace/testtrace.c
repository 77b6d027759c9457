/* A transparent cube for the framework's own tests: it appends its cube id to the trace in md[1]
 * (10 bits per cube) and reports the trace to the slow path (reason = direction), then lets the
 * packet through. The trace a packet carries shows the order of the cubes it crossed. */
#include <pcn/cube.h>

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    md->md[1] = (md->md[1] << 10) | (pcn_config.cube_id & 0x3ff);
    __u32 trace[3] = {md->md[0], md->md[1], md->md[2]};
    pcn_pkt_controller_with_metadata(ctx, md, md->in_port, trace);
    return RX_OK;
}

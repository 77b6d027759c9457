/* A two-port wire for the framework's own tests: what enters port 0 leaves port 1 and back;
 * md[0] counts the cubes a packet crossed (it travels with the packet). */
#include <pcn/cube.h>

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    md->md[0] += 1;
    return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
}

/* dynmon without code for a direction: every packet goes on. The control plane loads the user's code
 * instead (dynmon.h included, the ingress code for the ingress build and the egress code for the
 * egress build). */
#include <pcn/cube.h>
#include "dynmon.h"

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    return RX_OK;
}

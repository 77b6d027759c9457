/* The work of the kernel's xdp_redirect sample, as a cube: swap the MAC addresses and send the
 * frame out of the other port. */
#include <pcn/cube.h>

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    unsigned char *data = pcn_data(ctx);
    if (data + 12 > (unsigned char *)pcn_data_end(ctx))
        return pcn_pkt_drop(ctx, md);
    unsigned char mac[6];
    __builtin_memcpy(mac, data, 6);
    __builtin_memcpy(data, data + 6, 6);
    __builtin_memcpy(data + 6, mac, 6);
    return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
}

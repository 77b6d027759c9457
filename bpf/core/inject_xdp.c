/* Packet-out into the XDP panel: the XDP (generic) hook of the injection veth's receiving end takes
 * the frames whose trailer says PCN_OUT_TO_CUBE_XDP or PCN_OUT_TO_NETDEV_XDP; everything else goes
 * on to inject_tc.c. */
#define PCN_XDP 1
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <pcn/shared.h>
#include <pcn/maps.h>

SEC("xdp")
int pcn_inject_xdp(struct xdp_md *ctx) {
    struct pcn_packet_out_trailer trailer;
    __u32 len = ctx->data_end - ctx->data;
    if (len < sizeof(trailer) + 14 || len > 0xffff)
        return XDP_PASS;
    if (bpf_xdp_load_bytes(ctx, len - sizeof(trailer), &trailer, sizeof(trailer)) < 0)
        return XDP_PASS;
    if (trailer.magic != PCN_PACKET_OUT_MAGIC || (trailer.kind != PCN_OUT_TO_CUBE_XDP && trailer.kind != PCN_OUT_TO_NETDEV_XDP))
        return XDP_PASS;
    if (bpf_xdp_adjust_tail(ctx, -(int)sizeof(trailer)) < 0)
        return XDP_DROP;
    if (trailer.kind == PCN_OUT_TO_NETDEV_XDP)
        return bpf_redirect(trailer.target, 0);
    __u32 zero = 0;
    struct pkt_metadata *md = bpf_map_lookup_elem(&pcn_xdp_md, &zero);
    if (!md)
        return XDP_DROP;
    __builtin_memset(md, 0, sizeof(*md));
    md->in_port = trailer.port;
    md->md[0] = trailer.md[0];
    md->md[1] = trailer.md[1];
    md->md[2] = trailer.md[2];
    bpf_tail_call(ctx, &pcn_nodes_xdp, trailer.target);
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

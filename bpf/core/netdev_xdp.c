/* Entry from a netdev into the XDP patch panel: the packet's metadata starts in this CPU's slot,
 * arriving on a port, and we jump. Both are load-time constants. */
#define PCN_XDP 1
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <pcn/shared.h>
#include <pcn/maps.h>
#include <pcn/stack_pass.h>

const volatile struct pcn_netdev_config pcn_netdev SEC(".rodata.pcn") = {};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} pcn_netdev_missed SEC(".maps");

/* True once for a frame a packet-out sent up this netdev's stack (see stack_pass.h). */
static __always_inline int pcn_is_reinjected(struct xdp_md *ctx) {
    __u32 zero = 0;
    __s64 *pending = bpf_map_lookup_elem(&pcn_stack_pass_pending, &zero);
    if (!pending || *pending <= 0)
        return 0;
    struct pcn_stack_pass_key key = {.ifindex = ctx->ingress_ifindex, .len = bpf_xdp_get_buff_len(ctx)};
    if (key.len < PCN_STACK_PASS_HEAD || bpf_xdp_load_bytes(ctx, 0, key.head, PCN_STACK_PASS_HEAD) < 0)
        return 0;
    if (!bpf_map_lookup_elem(&pcn_stack_pass, &key))
        return 0;
    if (bpf_map_delete_elem(&pcn_stack_pass, &key) == 0)
        pcn_stack_pass_count(-1);
    return 1;
}

SEC("xdp")
int pcn_netdev_entry(struct xdp_md *ctx) {
    if (pcn_is_reinjected(ctx))
        return XDP_PASS;
    __u32 zero = 0;
    struct pkt_metadata *md = bpf_map_lookup_elem(&pcn_xdp_md, &zero);
    if (!md)
        return XDP_ABORTED;
    __builtin_memset(md, 0, sizeof(*md));
    md->in_port = pcn_netdev.target_port;
    bpf_tail_call(ctx, &pcn_nodes_xdp, pcn_netdev.target_node);
    __u64 *missed = bpf_map_lookup_elem(&pcn_netdev_missed, &zero);
    if (missed)
        (*missed)++;
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

/* Entry from a netdev into the XDP patch panel: the packet's metadata starts in this CPU's slot,
 * arriving on a port, and we jump. Both are load-time constants. */
#define PCN_XDP 1
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <pcn/shared.h>
#include <pcn/maps.h>

const volatile struct pcn_netdev_config pcn_netdev SEC(".rodata.pcn") = {};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} pcn_netdev_missed SEC(".maps");

SEC("xdp")
int pcn_netdev_entry(struct xdp_md *ctx) {
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

/* Entry from a netdev into the patch panel, at its TC ingress (towards the cubes) or TC egress
 * (the netdev's egress chain: its cube's egress program, its transparent cubes): mark the packet as
 * arriving on a port and jump. Both are load-time constants. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
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

SEC("tc")
int pcn_netdev_entry(struct __sk_buff *skb) {
    /* A packet-out that was already through this netdev's chain. */
    if (skb->mark == PCN_MARK_PASS) {
        skb->mark = 0;
        return TC_ACT_OK;
    }
    skb->cb[0] = pcn_netdev.target_port;
    skb->cb[1] = 0;
    skb->cb[2] = 0;
    skb->cb[3] = 0;
    skb->cb[4] = 0;
    bpf_tail_call(skb, &pcn_nodes_tc, pcn_netdev.target_node);
    __u32 zero = 0;
    __u64 *missed = bpf_map_lookup_elem(&pcn_netdev_missed, &zero);
    if (missed)
        (*missed)++;
    return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";

/* Packet-out: frames pcn-core writes on its injection veth arrive here (TC ingress of the other end)
 * with a struct pcn_packet_out_trailer at their end. Each frame carries its own destination and
 * metadata, so nothing can desynchronise. Anything without the trailer is dropped. Frames for the
 * XDP panel were taken by inject_xdp.c before they reach this hook. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <pcn/shared.h>
#include <pcn/maps.h>
#include <pcn/stack_pass.h>

SEC("tc")
int pcn_inject(struct __sk_buff *skb) {
    struct pcn_packet_out_trailer trailer;
    __u32 len = skb->len;
    if (len < sizeof(trailer) + 14)
        return TC_ACT_SHOT;
    if (bpf_skb_load_bytes(skb, len - sizeof(trailer), &trailer, sizeof(trailer)) < 0)
        return TC_ACT_SHOT;
    if (trailer.magic != PCN_PACKET_OUT_MAGIC)
        return TC_ACT_SHOT;
    if (bpf_skb_change_tail(skb, len - sizeof(trailer), 0) < 0)
        return TC_ACT_SHOT;
    switch (trailer.kind) {
    case PCN_OUT_TO_NETDEV:
        return bpf_redirect(trailer.target, 0);
    case PCN_OUT_TO_STACK: {
        skb->mark = PCN_MARK_PASS;
        struct pcn_stack_pass_key key = {.ifindex = trailer.target, .len = skb->len};
        if (skb->len >= PCN_STACK_PASS_HEAD && bpf_skb_load_bytes(skb, 0, key.head, PCN_STACK_PASS_HEAD) == 0) {
            __u32 one = 1;
            if (bpf_map_update_elem(&pcn_stack_pass, &key, &one, BPF_NOEXIST) == 0)
                pcn_stack_pass_count(1);
        }
        return bpf_redirect(trailer.target, BPF_F_INGRESS);
    }
    case PCN_OUT_TO_WIRE:
        skb->mark = PCN_MARK_PASS;
        return bpf_redirect(trailer.target, 0);
    case PCN_OUT_TO_CUBE:
        skb->cb[0] = trailer.port;
        skb->cb[1] = 0;
        skb->cb[2] = trailer.md[0];
        skb->cb[3] = trailer.md[1];
        skb->cb[4] = trailer.md[2];
        bpf_tail_call(skb, &pcn_nodes_tc, trailer.target);
        return TC_ACT_SHOT;
    default:
        return TC_ACT_SHOT;
    }
}

char LICENSE[] SEC("license") = "GPL";

/* The baseline, written without the framework: what the kernel's xdp_redirect sample does (swap
 * MACs, redirect to an ifindex), as a TC program. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 out_ifindex SEC(".rodata.pcn") = 0;

SEC("tc")
int vanilla_tc(struct __sk_buff *skb) {
    unsigned char *data = (void *)(long)skb->data;
    if (data + 12 > (unsigned char *)(long)skb->data_end)
        return TC_ACT_SHOT;
    unsigned char mac[6];
    __builtin_memcpy(mac, data, 6);
    __builtin_memcpy(data, data + 6, 6);
    __builtin_memcpy(data + 6, mac, 6);
    return bpf_redirect(out_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";

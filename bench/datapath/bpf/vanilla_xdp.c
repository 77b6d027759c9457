/* The XDP baseline, written without the framework: the kernel's xdp_redirect sample (swap MACs,
 * redirect to an ifindex). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 out_ifindex SEC(".rodata.pcn") = 0;

SEC("xdp")
int vanilla_xdp(struct xdp_md *ctx) {
    unsigned char *data = (void *)(long)ctx->data;
    if (data + 12 > (unsigned char *)(long)ctx->data_end)
        return XDP_DROP;
    unsigned char mac[6];
    __builtin_memcpy(mac, data, 6);
    __builtin_memcpy(data, data + 6, 6);
    __builtin_memcpy(data + 6, mac, 6);
    return bpf_redirect(out_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";

/* The two transports a datapath log could use, each sending one 48-byte record per run: a BPF ring
 * buffer (what pcn_log uses) and a perf event array (what upstream Polycube used). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <pcn/shared.h>

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} bench_ring SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} bench_perf SEC(".maps");

SEC("tc")
int to_ringbuf(struct __sk_buff *skb) {
    struct pcn_log_record *record = bpf_ringbuf_reserve(&bench_ring, sizeof(*record), 0);
    if (!record)
        return TC_ACT_SHOT;
    __builtin_memset(record, 0, sizeof(*record));
    record->args[0] = skb->len;
    bpf_ringbuf_submit(record, 0);
    return TC_ACT_OK;
}

SEC("tc")
int to_perf(struct __sk_buff *skb) {
    struct pcn_log_record record = {};
    record.args[0] = skb->len;
    if (bpf_perf_event_output(skb, &bench_perf, BPF_F_CURRENT_CPU, &record, sizeof(record)) < 0)
        return TC_ACT_SHOT;
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";

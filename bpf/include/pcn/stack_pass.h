/* Frames a packet-out sends up a netdev's stack (PCN_OUT_TO_STACK) must not cross the netdev's
 * chain again. TC entries see PCN_MARK_PASS in skb->mark; a generic-XDP entry cannot read the
 * mark and runs again on the redirected skb, so the injector also notes each such frame here, and
 * the XDP entry lets the first frame matching a note pass (and removes the note). A frame is known
 * by its netdev, length and first bytes (Ethernet + IPv4 headers: the IP id tells packets apart). */
#ifndef PCN_STACK_PASS_H
#define PCN_STACK_PASS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define PCN_STACK_PASS_HEAD 40

struct pcn_stack_pass_key {
    __u32 ifindex;
    __u32 len;
    __u8 head[PCN_STACK_PASS_HEAD];
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, struct pcn_stack_pass_key);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_stack_pass SEC(".maps");

/* Notes not yet taken (index 0): the XDP entry looks the frame up only when there are some, so
 * ordinary traffic pays one array read. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __s64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_stack_pass_pending SEC(".maps");

static __always_inline void pcn_stack_pass_count(__s64 delta) {
    __u32 zero = 0;
    __s64 *pending = bpf_map_lookup_elem(&pcn_stack_pass_pending, &zero);
    if (pending)
        __sync_fetch_and_add(pending, delta);
}

#endif

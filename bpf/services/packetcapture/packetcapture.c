/* packetcapture: copies the packets its filter matches, in the directions asked for, into a ring its
 * control plane drains into pcap; the packet always goes on (capture never changes a verdict).
 *
 * The filter is a function the control plane generates from libpcap's classic BPF and loads as this
 * cube's code (defining PACKETCAPTURE_FILTER before including this file); without one nothing matches. */
#include <pcn/cube.h>
#include "packetcapture.h"

PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, struct packetcapture_config, packetcapture_config, 1);
PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, packetcapture_lost, 1);

/* 16 MiB: bursts of ~100,000 small packets wait here while the control plane catches up. */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 24);
} packetcapture_ring SEC(".maps");

#ifndef PACKETCAPTURE_FILTER
static __always_inline __u32 packetcapture_filter(struct CTXTYPE *ctx) { return 0; }
#endif

static __always_inline void packetcapture_count_lost(void) {
    __u32 zero = 0;
    __u64 *lost = bpf_map_lookup_elem(&packetcapture_lost, &zero);
    if (lost)
        (*lost)++;
}

/* A ring reservation must have a constant size: records come in size classes, so a 64-byte packet
 * does not take 64 KiB of ring. */
#define PACKETCAPTURE_COPY(class_) \
    if (keep <= class_) { \
        struct { struct packetcapture_record header; __u8 data[class_]; } *record = \
            bpf_ringbuf_reserve(&packetcapture_ring, sizeof(*record), 0); \
        if (!record) { \
            packetcapture_count_lost(); \
            return; \
        } \
        record->header.timestamp_ns = now; \
        record->header.packet_len = len; \
        record->header.captured_len = keep; \
        record->header.direction = direction; \
        record->header.reserved = 0; \
        if (pcn_load_bytes(ctx, 0, record->data, keep) < 0) { \
            bpf_ringbuf_discard(record, 0); \
            packetcapture_count_lost(); \
            return; \
        } \
        bpf_ringbuf_submit(record, 0); \
        return; \
    }

static __always_inline void packetcapture_copy(struct CTXTYPE *ctx, __u32 direction, __u32 keep) {
    __u64 now = bpf_ktime_get_ns();
    __u32 len = pcn_frame_len(ctx);
    if (keep > len)
        keep = len;
    if (keep < 1)
        return;
    PACKETCAPTURE_COPY(128)
    PACKETCAPTURE_COPY(512)
    PACKETCAPTURE_COPY(1536)
    PACKETCAPTURE_COPY(9216)
    PACKETCAPTURE_COPY(PACKETCAPTURE_MAX_BYTES)
}

static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
    __u32 zero = 0;
    struct packetcapture_config *config = bpf_map_lookup_elem(&packetcapture_config, &zero);
    if (!config || !(md->in_port == 0 ? config->ingress : config->egress))
        return RX_OK;
    __u32 keep = packetcapture_filter(ctx);
    if (keep) {
        if (keep > config->snaplen)
            keep = config->snaplen;
        packetcapture_copy(ctx, md->in_port, keep);
    }
    return RX_OK;
}

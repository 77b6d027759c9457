/* packetcapture's records and tables, shared with its control plane. */
#ifndef PACKETCAPTURE_H
#define PACKETCAPTURE_H
#include <linux/types.h>

/* Table `packetcapture_config` (one entry): which directions are captured and how much of each
 * packet is kept. Changing it needs no new program; the filter is compiled into the program. */
struct packetcapture_config {
    __u32 ingress;   /* 1: capture what enters through the attachment point */
    __u32 egress;    /* 1: capture what leaves */
    __u32 snaplen;   /* bytes kept of each packet (the record holds at most PACKETCAPTURE_MAX_BYTES) */
    __u32 reserved;
};

/* The most bytes one record holds: a TC skb on a veth can be a 64 KiB GSO packet. */
#define PACKETCAPTURE_MAX_BYTES 65535

/* One record in the ring `packetcapture_ring`: this header, then `captured_len` bytes, padded. */
struct packetcapture_record {
    __u64 timestamp_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u32 packet_len;    /* the packet's length */
    __u32 captured_len;  /* bytes that follow */
    __u32 direction;     /* 0 ingress, 1 egress */
    __u32 reserved;
};

/* Table `packetcapture_lost` (per CPU, one entry): packets the filter matched that found the ring full. */
#endif

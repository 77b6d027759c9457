/* The maps every program of the framework shares, pinned by name under the bpffs root. */
#ifndef PCN_MAPS_H
#define PCN_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared.h"

/* The patch panels: slot i holds program node i. A prog array takes one program type, so TC and
 * XDP have one each; an object declares only the one of its hook (PCN_XDP). */
#ifdef PCN_XDP
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_NODES);
    __type(key, __u32);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_nodes_xdp SEC(".maps");
#define PCN_NODES pcn_nodes_xdp

/* XDP has no skb->cb: the metadata of the packet being processed on this CPU lives here while it
 * crosses the chain (one packet at a time per CPU: the chain runs to completion in one softirq). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct pkt_metadata);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_xdp_md SEC(".maps");
#else
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_NODES);
    __type(key, __u32);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_nodes_tc SEC(".maps");
#define PCN_NODES pcn_nodes_tc
#endif

/* Packets for the slow path, drained by pcn-core (struct pcn_packet_in records). */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_packet_in SEC(".maps");

/* Datapath log records (struct pcn_log_record), drained by pcn-logd. */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_log_ring SEC(".maps");

/* Log records lost because the ring was full (per-CPU, index 0). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_log_lost SEC(".maps");

#endif

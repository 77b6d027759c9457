/* The maps every program of the framework shares, pinned by name under the bpffs root. */
#ifndef PCN_MAPS_H
#define PCN_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared.h"

/* The patch panel for TC: slot i holds the entry program of cube node i. */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, PCN_MAX_NODES);
    __type(key, __u32);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_nodes_tc SEC(".maps");

/* Packets for the slow path, drained by pcn-core (struct pcn_packet_in records). */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} pcn_packet_in SEC(".maps");

#endif

/* A flow's hash from its 5-tuple: the same for every packet of the flow, spread evenly (a 64-bit
 * finalizer), for picking among backends. */
#ifndef PCN_FLOW_HASH_H
#define PCN_FLOW_HASH_H

#include <linux/types.h>

static __always_inline __u32 pcn_flow_hash(__be32 src, __be32 dst, __be16 sport, __be16 dport, __u8 proto) {
    __u64 h = ((__u64)src << 32 | dst) ^ ((__u64)sport << 48 | (__u64)dport << 32 | proto);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (__u32)h;
}

#endif

/* dynmon: what the user's code can use besides <pcn/cube.h>: BCC-style map declarations (the names
 * Polycube's dynmon users write), as maps of the cube. */
#ifndef DYNMON_H
#define DYNMON_H
#ifdef __BPF__
#include <pcn/tables.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;

#define BPF_ARRAY(name, value, entries) PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, value, name, entries)
#define BPF_PERCPU_ARRAY(name, value, entries) PCN_TABLE(BPF_MAP_TYPE_PERCPU_ARRAY, __u32, value, name, entries)
#define BPF_HASH(name, key, value, entries) PCN_TABLE(BPF_MAP_TYPE_HASH, key, value, name, entries)
#define BPF_PERCPU_HASH(name, key, value, entries) PCN_TABLE(BPF_MAP_TYPE_PERCPU_HASH, key, value, name, entries)
#define BPF_LRU_HASH(name, key, value, entries) PCN_TABLE(BPF_MAP_TYPE_LRU_HASH, key, value, name, entries)
#define BPF_LRU_PERCPU_HASH(name, key, value, entries) PCN_TABLE(BPF_MAP_TYPE_LRU_PERCPU_HASH, key, value, name, entries)
/* Queues and stacks have no key. */
#define BPF_QUEUESTACK(type_, name_, value_, entries_) \
    struct { \
        __uint(type, type_); \
        __uint(max_entries, entries_); \
        __type(value, value_); \
    } name_ SEC(".maps")
/* swap-on-read: dynmon declares a map it reads that way twice (name__0, name__1) with a selector
 * (name__select) and, after the declaration, makes `name` the copy the selector names. The control
 * plane flips the selector, lets the packets in flight finish, and reads and empties the idle copy:
 * a snapshot of one instant while counting goes on in the other. */
#define DYNMON_SWAP(kind_, name_, ...) \
    kind_(name_##__0, __VA_ARGS__); \
    kind_(name_##__1, __VA_ARGS__); \
    PCN_TABLE(BPF_MAP_TYPE_ARRAY, __u32, __u32, name_##__select, 1)

static __always_inline __u32 dynmon_selected(void *selector) {
    __u32 zero = 0;
    __u32 *which = bpf_map_lookup_elem(selector, &zero);
    return which ? *which : 0;
}

#define BPF_QUEUE(name, value, entries) BPF_QUEUESTACK(BPF_MAP_TYPE_QUEUE, name, value, entries)
#define BPF_STACK(name, value, entries) BPF_QUEUESTACK(BPF_MAP_TYPE_STACK, name, value, entries)
#endif
#endif

/* pcn_log(ctx, level, "format", args...): up to four integer arguments. The format string stays in
 * the object (section .rodata.pcn_log, one entry "<id>:<format>" per call site); a record carries only
 * the call site's id and the arguments. The cube's level is a load-time constant, so the verifier
 * removes every statement below it: a disabled pcn_log costs nothing.
 *
 * Conversions, formatted by pcn-logd: printf's %d %i %u %x %X %o %c %s-less subset with widths and
 * %%, plus %I (an IPv4 address as in the IP header, a __be32), %M (a MAC address: pcn_mac(ptr) of
 * its six bytes), %P (a TCP/UDP port as in the header, a __be16). */
#ifndef PCN_LOG_H
#define PCN_LOG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared.h"
#include "maps.h"

#define LOG_TRACE PCN_LOG_TRACE
#define LOG_DEBUG PCN_LOG_DEBUG
#define LOG_INFO PCN_LOG_INFO
#define LOG_WARN PCN_LOG_WARN
#define LOG_ERR PCN_LOG_ERR
#define LOG_CRITICAL PCN_LOG_CRITICAL

/* A MAC address as one %M argument: its six bytes in wire order in the low bytes of a __u64. */
static __always_inline __u64 pcn_mac(const unsigned char *mac) {
    __u64 value = 0;
    __builtin_memcpy(&value, mac, 6);
    return value;
}

static __always_inline void pcn_log_emit(__u32 cube_id, __u32 source, __u16 format, __u8 level, const __u64 *args, __u8 count) {
    struct pcn_log_record *record = bpf_ringbuf_reserve(&pcn_log_ring, sizeof(*record), 0);
    if (!record) {
        __u32 zero = 0;
        __u64 *lost = bpf_map_lookup_elem(&pcn_log_lost, &zero);
        if (lost)
            (*lost)++;
        return;
    }
    record->cube_id = cube_id;
    record->source = source;
    record->format = format;
    record->level = level;
    record->arg_count = count;
    record->reserved = 0;
#pragma unroll
    for (int i = 0; i < PCN_LOG_MAX_ARGS; i++)
        record->args[i] = i < count ? args[i] : 0;
    bpf_ringbuf_submit(record, 0);
}

#define PCN_LOG_STRING(x) #x
#define PCN_LOG_SITE(ctx, level, id, fmt, ...) \
    do { \
        static const char pcn_log_format_##id[] __attribute__((section(".rodata.pcn_log"), used)) = \
            PCN_LOG_STRING(id) ":" fmt; \
        if ((level) >= pcn_config.log_level) { \
            const __u64 pcn_log_args[] = {0, ##__VA_ARGS__}; \
            _Static_assert(sizeof(pcn_log_args) / sizeof(__u64) - 1 <= PCN_LOG_MAX_ARGS, \
                           "pcn_log takes at most four arguments"); \
            pcn_log_emit(pcn_config.cube_id, pcn_config.log_source, id, level, pcn_log_args + 1, \
                         sizeof(pcn_log_args) / sizeof(__u64) - 1); \
        } \
    } while (0)
#define PCN_LOG_EXPAND(ctx, level, id, fmt, ...) PCN_LOG_SITE(ctx, level, id, fmt, ##__VA_ARGS__)
#define pcn_log(ctx, level, fmt, ...) PCN_LOG_EXPAND(ctx, level, __COUNTER__, fmt, ##__VA_ARGS__)

#endif

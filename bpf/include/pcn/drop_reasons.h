/* A service's own drop reasons: declared once in its source, counted per cube under their names
 * (`pcn_cube_drops_total{reason="no-route"}`), like the framework's (no-peer, missed-tail-call, ...).
 *
 *   enum router_drop_reason { ROUTER_DROP_NO_ROUTE, ... };      // in the service's header
 *   PCN_DROP_REASON(ROUTER_DROP_NO_ROUTE, "no-route");           // in its .c, once per reason
 *   return pcn_pkt_drop_reason(ctx, md, ROUTER_DROP_NO_ROUTE);   // in handle_rx
 *
 * A plain RX_DROP is still counted as "service". */
#ifndef PCN_DROP_REASONS_H
#define PCN_DROP_REASONS_H

#include "shared.h"
#include "stats.h"

#define PCN_DROP_REASON(reason_, name_) \
    _Static_assert((reason_) >= 0 && (reason_) < PCN_SERVICE_DROP_REASONS, \
                   "a service has at most PCN_SERVICE_DROP_REASONS drop reasons, numbered from 0"); \
    _Static_assert(sizeof(name_) <= sizeof(((struct pcn_drop_name *)0)->name), "a drop reason's name has at most 27 characters"); \
    const struct pcn_drop_name pcn_drop_name_##reason_ SEC(".rodata.pcn_drops") = {(reason_), name_}

/* Drops the packet, counted under the service's reason (see PCN_DROP_REASON). */
static __always_inline int pcn_drop_service_reason(__u32 reason) {
    struct pcn_cube_stats *stats = pcn_stats_slot();
    if (stats && reason < PCN_SERVICE_DROP_REASONS)
        stats->drops[PCN_DROP_REASONS + reason]++;
    return PCN_RX_DROPPED_COUNTED;
}

#endif

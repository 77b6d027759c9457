/* The context-neutral accessor layer of the hook being built: XDP with -DPCN_XDP, else TC. Headers that
 * touch the packet or return an action include this, so each compiles on its own. */
#ifndef PCN_CONTEXT_H
#define PCN_CONTEXT_H

#ifdef PCN_XDP
#include "context_xdp.h"
#else
#include "context_tc.h"
#endif

#endif

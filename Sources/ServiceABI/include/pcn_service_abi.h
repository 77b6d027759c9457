/* Every service's tables and constants, as its datapath declares them (bpf/services/<svc>/<svc>.h),
 * imported into the services' control planes: one definition each. */
#include "../../../bpf/services/helloworld/helloworld.h"
#include "../../../bpf/services/transparenthelloworld/transparenthelloworld.h"
#include "../../../bpf/services/simpleforwarder/simpleforwarder.h"
#include "../../../bpf/services/simplebridge/simplebridge.h"
#include "../../../bpf/services/router/router.h"
#include "../../../bpf/services/ddosmitigator/ddosmitigator.h"

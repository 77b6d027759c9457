/* The datapath's shared structs (bpf/include/pcn/shared.h), imported into Swift: one definition. */
#include "../../../bpf/include/pcn/shared.h"

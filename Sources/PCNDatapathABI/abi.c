/* Header-only target: see include/pcn_datapath_abi.h. */

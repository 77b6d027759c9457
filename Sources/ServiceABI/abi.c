/* Nothing to compile: this target exports the services' datapath headers to Swift. */

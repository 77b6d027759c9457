#if canImport(Glibc)
import Glibc
#endif

/// The fast path's clock (`bpf_ktime_get_ns`: CLOCK_MONOTONIC), for comparing with the timestamps
/// its tables hold.
public enum DatapathClock {
    public static var nanoseconds: UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    public static var seconds: Double { Double(nanoseconds) / 1e9 }
}

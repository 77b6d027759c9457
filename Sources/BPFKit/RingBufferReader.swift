import CBPF
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Drains a BPF ring buffer on a thread of its own, handing each record's bytes to `handler` in order.
public final class RingBufferReader: @unchecked Sendable {
    private let handler: @Sendable (UnsafeRawBufferPointer) -> Void
    private var ring: OpaquePointer?
    private let map: BPFMap
    private var stopping = false
    private let lock = NSLock()
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    public init(map: BPFMap, handler: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) throws(BPFError) {
        self.map = map
        self.handler = handler
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard let ring = ring_buffer__new(map.fd, { context, data, size in
            guard let context, let data else { return 0 }
            let reader = Unmanaged<RingBufferReader>.fromOpaque(context).takeUnretainedValue()
            reader.handler(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }, context, nil) else {
            throw BPFError("open ring buffer '\(map.name)'", errno: Glibc.errno)
        }
        self.ring = ring
    }

    /// Starts draining; `afterBatch` runs on the reader's thread after each poll that handed over
    /// records (a writer flushes there, not per record).
    public func start(afterBatch: (@Sendable () -> Void)? = nil) {
        let thread = Thread { [self] in
            while !lock.withLock({ stopping }) {
                let result = ring_buffer__poll(ring, 100)
                if result < 0 && result != -EINTR { break }
                if result > 0 { afterBatch?() }
            }
            finished.signal()
        }
        thread.name = "ring-reader"
        self.thread = thread
        thread.start()
    }

    public func stop() {
        lock.withLock { stopping = true }
        if thread != nil {
            finished.wait()
            thread = nil
        }
    }

    deinit {
        stop()
        ring_buffer__free(ring)
    }
}

import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Watches the kernel's link notifications (rtnetlink) and reports each deleted netdev's ifindex.
public final class LinkMonitor: @unchecked Sendable {
    private let fd: Int32
    private let onDelete: @Sendable (Int32) -> Void
    private let lock = NSLock()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var started = false

    public init(onDelete: @escaping @Sendable (Int32) -> Void) throws {
        fd = pcn_link_monitor_open()
        guard fd >= 0 else { throw DatapathError("cannot watch netdevs (netlink): \(String(cString: strerror(errno)))") }
        self.onDelete = onDelete
    }

    public func start() {
        started = true
        let thread = Thread { [self] in
            var deleted = [Int32](repeating: 0, count: 64)
            var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !lock.withLock({ stopping }) {
                waiting.revents = 0
                guard poll(&waiting, 1, 200) > 0 else { continue }
                let count = pcn_link_monitor_read(fd, &deleted, Int32(deleted.count))
                for index in 0..<max(0, Int(count)) { onDelete(deleted[index]) }
            }
            finished.signal()
        }
        thread.name = "link-monitor"
        thread.start()
    }

    public func stop() {
        lock.withLock { stopping = true }
        if started {
            finished.wait()
            started = false
        }
    }

    deinit {
        stop()
        close(fd)
    }
}

import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Watches the kernel's link notifications (rtnetlink) and reports each deleted netdev's ifindex,
/// and each changed one's.
public final class LinkMonitor: @unchecked Sendable {
    private let fd: Int32
    private let onDelete: @Sendable (Int32) -> Void
    private let onChange: @Sendable (Int32) -> Void
    private let lock = NSLock()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var started = false

    public init(onDelete: @escaping @Sendable (Int32) -> Void, onChange: @escaping @Sendable (Int32) -> Void = { _ in }) throws {
        fd = pcn_link_monitor_open()
        guard fd >= 0 else { throw DatapathError("cannot watch netdevs (netlink): \(String(cString: strerror(errno)))") }
        self.onDelete = onDelete
        self.onChange = onChange
    }

    public func start() {
        started = true
        let thread = Thread { [self] in
            var links = [Int32](repeating: 0, count: 64), deleted = [Int32](repeating: 0, count: 64)
            var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !lock.withLock({ stopping }) {
                waiting.revents = 0
                guard poll(&waiting, 1, 200) > 0 else { continue }
                let count = pcn_link_monitor_read(fd, &links, &deleted, Int32(links.count))
                for index in 0..<max(0, Int(count)) {
                    if deleted[index] != 0 { onDelete(links[index]) } else { onChange(links[index]) }
                }
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

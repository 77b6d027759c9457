import CSystemd
import Foundation
import Logging

/// Readiness and liveness reporting: sd_notify when systemd supervises us (NOTIFY_SOCKET set), and a
/// ready marker `<runtime>/ready/<name>` holding our pid for `scripts/pcn-stack` on machines without it.
public struct Readiness: Sendable {
    public let component: String
    public let markerPath: String

    public init(component: String, runtimeDir: String) {
        self.component = component
        self.markerPath = runtimeDir + "/ready/" + component.replacingOccurrences(of: "/", with: "@")
    }

    public func ready(status: String) {
        try? FileManager.default.createDirectory(atPath: (markerPath as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        try? "\(getpid())\n".write(toFile: markerPath, atomically: true, encoding: .utf8)
        _ = sd_notify(0, "READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())")
    }

    public func stopping() {
        _ = sd_notify(0, "STOPPING=1")
        if let text = try? String(contentsOfFile: markerPath, encoding: .utf8),
           Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == getpid() {
            unlink(markerPath)
        }
    }

    /// The watchdog period systemd asked for (WATCHDOG_USEC), if any.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }

    public func watchdogPing() { _ = sd_notify(0, "WATCHDOG=1") }
}

import Foundation
import IPC
import PCNProtocol
import Logging

/// One log line of a daemon's control plane, as pcn-logd receives it (event `log.line`).
public struct ControlLogLine: Codable, Sendable {
    public var component: String
    /// The cube the line is about (a `cube` metadata value), if any.
    public var cube: String?
    /// TRACE, DEBUG, INFO, WARN, ERR or CRITICAL: the datapath's level names.
    public var level: String
    public var message: String

    public init(component: String, cube: String?, level: String, message: String) {
        self.component = component
        self.cube = cube
        self.level = level
        self.message = message
    }

    /// The datapath's name for a swift-log level.
    public static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "TRACE"
        case .debug: "DEBUG"
        case .info, .notice: "INFO"
        case .warning: "WARN"
        case .error: "ERR"
        case .critical: "CRITICAL"
        }
    }
}

/// Hands every log record of this process to a sink besides standard error: pcn-logd over the bus
/// (`attach(bus:)`), or pcn-logd's own sinks. Records logged while a record is being forwarded, and
/// the bus's own records, are not forwarded (no loop through a failing bus).
public final class LogForwarding: @unchecked Sendable {
    public static let shared = LogForwarding()
    private let lock = NSLock()
    private var sink: (@Sendable (ControlLogLine) -> Void)?
    private static let forwarding = ThreadLocalFlag()

    public func attach(_ sink: @escaping @Sendable (ControlLogLine) -> Void) {
        lock.withLock { self.sink = sink }
    }

    /// Sends each line to pcn-logd (endpoint `logd`) as an event; lost if pcn-logd is not there.
    public func attach(bus: any BusEndpoint) {
        attach { [weak bus] line in
            guard let bus, let payload = try? JSONEncoder().encode(line) else { return }
            _ = try? bus.event(BusName.logd, method: Method.logLine.rawValue, payload: Array(payload))
        }
    }

    func forward(label: String, _ line: ControlLogLine) {
        guard !label.hasSuffix(".bus"), let sink = lock.withLock({ sink }), !Self.forwarding.isSet else { return }
        Self.forwarding.isSet = true
        defer { Self.forwarding.isSet = false }
        sink(line)
    }
}

/// A per-thread boolean.
final class ThreadLocalFlag: @unchecked Sendable {
    private var key = pthread_key_t()

    init() { pthread_key_create(&key, nil) }

    var isSet: Bool {
        get { pthread_getspecific(key) != nil }
        set { pthread_setspecific(key, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }
}

import Foundation
import Logging

/// swift-log bootstrap for every daemon: one line per record, `[component] [level] message key=value`,
/// on standard error (journald adds its own timestamp; the supervisor's files get ours).
public enum LogSetup {
    public static func level(named name: String) -> Logger.Level? {
        Logger.Level(rawValue: name.lowercased())
    }

    public static func bootstrap(component: String, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(component: component, label: label)
            handler.logLevel = level
            return handler
        }
    }
}

public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let component: String
    private let label: String
    private static let lock = NSLock()

    public init(component: String, label: String) {
        self.component = component
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = merged.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        let stamp = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        let text = "\(stamp) [\(component)] [\(level.rawValue.uppercased())] \(message)\(fields)\n"
        Self.lock.lock()
        FileHandle.standardError.write(Data(text.utf8))
        Self.lock.unlock()
        let cube = merged["cube"].map { "\($0)" }
        LogForwarding.shared.forward(label: label, ControlLogLine(component: component, cube: cube, level: ControlLogLine.levelName(level),
                                                                  message: "\(message)\(fields)"))
    }
}

import ArgumentParser
import DaemonKit
import Foundation
import IPC
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

@main
struct Entry {
    static func main() async { await DaemonMain.run(PcnLogd.self) }
}

/// pcn-logd: writes the log lines of the datapath and of the daemons to the log file.
struct PcnLogd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-logd",
        abstract: "The Polycube-Swift log daemon: drains log records and writes them to the log sinks.")

    @OptionGroup var paths: PathOptions

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-logd", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.logd")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        try DirectoryCheck.writable(paths.logDir, purpose: "log directory")
        let file = try LogFile(path: paths.logDir + "/pcn.log")
        let bus = BusClient(socketPath: paths.busSocket, name: "logd", logger: Logger(label: "pcn.logd.bus"))
        try await DaemonLifecycle(component: "pcn-logd", paths: paths, logger: logger)
            .run(services: [BusClientService(client: bus), LogSink(bus: bus, file: file, logger: logger)],
                 status: "writing \(file.path)")
    }
}

/// One log record sent over the bus (method `log.line`).
struct LogLine: Codable {
    var component: String
    var level: String
    var message: String
}

/// The log file, reopened on SIGHUP so that logrotate can move it away.
final class LogFile: @unchecked Sendable {
    let path: String
    private var fd: Int32
    private let lock = NSLock()

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw DaemonError("cannot open log file \(path): \(String(cString: strerror(errno)))") }
    }

    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        lock.withLock { _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    }

    func reopen() throws {
        let fresh = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fresh >= 0 else { throw DaemonError("cannot reopen log file \(path): \(String(cString: strerror(errno)))") }
        lock.withLock {
            close(fd)
            fd = fresh
        }
    }

    deinit { close(fd) }
}

struct LogSink: Service {
    let bus: BusClient
    let file: LogFile
    let logger: Logger

    func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP)
        hangup.setEventHandler { [file, logger] in
            do {
                try file.reopen()
                logger.info("reopened \(file.path)")
            } catch {
                logger.error("\(error)")
            }
        }
        hangup.resume()
        defer { hangup.cancel() }
        await cancelWhenGracefulShutdown {
            for await message in bus.messages {
                handle(message)
            }
        }
    }

    private func handle(_ message: BusMessage) {
        switch message.method {
        case "log.line":
            guard let line = try? message.decode(LogLine.self) else {
                logger.warning("malformed log.line from \(message.source)")
                return
            }
            file.write("[\(line.component)] [\(line.level.uppercased())] \(line.message)")
        case "ping":
            bus.reply(to: message, BusReply(payload: Array("pcn-logd".utf8)))
        case HubMethod.registered, HubMethod.unregistered:
            break
        default:
            bus.fail(message, BusError(code: .unknownMethod, message: "pcn-logd offers no method '\(message.method)'"))
        }
    }
}

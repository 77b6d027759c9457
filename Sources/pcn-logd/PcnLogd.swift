import ArgumentParser
import DaemonKit
import Foundation
import IPC
import PCNProtocol
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

@main
struct Entry {
    static func main() { DaemonMain.main(PcnLogd.self) }
}

/// pcn-logd: drains the datapath's log ring and receives the daemons' log lines; writes both, as
/// `[service] [cube] [LEVEL] message`, to the log file, to journald when it runs, and to stdout.
struct PcnLogd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-logd",
        abstract: "The Polycube-Swift log daemon: drains log records and writes them to the log sinks.")

    @OptionGroup var paths: PathOptions

    @Flag(name: .customLong("stdout"), inversion: .prefixedNo,
          help: "Also write every line to standard output (default: when it is a terminal).")
    var toStdout: Bool?

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-logd", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.logd")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        try DirectoryCheck.writable(paths.logDir, purpose: "log directory")
        try DirectoryCheck.writable(paths.stateDir, purpose: "state directory")
        let sinks = LogSinks(file: try LogFile(path: paths.logDir + "/pcn.log"),
                             stdout: toStdout ?? (isatty(STDOUT_FILENO) == 1),
                             journal: FileManager.default.fileExists(atPath: "/run/systemd/journal/socket"))
        // Our own lines go straight to the sinks.
        LogForwarding.shared.attach { line in sinks.write(line) }
        let bus = BusClient(socketPath: paths.busSocket, name: BusName.logd, logger: Logger(label: "pcn.logd.bus"))
        let reader = DatapathLogReader(bus: bus, sinks: sinks, lostFile: paths.stateDir + "/logd-lost",
                                       logger: Logger(label: "pcn.logd.datapath"))
        try await DaemonLifecycle(component: "pcn-logd", paths: paths, logger: logger)
            .run(services: [BusClientService(client: bus), LogService(bus: bus, sinks: sinks, reader: reader, logger: logger), reader],
                 status: "writing \(sinks.file.path)")
    }
}

/// Answers the bus: daemons' `log.line` events, and the hub's notices (a pcn-core that registers
/// is where the datapath's ring comes from).
struct LogService: Service {
    let bus: BusClient
    let sinks: LogSinks
    let reader: DatapathLogReader
    let logger: Logger

    func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP)
        hangup.setEventHandler { [sinks, logger] in
            do {
                try sinks.file.reopen()
                logger.info("reopened \(sinks.file.path)")
            } catch {
                logger.error("\(error)")
            }
        }
        hangup.resume()
        defer { hangup.cancel() }
        await cancelWhenGracefulShutdown {
            for await message in bus.messages {
                await handle(message)
            }
        }
    }

    private func handle(_ message: BusMessage) async {
        switch message.method {
        case Method.logLine.rawValue:
            guard let line = try? message.decode(ControlLogLine.self) else {
                logger.warning("malformed log.line from \(message.source)")
                return
            }
            sinks.write(line)
        case Method.ping.rawValue:
            bus.reply(to: message, BusReply(payload: Array("pcn-logd".utf8)))
        case HubMethod.registered:
            if (try? message.decode(HubNotice.self))?.name == BusName.core { await reader.coreRegistered() }
        case HubMethod.unregistered:
            break
        default:
            bus.fail(message, BusError(code: .unknownMethod, message: "pcn-logd offers no method '\(message.method)'"))
        }
    }
}

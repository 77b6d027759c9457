import ArgumentParser
import DaemonKit
import Foundation
import IPC
import Logging
import ServiceLifecycle

@main
struct Entry {
    static func main() async { await DaemonMain.run(PcnCore.self) }
}

/// pcn-core: the bus hub and the owner of every eBPF object.
struct PcnCore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-core",
        abstract: "The Polycube-Swift core: IPC bus hub and owner of every eBPF program, map and pin.")

    @OptionGroup var paths: PathOptions

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-core", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.core")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        try DirectoryCheck.bpffs(paths.bpffsRoot)

        let hub = BusHub(socketPath: paths.busSocket, logger: Logger(label: "pcn.core.bus"))
        do {
            try hub.start()
        } catch {
            throw DaemonError("cannot start the bus hub: \(error)")
        }
        defer { hub.stop() }
        let core = CoreEndpoint(endpoint: hub.localEndpoint(name: "core"), logger: logger)
        try await DaemonLifecycle(component: "pcn-core", paths: paths, logger: logger)
            .run(services: [core], status: "bus hub on \(paths.busSocket)")
    }
}

/// Serves the requests addressed to `core`.
struct CoreEndpoint: Service {
    let endpoint: LocalEndpoint
    let logger: Logger

    struct Pong: Codable { var component: String; var pid: Int32 }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await message in endpoint.messages {
                handle(message)
            }
        }
    }

    private func handle(_ message: BusMessage) {
        switch message.method {
        case "ping":
            if let reply = try? BusReply.json(Pong(component: "pcn-core", pid: getpid())) {
                endpoint.reply(to: message, reply)
            }
        case HubMethod.registered, HubMethod.unregistered:
            break
        default:
            endpoint.fail(message, BusError(code: .unknownMethod, message: "pcn-core offers no method '\(message.method)'"))
        }
    }
}

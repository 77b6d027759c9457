import ArgumentParser
import DaemonKit
import Foundation
import IPC
import Logging
import ServiceLifecycle

@main
struct Entry {
    static func main() async { await DaemonMain.run(CubeHost.self) }
}

/// cube-host: one process per service, hosting its control plane and slow path for all its cubes.
struct CubeHost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cube-host",
        abstract: "Hosts one Polycube-Swift service: its control plane and slow path for all its cubes.")

    @OptionGroup var paths: PathOptions

    @Option(help: "The service to host (see --list-services).")
    var service: String?

    @Flag(help: "Print the built-in services, one per line, and exit.")
    var listServices = false

    func validate() throws {
        if listServices { return }
        guard let service else { throw ValidationError("missing --service NAME (see --list-services)") }
        guard ServiceCatalog.names.contains(service) else {
            let known = ServiceCatalog.names.isEmpty ? "none yet" : ServiceCatalog.names.joined(separator: ", ")
            throw ValidationError("unknown service '\(service)' (built-in services: \(known))")
        }
    }

    func run() async throws {
        if listServices {
            for name in ServiceCatalog.names { print(name) }
            return
        }
        let service = self.service!
        let component = "cube-host/\(service)"
        LogSetup.bootstrap(component: component, level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.cube-host.\(service)")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        let bus = BusClient(socketPath: paths.busSocket, name: component, logger: Logger(label: "pcn.cube-host.bus"))
        LogForwarding.shared.attach(bus: bus)
        try await DaemonLifecycle(component: component, paths: paths, logger: logger)
            .run(services: [BusClientService(client: bus), HostEndpoint(bus: bus, service: service)],
                 status: "hosting \(service)")
    }
}

/// The services this binary can host. Each is a YANG model, a datapath and a Swift control plane.
enum ServiceCatalog {
    static let names: [String] = []
}

struct HostEndpoint: Service {
    let bus: BusClient
    let service: String

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await message in bus.messages {
                switch message.method {
                case "ping":
                    bus.reply(to: message, BusReply(payload: Array("cube-host/\(service)".utf8)))
                case HubMethod.registered, HubMethod.unregistered:
                    break
                default:
                    bus.fail(message, BusError(code: .unknownMethod, message: "cube-host/\(service) offers no method '\(message.method)'"))
                }
            }
        }
    }
}

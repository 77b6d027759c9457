import ArgumentParser
import DaemonKit
import Foundation
import IPC
import PCNProtocol
import Logging
import ServiceKit
import ServiceLifecycle
import Services

@main
struct Entry {
    static func main() { DaemonMain.main(CubeHost.self) }
}

/// cube-host: one process per service, hosting its control plane and slow path for all its cubes.
struct CubeHost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cube-host",
        abstract: "Hosts one Polycube-Swift service: its control plane and slow path for all its cubes.")

    @OptionGroup var paths: PathOptions

    @Option(help: "The service to host (see --list-services).")
    var service: String?

    @Option(name: .customLong("yang-dir"), help: "The YANG models (env PCN_YANG_DIR, default: the yang/ of the checkout or /usr/share/pcn/yang).")
    var yangDirectoryFlag: String?

    @Flag(help: "Print the built-in services, one per line, and exit.")
    var listServices = false

    func validate() throws {
        if listServices { return }
        guard let service else { throw ValidationError("missing --service NAME (see --list-services)") }
        guard ServiceCatalog.service(named: service) != nil else {
            throw ValidationError("unknown service '\(service)' (built-in services: \(ServiceCatalog.names.joined(separator: ", ")))")
        }
    }

    func run() async throws {
        if listServices {
            for name in ServiceCatalog.names { print(name) }
            return
        }
        let type = ServiceCatalog.service(named: service!)!
        let component = BusName.cubeHost(type.name)
        LogSetup.bootstrap(component: component, level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.cube-host.\(type.name)")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        guard let yangDirectory = ResourceDirectory.locate(flag: yangDirectoryFlag, environment: "PCN_YANG_DIR", name: "yang", marker: "polycube-base.yang") else {
            throw DaemonError("cannot find the YANG models (yang/polycube-base.yang): give --yang-dir")
        }
        let modelPath = "\(yangDirectory)/\(type.name).yang"
        guard let model = try? String(contentsOfFile: modelPath, encoding: .utf8) else {
            throw DaemonError("cannot read the model of \(type.name) at \(modelPath)")
        }
        let bus = BusClient(socketPath: paths.busSocket, name: component, logger: Logger(label: "pcn.cube-host.bus"))
        LogForwarding.shared.attach(bus: bus)
        try await DaemonLifecycle(component: component, paths: paths, logger: logger)
            .run(services: [BusClientService(client: bus), HostedService(host: ServiceHosting.start(type, bus: bus, model: model, logger: logger))],
                 status: "hosting \(type.name)")
    }
}

/// Opens the service's type so the generic host can be built for it.
enum ServiceHosting {
    static func start<S: CubeService>(_ type: S.Type, bus: BusClient, model: String, logger: Logger) -> @Sendable () async -> Void {
        let host = ServiceHost<S>(bus: bus, model: model, logger: logger)
        return { await host.run() }
    }
}

/// The service host as a lifecycle service: stops with the process.
struct HostedService: Service {
    let host: @Sendable () async -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown { await host() }
    }
}

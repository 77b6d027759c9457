import ArgumentParser
import DaemonKit
import Foundation
import Hummingbird
import IPC
import Logging
import ServiceLifecycle

@main
struct Entry {
    static func main() async { await DaemonMain.run(PcnAPI.self) }
}

/// pcn-api: the REST gateway.
struct PcnAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-api",
        abstract: "The Polycube-Swift REST gateway (YANG-validated configuration, datastore, metrics).")

    @OptionGroup var paths: PathOptions

    @Option(name: .customLong("api-addr"), help: "HOST:PORT to listen on (env PCN_API_ADDR, default 127.0.0.1:9000).")
    var apiAddressFlag: String?

    var apiAddress: String {
        apiAddressFlag ?? ProcessInfo.processInfo.environment["PCN_API_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1:9000"
    }

    func validate() throws {
        _ = try ListenAddress(apiAddress)
    }

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-api", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.api")
        let address = try ListenAddress(apiAddress)
        guard address.isLoopback else {
            throw DaemonError("refusing to listen on \(apiAddress): only loopback addresses are served without TLS and a bearer token")
        }
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        try DirectoryCheck.writable(paths.stateDir, purpose: "state directory")

        let bus = BusClient(socketPath: paths.busSocket, name: "api", logger: Logger(label: "pcn.api.bus"))
        LogForwarding.shared.attach(bus: bus)
        let gate = ReadyGate()
        let app = Application(
            router: RestRoutes(bus: bus, logs: LogsRoute(logFile: paths.logDir + "/pcn.log")).router(),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "pcn-api"),
            onServerRunning: { _ in gate.open() },
            logger: logger)
        try await DaemonLifecycle(component: "pcn-api", paths: paths, logger: logger)
            .run(services: [BusClientService(client: bus), app], status: "REST on \(apiAddress)", gate: gate)
    }
}

/// `HOST:PORT` with an IPv4 host name or address.
struct ListenAddress {
    let host: String
    let port: Int

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port), colon != text.startIndex else {
            throw ValidationError("API address '\(text)' is not HOST:PORT with a port in 1...65535")
        }
        self.host = String(text[..<colon])
        self.port = port
    }

    var isLoopback: Bool { host == "localhost" || host.hasPrefix("127.") || host == "::1" }
}

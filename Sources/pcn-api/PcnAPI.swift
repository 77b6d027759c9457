import ArgumentParser
import DaemonKit
import Foundation
import Hummingbird
import IPC
import PCNProtocol
import Logging
import ServiceLifecycle

@main
struct Entry {
    static func main() { DaemonMain.main(PcnAPI.self) }
}

/// pcn-api: the REST gateway.
struct PcnAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-api",
        abstract: "The Polycube-Swift REST gateway (YANG-validated configuration, datastore, metrics).")

    @OptionGroup var paths: PathOptions

    @Option(name: .customLong("api-addr"), help: "HOST:PORT to listen on (env PCN_API_ADDR, default 127.0.0.1:9000).")
    var apiAddressFlag: String?

    @Option(name: .customLong("yang-dir"), help: "The base YANG models (env PCN_YANG_DIR, default: the yang/ of the checkout or /usr/share/pcn/yang).")
    var yangDirectoryFlag: String?

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain to serve HTTPS with (env PCN_API_TLS_CERT).")
    var tlsCertificateFlag: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of that certificate, not readable by others (env PCN_API_TLS_KEY).")
    var tlsKeyFlag: String?

    @Option(name: .customLong("token-file"), help: "File holding the bearer token every request must carry (env PCN_API_TOKEN_FILE).")
    var tokenFileFlag: String?

    @Option(name: .customLong("max-body-size"), help: "The largest request body accepted, in bytes; larger ones are answered 413 (env PCN_API_MAX_BODY_SIZE, default 16777216).")
    var maxBodySizeFlag: String?

    var apiAddress: String { Setting.value(flag: apiAddressFlag, environment: "PCN_API_ADDR") ?? "127.0.0.1:9000" }
    var maxBodySize: Int? { Int(Setting.value(flag: maxBodySizeFlag, environment: "PCN_API_MAX_BODY_SIZE") ?? "16777216") }

    func validate() throws {
        _ = try ListenAddress(apiAddress)
        guard let size = maxBodySize, size >= 1024 else {
            throw ValidationError("the maximum body size must be a whole number of bytes, at least 1024")
        }
    }

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-api", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.api")
        // Under systemd the socket unit holds the listening socket (connections wait in its backlog
        // while we restart); we relay what it accepts to the HTTP server on a private Unix socket.
        let activated = SocketActivation.listeningSockets().first
        let address: ListenAddress
        if let activated {
            guard let bound = SocketActivation.localAddress(of: activated) else {
                throw DaemonError("the socket systemd passed (fd \(activated)) is not an IPv4 TCP socket")
            }
            address = try ListenAddress("\(bound.host):\(bound.port)")
        } else {
            address = try ListenAddress(apiAddress)
        }
        let access = try AccessPolicy(address: address,
                                      certificatePath: Setting.value(flag: tlsCertificateFlag, environment: "PCN_API_TLS_CERT"),
                                      keyPath: Setting.value(flag: tlsKeyFlag, environment: "PCN_API_TLS_KEY"),
                                      tokenPath: Setting.value(flag: tokenFileFlag, environment: "PCN_API_TOKEN_FILE"))
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        try DirectoryCheck.writable(paths.stateDir, purpose: "state directory")

        guard let yangDirectory = ResourceDirectory.locate(flag: yangDirectoryFlag, environment: "PCN_YANG_DIR", name: "yang", marker: "polycube-base.yang") else {
            throw DaemonError("cannot find the base YANG models (yang/polycube-base.yang): give --yang-dir")
        }
        let bus = BusClient(socketPath: paths.busSocket, name: BusName.api, logger: Logger(label: "pcn.api.bus"))
        LogForwarding.shared.attach(bus: bus)
        let engine: ConfigEngine
        do {
            engine = try ConfigEngine(yangDirectory: yangDirectory, datastorePath: paths.stateDir + "/datastore.json", bus: bus,
                                      logger: Logger(label: "pcn.api.config"))
        } catch let error as DaemonError {
            throw error
        } catch {
            throw DaemonError("cannot load the base YANG models from \(yangDirectory): \(error)")
        }
        let gate = ReadyGate()
        let relayPath = paths.runtimeDir + "/api-http.sock"
        let router = RestRoutes(bus: bus, logs: LogsRoute(logFile: paths.logDir + "/pcn.log"),
                                services: ServiceRoutes(engine: engine, bodyLimit: maxBodySize!), token: access.token).router()
        let app = Application(
            responder: HTTPSemantics(inner: router.buildResponder(), routes: RouteMethods(router.routes)),
            // Under socket activation TLS still ends here: the relay copies the encrypted bytes.
            server: try access.tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: activated == nil ? .hostname(address.host, port: address.port) : .unixDomainSocket(path: relayPath),
                                 serverName: "pcn-api"),
            onServerRunning: { _ in gate.open() },
            logger: logger)
        var services: [any Service] = [BusClientService(client: bus), ApiEndpoint(bus: bus, engine: engine, logger: logger)]
        if let activated {
            // Shut down in reverse: stop accepting, let the HTTP server finish, then drain the relay.
            let relay = ActivatedSocketRelay(listener: activated, target: relayPath, logger: logger)
            services += [relay.drainer, app, relay.acceptor]
        } else {
            services.append(app)
        }
        try await DaemonLifecycle(component: "pcn-api", paths: paths, logger: logger)
            .run(services: services, status: "REST on \(address.host):\(address.port)" + (activated == nil ? "" : " (socket activated)")
                    + (access.summary.isEmpty ? "" : " with \(access.summary)"), gate: gate)
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

/// What pcn-api answers on the bus: cube-hosts registering their service's model; pcn-core coming
/// (back) gets the stored configuration replayed.
struct ApiEndpoint: Service {
    let bus: BusClient
    let engine: ConfigEngine
    let logger: Logger


    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await message in bus.messages {
                    group.addTask { await handle(message) }
                }
            }
        }
    }

    private func handle(_ message: BusMessage) async {
        if let method = message.contractMethod, let refusal = method.refusal(caller: message.source) {
            bus.fail(message, BusError(code: .forbidden, message: refusal))
            return
        }
        switch message.method {
        case Method.serviceRegister.rawValue:
            do {
                let registration = try message.request(ServiceRegister.self)
                // A service's model comes from its own cube-host.
                guard message.source == BusName.cubeHost(registration.service) else {
                    bus.fail(message, BusError(code: .forbidden, message: "\(message.source) may not register the model of \(registration.service)"))
                    return
                }
                try await engine.register(service: registration.service, yang: registration.yang, endpoint: message.source)
                bus.reply(to: message, try .answer(ServiceRegister.self, Done()))
                await engine.replay(service: registration.service)
            } catch let failure as RestFailure {
                bus.fail(message, BusError(code: .badRequest, message: failure.errors.map(\.description).joined(separator: "; ")))
            } catch {
                bus.fail(message, BusError(code: .badRequest, message: "\(error)"))
            }
        case Method.cubeAttachment.rawValue:
            do {
                let request = try message.request(CubeAttachment.self)
                bus.reply(to: message, try .answer(CubeAttachment.self, await engine.attachment(of: request.cube)))
            } catch {
                bus.fail(message, BusError(code: .badRequest, message: "\(error)"))
            }
        case HubMethod.registered:
            if (try? message.decode(HubNotice.self))?.name == BusName.core { await engine.replayAll() }
        case HubMethod.unregistered:
            break
        case Method.ping.rawValue:
            bus.reply(to: message, BusReply(payload: Array("pcn-api".utf8)))
        default:
            bus.fail(message, BusError(code: .unknownMethod, message: "pcn-api offers no method '\(message.method)'"))
        }
    }
}

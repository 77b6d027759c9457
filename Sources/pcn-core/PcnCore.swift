import ArgumentParser
import DaemonKit
import DatapathKit
import Foundation
import IPC
import Logging
import PCNDatapathABI
import PCNProtocol
import ServiceLifecycle

@main
struct Entry {
    static func main() { DaemonMain.main(PcnCore.self) }
}

/// pcn-core: the bus hub and the owner of every eBPF object.
struct PcnCore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-core",
        abstract: "The Polycube-Swift core: IPC bus hub and owner of every eBPF program, map and pin.")

    @OptionGroup var paths: PathOptions

    @Option(name: .customLong("bpf-dir"), help: "The datapath sources: framework headers and services (env PCN_BPF_DIR, default: the bpf/ of the checkout or /usr/share/pcn/bpf).")
    var bpfDirectoryFlag: String?

    @Option(name: .customLong("service-dir"), help: "A folder of more datapath services (<dir>/<service>/<service>.c), searched after <bpf-dir>/services; repeatable (the tests' fixture services).")
    var serviceDirectories: [String] = []

    /// The bpf/ tree: flag, environment, else found next to the executable, else the installed copy.
    var bpfDirectory: String? {
        ResourceDirectory.locate(flag: bpfDirectoryFlag, environment: "PCN_BPF_DIR", name: "bpf", marker: "include/pcn/shared.h")
    }

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-core", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.core")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        try DirectoryCheck.bpffs(paths.bpffsRoot)
        try DirectoryCheck.writable(paths.stateDir, purpose: "state directory")
        guard let bpfDirectory else {
            throw DaemonError("cannot find the datapath sources (bpf/include/pcn/shared.h): give --bpf-dir")
        }
        guard let clang = BPFCompiler.locateClang() else {
            throw DaemonError("no clang on PATH (needed to build the datapath; set PCN_CLANG)")
        }
        let compiler = BPFCompiler(clang: clang, includeDirectory: bpfDirectory + "/include",
                                   cacheDirectory: paths.stateDir + "/bpf-cache", logger: Logger(label: "pcn.core.bpf"))
        let datapath = Datapath(compiler: compiler, bpfDirectory: bpfDirectory, bpffsRoot: paths.bpffsRoot,
                                stateDirectory: paths.stateDir, extraServiceDirectories: serviceDirectories,
                                logger: Logger(label: "pcn.core.datapath"))
        do {
            let adopted = try await datapath.adopt()
            if adopted > 0 { logger.info("adopted \(adopted) cubes from the pinned datapath") }
        } catch {
            throw DaemonError("cannot adopt the pinned datapath: \(error)")
        }

        let hub = BusHub(socketPath: paths.busSocket, logger: Logger(label: "pcn.core.bus"))
        do {
            try hub.start()
        } catch {
            throw DaemonError("cannot start the bus hub: \(error)")
        }
        defer { hub.stop() }
        // A netdev deleted while we run loses its peer at once (one deleted while we were down is
        // caught by adopt()).
        let links = try LinkMonitor(onDelete: { ifindex in Task { await datapath.netdevRemoved(ifindex: ifindex) } },
                                    onChange: { ifindex in Task { await datapath.netdevChanged(ifindex: ifindex) } })
        links.start()
        defer { links.stop() }
        let endpoint = hub.localEndpoint(name: BusName.core)
        LogForwarding.shared.attach(bus: endpoint)
        let (records, sink) = SlowPath.recordStream()
        let slowPath = SlowPath(endpoint: endpoint, datapath: datapath, isRegistered: { [hub] in hub.isRegistered($0) },
                                logger: Logger(label: "pcn.core.slowpath"))
        let pump = PacketInPump(sink: sink, logger: logger)
        await pump.ensureStarted(datapath)
        let slowPathTask = Task { await slowPath.run(records: records) }
        defer { slowPathTask.cancel() }
        let core = CoreEndpoint(endpoint: endpoint, datapath: datapath, slowPath: slowPath, pump: pump, logger: logger)
        try await DaemonLifecycle(component: "pcn-core", paths: paths, logger: logger)
            .run(services: [core], status: "bus hub on \(paths.busSocket)")
        await pump.stop()
        await datapath.shutdown()
    }
}

/// Serves the requests addressed to `core`.
struct CoreEndpoint: Service {
    let endpoint: LocalEndpoint
    let datapath: Datapath
    let slowPath: SlowPath
    let pump: PacketInPump
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await message in endpoint.messages {
                    group.addTask { await handle(message) }
                }
            }
        }
    }

    private func packetOut(_ payload: [UInt8]) async throws {
        let request = try PacketOut(decoding: payload)
        try await datapath.packetOut(cube: request.cube, port: request.port, direction: request.direction == .ingress ? .ingress : .egress,
                                     md: request.metadata, frame: request.frame)
    }

    /// `position` is first | last | auto (the default); `before` / `after` name a cube of the chain.
    private func position(_ body: CubeAttach) throws -> Position {
        let given = [body.position, body.before, body.after].compactMap { $0 }
        guard given.count <= 1 else {
            throw BusError(code: .badRequest, message: "cube.attach: give at most one of position, before and after")
        }
        if let before = body.before { return .before(before) }
        if let after = body.after { return .after(after) }
        switch body.position?.lowercased() ?? "auto" {
        case "first": return .first
        case "last": return .last
        case "auto": return .auto
        case let other: throw BusError(code: .badRequest, message: "cube.attach: position '\(other)' is not first, last or auto")
        }
    }

    private func handle(_ message: BusMessage) async {
        if message.method == HubMethod.registered || message.method == HubMethod.unregistered {
            if message.method == HubMethod.registered { await slowPath.endpointRegistered() }
            return
        }
        do {
            guard let method = message.contractMethod else {
                throw BusError(code: .unknownMethod, message: "pcn-core offers no method '\(message.method)'")
            }
            // The contract's caller rule; the owner rules are checked below, once the cube is known.
            if method.callers != .owner && method.callers != .apiOrOwner, let refusal = method.refusal(caller: message.source) {
                throw BusError(code: .forbidden, message: refusal)
            }
            /// The owner rules, for a cube (its service decides who owns it).
            func authorize(cube: String) async throws {
                if let refusal = method.refusal(caller: message.source, service: try await datapath.service(of: cube)) {
                    throw BusError(code: .forbidden, message: refusal)
                }
            }
            // What must stay open until the reply (and its fds) is handed to the bus.
            var keepAlive: [AnyObject] = []
            defer { withExtendedLifetime(keepAlive) {} }
            let reply: BusReply
            switch method {
            case .ping:
                reply = try .answer(Ping.self, Pong(component: "pcn-core", pid: getpid()))
            case .cubeCreate:
                let body = try message.request(CubeCreate.self)
                reply = try .answer(CubeCreate.self, CubeNode(node: try await datapath.createCube(
                    name: body.name, service: body.service, type: body.type ?? "TC", transparent: body.transparent ?? false)))
                await pump.ensureStarted(datapath)
            case .cubeConfigure:
                reply = try .answer(CubeConfigure.self, try await datapath.configure(try message.request(CubeConfigure.self)))
                await pump.ensureStarted(datapath)
            case .cubeDestroy:
                let body = try message.request(CubeDestroy.self)
                let exists = (try? await datapath.service(of: body.name)) != nil
                if exists || body.ifExists != true {
                    try await datapath.destroyCube(name: body.name)
                }
                reply = try .answer(CubeDestroy.self, Done())
            case .cubeList:
                reply = try .answer(CubeList.self, await datapath.describe())
            case .cubeStats:
                let name = try message.request(CubeStatsQuery.self).name
                var stats = try await datapath.stats(cube: name)
                (stats.slowPathQueued, stats.slowPathDropped) = await slowPath.counters(cube: name)
                reply = try .answer(CubeStatsQuery.self, stats)
            case .packetOut:
                try await authorize(cube: try PacketOut(decoding: message.payload).cube)
                try await packetOut(message.payload)
                reply = try .json(Done())
            case .packetInSubscribe:
                // Packet-in of a cube goes to the caller (or the named endpoint) instead of its cube-host.
                let body = try message.request(PacketInSubscribe.self)
                try await authorize(cube: body.cube)
                await slowPath.subscribe(cube: body.cube, subscriber: body.subscriber ?? message.source)
                reply = try .answer(PacketInSubscribe.self, Done())
            case .cubeReload:
                let body = try message.request(CubeReload.self)
                try await authorize(cube: body.name)
                let direction: Datapath.Direction
                switch body.direction?.lowercased() ?? "ingress" {
                case "ingress": direction = .ingress
                case "egress": direction = .egress
                default: throw BusError(code: .badRequest, message: "cube.reload: direction '\(body.direction!)' is neither ingress nor egress")
                }
                try await datapath.reload(cube: body.name, index: body.index, code: body.code, direction: direction)
                reply = try .answer(CubeReload.self, Done())
            case .portAdd:
                let body = try message.request(PortAdd.self)
                reply = try .answer(PortAdd.self, PortIndex(index: try await datapath.addPort(cube: body.cube, port: body.port)))
            case .portRemove:
                let body = try message.request(PortRemove.self)
                try await datapath.removePort(cube: body.cube, port: body.port)
                reply = try .answer(PortRemove.self, Done())
            case .cubeAttach:
                let body = try message.request(CubeAttach.self)
                try await datapath.attach(cube: body.cube, to: .init(parsing: body.to), position: try position(body))
                reply = try .answer(CubeAttach.self, Done())
            case .cubeDetach:
                try await datapath.detach(cube: try message.request(CubeDetach.self).name)
                reply = try .answer(CubeDetach.self, Done())
            case .chainList:
                reply = try .answer(ChainList.self, try await datapath.chain(at: .init(parsing: try message.request(ChainList.self).at)))
            case .cubeSetLogLevel:
                let body = try message.request(CubeSetLogLevel.self)
                guard let level = DatapathLogLevel(parsing: body.level) else {
                    throw BusError(code: .badRequest, message: "log level '\(body.level)' is not one of \(DatapathLogLevel.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                try await datapath.setLogLevel(cube: body.name, level: level)
                reply = try .answer(CubeSetLogLevel.self, Done())
            case .cubeTables:
                // A cube's tables as fds, in the order of the answer. Only the cube's own cube-host
                // may have them (a compromised cube-host reaches its own service's tables, no other).
                let body = try message.request(CubeTables.self)
                try await authorize(cube: body.name)
                let tables = try await datapath.tables(of: body.name, only: body.tables)
                guard tables.count <= 16 else {
                    throw BusError(code: .badRequest, message: "cube '\(body.name)' has \(tables.count) tables, more than one answer carries (16): ask for some by name (\(tables.map(\.name).joined(separator: ", ")))")
                }
                reply = try .answer(CubeTables.self, tables.map {
                    let types = $0.map.typeDescriptions()
                    return TableDescription(name: $0.name, type: $0.map.type.rawValue, keySize: $0.map.keySize,
                                            valueSize: $0.map.valueSize, maxEntries: $0.map.maxEntries, keyType: types?.key, valueType: types?.value)
                }, fds: tables.map(\.map.fd))
                keepAlive = tables.map(\.map)
            case .shadowConfigure:
                // The twins' addresses are the service's to say: only the cube's own cube-host says them.
                let body = try message.request(ShadowConfigure.self)
                try await authorize(cube: body.cube)
                try await datapath.configureShadow(body)
                reply = try .answer(ShadowConfigure.self, Done())
            case .logFormats:
                reply = try .answer(LogFormats.self, await datapath.logFormats())
            case .logRing:
                // The ring and the lost counter, as fds: pcn-logd needs no privilege to drain them.
                let (ring, lost) = try await datapath.logMaps()
                reply = try .answer(LogRing.self, Done(), fds: [ring.fd, lost.fd])
                keepAlive = [ring, lost]
            case .netdevChains:
                reply = try .answer(NetdevChains.self, await datapath.netdevChains())
            case .portSetPeer:
                let body = try message.request(PortSetPeer.self)
                try await datapath.setPeer(cube: body.cube, port: body.port, peer: .init(parsing: body.peer))
                reply = try .answer(PortSetPeer.self, Done())
            default:
                throw BusError(code: .unknownMethod, message: "pcn-core offers no method '\(message.method)'")
            }
            endpoint.reply(to: message, reply)
        } catch let error as BusError {
            if error.code == .forbidden { logger.warning("refused \(message.method) from \(message.source): \(error.message)") }
            endpoint.fail(message, error)
        } catch let error as DatapathError {
            logger.info("\(message.method) from \(message.source) refused: \(error)")
            endpoint.fail(message, BusError(code: .failed, message: error.description, path: error.path))
        } catch {
            logger.info("\(message.method) from \(message.source) refused: \(error)")
            endpoint.fail(message, BusError(code: .failed, message: "\(error)"))
        }
    }
}

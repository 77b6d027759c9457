import ArgumentParser
import DaemonKit
import DatapathKit
import Foundation
import IPC
import Logging
import PCNDatapathABI
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

    @Option(name: .customLong("bpf-dir"), help: "The datapath sources: framework headers and services (env PCN_BPF_DIR, default: the bpf/ of the checkout or /usr/share/pcn/bpf).")
    var bpfDirectoryFlag: String?

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
                                stateDirectory: paths.stateDir, logger: Logger(label: "pcn.core.datapath"))
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
        let links = try LinkMonitor { ifindex in Task { await datapath.netdevRemoved(ifindex: ifindex) } }
        links.start()
        defer { links.stop() }
        let endpoint = hub.localEndpoint(name: "core")
        LogForwarding.shared.attach(bus: endpoint)
        let (records, sink) = SlowPath.recordStream()
        let slowPath = SlowPath(endpoint: endpoint, datapath: datapath, logger: Logger(label: "pcn.core.slowpath"))
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

    struct Pong: Codable { var component: String; var pid: Int32 }
    struct CubeCreate: Codable { var name: String; var service: String; var type: String?; var transparent: Bool? }
    struct Attach: Codable { var cube: String; var to: String; var position: String?; var before: String?; var after: String? }
    struct ChainQuery: Codable { var at: String }
    struct LogLevelSet: Codable { var name: String; var level: String }
    struct TablesQuery: Codable { var name: String; var tables: [String]? }
    struct TableDescription: Codable { var name: String; var type: UInt32; var keySize: Int; var valueSize: Int; var maxEntries: Int }
    struct CubeName: Codable { var name: String }
    struct PortRef: Codable { var cube: String; var port: String }
    struct PeerSet: Codable { var cube: String; var port: String; var peer: String }
    struct Reload: Codable { var name: String; var index: Int; var code: String; var direction: String? }
    struct Subscribe: Codable { var cube: String; var subscriber: String? }
    struct Node: Codable { var node: UInt32 }
    struct PortIndex: Codable { var index: Int }
    struct Done: Codable { var ok = true }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await message in endpoint.messages {
                    group.addTask { await handle(message) }
                }
            }
        }
    }

    /// `struct pcn_packet_out_request` followed by the frame.
    private func packetOut(_ payload: [UInt8]) async throws {
        let size = MemoryLayout<pcn_packet_out_request>.size
        guard payload.count > size else {
            throw BusError(code: .badRequest, message: "packet-out: \(payload.count) bytes, shorter than its \(size)-byte header and a frame")
        }
        let request = payload.withUnsafeBytes { $0.loadUnaligned(as: pcn_packet_out_request.self) }
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let direction: Datapath.Direction
        switch request.direction {
        case UInt32(PCN_DIRECTION_INGRESS.rawValue): direction = .ingress
        case UInt32(PCN_DIRECTION_EGRESS.rawValue): direction = .egress
        default: throw BusError(code: .badRequest, message: "packet-out: direction \(request.direction) is neither ingress (0) nor egress (1)")
        }
        try await datapath.packetOut(cube: text(request.cube), port: text(request.port), direction: direction,
                                     md: request.md, frame: Array(payload[size...]))
    }

    /// `position` is first | last | auto (the default); `before` / `after` name a cube of the chain.
    private func position(_ body: Attach) throws -> Position {
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
        do {
            let reply: BusReply
            // What must stay open until the reply (and its fds) is handed to the bus.
            var keepAlive: [AnyObject] = []
            defer { withExtendedLifetime(keepAlive) {} }
            switch message.method {
            case "ping":
                reply = try .json(Pong(component: "pcn-core", pid: getpid()))
            case "cube.create":
                let body = try message.decode(CubeCreate.self)
                reply = try .json(Node(node: try await datapath.createCube(name: body.name, service: body.service, type: body.type ?? "TC",
                                                                                  transparent: body.transparent ?? false)))
                await pump.ensureStarted(datapath)
            case "cube.destroy":
                try await datapath.destroyCube(name: try message.decode(CubeName.self).name)
                reply = try .json(Done())
            case "cube.list":
                reply = try .json(await datapath.describe())
            case "cube.stats":
                let name = try message.decode(CubeName.self).name
                var stats = try await datapath.stats(cube: name)
                (stats.slowPathQueued, stats.slowPathDropped) = await slowPath.counters(cube: name)
                reply = try .json(stats)
            case "packet-out":
                try await packetOut(message.payload)
                reply = try .json(Done())
            case "packet-in.subscribe":
                // Packet-in of a cube goes to the caller (or the named endpoint) instead of its cube-host.
                let body = try message.decode(Subscribe.self)
                _ = try await datapath.stats(cube: body.cube)
                await slowPath.subscribe(cube: body.cube, subscriber: body.subscriber ?? message.source)
                reply = try .json(Done())
            case "cube.reload":
                let body = try message.decode(Reload.self)
                let direction: Datapath.Direction
                switch body.direction?.lowercased() ?? "ingress" {
                case "ingress": direction = .ingress
                case "egress": direction = .egress
                default: throw BusError(code: .badRequest, message: "cube.reload: direction '\(body.direction!)' is neither ingress nor egress")
                }
                try await datapath.reload(cube: body.name, index: body.index, code: body.code, direction: direction)
                reply = try .json(Done())
            case "port.add":
                let body = try message.decode(PortRef.self)
                reply = try .json(PortIndex(index: try await datapath.addPort(cube: body.cube, port: body.port)))
            case "port.remove":
                let body = try message.decode(PortRef.self)
                try await datapath.removePort(cube: body.cube, port: body.port)
                reply = try .json(Done())
            case "cube.attach":
                let body = try message.decode(Attach.self)
                try await datapath.attach(cube: body.cube, to: .init(parsing: body.to), position: try position(body))
                reply = try .json(Done())
            case "cube.detach":
                try await datapath.detach(cube: try message.decode(CubeName.self).name)
                reply = try .json(Done())
            case "chain.list":
                reply = try .json(try await datapath.chain(at: .init(parsing: try message.decode(ChainQuery.self).at)))
            case "cube.set-loglevel":
                let body = try message.decode(LogLevelSet.self)
                guard let level = DatapathLogLevel(parsing: body.level) else {
                    throw BusError(code: .badRequest, message: "log level '\(body.level)' is not one of \(DatapathLogLevel.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                try await datapath.setLogLevel(cube: body.name, level: level)
                reply = try .json(Done())
            case "cube.tables":
                // A cube's tables as fds, in the order of the answer. Only the cube's own cube-host
                // may have them (a compromised cube-host reaches its own service's tables, no other).
                let body = try message.decode(TablesQuery.self)
                let service = try await datapath.service(of: body.name)
                guard !message.source.hasPrefix("cube-host/") || message.source == "cube-host/\(service)" else {
                    throw BusError(code: .failed, message: "\(message.source) may not open the tables of cube '\(body.name)' (service \(service))")
                }
                let tables = try await datapath.tables(of: body.name, only: body.tables)
                guard tables.count <= 16 else {
                    throw BusError(code: .badRequest, message: "cube '\(body.name)' has \(tables.count) tables, more than one answer carries (16): ask for some by name (\(tables.map(\.name).joined(separator: ", ")))")
                }
                reply = try .json(tables.map { TableDescription(name: $0.name, type: $0.map.type.rawValue, keySize: $0.map.keySize,
                                                                valueSize: $0.map.valueSize, maxEntries: $0.map.maxEntries) },
                                  fds: tables.map(\.map.fd))
                keepAlive = tables.map(\.map)
            case "log.formats":
                reply = try .json(await datapath.logFormats())
            case "log.ring":
                // The ring and the lost counter, as fds: pcn-logd needs no privilege to drain them.
                let (ring, lost) = try await datapath.logMaps()
                reply = try .json(Done(), fds: [ring.fd, lost.fd])
                keepAlive = [ring, lost]
            case "netdev.chains":
                reply = try .json(await datapath.netdevChains())
            case "port.set-peer":
                let body = try message.decode(PeerSet.self)
                try await datapath.setPeer(cube: body.cube, port: body.port, peer: .init(parsing: body.peer))
                reply = try .json(Done())
            case HubMethod.registered:
                await slowPath.endpointRegistered(try message.decode(HubNotice.self).name)
                return
            case HubMethod.unregistered:
                await slowPath.endpointUnregistered(try message.decode(HubNotice.self).name)
                return
            default:
                throw BusError(code: .unknownMethod, message: "pcn-core offers no method '\(message.method)'")
            }
            endpoint.reply(to: message, reply)
        } catch let error as BusError {
            endpoint.fail(message, error)
        } catch {
            logger.info("\(message.method) from \(message.source) refused: \(error)")
            endpoint.fail(message, BusError(code: .failed, message: "\(error)"))
        }
    }
}

import BPFKit
import CShims
import Foundation
import Logging
import PCNDatapathABI
import PCNProtocol
#if canImport(Glibc)
import Glibc
#endif

/// A datapath request that cannot be carried out; the message names what was wrong.
public struct DatapathError: Error, CustomStringConvertible {
    public let description: String
    /// The configuration node at fault, relative to the cube (`ports[name='p1']/peer`), if one is.
    public let path: String?
    public init(_ description: String, path: String? = nil) {
        self.description = description
        self.path = path
    }
}

/// Every cube, port, transparent cube and netdev attachment, and the patch panels that chain them.
/// A request edits a copy of the topology; the reconciler builds (compiles, loads, verifies) every
/// program whose code or load-time constants changed, and only then swaps them in, each with one
/// prog-array update or one attachment replacement. A refusal before the swap changes nothing.
public actor Datapath {
    public typealias Peer = DatapathKit.Peer

    let compiler: BPFCompiler
    let registryPath: String
    let bpfDirectory: String
    let serviceDirectories: [String]
    let bpffsRoot: String
    let logger: Logger
    var topology = Topology()
    /// What is loaded and placed, by stage key.
    var stages: [String: LoadedStage] = [:]
    /// What is attached to each netdev.
    var netdevs: [String: LoadedNetdev] = [:]
    var panels: [Hook: BPFMap] = [:]
    var injector: PacketInjector?
    /// The twins (host ends) made for each shadow cube.
    var shadows: [String: Set<String>] = [:]
    /// Per peer netdev ifindex: whether the programs send into its twin directly (a veth whose twin
    /// is in another namespace), as last built.
    var directTwins: [Int32: Bool] = [:]

    /// `extraServiceDirectories` are searched after `<bpfDirectory>/services` for `<service>/<service>.c`.
    public init(compiler: BPFCompiler, bpfDirectory: String, bpffsRoot: String, stateDirectory: String,
                extraServiceDirectories: [String] = [], logger: Logger) {
        self.compiler = compiler
        self.serviceDirectories = [bpfDirectory + "/services"] + extraServiceDirectories
        self.registryPath = stateDirectory + "/datapath.json"
        self.bpfDirectory = bpfDirectory
        self.bpffsRoot = bpffsRoot
        self.logger = logger
    }

    /// The ring of packet-in records, once the first cube has created it.
    public func packetInRing() -> BPFMap? { try? BPFMap.openPinned("\(bpffsRoot)/pcn_packet_in") }

    /// The cube whose identity is `node` (the `cube_id` of its packet-in records), with its service.
    public func cube(node: UInt32) -> (name: String, service: String)? {
        topology.cubes.values.first { $0.node == node }.map { ($0.name, $0.service) }
    }

    /// Where a netdev's ingress entry program is pinned (what the kernel runs first for its packets).
    public func netdevEntryPin(_ device: String) -> String { "\(bpffsRoot)/netdevs/\(device)/ingress" }

    // MARK: - Registry

    func saveRegistry() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(topology)
        let temporary = registryPath + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw DatapathError("cannot write \(temporary)")
        }
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        guard rename(temporary, registryPath) == 0 else {
            throw DatapathError("cannot replace \(registryPath): \(String(cString: strerror(errno)))")
        }
    }

    /// Rebuilds the topology from the saved registry and re-installs every program over its pins (an
    /// atomic replacement: packets keep flowing through the old programs until the swap). Returns
    /// the number of cubes adopted.
    public func adopt() throws -> Int {
        guard let data = FileManager.default.contents(atPath: registryPath) else { return 0 }
        do {
            topology = try JSONDecoder().decode(Topology.self, from: data)
        } catch {
            throw DatapathError("\(registryPath) is corrupt (\(error)); move it away to start with an empty datapath")
        }
        for cube in topology.cubes.values {
            _ = try sourceOf(service: cube.service)
        }
        // Netdevs that vanished while we were down: their ports lose the peer, their transparent
        // cubes their parent.
        for device in topology.netdevsInUse() where if_nametoindex(device) == 0 {
            logger.warning("netdev '\(device)' is gone; its peer and transparent cubes are released")
            forget(netdev: device, in: &topology)
        }
        _ = topology.allocateNodes()
        // The shadow namespaces were made by the pcn-core that saved this registry.
        for (twin, owner) in topology.shadowTwins() { shadows[owner.cube, default: []].insert(twin) }
        try reconcile()
        try saveRegistry()
        return topology.cubes.count
    }

    // MARK: - Changes

    /// Applies `edit` to a copy of the topology and makes the datapath match it; on any failure the
    /// topology and the datapath stay as they were.
    private func change(_ edit: (inout Topology) throws -> Void) throws {
        let before = topology
        var after = topology
        try edit(&after)
        guard after.allocateNodes() else {
            throw DatapathError("no free patch-panel node (\(PCN_MAX_NODES - 1) programs)")
        }
        topology = after
        do {
            try reconcile()
        } catch {
            topology = before
            // Re-place what may have been swapped before the failure (a no-op otherwise).
            do { try reconcile() } catch { logger.error("could not restore the datapath after a refused change: \(error)") }
            for name in after.cubes.keys where before.cubes[name] == nil { removePins(ofCube: name) }
            throw error
        }
        try saveRegistry()
    }

    /// A new cube without ports (the rules are `configure`'s; an existing name is refused).
    public func createCube(name: String, service: String, type typeName: String, transparent: Bool = false) throws -> UInt32 {
        guard topology.cubes[name] == nil else { throw DatapathError("cube '\(name)' already exists") }
        return try configure(CubeConfigure(name: name, service: service, type: typeName, transparent: transparent,
                                           loglevel: DatapathLogLevel.info.rawValue, ports: transparent ? nil : [])).node
    }

    /// Removes a cube with its links, in one change; refused (nothing changed) while transparent
    /// cubes are attached to its ports.
    public func destroyCube(name: String) throws {
        try change { try $0.destroy(cube: name) }
        removePins(ofCube: name)
        logger.info("destroyed cube", metadata: ["cube": "\(name)"])
    }

    /// A cube's whole datapath part at once (created if missing, log level, ports, peers): every
    /// rule is checked on a copy, then one reconcile builds and swaps what changed.
    public func configure(_ request: CubeConfigure) throws -> CubeDescription {
        let created = topology.cubes[request.name] == nil
        if created { _ = try sourceOf(service: request.service) }
        var unlinked: [(port: String, reason: String)] = []
        try change { unlinked = try $0.configure(request, netdevExists: { if_nametoindex($0) > 0 }) }
        for (port, reason) in unlinked {
            logger.info("port \(request.name):\(port) left without its peer for now: \(reason)")
        }
        if created {
            logger.info("created cube", metadata: ["cube": "\(request.name)", "service": "\(request.service)", "type": "\(request.type)"])
        }
        return topology.describe(try topology.existing(request.name))
    }

    public func addPort(cube name: String, port: String) throws -> Int {
        var index = 0
        try change { index = try $0.addPort(cube: name, port: port) }
        return index
    }

    public func removePort(cube name: String, port: String) throws {
        try change { try $0.removePort(cube: name, port: port) }
    }

    /// Sets a port's peer. A cube peer is linked both ways; a netdev gets entry programs.
    public func setPeer(cube name: String, port portName: String, peer: Peer) throws {
        try topology.checkPeer(peer, cube: name, port: portName, netdevExists: { if_nametoindex($0) > 0 })
        if topology.cubes[name]?.port(portName)?.peer == peer { return }
        try change { $0.link(peer, cube: name, port: portName) }
        logger.info("port peer set", metadata: ["port": "\(name):\(portName)", "peer": "\(peer)"])
    }

    /// Attaches a transparent cube to a netdev or a cube port, at `position` in that chain.
    public func attach(cube name: String, to point: AttachPoint, position: Position) throws {
        let cube = try existing(name)
        guard cube.transparent else { throw DatapathError("'\(name)' is a standard cube: connect its ports instead of attaching it") }
        if let parent = cube.parent { throw DatapathError("'\(name)' is already attached to '\(parent)'") }
        switch point {
        case .none:
            throw DatapathError("attach '\(name)': no target given (a netdev or cube:port)")
        case .netdev(let device):
            guard if_nametoindex(device) > 0 else { throw DatapathError("netdev '\(device)' does not exist") }
            if let user = topology.user(ofNetdev: device), user.cube.type != cube.type {
                throw DatapathError("netdev '\(device)' is the peer of \(user.cube.name):\(user.port.name), a \(user.cube.type.rawValue) cube; '\(name)' is \(cube.type.rawValue): the types must match")
            }
            if let first = topology.netdevChains[device]?.first, let other = topology.cubes[first], other.type != cube.type {
                throw DatapathError("netdev '\(device)' has \(other.type.rawValue) transparent cubes; '\(name)' is \(cube.type.rawValue): the types must match")
            }
        case .cube(let parentName, let portName):
            guard let parent = topology.cubes[parentName] else { throw DatapathError("cube '\(parentName)' does not exist") }
            guard !parent.transparent else { throw DatapathError("'\(parentName)' is a transparent cube: it has no ports") }
            guard parent.port(portName) != nil else { throw DatapathError("cube '\(parentName)' has no port '\(portName)'") }
            guard parent.type.hook == cube.type.hook else {
                throw DatapathError("'\(name)' is \(cube.type.rawValue) and \(parentName) is \(parent.type.rawValue): a transparent cube's type must match its port's")
            }
        }
        var chain = topology.chain(at: point)
        chain.insert(name, at: try topology.insertionIndex(of: cube, in: chain, position: position))
        try change { topology in
            topology.setChain(chain, at: point)
            topology.cubes[name]!.parent = point
        }
        logger.info("attached transparent cube", metadata: ["cube": "\(name)", "to": "\(point)", "chain": "\(chain.joined(separator: ","))"])
    }

    public func detach(cube name: String) throws {
        let cube = try existing(name)
        guard let parent = cube.parent else { throw DatapathError("'\(name)' is not attached") }
        try change { topology in
            topology.setChain(topology.chain(at: parent).filter { $0 != name }, at: parent)
            topology.cubes[name]!.parent = nil
        }
        logger.info("detached transparent cube", metadata: ["cube": "\(name)", "from": "\(parent)"])
    }

    /// The transparent cubes at an attach point, in order.
    public func chain(at point: AttachPoint) throws -> [String] {
        switch point {
        case .cube(let cube, let port):
            guard try existing(cube).port(port) != nil else { throw DatapathError("cube '\(cube)' has no port '\(port)'") }
        case .netdev, .none:
            break
        }
        return topology.chain(at: point)
    }

    /// Replaces µCube `index` of a cube's ingress or egress program with `code` (C with a
    /// handle_rx, like a service's datapath): compiled, loaded and verified, then swapped in
    /// atomically. Index 0 is the MASTER; a SLAVE is reached with call_ingress_program(ctx, index)
    /// or call_egress_program(ctx, index). On a compiler or verifier error nothing changes and the
    /// error carries the compiler's or verifier's message.
    public func reload(cube name: String, index: Int, code: String?, direction: Direction = .ingress) throws {
        let cube = try existing(name)
        if (direction == .egress && !cube.transparent ? cube.egressCode[index] : cube.code[index]) == code { return }
        guard (0..<Int(PCN_MAX_UCUBES)).contains(index) else {
            throw DatapathError("µCube index \(index) is out of range 0...\(PCN_MAX_UCUBES - 1)")
        }
        if cube.transparent && index != 0 {
            throw DatapathError("transparent cube '\(name)' has one program per direction: index must be 0, not \(index)")
        }
        if direction == .egress && !cube.transparent && index > 0 && cube.egressCode[0] == nil && code != nil {
            throw DatapathError("cube '\(name)' has no egress program: load µCube 0 of its egress first")
        }
        try change { topology in
            if direction == .egress && !cube.transparent {
                topology.cubes[name]!.egressCode[index] = code
            } else {
                topology.cubes[name]!.code[index] = code
            }
        }
        logger.info("reloaded µCube", metadata: ["cube": "\(name)", "index": "\(index)", "direction": "\(direction)"])
    }

    public enum Direction: Sendable {
        /// As if the frame arrived on the port: the cube processes it.
        case ingress
        /// Out of the port, to its peer (a netdev, or the peer cube's port).
        case egress
    }

    /// Injects `frame` at a port, with `md` as the metadata its next handle_rx sees. For a
    /// transparent cube the port is ignored: the frame goes on to the cube's next hop in `direction`.
    public func packetOut(cube name: String, port portName: String, direction: Direction, md: (UInt32, UInt32, UInt32), frame: [UInt8]) throws {
        let cube = try existing(name)
        guard frame.count >= 14, frame.count <= 9000 else {
            throw DatapathError("packet-out frame of \(frame.count) bytes (must be 14...9000)")
        }
        var trailer = pcn_packet_out_trailer()
        trailer.magic = PCN_PACKET_OUT_MAGIC
        trailer.md = md
        let hop: Topology.Hop
        var atChainEnd: (device: String, egress: Bool)?
        if cube.transparent {
            let role: Topology.Role = direction == .ingress ? .transparentIngress : .transparentEgress
            hop = topology.next(ofTransparent: cube, role)
            if case .netdev(let device) = cube.parent { atChainEnd = (device, direction == .egress) }
        } else {
            guard let port = cube.port(portName) else { throw DatapathError("cube '\(name)' has no port '\(portName)'") }
            hop = direction == .ingress ? .node(cube.node, port: port.index) : topology.exit(cube, port)
        }
        switch hop {
        case .none:
            throw DatapathError("\(cube.transparent ? "transparent cube \(name)" : "port \(name):\(portName)") has no peer to send to")
        case .node(let node, let port):
            trailer.kind = UInt16(cube.type.hook == .xdp ? PCN_OUT_TO_CUBE_XDP.rawValue : PCN_OUT_TO_CUBE.rawValue)
            trailer.target = node
            trailer.port = UInt16(port)
        case .netdev(let device):
            // The end of an XDP netdev chain's egress is the wire; an XDP cube's port leads out as
            // its redirects do; elsewhere a netdev is entered by its egress hook (its egress chain
            // runs, as for a redirect).
            let kind = atChainEnd?.egress == true ? PCN_OUT_TO_WIRE
                : !cube.transparent && cube.type.hook == .xdp ? PCN_OUT_TO_NETDEV_XDP : PCN_OUT_TO_NETDEV
            trailer.kind = UInt16(kind.rawValue)
            trailer.target = if_nametoindex(device)
        case .stack:
            guard let end = atChainEnd else { throw DatapathError("packet-out of '\(name)': nowhere to send") }
            trailer.kind = UInt16(end.egress ? PCN_OUT_TO_WIRE.rawValue : PCN_OUT_TO_STACK.rawValue)
            trailer.target = if_nametoindex(end.device)
        }
        try injectorReady().send(frame: frame, trailer: trailer)
    }

    /// The names of the packet-out veth pair of the stack whose bpffs root is `bpffsRoot`.
    public static func packetOutPair(bpffsRoot: String) -> (write: String, program: String) {
        PacketInjector.names(bpffsRoot: bpffsRoot)
    }

    /// The packet-out pair, made (again) if it is missing: deleted from under us, it is recreated
    /// with its programs at the next packet-out or as soon as the link monitor reports it.
    private func injectorReady() throws -> PacketInjector {
        if let injector, !injector.isPresent {
            logger.warning("the packet-out pair \(injector.writeEnd)/\(injector.programEnd) disappeared: recreating it")
            injector.abandon()
            self.injector = nil
        }
        if let injector { return injector }
        let made = try PacketInjector(names: PacketInjector.names(bpffsRoot: bpffsRoot), compiler: compiler,
                                      bpfDirectory: bpfDirectory, bpffsRoot: bpffsRoot)
        injector = made
        return made
    }

    /// A netdev was deleted: the port whose peer it was loses its peer, its transparent cubes their parent.
    public func netdevRemoved(ifindex: Int32) {
        if let injector, !injector.isPresent {
            do {
                _ = try injectorReady()
                logger.info("packet-out pair recreated")
            } catch {
                logger.error("cannot recreate the packet-out pair: \(error)")
            }
        }
        for (device, attached) in netdevs where attached.ifindex == ifindex {
            logger.warning("netdev '\(device)' is gone; its peer and transparent cubes are released")
            netdevs.removeValue(forKey: device)
            removePins(ofNetdev: device)
            do {
                try change { forget(netdev: device, in: &$0) }
            } catch {
                logger.error("cannot release netdev '\(device)': \(error)")
            }
        }
    }

    /// A netdev changed (a veth's twin moved to or from another namespace, among others): the
    /// programs that send to it are rebuilt if the way to reach it changed.
    public func netdevChanged(ifindex: Int32) {
        guard let direct = directTwins[ifindex], direct != (pcn_link_twin_elsewhere(ifindex) == 1) else { return }
        logger.info("netdev \(ifindex): its twin is \(direct ? "no longer" : "now") in another namespace; rebuilding what sends to it")
        do {
            try change { _ in }
        } catch {
            logger.error("cannot rebuild the programs sending to netdev \(ifindex): \(error)")
        }
    }

    /// True if programs at TC ingress can hand packets for veth `ifindex` straight to its twin.
    func twinElsewhere(_ ifindex: Int32) -> Bool {
        let direct = pcn_link_twin_elsewhere(ifindex) == 1
        directTwins[ifindex] = direct
        return direct
    }

    private func forget(netdev device: String, in topology: inout Topology) {
        if let (cube, port) = topology.user(ofNetdev: device) { topology.setPeer(.none, cube: cube.name, port: port.name) }
        for tcube in topology.netdevChains[device] ?? [] { topology.cubes[tcube]?.parent = nil }
        topology.netdevChains[device] = nil
    }

    /// Releases what only a running pcn-core needs (the packet-out veth pair). Pins stay.
    public func shutdown() {
        injector?.remove()
        injector = nil
    }

    public func stats(cube name: String) throws -> CubeStats {
        let cube = try existing(name)
        let maps = "\(bpffsRoot)/cubes/\(name)/maps"
        let reasons = stages.values.filter { $0.cube == name }.reduce(into: [UInt32: String]()) { $0.merge($1.dropReasons) { a, _ in a } }
        var stats = try CubeStats(reading: try BPFMap.openPinned(maps + "/pcn_stats"), serviceReasons: reasons)
        let perPort = try PortCounters.read(try BPFMap.openPinned(maps + "/pcn_port_stats"), count: Int(PCN_MAX_PORTS))
        if cube.transparent {
            stats.ports = ["ingress": perPort[0], "egress": perPort[1]]
        } else {
            for port in cube.ports { stats.ports[port.name] = perPort[port.index] }
        }
        // The cube received what its ports received (including ports removed since).
        stats.rxPackets = perPort.reduce(0) { $0 + $1.rxPackets }
        stats.rxBytes = perPort.reduce(0) { $0 + $1.rxBytes }
        return stats
    }

    public func describe() -> [CubeDescription] {
        topology.cubes.values.sorted { $0.name < $1.name }.map(topology.describe)
    }

    /// Sets a cube's datapath log level: every program of the cube is rebuilt with it and swapped in.
    public func setLogLevel(cube name: String, level: DatapathLogLevel) throws {
        _ = try existing(name)
        try change { $0.cubes[name]!.logLevel = level }
        logger.info("log level set", metadata: ["cube": "\(name)", "level": "\(level.rawValue)"])
    }

    /// What pcn-logd needs to turn log records into lines: for each program's `log_source`, its
    /// cube, service and formats by call-site id.
    public func logFormats() -> [LogSource] {
        stages.values.compactMap { stage in
            guard let cube = topology.cubes[stage.cube] else { return nil }
            return LogSource(source: stage.logSource, cube: cube.name, service: cube.service,
                             formats: Dictionary(uniqueKeysWithValues: stage.logFormats.map { ("\($0.key)", $0.value) }))
        }.sorted { $0.source < $1.source }
    }

    /// The datapath log ring and its lost-records counter (created with the first program if needed).
    public func logMaps() throws -> (ring: BPFMap, lost: BPFMap) {
        if !FileManager.default.fileExists(atPath: "\(bpffsRoot)/pcn_log_ring") { _ = try panel(.tc) }
        return (try BPFMap.openPinned("\(bpffsRoot)/pcn_log_ring"), try BPFMap.openPinned("\(bpffsRoot)/pcn_log_lost"))
    }

    /// The tables of a cube, opened, for its cube-host: those of the cube (`fdb`), its µCubes'
    /// private ones (`private/<program>-<index>/<table>`), and the shared and public ones its programs
    /// use (`shared/<set>/<table>`, `public/<table>`). The µCube prog arrays are not handed out.
    /// `only` picks some by name.
    public func tables(of name: String, only: [String]? = nil) throws -> [(name: String, map: BPFMap)] {
        _ = try existing(name)
        let directory = "\(bpffsRoot)/cubes/\(name)"
        var found: [(String, String)] = []
        let frameworkArrays: Set = ["pcn_ingress_programs", "pcn_egress_programs", "pcn_egress_programs_xdp"]
        for table in (try? FileManager.default.contentsOfDirectory(atPath: directory + "/maps")) ?? [] where !frameworkArrays.contains(table) {
            found.append((table, "\(directory)/maps/\(table)"))
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where entry.hasPrefix("private-") {
            for table in (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(entry)")) ?? [] {
                found.append(("private/\(entry.dropFirst("private-".count))/\(table)", "\(directory)/\(entry)/\(table)"))
            }
        }
        for pin in Set(stages.values.filter { $0.cube == name }.flatMap(\.sharedPins)) {
            found.append((String(pin.dropFirst(bpffsRoot.count + 1)), pin))
        }
        if let only {
            let unknown = only.filter { wanted in !found.contains { $0.0 == wanted } }
            guard unknown.isEmpty else {
                throw DatapathError("cube '\(name)' has no table \(unknown.joined(separator: ", ")) (it has \(found.map(\.0).sorted().joined(separator: ", ")))")
            }
            found = found.filter { only.contains($0.0) }
        }
        return try found.sorted { $0.0 < $1.0 }.map { ($0.0, try BPFMap.openPinned($0.1)) }
    }

    /// The service of a cube.
    public func service(of name: String) throws -> String { try existing(name).service }

    /// The transparent cubes attached to each netdev, in ingress order.
    public func netdevChains() -> [String: [String]] { topology.netdevChains }

    // MARK: - Helpers

    func sourceOf(service: String) throws -> String {
        let candidates = serviceDirectories.map { "\($0)/\(service)/\(service).c" }
        guard Topology.isValidName(service), let source = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw DatapathError("unknown service '\(service)': no datapath at \(candidates.joined(separator: " or "))")
        }
        return source
    }

    private func existing(_ name: String) throws -> Topology.Cube { try topology.existing(name) }
}

extension Topology {
    mutating func setPeer(_ peer: Peer, cube: String, port: String) {
        guard let index = cubes[cube]?.ports.firstIndex(where: { $0.name == port }) else { return }
        cubes[cube]!.ports[index].peer = peer
    }
}

extension CubeStats {
    static let reasons = ["service", "unknown-port", "no-peer", "missed-tail-call", "bad-verdict", "slow-path-full"]

    /// The framework's reasons by name, then the service's: those it declared by their names (0 when
    /// none happened), any other slot that counted something as `service-<n>`.
    init(reading map: BPFMap, serviceReasons: [UInt32: String]) throws {
        self.init()
        let framework = Int(PCN_DROP_REASONS.rawValue)
        var drops = [UInt64](repeating: 0, count: framework + Int(PCN_SERVICE_DROP_REASONS))
        for stats in try map.lookupPerCPU(UInt32(0), as: pcn_cube_stats.self) {
            redirected += stats.redirected
            passed += stats.passed
            toSlowPath += stats.to_slow_path
            withUnsafeBytes(of: stats.drops) { d in
                for i in 0..<drops.count { drops[i] += d.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }
            }
        }
        for (i, reason) in Self.reasons.enumerated() where i < framework { self.drops[reason] = drops[i] }
        for slot in 0..<Int(PCN_SERVICE_DROP_REASONS) {
            let count = drops[framework + slot]
            if let name = serviceReasons[UInt32(slot)] {
                self.drops[name, default: 0] += count
            } else if count > 0 {
                self.drops["service-\(slot)"] = count
            }
        }
    }
}

extension PortCounters {
    /// Reads entries 0..<count of a per-CPU array of `struct pcn_port_stats`.
    static func read(_ map: BPFMap, count: Int) throws -> [PortCounters] {
        try (0..<count).map { index in
            var counters = PortCounters()
            for stats in try map.lookupPerCPU(UInt32(index), as: pcn_port_stats.self) {
                counters.rxPackets += stats.rx_packets
                counters.rxBytes += stats.rx_bytes
                counters.txPackets += stats.tx_packets
                counters.txBytes += stats.tx_bytes
            }
            return counters
        }
    }
}

import BPFKit
import Foundation
import Logging
import PCNDatapathABI
#if canImport(Glibc)
import Glibc
#endif

/// A datapath request that cannot be carried out; the message names what was wrong.
public struct DatapathError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Every cube, port and netdev attachment of the TC datapath, and the patch panel that chains them.
/// All changes are made as: build the new programs (compile, load, verify), then swap them in with
/// one prog-array update or one filter replacement; a failure before the swap changes nothing.
public actor Datapath {
    public enum Peer: Equatable, CustomStringConvertible, Sendable {
        case none
        case netdev(String)
        case cube(String, String)

        public init(parsing text: String) {
            if text.isEmpty { self = .none; return }
            if let colon = text.firstIndex(of: ":") {
                self = .cube(String(text[..<colon]), String(text[text.index(after: colon)...]))
            } else {
                self = .netdev(text)
            }
        }

        public var description: String {
            switch self {
            case .none: ""
            case .netdev(let name): name
            case .cube(let cube, let port): "\(cube):\(port)"
            }
        }
    }

    struct Port {
        var name: String
        var index: Int
        var peer: Peer = .none
    }

    final class Cube {
        let name: String
        let service: String
        /// The service's datapath source file.
        var source = ""
        let node: UInt32
        var ports: [Port] = []
        var object: BPFObject?
        var stats: BPFMap?
        /// µCube code given with `reload`, by index (0 replaces the service's MASTER code).
        var code: [Int: String] = [:]
        /// Loaded SLAVE µCubes, by index.
        var slaves: [Int: BPFObject] = [:]
        /// The egress program's code, if the cube has one, and the loaded program.
        var egressCode: String?
        var egress: BPFObject?

        init(name: String, service: String, node: UInt32) {
            self.name = name
            self.service = service
            self.node = node
        }

        func port(_ name: String) -> Port? { ports.first { $0.name == name } }
    }

    /// The entry program of a netdev that is the peer of a cube port.
    struct NetdevEntry {
        let ifindex: Int32
        let cube: String
        let port: String
        let object: BPFObject
    }

    private let compiler: BPFCompiler
    private let registryPath: String
    private let bpfDirectory: String
    private let serviceDirectories: [String]
    private let bpffsRoot: String
    private let logger: Logger
    private var cubes: [String: Cube] = [:]
    private var netdevs: [String: NetdevEntry] = [:]
    private var nodes: BPFMap?
    private var injector: PacketInjector?

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

    /// The cube that owns patch-panel slot `node`, with its service.
    public func cube(node: UInt32) -> (name: String, service: String)? {
        cubes.values.first { $0.node == node }.map { ($0.name, $0.service) }
    }

    /// Where a netdev's entry program is pinned (what the kernel runs first for its packets).
    public func netdevEntryPin(_ device: String) -> String { "\(bpffsRoot)/netdevs/\(device)/ingress" }

    // MARK: - Registry

    /// What pcn-core knows of the datapath, saved after every change so that a restarted pcn-core
    /// adopts the pinned programs and maps instead of starting over.
    struct Registry: Codable {
        struct CubeEntry: Codable {
            var name: String
            var service: String
            var node: UInt32
            var ports: [CubeDescription.PortDescription]
            /// µCube code given with `reload`, by index.
            var code: [String: String]?
            /// The egress program's code, if any.
            var egressCode: String?
        }
        var cubes: [CubeEntry]
    }

    private func saveRegistry() throws {
        let registry = Registry(cubes: cubes.values.sorted { $0.name < $1.name }.map { cube in
            .init(name: cube.name, service: cube.service, node: cube.node,
                  ports: cube.ports.map { .init(name: $0.name, index: $0.index, peer: $0.peer.description) },
                  code: cube.code.isEmpty ? nil : Dictionary(uniqueKeysWithValues: cube.code.map { ("\($0.key)", $0.value) }),
                  egressCode: cube.egressCode)
        })
        let data = try JSONEncoder().encode(registry)
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

    /// Rebuilds the registry from the saved one and re-installs each cube and netdev entry over its
    /// pins (an atomic replacement: packets keep flowing through the old programs until the swap).
    /// Returns the number of cubes adopted.
    public func adopt() throws -> Int {
        guard let data = FileManager.default.contents(atPath: registryPath) else { return 0 }
        let registry: Registry
        do {
            registry = try JSONDecoder().decode(Registry.self, from: data)
        } catch {
            throw DatapathError("\(registryPath) is corrupt (\(error)); move it away to start with an empty datapath")
        }
        for entry in registry.cubes {
            let cube = Cube(name: entry.name, service: entry.service, node: entry.node)
            cube.source = try sourceOf(service: entry.service)
            cube.ports = entry.ports.map { Port(name: $0.name, index: $0.index, peer: Peer(parsing: $0.peer)) }
            for (index, code) in entry.code ?? [:] {
                if let index = Int(index) { cube.code[index] = code }
            }
            cube.egressCode = entry.egressCode
            cubes[entry.name] = cube
        }
        for cube in cubes.values {
            // A netdev that vanished while we were down: its port loses the peer.
            for (index, port) in cube.ports.enumerated() {
                if case .netdev(let device) = port.peer, if_nametoindex(device) == 0 {
                    logger.warning("netdev '\(device)' of \(cube.name):\(port.name) is gone; peer reset")
                    cube.ports[index].peer = .none
                }
            }
            try install(cube)
            for port in cube.ports {
                if case .netdev(let device) = port.peer {
                    try attachNetdev(device, ifindex: Int32(if_nametoindex(device)), cube: cube, port: port.index, portName: port.name)
                }
            }
        }
        try saveRegistry()
        return cubes.count
    }

    // MARK: - Requests

    public func createCube(name: String, service: String, type: String) throws -> UInt32 {
        guard cubes[name] == nil else { throw DatapathError("cube '\(name)' already exists") }
        guard isValidName(name) else { throw DatapathError("cube name '\(name)' is not valid (letters, digits, - and _, at most 32)") }
        guard type.uppercased() == "TC" else {
            throw DatapathError("cube '\(name)': type \(type) is not supported yet (TC only)")
        }
        let source = try sourceOf(service: service)
        guard let node = freeNode() else { throw DatapathError("no free patch-panel slot (\(PCN_MAX_NODES - 1) cubes)") }
        let cube = Cube(name: name, service: service, node: node)
        cube.source = source
        try install(cube)
        cubes[name] = cube
        try saveRegistry()
        logger.info("created cube", metadata: ["cube": "\(name)", "service": "\(service)", "node": "\(node)"])
        return node
    }

    public func destroyCube(name: String) throws {
        let cube = try existing(name)
        for port in cube.ports where port.peer != .none {
            throw DatapathError("cube '\(name)' port '\(port.name)' is connected to '\(port.peer)': remove its peer first")
        }
        try nodesMap().delete(cube.node)
        cubes.removeValue(forKey: name)
        removePins(of: cube)
        try saveRegistry()
        logger.info("destroyed cube", metadata: ["cube": "\(name)"])
    }

    public func addPort(cube name: String, port: String) throws -> Int {
        let cube = try existing(name)
        guard cube.port(port) == nil else { throw DatapathError("cube '\(name)' already has a port '\(port)'") }
        guard isValidName(port) else { throw DatapathError("port name '\(port)' is not valid") }
        let used = Set(cube.ports.map(\.index))
        guard let index = (0..<Int(PCN_MAX_PORTS)).first(where: { !used.contains($0) }) else {
            throw DatapathError("cube '\(name)' has the maximum of \(PCN_MAX_PORTS) ports")
        }
        cube.ports.append(Port(name: port, index: index))
        do {
            try install(cube)
        } catch {
            cube.ports.removeLast()
            throw error
        }
        try saveRegistry()
        return index
    }

    public func removePort(cube name: String, port: String) throws {
        let cube = try existing(name)
        guard let existingPort = cube.port(port) else { throw DatapathError("cube '\(name)' has no port '\(port)'") }
        if existingPort.peer != .none { try setPeer(cube: name, port: port, peer: .none) }
        cube.ports.removeAll { $0.name == port }
        try install(cube)
        try saveRegistry()
    }

    /// Sets a port's peer. A cube peer is linked both ways; a netdev gets an entry program.
    public func setPeer(cube name: String, port portName: String, peer: Peer) throws {
        let cube = try existing(name)
        guard let port = cube.port(portName) else { throw DatapathError("cube '\(name)' has no port '\(portName)'") }
        if port.peer == peer { return }
        // Validate everything before changing anything.
        var ifindex: Int32 = 0
        switch peer {
        case .none:
            break
        case .netdev(let device):
            ifindex = Int32(if_nametoindex(device))
            guard ifindex > 0 else { throw DatapathError("netdev '\(device)' does not exist") }
            if let user = netdevs[device], !(user.cube == name && user.port == portName) {
                throw DatapathError("netdev '\(device)' is already in use by \(user.cube):\(user.port)")
            }
        case .cube(let otherName, let otherPort):
            guard let other = cubes[otherName] else { throw DatapathError("peer cube '\(otherName)' does not exist") }
            guard let otherEnd = other.port(otherPort) else { throw DatapathError("peer cube '\(otherName)' has no port '\(otherPort)'") }
            guard otherEnd.peer == .none || otherEnd.peer == .cube(name, portName) else {
                throw DatapathError("port \(otherName):\(otherPort) is already connected to '\(otherEnd.peer)'")
            }
            guard !(otherName == name && otherPort == portName) else { throw DatapathError("a port cannot be its own peer") }
        }
        // Unlink the old peer.
        let old = port.peer
        try apply(cube, port: portName, peer: peer)
        switch old {
        case .netdev(let device):
            if let entry = netdevs.removeValue(forKey: device) {
                try? TrafficControl.detach(ifindex: entry.ifindex, direction: .ingress)
                try? TrafficControl.detach(ifindex: entry.ifindex, direction: .egress)
                unlink("\(bpffsRoot)/netdevs/\(device)/ingress")
                unlink("\(bpffsRoot)/netdevs/\(device)/egress")
                rmdir("\(bpffsRoot)/netdevs/\(device)")
            }
        case .cube(let otherName, let otherPort):
            if let other = cubes[otherName], other.port(otherPort)?.peer == .cube(name, portName) {
                try apply(other, port: otherPort, peer: .none)
            }
        case .none:
            break
        }
        // Link the new one.
        switch peer {
        case .netdev(let device):
            try attachNetdev(device, ifindex: ifindex, cube: cube, port: port.index, portName: portName)
        case .cube(let otherName, let otherPort):
            if let other = cubes[otherName], other.port(otherPort)?.peer != .cube(name, portName) {
                try apply(other, port: otherPort, peer: .cube(name, portName))
            }
        case .none:
            break
        }
        try saveRegistry()
        logger.info("port peer set", metadata: ["port": "\(name):\(portName)", "peer": "\(peer)"])
    }

    /// Replaces µCube `index` of a cube with `code` (C with a handle_rx, like a service's datapath):
    /// compiled, loaded and verified, then swapped in atomically. Index 0 is the MASTER; a SLAVE is
    /// reached with call_ingress_program(ctx, index). On a compiler or verifier error nothing changes
    /// and the error carries the compiler's or verifier's message.
    public func reload(cube name: String, index: Int, code: String, direction: Direction = .ingress) throws {
        let cube = try existing(name)
        if direction == .egress {
            guard index == 0 else { throw DatapathError("a cube has one egress program: index must be 0, not \(index)") }
            let previous = cube.egressCode
            cube.egressCode = code
            do {
                try installEgress(cube)
            } catch {
                cube.egressCode = previous
                throw error
            }
            try saveRegistry()
            logger.info("reloaded the egress program", metadata: ["cube": "\(name)"])
            return
        }
        guard (0..<Int(PCN_MAX_UCUBES)).contains(index) else {
            throw DatapathError("µCube index \(index) is out of range 0...\(PCN_MAX_UCUBES - 1)")
        }
        let previous = cube.code[index]
        cube.code[index] = code
        do {
            if index == 0 { try install(cube) } else { try installSlave(cube, index: index) }
        } catch {
            cube.code[index] = previous
            throw error
        }
        try saveRegistry()
        logger.info("reloaded µCube", metadata: ["cube": "\(name)", "index": "\(index)"])
    }

    public enum Direction: Sendable {
        /// As if the frame arrived on the port: the cube processes it.
        case ingress
        /// Out of the port, to its peer (a netdev, or the peer cube's port).
        case egress
    }

    /// Injects `frame` at a port, with `md` as the metadata its next handle_rx sees.
    public func packetOut(cube name: String, port portName: String, direction: Direction, md: (UInt32, UInt32, UInt32), frame: [UInt8]) throws {
        let cube = try existing(name)
        guard let port = cube.port(portName) else { throw DatapathError("cube '\(name)' has no port '\(portName)'") }
        guard frame.count >= 14, frame.count <= 9000 else {
            throw DatapathError("packet-out frame of \(frame.count) bytes (must be 14...9000)")
        }
        var trailer = pcn_packet_out_trailer()
        trailer.magic = PCN_PACKET_OUT_MAGIC
        trailer.md = md
        switch (direction, port.peer) {
        case (.ingress, _):
            trailer.kind = UInt16(PCN_OUT_TO_CUBE.rawValue)
            trailer.target = cube.node
            trailer.port = UInt16(port.index)
        case (.egress, .netdev(let device)):
            trailer.kind = UInt16(PCN_OUT_TO_NETDEV.rawValue)
            trailer.target = if_nametoindex(device)
        case (.egress, .cube(let otherName, let otherPort)):
            guard let other = cubes[otherName], let otherEnd = other.port(otherPort) else {
                throw DatapathError("peer \(otherName):\(otherPort) of \(name):\(portName) does not exist")
            }
            trailer.kind = UInt16(PCN_OUT_TO_CUBE.rawValue)
            trailer.target = other.node
            trailer.port = UInt16(otherEnd.index)
        case (.egress, .none):
            throw DatapathError("port \(name):\(portName) has no peer to send to")
        }
        try injectorReady().send(frame: frame, trailer: trailer)
    }

    private func injectorReady() throws -> PacketInjector {
        if let injector { return injector }
        var hasher = FNV1a()
        hasher.add(bpffsRoot)
        let tag = String(String(hasher.value, radix: 16).suffix(6))
        let made = try PacketInjector(tag: tag, compiler: compiler, bpfDirectory: bpfDirectory, bpffsRoot: bpffsRoot)
        injector = made
        return made
    }

    /// A netdev was deleted: every port whose peer it was loses its peer (and its entry filter with it).
    public func netdevRemoved(ifindex: Int32) {
        for (device, entry) in netdevs where entry.ifindex == ifindex {
            logger.warning("netdev '\(device)' is gone; peer of \(entry.cube):\(entry.port) reset")
            do {
                try setPeer(cube: entry.cube, port: entry.port, peer: .none)
            } catch {
                logger.error("cannot reset the peer of \(entry.cube):\(entry.port): \(error)")
            }
        }
    }

    /// Releases what only a running pcn-core needs (the packet-out veth pair). Pins stay.
    public func shutdown() {
        injector?.remove()
        injector = nil
    }

    public func stats(cube name: String) throws -> CubeStats {
        let cube = try existing(name)
        guard let map = cube.stats else { throw DatapathError("cube '\(name)' has no counters") }
        var stats = try CubeStats(reading: map)
        let ports = try BPFMap.openPinned("\(bpffsRoot)/cubes/\(name)/maps/pcn_port_stats")
        let perPort = try PortCounters.read(ports, count: Int(PCN_MAX_PORTS))
        for port in cube.ports { stats.ports[port.name] = perPort[port.index] }
        // The cube received what its ports received (including ports removed since).
        stats.rxPackets = perPort.reduce(0) { $0 + $1.rxPackets }
        stats.rxBytes = perPort.reduce(0) { $0 + $1.rxBytes }
        return stats
    }

    public func describe() -> [CubeDescription] {
        cubes.values.sorted { $0.name < $1.name }.map { cube in
            CubeDescription(name: cube.name, service: cube.service, node: cube.node,
                            ports: cube.ports.map { .init(name: $0.name, index: $0.index, peer: $0.peer.description) })
        }
    }

    // MARK: - Programs

    private func apply(_ cube: Cube, port: String, peer: Peer) throws {
        guard let index = cube.ports.firstIndex(where: { $0.name == port }) else { return }
        let previous = cube.ports[index].peer
        cube.ports[index].peer = peer
        do {
            try install(cube)
        } catch {
            cube.ports[index].peer = previous
            throw error
        }
    }

    /// Builds the cube's program for its current ports and peers and swaps it into the patch panel.
    private func install(_ cube: Cube) throws {
        let object = try build(cube, index: 0, config: cubeConfig(cube))
        let directory = "\(bpffsRoot)/cubes/\(cube.name)"
        // The cube's tables and counters are pinned: every reload, and a restarted pcn-core, keeps them.
        try object.reusePinnedMaps(in: directory + "/maps")
        do {
            try object.load()
        } catch {
            throw DatapathError("cube '\(cube.name)': the \(cube.service) datapath was rejected: \(error.summary)")
        }
        for path in ["\(bpffsRoot)/cubes", directory, directory + "/maps"] { mkdir(path, 0o700) }
        try object.pinMaps(in: directory + "/maps")
        let program = try object.programFD("pcn_cube_ingress")
        try nodesMap().update(cube.node, UInt32(bitPattern: program))
        try object.pinProgram("pcn_cube_ingress", at: "\(directory)/ingress")
        cube.object = object
        if cube.stats == nil { cube.stats = try object.map("pcn_stats") }
        // SLAVEs and the egress program carry the same load-time constants: rebuild them alongside.
        for index in cube.code.keys.sorted() where index > 0 { try installSlave(cube, index: index) }
        try installEgress(cube)
    }

    /// Attaches the cube's egress program (if it has one) at the TC egress of every netdev peer.
    private func installEgress(_ cube: Cube) throws {
        guard let code = cube.egressCode else { return }
        let directory = "\(bpffsRoot)/cubes/\(cube.name)"
        let path = try compiler.compile(sourceText: code, name: "\(cube.name)-egress", defines: ["PCN_EGRESS=1"])
        let object = try BPFObject(path: path, pinRoot: bpffsRoot)
        try object.setSection(".rodata.pcn", to: cubeConfig(cube))
        try object.reusePinnedMaps(in: directory + "/maps")
        do {
            try object.load()
        } catch {
            throw DatapathError("cube '\(cube.name)': the egress program was rejected: \(error.summary)")
        }
        let program = try object.programFD("pcn_cube_egress")
        for port in cube.ports {
            guard case .netdev(let device) = port.peer else { continue }
            let ifindex = Int32(if_nametoindex(device))
            guard ifindex > 0 else { continue }
            try TrafficControl.attach(ifindex: ifindex, direction: .egress, programFD: program)
            for path in ["\(bpffsRoot)/netdevs", "\(bpffsRoot)/netdevs/\(device)"] { mkdir(path, 0o700) }
            try object.pinProgram("pcn_cube_egress", at: "\(bpffsRoot)/netdevs/\(device)/egress")
        }
        cube.egress = object
    }

    private func cubeConfig(_ cube: Cube) -> pcn_cube_config {
        var config = pcn_cube_config()
        config.cube_id = cube.node
        // Only ports up to the highest index in use get forwarding code (the verifier drops the rest).
        config.port_count = UInt32((cube.ports.map(\.index).max() ?? -1) + 1)
        withUnsafeMutableBytes(of: &config.peers) { raw in
            let peers = raw.bindMemory(to: pcn_port_peer.self)
            for port in cube.ports { peers[port.index] = peerEntry(port.peer) }
        }
        return config
    }

    /// Compiles (through the cache) and opens µCube `index` of a cube with its constants set.
    private func build(_ cube: Cube, index: Int, config: pcn_cube_config) throws -> BPFObject {
        let objectPath: String
        let defines = ["PCN_UCUBE_INDEX=\(index)"]
        if let code = cube.code[index] {
            objectPath = try compiler.compile(sourceText: code, name: "\(cube.name)-ucube\(index)", defines: defines)
        } else {
            objectPath = try compiler.compile(file: cube.source, name: cube.service, defines: defines)
        }
        let object = try BPFObject(path: objectPath, pinRoot: bpffsRoot)
        try object.setSection(".rodata.pcn", to: config)
        return object
    }

    /// Loads SLAVE `index` over the cube's pinned maps and puts it in the cube's µCube array.
    private func installSlave(_ cube: Cube, index: Int) throws {
        let directory = "\(bpffsRoot)/cubes/\(cube.name)"
        let object = try build(cube, index: index, config: cubeConfig(cube))
        try object.reusePinnedMaps(in: directory + "/maps")
        do {
            try object.load()
        } catch {
            throw DatapathError("cube '\(cube.name)' µCube \(index) was rejected: \(error.summary)")
        }
        let programs = try BPFMap.openPinned(directory + "/maps/pcn_ingress_programs")
        try programs.update(UInt32(index), UInt32(bitPattern: try object.programFD("pcn_cube_ingress")))
        cube.slaves[index] = object
    }

    private func peerEntry(_ peer: Peer) -> pcn_port_peer {
        var entry = pcn_port_peer()
        switch peer {
        case .none:
            entry.kind = UInt32(PCN_PEER_NONE.rawValue)
        case .netdev(let device):
            entry.kind = UInt32(PCN_PEER_NETDEV.rawValue)
            entry.target = if_nametoindex(device)
        case .cube(let other, let port):
            entry.kind = UInt32(PCN_PEER_CUBE.rawValue)
            entry.target = cubes[other]?.node ?? 0
            entry.peer_port = UInt32(cubes[other]?.port(port)?.index ?? Int(PCN_NO_PORT))
        }
        return entry
    }

    private func attachNetdev(_ device: String, ifindex: Int32, cube: Cube, port: Int, portName: String) throws {
        let objectPath = try compiler.compile(file: "\(bpfDirectory)/core/netdev_tc.c", name: "netdev_tc")
        let object = try BPFObject(path: objectPath, pinRoot: bpffsRoot)
        try object.setSection(".rodata.pcn", to: pcn_netdev_config(target_node: cube.node, target_port: UInt32(port)))
        do {
            try object.load()
        } catch {
            throw DatapathError("netdev '\(device)': entry program rejected: \(error.summary)")
        }
        try TrafficControl.attach(ifindex: ifindex, direction: .ingress, programFD: try object.programFD("pcn_netdev_ingress"))
        mkdir("\(bpffsRoot)/netdevs", 0o700)
        mkdir("\(bpffsRoot)/netdevs/\(device)", 0o700)
        try object.pinProgram("pcn_netdev_ingress", at: "\(bpffsRoot)/netdevs/\(device)/ingress")
        netdevs[device] = NetdevEntry(ifindex: ifindex, cube: cube.name, port: portName, object: object)
    }

    private func nodesMap() throws -> BPFMap {
        if let nodes { return nodes }
        let map = try BPFMap.openPinned("\(bpffsRoot)/pcn_nodes_tc")
        nodes = map
        return map
    }

    private func removePins(of cube: Cube) {
        let directory = "\(bpffsRoot)/cubes/\(cube.name)"
        if let maps = try? FileManager.default.contentsOfDirectory(atPath: directory + "/maps") {
            for map in maps { unlink("\(directory)/maps/\(map)") }
        }
        rmdir(directory + "/maps")
        unlink("\(directory)/ingress")
        rmdir(directory)
    }

    private func sourceOf(service: String) throws -> String {
        let candidates = serviceDirectories.map { "\($0)/\(service)/\(service).c" }
        guard isValidName(service), let source = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw DatapathError("unknown service '\(service)': no datapath at \(candidates.joined(separator: " or "))")
        }
        return source
    }

    private func existing(_ name: String) throws -> Cube {
        guard let cube = cubes[name] else { throw DatapathError("cube '\(name)' does not exist") }
        return cube
    }

    private func freeNode() -> UInt32? {
        let used = Set(cubes.values.map(\.node))
        return (1..<UInt32(PCN_MAX_NODES)).first { !used.contains($0) }
    }

    private func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 32 && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
    }
}

public struct CubeDescription: Codable, Sendable {
    public struct PortDescription: Codable, Sendable {
        public var name: String
        public var index: Int
        public var peer: String
    }
    public var name: String
    public var service: String
    public var node: UInt32
    public var ports: [PortDescription]
}

/// A cube's counters summed over CPUs.
public struct CubeStats: Codable, Sendable {
    /// Received by the cube: the sum over its ports.
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var redirected: UInt64 = 0
    public var passed: UInt64 = 0
    public var toSlowPath: UInt64 = 0
    public var drops: [String: UInt64] = [:]
    /// Packet-in records waiting in pcn-core for the cube's subscriber, and those dropped meanwhile.
    public var slowPathQueued: Int = 0
    public var slowPathDropped: UInt64 = 0
    /// Per port, by name.
    public var ports: [String: PortCounters] = [:]

    static let reasons = ["service", "unknown-port", "no-peer", "missed-tail-call", "bad-verdict", "slow-path-full"]

    init(reading map: BPFMap) throws {
        var drops = [UInt64](repeating: 0, count: Int(PCN_DROP_REASONS.rawValue))
        for stats in try map.lookupPerCPU(UInt32(0), as: pcn_cube_stats.self) {
            redirected += stats.redirected
            passed += stats.passed
            toSlowPath += stats.to_slow_path
            withUnsafeBytes(of: stats.drops) { d in
                for i in 0..<drops.count { drops[i] += d.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }
            }
        }
        for (i, reason) in Self.reasons.enumerated() where i < drops.count { self.drops[reason] = drops[i] }
    }
}

/// One port's counters summed over CPUs.
public struct PortCounters: Codable, Sendable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0

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

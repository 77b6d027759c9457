import Foundation
import IPC
import PCNDatapathABI

// The requests pcn-core answers, each with its answer type. Field names are the wire names.

public struct Ping: CoreCall, APICall, EmptyCall {
    public typealias Answer = Pong
    public static let method = Method.ping
    public init() {}
    public init(from decoder: Decoder) throws {}
}

public struct Pong: Codable, Sendable {
    public var component: String
    public var pid: Int32
    public init(component: String, pid: Int32) {
        self.component = component
        self.pid = pid
    }
}

public struct CubeCreate: CoreCall {
    public typealias Answer = CubeNode
    public static let method = Method.cubeCreate
    public var name: String
    public var service: String
    public var type: String?
    public var transparent: Bool?
    public init(name: String, service: String, type: String? = nil, transparent: Bool? = nil) {
        self.name = name
        self.service = service
        self.type = type
        self.transparent = transparent
    }
}

public struct CubeNode: Codable, Sendable {
    public var node: UInt32
    public init(node: UInt32) { self.node = node }
}

/// Removes a cube with its links in one change (refused, nothing changed, while transparent cubes
/// are attached to its ports). `ifExists`: a cube that is not there is not an error.
public struct CubeDestroy: CoreCall {
    public typealias Answer = Done
    public static let method = Method.cubeDestroy
    public var name: String
    public var ifExists: Bool?
    public init(name: String, ifExists: Bool? = nil) {
        self.name = name
        self.ifExists = ifExists
    }
}

/// A cube's whole datapath part as one change: created if missing (`service`, `type`,
/// `transparent`), its log level, its ports (added, removed) and their peers. Checked whole before
/// anything is built; one reconcile; a refusal changes nothing. The answer is the cube as it now is.
public struct CubeConfigure: CoreCall {
    public typealias Answer = CubeDescription
    public static let method = Method.cubeConfigure
    public struct Port: Codable, Sendable, Equatable {
        public var name: String
        /// A netdev, `cube:port`, or "" for none.
        public var peer: String
        /// The port had this peer before the change: if it cannot be linked any more (its netdev
        /// vanished), the port stays unlinked rather than refusing a change made elsewhere.
        public var kept: Bool?
        public init(name: String, peer: String, kept: Bool? = nil) {
            self.name = name
            self.peer = peer
            self.kept = kept
        }
    }
    public var name: String
    public var service: String
    public var type: String
    public var transparent: Bool
    public var loglevel: String
    /// Nil for a transparent cube.
    public var ports: [Port]?
    /// Peers that cannot be linked yet (the other cube is not there) are left unset instead of
    /// refusing the change (a replay, where the other cube's own replay links both ends).
    public var lenientPeers: Bool?
    /// A namespace pcn-<name> with a twin interface per port (set when the cube is created).
    public var shadow: Bool?
    /// Every packet of the cube's ports copied to its twin (needs `shadow`).
    public var span: Bool?
    public init(name: String, service: String, type: String, transparent: Bool, loglevel: String, ports: [Port]?,
                lenientPeers: Bool? = nil, shadow: Bool? = nil, span: Bool? = nil) {
        self.name = name
        self.service = service
        self.type = type
        self.transparent = transparent
        self.loglevel = loglevel
        self.ports = ports
        self.lenientPeers = lenientPeers
        self.shadow = shadow
        self.span = span
    }
}

public struct CubeList: CoreCall, EmptyCall {
    public typealias Answer = [CubeDescription]
    public static let method = Method.cubeList
    public init() {}
    public init(from decoder: Decoder) throws {}
}

public struct CubeStatsQuery: CoreCall {
    public typealias Answer = CubeStats
    public static let method = Method.cubeStats
    public var name: String
    public init(name: String) { self.name = name }
}

public struct CubeReload: CoreCall {
    public typealias Answer = Done
    public static let method = Method.cubeReload
    public var name: String
    public var index: Int
    /// C with a `handle_rx`; nil: the service's own source again.
    public var code: String?
    /// ingress (default) or egress.
    public var direction: String?
    public init(name: String, index: Int, code: String?, direction: String? = nil) {
        self.name = name
        self.index = index
        self.code = code
        self.direction = direction
    }
}

public struct CubeAttach: CoreCall {
    public typealias Answer = Done
    public static let method = Method.cubeAttach
    public var cube: String
    /// A netdev or `cube:port`.
    public var to: String
    /// first | last | auto (default).
    public var position: String?
    public var before: String?
    public var after: String?
    public init(cube: String, to: String, position: String? = nil, before: String? = nil, after: String? = nil) {
        self.cube = cube
        self.to = to
        self.position = position
        self.before = before
        self.after = after
    }
}

public struct CubeDetach: CoreCall {
    public typealias Answer = Done
    public static let method = Method.cubeDetach
    public var name: String
    public init(name: String) { self.name = name }
}

public struct CubeSetLogLevel: CoreCall {
    public typealias Answer = Done
    public static let method = Method.cubeSetLogLevel
    public var name: String
    public var level: String
    public init(name: String, level: String) {
        self.name = name
        self.level = level
    }
}

/// What a shadow cube's twins carry in its namespace: the ports' MACs and addresses (the service
/// knows them, pcn-core owns the namespace). Only for the cube's own cube-host.
public struct ShadowConfigure: CoreCall {
    public typealias Answer = Done
    public static let method = Method.shadowConfigure
    public struct Interface: Codable, Sendable, Equatable {
        /// The port (its twin has its name).
        public var name: String
        /// `aa:bb:cc:dd:ee:ff`; nil leaves the twin's MAC as it is.
        public var mac: String?
        /// Addresses with their prefix length (`10.0.1.254/24`); the twin gets exactly these.
        public var addresses: [String]
        public init(name: String, mac: String?, addresses: [String]) {
            self.name = name
            self.mac = mac
            self.addresses = addresses
        }
    }
    public var cube: String
    public var interfaces: [Interface]
    public init(cube: String, interfaces: [Interface]) {
        self.cube = cube
        self.interfaces = interfaces
    }
}

/// A cube's tables as fds (in the answer's order). Only for the cube's own cube-host.
public struct CubeTables: CoreCall {
    public typealias Answer = [TableDescription]
    public static let method = Method.cubeTables
    public var name: String
    public var tables: [String]?
    public init(name: String, tables: [String]? = nil) {
        self.name = name
        self.tables = tables
    }
}

public struct TableDescription: Codable, Sendable {
    public var name: String
    public var type: UInt32
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    /// The key's and value's types from the map's BTF, as JSON (BPFMap.typeDescriptions); nil without BTF.
    public var keyType: String?
    public var valueType: String?
    public init(name: String, type: UInt32, keySize: Int, valueSize: Int, maxEntries: Int, keyType: String? = nil, valueType: String? = nil) {
        self.keyType = keyType
        self.valueType = valueType
        self.name = name
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
    }
}

public struct PortAdd: CoreCall {
    public typealias Answer = PortIndex
    public static let method = Method.portAdd
    public var cube: String
    public var port: String
    public init(cube: String, port: String) {
        self.cube = cube
        self.port = port
    }
}

public struct PortIndex: Codable, Sendable {
    public var index: Int
    public init(index: Int) { self.index = index }
}

public struct PortRemove: CoreCall {
    public typealias Answer = Done
    public static let method = Method.portRemove
    public var cube: String
    public var port: String
    public init(cube: String, port: String) {
        self.cube = cube
        self.port = port
    }
}

public struct PortSetPeer: CoreCall {
    public typealias Answer = Done
    public static let method = Method.portSetPeer
    public var cube: String
    public var port: String
    public var peer: String
    public init(cube: String, port: String, peer: String) {
        self.cube = cube
        self.port = port
        self.peer = peer
    }
}

/// The transparent cubes at a netdev or `cube:port`, in chain order.
public struct ChainList: CoreCall {
    public typealias Answer = [String]
    public static let method = Method.chainList
    public var at: String
    public init(at: String) { self.at = at }
}

/// The transparent cubes of every netdev, in ingress order.
public struct NetdevChains: CoreCall, EmptyCall {
    public typealias Answer = [String: [String]]
    public static let method = Method.netdevChains
    public init() {}
    public init(from decoder: Decoder) throws {}
}

/// Packet-in of `cube` goes to `subscriber` (default: the caller) instead of its cube-host.
public struct PacketInSubscribe: CoreCall {
    public typealias Answer = Done
    public static let method = Method.packetInSubscribe
    public var cube: String
    public var subscriber: String?
    public init(cube: String, subscriber: String? = nil) {
        self.cube = cube
        self.subscriber = subscriber
    }
}

public struct LogFormats: CoreCall, EmptyCall {
    public typealias Answer = [LogSource]
    public static let method = Method.logFormats
    public init() {}
    public init(from decoder: Decoder) throws {}
}

/// The datapath log ring and its lost counter, as two fds.
public struct LogRing: CoreCall, EmptyCall {
    public typealias Answer = Done
    public static let method = Method.logRing
    public init() {}
    public init(from decoder: Decoder) throws {}
}

// MARK: - Records

/// A cube as pcn-core has it (`cube.list`, `cube.configure`).
public struct CubeDescription: Codable, Sendable, Equatable {
    public struct Port: Codable, Sendable, Equatable {
        public var name: String
        public var index: Int
        /// A netdev, `cube:port`, or "".
        public var peer: String
        /// Transparent cubes on the port, innermost first.
        public var tcubes: [String]
        public init(name: String, index: Int, peer: String, tcubes: [String]) {
            self.name = name
            self.index = index
            self.peer = peer
            self.tcubes = tcubes
        }
    }
    public var name: String
    public var service: String
    public var type: String
    public var transparent: Bool
    /// The cube's identity in the datapath (its packet-in records carry it).
    public var node: UInt32
    /// A transparent cube's attachment (a netdev or cube:port).
    public var parent: String?
    public var loglevel: String
    public var ports: [Port]
    /// The cube's shadow namespace (`pcn-<name>`), if it has one; its twin of a port has the port's name.
    public var shadowNamespace: String?
    public var span: Bool?
    public init(name: String, service: String, type: String, transparent: Bool, node: UInt32, parent: String?, loglevel: String, ports: [Port],
                shadowNamespace: String? = nil, span: Bool? = nil) {
        self.name = name
        self.service = service
        self.type = type
        self.transparent = transparent
        self.node = node
        self.parent = parent
        self.loglevel = loglevel
        self.ports = ports
        self.shadowNamespace = shadowNamespace
        self.span = span
    }
}

/// One program's log formats (`log.formats`).
public struct LogSource: Codable, Sendable {
    public var source: UInt32
    public var cube: String
    public var service: String
    /// Format strings by call-site id (as text: JSON object keys).
    public var formats: [String: String]
    public init(source: UInt32, cube: String, service: String, formats: [String: String]) {
        self.source = source
        self.cube = cube
        self.service = service
        self.formats = formats
    }
}

/// A cube's counters summed over CPUs (`cube.stats`).
public struct CubeStats: Codable, Sendable {
    /// Received by the cube: the sum over its ports.
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var redirected: UInt64 = 0
    public var passed: UInt64 = 0
    public var toSlowPath: UInt64 = 0
    /// By reason: the framework's (`no-peer`, `missed-tail-call`, ...) and the service's own.
    public var drops: [String: UInt64] = [:]
    /// Packet-in records waiting in pcn-core for the cube's subscriber, and those dropped meanwhile.
    public var slowPathQueued: Int = 0
    public var slowPathDropped: UInt64 = 0
    /// Per port, by name.
    public var ports: [String: PortCounters] = [:]
    public init() {}
}

/// One port's counters summed over CPUs.
public struct PortCounters: Codable, Sendable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public init() {}
}

/// `packet-out`: a frame to inject at a cube's port (ingress: as if it arrived there; egress: out
/// of it). On the wire `struct pcn_packet_out_request` then the frame.
public struct PacketOut: Sendable {
    public enum Direction: UInt32, Sendable {
        case ingress = 0
        case egress = 1
    }
    public var cube: String
    public var port: String
    public var direction: Direction
    public var metadata: (UInt32, UInt32, UInt32)
    public var frame: [UInt8]

    public init(cube: String, port: String, direction: Direction, metadata: (UInt32, UInt32, UInt32), frame: [UInt8]) {
        self.cube = cube
        self.port = port
        self.direction = direction
        self.metadata = metadata
        self.frame = frame
    }

    static let headerSize = MemoryLayout<pcn_packet_out_request>.size

    public func encoded() -> [UInt8] {
        var request = pcn_packet_out_request()
        withUnsafeMutableBytes(of: &request.cube) { raw in
            for (index, byte) in cube.utf8.prefix(Int(PCN_NAME_MAX) - 1).enumerated() { raw[index] = byte }
        }
        withUnsafeMutableBytes(of: &request.port) { raw in
            for (index, byte) in port.utf8.prefix(Int(PCN_NAME_MAX) - 1).enumerated() { raw[index] = byte }
        }
        request.direction = direction.rawValue
        request.md = metadata
        return withUnsafeBytes(of: request) { Array($0) } + frame
    }

    public init(decoding payload: [UInt8]) throws {
        guard payload.count > Self.headerSize else {
            throw BusError(code: .badRequest, message: "packet-out: \(payload.count) bytes, shorter than its \(Self.headerSize)-byte header and a frame")
        }
        let request = payload.withUnsafeBytes { $0.loadUnaligned(as: pcn_packet_out_request.self) }
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        guard let direction = Direction(rawValue: request.direction) else {
            throw BusError(code: .badRequest, message: "packet-out: direction \(request.direction) is neither ingress (0) nor egress (1)")
        }
        self.init(cube: text(request.cube), port: text(request.port), direction: direction, metadata: request.md,
                  frame: Array(payload[Self.headerSize...]))
    }
}

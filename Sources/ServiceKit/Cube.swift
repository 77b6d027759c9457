import BPFKit
import Foundation
import Logging

/// A port of a cube: its name and the index the datapath uses.
public struct CubePort: Equatable, Sendable {
    public let name: String
    public let index: Int
    /// A netdev name or `cube:port`, empty when unconnected.
    public let peer: String
}

/// Which way a packet goes at a port.
public enum PacketDirection: UInt32, Sendable {
    /// As if the frame arrived on the port (transparent cubes: on in the ingress direction).
    case ingress = 0
    /// Out of the port, to its peer (transparent cubes: on in the egress direction).
    case egress = 1
}

/// One cube of the service, as its control plane sees it: its configuration (typed, as the
/// service declares it), its ports (names and the indices the datapath uses), its tables and a way
/// to send packets.
public final class Cube<Config> {
    struct Outgoing {
        var port: String
        var direction: PacketDirection
        var metadata: (UInt32, UInt32, UInt32)
        var frame: [UInt8]
    }

    public let name: String
    public let logger: Logger
    /// The configuration last applied.
    public internal(set) var config: Config?
    public internal(set) var ports: [CubePort] = []
    public internal(set) var transparent = false
    /// The cube's identity in the datapath (packet-in records carry it).
    var node: UInt32 = 0
    var tables: [String: BPFMap] = [:]
    var outbox: [Outgoing] = []

    init(name: String, service: String) {
        self.name = name
        var logger = Logger(label: "pcn.\(service)")
        logger[metadataKey: "cube"] = "\(name)"
        self.logger = logger
    }

    /// A table of the cube's datapath, by the name its C source gives it.
    public func table(_ name: String) throws -> BPFMap {
        guard let table = tables[name] else {
            throw ServiceFailure.refused("cube '\(self.name)' has no table '\(name)' (it has \(tables.keys.sorted().joined(separator: ", ")))")
        }
        return table
    }

    public func port(named name: String) -> CubePort? { ports.first { $0.name == name } }
    public func port(index: Int) -> CubePort? { ports.first { $0.index == index } }

    /// Sends `frame` out of `port` (or into the cube through it, for `.ingress`). Transparent cubes
    /// give no port: the frame goes on in `direction`. Sent when the current call returns.
    public func send(_ frame: [UInt8], port: String = "", direction: PacketDirection = .egress,
                     metadata: (UInt32, UInt32, UInt32) = (0, 0, 0)) {
        outbox.append(Outgoing(port: port, direction: direction, metadata: metadata, frame: frame))
    }
}

/// A change of one cube's configuration, handed to the service's checks and bindings: the new
/// configuration and the one before, both typed.
public struct Change<Config> {
    public let cube: Cube<Config>
    public let config: Config
    /// The configuration before; nil when the whole configuration is applied anew (created, or
    /// replayed to a restarted cube-host: the tables may already hold it).
    public let previous: Config?

    /// True if the value at `path` differs from before (always true when applied anew).
    public func changed<Value: Equatable>(_ path: KeyPath<Config, Value>) -> Bool {
        guard let previous else { return true }
        return config[keyPath: path] != previous[keyPath: path]
    }
}

/// The members every standard cube's configuration has (polycube-base's standard-base), for a
/// service's `Config` to include: `name`, `type`, `loglevel`; its ports are the service's own type.
public enum CubeType: String, Decodable, Equatable, Sendable {
    case tc = "TC", xdpSKB = "XDP_SKB", xdpDRV = "XDP_DRV"
}

/// A list keyed by `Element.key`, decoded from a JSON array of entries: entries by key, in the
/// configuration's order. Missing in the configuration: empty.
public struct KeyedList<Element: Decodable & Equatable & Keyed>: Decodable, Equatable, Sequence {
    public private(set) var entries: [Element]

    public init(_ entries: [Element] = []) { self.entries = entries }

    public init(from decoder: Decoder) throws {
        entries = try decoder.singleValueContainer().decode([Element].self)
    }

    public subscript(key: Element.Key) -> Element? { entries.first { $0.key == key } }
    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    /// What `self` has that `before` had not, what it lost, and entries whose content changed.
    public func difference(from before: KeyedList?) -> (added: [Element], removed: [Element], changed: [Element]) {
        let old = Dictionary((before?.entries ?? []).map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let new = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        return (entries.filter { old[$0.key] == nil },
                (before?.entries ?? []).filter { new[$0.key] == nil },
                entries.filter { entry in old[entry.key].map { $0 != entry } ?? false })
    }
}

/// A list entry's key (one leaf, or several as a struct).
public protocol Keyed {
    associatedtype Key: Hashable
    var key: Key { get }
}

extension KeyedList {
    public init() { entries = [] }
}

extension KeyedDecodingContainer {
    /// A list that may be absent (no entries): RFC 7951 leaves empty lists out.
    public func decode<Element>(_ type: KeyedList<Element>.Type, forKey key: Key) throws -> KeyedList<Element> {
        try decodeIfPresent(type, forKey: key) ?? KeyedList()
    }
}

/// A port of a standard cube as polycube-base defines it: its name and peer (services that add
/// leaves to their ports declare their own port type).
public struct StandardPort: Decodable, Equatable, Keyed, Sendable {
    public var name: String
    public var peer: String?
    public var key: String { name }
}

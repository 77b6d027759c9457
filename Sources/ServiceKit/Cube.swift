import BPFKit
import Foundation
import JSONText
import Logging

/// One cube of the service, as its control plane sees it: its configuration, its ports (names and
/// the indices the datapath uses), its tables and a way to send packets.
public final class Cube {
    public struct Port: Equatable {
        public let name: String
        public let index: Int
        /// A netdev name or `cube:port`, empty when unconnected.
        public let peer: String
    }

    public enum Direction: UInt32 {
        /// As if the frame arrived on the port (transparent cubes: on in the ingress direction).
        case ingress = 0
        /// Out of the port, to its peer (transparent cubes: on in the egress direction).
        case egress = 1
    }

    struct Outgoing {
        var port: String
        var direction: Direction
        var metadata: (UInt32, UInt32, UInt32)
        var frame: [UInt8]
    }

    public let name: String
    public let logger: Logger
    /// The configuration last applied (pcn-api's normalized JSON: uint64 as strings, enums as names).
    public internal(set) var config: [String: Any] = [:]
    public internal(set) var ports: [Port] = []
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

    public func port(named name: String) -> Port? { ports.first { $0.name == name } }
    public func port(index: Int) -> Port? { ports.first { $0.index == index } }

    /// Sends `frame` out of `port` (or into the cube through it, for `.ingress`). Transparent cubes
    /// give no port: the frame goes on in `direction`. Sent when the current call returns.
    public func send(_ frame: [UInt8], port: String = "", direction: Direction = .egress,
                     metadata: (UInt32, UInt32, UInt32) = (0, 0, 0)) {
        outbox.append(Outgoing(port: port, direction: direction, metadata: metadata, frame: frame))
    }
}

/// A change of one cube's configuration, handed to the service's bindings.
public struct Change {
    public let cube: Cube
    public let config: [String: Any]
    /// The configuration before; nil when the whole configuration is applied anew (created, or
    /// replayed to a restarted cube-host: the tables may already hold it).
    public let previous: [String: Any]?

    /// True if the value at `path` differs from before (always true when applied anew).
    public func changed(_ path: String) -> Bool {
        guard let previous else { return true }
        return !ConfigValue.same(config.value(at: path), previous.value(at: path))
    }
}

/// Reading pcn-api's JSON configuration.
extension Dictionary where Key == String, Value == Any {
    /// The value at a slash-separated path of members ("fdb/aging-time").
    public func value(at path: String) -> Any? {
        var current: Any? = self
        for member in path.split(separator: "/") {
            current = (current as? [String: Any])?[String(member)]
        }
        return current
    }

    public func string(_ path: String) -> String? { value(at: path) as? String }

    /// An integer leaf (libyang writes 64-bit ones as strings).
    public func integer(_ path: String) -> Int? {
        switch value(at: path) {
        case let number as NSNumber: number.intValue
        case let text as String: Int(text)
        default: nil
        }
    }

    /// The entries of a list (empty when there are none).
    public func list(_ path: String) -> [[String: Any]] { value(at: path) as? [[String: Any]] ?? [] }
}

enum ConfigValue {
    static func same(_ a: Any?, _ b: Any?) -> Bool {
        canonical(a) == canonical(b)
    }

    private static func canonical(_ value: Any?) -> Data? {
        guard let value else { return nil }
        return try? JSONText.data(value)
    }
}

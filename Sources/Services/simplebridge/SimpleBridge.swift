import Foundation
import ServiceABI
import ServiceKit

/// simplebridge: learning, aging and flooding in the fast path; static entries, the FDB listing,
/// `flush`, XDP's flood group and the copies to cube peers here.
public final class SimpleBridge: CubeService {
    public static let name = "simplebridge"
    public init() {}

    public struct Config: Decodable {
        struct Entry: Decodable, Equatable, Keyed {
            var address: MACAddress
            var port: String
            var key: MACAddress { address }
        }
        struct FilteringDatabase: Decodable, Equatable {
            var agingTime: UInt32
            var entry: KeyedList<Entry>
            enum CodingKeys: String, CodingKey { case agingTime = "aging-time", entry }
        }
        var type: String?
        var fdb: FilteringDatabase
        var ports: KeyedList<StandardPort>
    }

    public static var bindings: [ConfigBinding<SimpleBridge>] {
        [.on(\.fdb.agingTime, \.ports, apply: SimpleBridge.settings), .on(\.fdb.entry, \.ports, apply: SimpleBridge.staticEntries)]
    }

    /// The fast path's clock in whole seconds (what its FDB entries hold).
    private static var now: UInt64 { DatapathClock.nanoseconds / 1_000_000_000 }

    /// The table's key: the 6 bytes in wire order in the low bytes of a little-endian __u64.
    private static func key(_ mac: MACAddress) -> UInt64 {
        mac.bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    private static func mac(_ key: UInt64) -> MACAddress {
        MACAddress(bytes: (0..<6).map { UInt8(truncatingIfNeeded: key >> (8 * UInt64($0))) })
    }

    /// Aging, and XDP's flood group: every port, when all lead to netdevs (XDP cannot copy a frame to
    /// a cube peer; then the slow path floods). TC clones per port and needs no group.
    func settings(_ change: Change<Config>) throws {
        let cube = change.cube
        var members: [UInt32: UInt32] = [:]
        if let type = change.config.type, type != "TC" {
            for port in cube.ports where !port.peer.isEmpty {
                let ifindex = port.peer.contains(":") ? 0 : if_nametoindex(port.peer)
                // The group's members are a 32-bit mask: a bridge with more ports floods in the slow path.
                guard ifindex != 0, port.index < 32 else { members = [:]; break }
                members[UInt32(port.index)] = ifindex
            }
        }
        let group = try cube.table("pcn_flood_group_1")
        for (port, ifindex) in members { try group.update(port, ifindex) }
        for port in try group.keys(as: UInt32.self) where members[port] == nil { try group.delete(port) }
        let mask = members.keys.reduce(UInt32(0)) { $0 | 1 << $1 }
        try cube.table("simplebridge_config").update(UInt32(0), simplebridge_config(aging_time: change.config.fdb.agingTime, flood_members: mask))
    }

    /// Static entries match the configuration; learned ones are left alone (they survive restarts).
    func staticEntries(_ change: Change<Config>) throws {
        let fdb = try change.cube.table("simplebridge_fdb")
        var wanted: [UInt64: UInt32] = [:]
        for entry in change.config.fdb.entry {
            guard let port = change.cube.port(named: entry.port) else { continue }
            wanted[Self.key(entry.address)] = UInt32(port.index)
        }
        for key in try fdb.keys(as: UInt64.self) where wanted[key] == nil {
            if let entry = try fdb.lookup(key, as: simplebridge_fdb_entry.self), entry.flags & UInt32(SIMPLEBRIDGE_STATIC) != 0 {
                try fdb.delete(key)
            }
        }
        for (key, port) in wanted {
            try fdb.update(key, simplebridge_fdb_entry(port: port, flags: UInt32(SIMPLEBRIDGE_STATIC), timestamp: Self.now))
        }
    }

    private func agingTime(_ cube: Cube<Config>) -> UInt64 { UInt64(cube.config?.fdb.agingTime ?? 300) }

    /// Every entry: (key, entry, age in seconds, is static).
    private func entries(_ cube: Cube<Config>) throws -> [(key: UInt64, entry: simplebridge_fdb_entry, age: UInt64, isStatic: Bool)] {
        let fdb = try cube.table("simplebridge_fdb")
        let now = Self.now
        return try fdb.keys(as: UInt64.self).compactMap { key in
            guard let entry = try fdb.lookup(key, as: simplebridge_fdb_entry.self) else { return nil }
            let isStatic = entry.flags & UInt32(SIMPLEBRIDGE_STATIC) != 0
            return (key, entry, isStatic || now < entry.timestamp ? 0 : now - entry.timestamp, isStatic)
        }
    }

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        let aging = agingTime(cube)
        let listed: [[String: Any]] = try entries(cube).filter { $0.isStatic || $0.age <= aging }.map { item in
            ["address": Self.mac(item.key).description, "port": cube.port(index: Int(item.entry.port))?.name ?? "\(item.entry.port)",
             "age": Int(item.age), "type": item.isStatic ? "STATIC" : "DYNAMIC"]
        }
        return ["fdb": ["entry": listed]]
    }

    /// Expired learned entries leave the table (the fast path already ignores them).
    public func tick(_ cube: Cube<Config>) {
        guard let fdb = try? cube.table("simplebridge_fdb"), let all = try? entries(cube) else { return }
        let aging = agingTime(cube)
        for item in all where !item.isStatic && item.age > aging { try? fdb.delete(item.key) }
    }

    public func action(_ name: String, path: [String], input: [String: Any], on cube: Cube<Config>) throws -> ActionResult {
        guard name == "flush" else { throw ServiceFailure.refused("simplebridge has no action '\(name)'") }
        let fdb = try cube.table("simplebridge_fdb")
        for item in try entries(cube) where !item.isStatic { try fdb.delete(item.key) }
        cube.logger.info("filtering database flushed")
        return ActionResult(output: ["flushed": true])
    }

    /// Floods what the kernel could not: out of every connected port but the one the frame came in on
    /// (only those leading to cubes when the kernel served the netdevs).
    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        guard packet.reason == UInt16(SIMPLEBRIDGE_REASON_FLOOD) else { return }
        guard packet.frame.count == packet.length else {
            cube.logger.warning("frame of \(packet.length) bytes is larger than the slow path carries: not flooded")
            return
        }
        let cubesOnly = packet.metadata.0 != 0
        for port in cube.ports where port.index != packet.port && !port.peer.isEmpty && (!cubesOnly || port.peer.contains(":")) {
            cube.send(packet.frame, port: port.name, direction: .egress)
        }
    }
}

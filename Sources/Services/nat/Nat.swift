import BPFKit
import Foundation
import ServiceABI
import ServiceKit

/// nat (transparent): SNAT, masquerade, DNAT and port forwarding. Rules become two longest-prefix
/// tables (nat.h); sessions are made and used by the datapath alone, so this host only writes rules,
/// the masquerade address (learned from where the cube is attached) and the port range, and reads
/// the sessions back as the natting table.
public final class Nat: CubeService {
    public static let name = "nat"
    public static var followsAttachment: Bool { true }
    public init() {}

    public enum Proto: String, Decodable, Sendable { case tcp = "TCP", udp = "UDP", all = "ALL" }

    public struct SnatEntry: Decodable, Equatable, Keyed {
        var id: UInt32
        var internalNet: String
        var externalIP: String
        public var key: UInt32 { id }
        enum CodingKeys: String, CodingKey { case id, internalNet = "internal-net", externalIP = "external-ip" }
    }

    public struct DnatEntry: Decodable, Equatable, Keyed {
        var id: UInt32
        var externalIP: String
        var internalIP: String
        public var key: UInt32 { id }
        enum CodingKeys: String, CodingKey { case id, externalIP = "external-ip", internalIP = "internal-ip" }
    }

    public struct PortForwardingEntry: Decodable, Equatable, Keyed {
        var id: UInt32
        var externalIP: String
        var externalPort: UInt16
        var proto: Proto
        var internalIP: String
        var internalPort: UInt16
        public var key: UInt32 { id }
        enum CodingKeys: String, CodingKey {
            case id, externalIP = "external-ip", externalPort = "external-port", proto, internalIP = "internal-ip", internalPort = "internal-port"
        }
    }

    /// A container holding one list `entry` (absent when empty).
    public struct Entries<Entry: Decodable & Equatable & Keyed>: Decodable, Equatable {
        var entries: KeyedList<Entry>
        init() { entries = KeyedList() }
        public init(from decoder: Decoder) throws {
            entries = try decoder.container(keyedBy: CodingKeys.self).decode(KeyedList<Entry>.self, forKey: .entry)
        }
        enum CodingKeys: String, CodingKey { case entry }
    }

    public struct Rules: Decodable, Equatable {
        var snat = Entries<SnatEntry>()
        var masquerade = false
        var dnat = Entries<DnatEntry>()
        var portForwarding = Entries<PortForwardingEntry>()
        init() {}
        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            snat = try container.decodeIfPresent(Entries<SnatEntry>.self, forKey: .snat) ?? Entries()
            masquerade = try container.decodeIfPresent(Masquerade.self, forKey: .masquerade)?.enabled ?? false
            dnat = try container.decodeIfPresent(Entries<DnatEntry>.self, forKey: .dnat) ?? Entries()
            portForwarding = try container.decodeIfPresent(Entries<PortForwardingEntry>.self, forKey: .portForwarding) ?? Entries()
        }
        struct Masquerade: Decodable { var enabled: Bool? }
        enum CodingKeys: String, CodingKey { case snat, masquerade, dnat, portForwarding = "port-forwarding" }
    }

    public struct PortRange: Decodable, Equatable {
        var low: UInt16 = 1024
        var high: UInt16 = 65535
    }

    public struct Config: Decodable {
        var rule: Rules
        var portRange: PortRange
        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            rule = try container.decodeIfPresent(Rules.self, forKey: .rule) ?? Rules()
            portRange = try container.decodeIfPresent(PortRange.self, forKey: .portRange) ?? PortRange()
        }
        enum CodingKeys: String, CodingKey { case rule, portRange = "port-range" }
        var masquerade: Bool { rule.masquerade }
        var snat: Entries<SnatEntry> { rule.snat }
        var dnat: Entries<DnatEntry> { rule.dnat }
        var portForwarding: Entries<PortForwardingEntry> { rule.portForwarding }
    }

    public static var bindings: [ConfigBinding<Nat>] {
        [.on(\.masquerade, \.portRange, apply: Nat.settings),
         .on(\.snat, apply: Nat.snatRules),
         .on(\.dnat, \.portForwarding, apply: Nat.dnatRules)]
    }

    // MARK: - Checks

    public func validate(_ change: Change<Config>) throws {
        let range = change.config.portRange
        if range.low > range.high {
            throw ServiceFailure.invalid(path: "port-range/low", "the port range \(range.low)-\(range.high) is empty: low must not be above high")
        }
        var networks: [IPv4Prefix: UInt32] = [:]
        for entry in change.config.snat.entries {
            let path = "rule/snat/entry[id='\(entry.id)']/internal-net"
            guard let prefix = IPv4Prefix(entry.internalNet) else { throw ServiceFailure.invalid(path: path, "'\(entry.internalNet)' is not an IPv4 prefix") }
            let network = IPv4Prefix(address: prefix.network, length: prefix.length)
            if let other = networks[network] {
                throw ServiceFailure.invalid(path: path, "\(network) is already the network of SNAT rule \(other)")
            }
            networks[network] = entry.id
        }
    }

    // MARK: - Bindings

    /// Rules as the datapath keys them, with what this host last wrote per cube (to delete the
    /// ones gone; after a restart, read back from the tables).
    private var snatWritten: [String: Set<Data>] = [:]
    private var dnatWritten: [String: Set<Data>] = [:]

    func settings(_ change: Change<Config>) throws {
        try writeSettings(change.cube, config: change.config)
    }

    public func attachmentChanged(_ cube: Cube<Config>) throws {
        guard let config = cube.config else { return }
        cube.logger.info("attached to \(cube.attachment?.parent ?? "nothing"), address \(cube.attachment?.address ?? "none")")
        try writeSettings(cube, config: config)
    }

    private func writeSettings(_ cube: Cube<Config>, config: Config) throws {
        let table = try cube.table("nat_config")
        var address: UInt32 = 0
        if config.masquerade {
            if let attachment = cube.attachment {
                address = attachment.address.flatMap { IPv4Address($0) }?.networkOrder ?? 0
            } else {
                // Not learned yet (this host just started): the address in the table stays until it is.
                address = try table.lookup(UInt32(0), as: nat_config.self)?.masquerade_ip ?? 0
            }
        }
        try table.update(UInt32(0), nat_config(masquerade_ip: address, port_low: config.portRange.low, port_high: config.portRange.high))
    }

    func snatRules(_ change: Change<Config>) throws {
        var wanted: [Data: nat_snat_rule] = [:]
        for entry in change.config.snat.entries {
            guard let prefix = IPv4Prefix(entry.internalNet), let external = IPv4Address(entry.externalIP) else { continue }
            let key = nat_snat_key(prefixlen: UInt32(prefix.length), internal: prefix.network.networkOrder)
            wanted[Self.bytes(key)] = nat_snat_rule(external: external.networkOrder, id: entry.id)
        }
        let table = try change.cube.table("nat_snat_rules")
        let known = try snatWritten[change.cube.name] ?? Set(table.keys().map { Data($0) })
        try Self.sync(table, wanted: wanted, known: known)
        snatWritten[change.cube.name] = Set(wanted.keys)
    }

    func dnatRules(_ change: Change<Config>) throws {
        var wanted: [Data: nat_dnat_rule] = [:]
        for entry in change.config.dnat.entries {
            guard let external = IPv4Address(entry.externalIP), let inside = IPv4Address(entry.internalIP) else { continue }
            let key = nat_dnat_key(prefixlen: 32, external: external.networkOrder, port: 0, proto: 0, reserved: 0)
            wanted[Self.bytes(key)] = nat_dnat_rule(internal: inside.networkOrder, internal_port: 0, kind: UInt16(NAT_DNAT.rawValue), id: entry.id)
        }
        for entry in change.config.portForwarding.entries {
            guard let external = IPv4Address(entry.externalIP), let inside = IPv4Address(entry.internalIP) else { continue }
            let rule = nat_dnat_rule(internal: inside.networkOrder, internal_port: entry.internalPort.bigEndian,
                                     kind: UInt16(NAT_PORTFORWARDING.rawValue), id: entry.id)
            let protocols: [(UInt8, UInt32)] = switch entry.proto {
            case .tcp: [(6, 56)]
            case .udp: [(17, 56)]
            case .all: [(0, 48)]
            }
            for (proto, length) in protocols {
                let key = nat_dnat_key(prefixlen: length, external: external.networkOrder, port: entry.externalPort.bigEndian, proto: proto, reserved: 0)
                wanted[Self.bytes(key)] = rule
            }
        }
        let table = try change.cube.table("nat_dnat_rules")
        let known = try dnatWritten[change.cube.name] ?? Set(table.keys().map { Data($0) })
        try Self.sync(table, wanted: wanted, known: known)
        dnatWritten[change.cube.name] = Set(wanted.keys)
    }

    /// Writes `wanted` and deletes what `known` has beyond it. Sessions made by a deleted rule stay
    /// until they expire: they are in their own table.
    private static func sync<Value: BitwiseCopyable>(_ table: BPFMap, wanted: [Data: Value], known: Set<Data>) throws {
        for (key, value) in wanted {
            try table.update(key: Array(key), value: withUnsafeBytes(of: value) { Array($0) })
        }
        for key in known.subtracting(wanted.keys) {
            try? table.delete(key: Array(key))
        }
    }

    private static func bytes<T: BitwiseCopyable>(_ value: T) -> Data { withUnsafeBytes(of: value) { Data($0) } }

    public func removed(_ cube: Cube<Config>) {
        snatWritten[cube.name] = nil
        dnatWritten[cube.name] = nil
    }

    // MARK: - State

    static let kinds = ["snat", "dnat", "portforwarding", "masquerade"]

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        let nanoseconds = DatapathClock.nanoseconds
        let sessions = try cube.table("nat_sessions")
        var table: [[String: Any]] = []
        for key in try sessions.keys(as: nat_session_key.self) where key.direction == UInt8(NAT_EGRESS.rawValue) {
            guard let session = try sessions.lookup(key, as: nat_session.self), Int(session.kind) < Self.kinds.count else { continue }
            let seconds: UInt64 = switch key.proto {
            case 6: UInt64(session.closing != 0 ? NAT_TIMEOUT_TCP_CLOSING : NAT_TIMEOUT_TCP)
            case 17: UInt64(NAT_TIMEOUT_UDP)
            default: UInt64(NAT_TIMEOUT_ICMP)
            }
            let age = nanoseconds > session.last_seen ? nanoseconds - session.last_seen : 0
            guard age < seconds * 1_000_000_000 else { continue }
            var row: [String: Any] = [
                "internal-src": IPv4Address(networkOrder: key.src).description, "internal-dst": IPv4Address(networkOrder: key.dst).description,
                "internal-sport": Int(UInt16(bigEndian: key.sport)), "internal-dport": Int(UInt16(bigEndian: key.dport)),
                "proto": key.proto == 6 ? "TCP" : key.proto == 17 ? "UDP" : "ICMP",
                "originating-rule": Self.kinds[Int(session.kind)],
                "external-ip": IPv4Address(networkOrder: session.src).description, "external-port": Int(UInt16(bigEndian: session.sport)),
                "eta": Int((seconds * 1_000_000_000 - age) / 1_000_000_000),
            ]
            if session.kind != UInt8(NAT_MASQUERADE.rawValue) { row["rule-id"] = Int(session.rule) }
            table.append(row)
        }
        var state: [String: Any] = ["natting-table": table]
        let exhausted = try cube.table("nat_counters").lookupPerCPU(UInt32(NAT_COUNT_PORTS_EXHAUSTED.rawValue), as: UInt64.self).reduce(0, +)
        state["ports-exhausted"] = "\(exhausted)"
        if let config = try cube.table("nat_config").lookup(UInt32(0), as: nat_config.self), config.masquerade_ip != 0 {
            state["rule"] = ["masquerade": ["external-ip": IPv4Address(networkOrder: config.masquerade_ip).description]]
        }
        return state
    }

    // MARK: - Actions

    public func action(_ name: String, path: [String], input: [String: Any], on cube: Cube<Config>) throws -> ActionResult {
        let rules = cube.config?.rule ?? Rules()
        switch (path, name) {
        case (["rule", "snat"], "append"):
            return appended(input, path: ["rule", "snat", "entry"], ids: rules.snat.entries.map(\.id))
        case (["rule", "dnat"], "append"):
            return appended(input, path: ["rule", "dnat", "entry"], ids: rules.dnat.entries.map(\.id))
        case (["rule", "port-forwarding"], "append"):
            return appended(input, path: ["rule", "port-forwarding", "entry"], ids: rules.portForwarding.entries.map(\.id))
        case (["rule", "masquerade"], "enable"), (["rule", "masquerade"], "disable"):
            return ActionResult(write: ActionWrite(.patch, ["rule", "masquerade"], body: ["enabled": name == "enable"]))
        default:
            throw ServiceFailure.refused("nat has no action '\(name)' at \(path.joined(separator: "/"))")
        }
    }

    /// An entry with the id after the highest one, written through pcn-api's write path.
    private func appended(_ input: [String: Any], path: [String], ids: [UInt32]) -> ActionResult {
        let id = ids.max().map { $0 + 1 } ?? 0
        return ActionResult(output: ["id": Int(id)], write: ActionWrite(.post, path, body: input.merging(["id": Int(id)]) { $1 }))
    }
}

import BPFKit
import Foundation
import ServiceABI
import ServiceKit

/// pbforwarder: policy-based forwarding, the first matching rule deciding. Rules become a
/// tuple-space search (pbforwarder.h); every change builds the other generation and swaps to it, so
/// a packet is classified by the old rules or the new ones, never a mix.
public final class Pbforwarder: CubeService {
    public static let name = "pbforwarder"
    public init() {}

    public struct Rule: Decodable, Equatable, Keyed {
        enum Action: String, Decodable { case drop = "DROP", slowpath = "SLOWPATH", forward = "FORWARD" }
        enum Proto: String, Decodable { case tcp = "TCP", udp = "UDP", icmp = "ICMP" }
        var id: UInt32
        var inPort: String?
        var srcMac: String?
        var dstMac: String?
        var vlan: UInt16?
        var srcIP: String?
        var dstIP: String?
        var l4Proto: Proto?
        var srcPort: UInt16?
        var dstPort: UInt16?
        var action: Action
        var outPort: String?
        public var key: UInt32 { id }
        enum CodingKeys: String, CodingKey {
            case id, inPort = "in_port", srcMac = "src_mac", dstMac = "dst_mac", vlan, srcIP = "src_ip", dstIP = "dst_ip"
            case l4Proto = "l4_proto", srcPort = "src_port", dstPort = "dst_port", action, outPort = "out_port"
        }
    }

    public struct Config: Decodable {
        var rules: KeyedList<Rule>
        var ports: KeyedList<StandardPort>
    }

    public static var bindings: [ConfigBinding<Pbforwarder>] {
        [.on(\.rules, \.ports, apply: Pbforwarder.program)]
    }

    /// A rule's shape and its values, masked; `inPort` and `outPort` as port indices.
    struct Shape: Hashable {
        var srcLength = 0
        var dstLength = 0
        var fields: UInt32 = 0
    }

    struct Key: Hashable {
        var shape = Shape()
        var inPort: UInt32 = 0
        var srcMac: [UInt8] = Array(repeating: 0, count: 6)
        var dstMac: [UInt8] = Array(repeating: 0, count: 6)
        var src: UInt32 = 0
        var dst: UInt32 = 0
        var sport: UInt16 = 0
        var dport: UInt16 = 0
        var vlan: UInt16 = 0
        var proto: UInt8 = 0
    }

    /// What this host wrote per cube: the generation that classifies and its keys.
    private var written: [String: (generation: UInt32, keys: [pbf_rule_key])] = [:]
    private var slowPath: [String: UInt64] = [:]

    // MARK: - Checks

    public func validate(_ change: Change<Config>) throws {
        var shapes = Set<Shape>()
        for rule in change.config.rules {
            let path = "rules[id='\(rule.id)']"
            if rule.action == .forward && rule.outPort == nil {
                throw ServiceFailure.invalid(path: path + "/out_port", "FORWARD needs an out_port")
            }
            if rule.l4Proto == .icmp && (rule.srcPort != nil || rule.dstPort != nil) {
                throw ServiceFailure.invalid(path: path + "/\(rule.srcPort != nil ? "src_port" : "dst_port")", "ICMP has no ports")
            }
            shapes.formUnion(try Self.keys(of: rule, ports: nil).map(\.shape))
        }
        if shapes.count > Int(PBF_MAX_SHAPES) {
            throw ServiceFailure.invalid(path: "rules", "the rules have \(shapes.count) shapes (which fields they match, prefix lengths): at most \(PBF_MAX_SHAPES)")
        }
    }

    /// The keys of a rule: one, or two for ports without a protocol (TCP and UDP). `ports`: the
    /// cube's port indices by name (nil: checking only).
    static func keys(of rule: Rule, ports: [String: Int]?) throws -> [Key] {
        var key = Key()
        let path = "rules[id='\(rule.id)']"
        func prefix(_ text: String, _ leaf: String) throws -> (UInt32, Int) {
            if let address = IPv4Address(text) { return (address.value, 32) }
            guard let prefix = IPv4Prefix(text) else { throw ServiceFailure.invalid(path: "\(path)/\(leaf)", "'\(text)' is not an IPv4 address or prefix") }
            return (prefix.network.value, prefix.length)
        }
        func mac(_ text: String, _ leaf: String) throws -> [UInt8] {
            guard let address = MACAddress(text) else { throw ServiceFailure.invalid(path: "\(path)/\(leaf)", "'\(text)' is not a MAC address") }
            return address.bytes
        }
        if let name = rule.inPort {
            key.shape.fields |= UInt32(PBF_FIELD_IN_PORT.rawValue)
            key.inPort = UInt32(ports?[name] ?? 0)
        }
        if let text = rule.srcMac { key.srcMac = try mac(text, "src_mac"); key.shape.fields |= UInt32(PBF_FIELD_SRC_MAC.rawValue) }
        if let text = rule.dstMac { key.dstMac = try mac(text, "dst_mac"); key.shape.fields |= UInt32(PBF_FIELD_DST_MAC.rawValue) }
        if let vlan = rule.vlan { key.vlan = vlan; key.shape.fields |= UInt32(PBF_FIELD_VLAN.rawValue) }
        if let text = rule.srcIP { (key.src, key.shape.srcLength) = try prefix(text, "src_ip") }
        if let text = rule.dstIP { (key.dst, key.shape.dstLength) = try prefix(text, "dst_ip") }
        if let port = rule.srcPort { key.sport = port; key.shape.fields |= UInt32(PBF_FIELD_SPORT.rawValue) }
        if let port = rule.dstPort { key.dport = port; key.shape.fields |= UInt32(PBF_FIELD_DPORT.rawValue) }
        let protocols: [UInt8]
        switch rule.l4Proto {
        case .tcp: protocols = [6]
        case .udp: protocols = [17]
        case .icmp: protocols = [1]
        case nil: protocols = rule.srcPort != nil || rule.dstPort != nil ? [6, 17] : []
        }
        guard !protocols.isEmpty else { return [key] }
        key.shape.fields |= UInt32(PBF_FIELD_PROTO.rawValue)
        return protocols.map { proto in var keyed = key; keyed.proto = proto; return keyed }
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }

    // MARK: - Binding

    func program(_ change: Change<Config>) throws {
        let cube = change.cube
        let ports = Dictionary(uniqueKeysWithValues: cube.ports.map { ($0.name, $0.index) })
        // The first rule for each key; shapes in the order of their first rule.
        var matches: [Key: pbf_rule_match] = [:]
        var firstRule: [Shape: UInt32] = [:]
        for rule in change.config.rules.entries.sorted(by: { $0.id < $1.id }) {
            let action = switch rule.action {
            case .drop: PBF_DROP
            case .slowpath: PBF_SLOWPATH
            case .forward: PBF_FORWARD
            }
            let outPort = rule.outPort.flatMap { ports[$0] }.map(UInt32.init) ?? 0
            for key in try Self.keys(of: rule, ports: ports) where matches[key] == nil {
                matches[key] = pbf_rule_match(rule: rule.id, action: action.rawValue, out_port: outPort)
                if firstRule[key.shape] == nil { firstRule[key.shape] = rule.id }
            }
        }
        let shapes = firstRule.keys.sorted { firstRule[$0]! < firstRule[$1]! }
        let shapesTable = try cube.table("pbf_shapes"), countsTable = try cube.table("pbf_shape_counts")
        let rulesTable = try cube.table("pbf_rules"), configTable = try cube.table("pbf_config")
        var state = try written[cube.name] ?? recover(cube)
        let next = state.generation ^ 1
        let base = next * UInt32(PBF_MAX_SHAPES)
        for (index, shape) in shapes.enumerated() {
            try shapesTable.update(base + UInt32(index), pbf_shape(src_mask: Self.mask(shape.srcLength).bigEndian, dst_mask: Self.mask(shape.dstLength).bigEndian,
                                                                   fields: shape.fields, first_rule: firstRule[shape]!))
        }
        let shapeIndex = Dictionary(uniqueKeysWithValues: shapes.enumerated().map { ($1, base + UInt32($0)) })
        var keys: [pbf_rule_key] = []
        for (key, match) in matches {
            var datapath = pbf_rule_key()
            datapath.shape = shapeIndex[key.shape]!
            datapath.in_port = key.inPort
            withUnsafeMutableBytes(of: &datapath.src_mac) { $0.copyBytes(from: key.srcMac) }
            withUnsafeMutableBytes(of: &datapath.dst_mac) { $0.copyBytes(from: key.dstMac) }
            datapath.src = (key.src & Self.mask(key.shape.srcLength)).bigEndian
            datapath.dst = (key.dst & Self.mask(key.shape.dstLength)).bigEndian
            datapath.sport = key.sport.bigEndian
            datapath.dport = key.dport.bigEndian
            datapath.vlan = key.vlan
            datapath.proto = key.proto
            try rulesTable.update(datapath, match)
            keys.append(datapath)
        }
        try countsTable.update(next, UInt32(shapes.count))
        // New rules start counting from zero; the others keep their counters.
        if let previous = change.previous {
            let counters = try cube.table("pbf_counters")
            for rule in change.config.rules.difference(from: previous.rules).added {
                try counters.updatePerCPU(rule.id, pbf_counter(packets: 0, bytes: 0))
            }
        }
        try configTable.update(UInt32(0), pbf_config(generation: next))   // the swap
        if !state.keys.isEmpty {
            usleep(10_000)   // packets classifying with the old generation finish first
            for key in state.keys { try? rulesTable.delete(key) }
        }
        try countsTable.update(state.generation, UInt32(0))
        state = (next, keys)
        written[cube.name] = state
    }

    /// After a restart of this host: the generation in use and its keys, from the tables.
    private func recover(_ cube: Cube<Config>) throws -> (generation: UInt32, keys: [pbf_rule_key]) {
        let generation = (try cube.table("pbf_config").lookup(UInt32(0), as: pbf_config.self)?.generation ?? 0) & 1
        let low = generation * UInt32(PBF_MAX_SHAPES)
        let keys = try cube.table("pbf_rules").keys(as: pbf_rule_key.self).filter { $0.shape >= low && $0.shape < low + UInt32(PBF_MAX_SHAPES) }
        return (generation, keys)
    }

    public func removed(_ cube: Cube<Config>) {
        written[cube.name] = nil
        slowPath[cube.name] = nil
    }

    // MARK: - State and slow path

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        let counters = try cube.table("pbf_counters")
        let stats = try (cube.config?.rules.entries ?? []).map { rule -> [String: Any] in
            let sum = try counters.lookupPerCPU(rule.id, as: pbf_counter.self).reduce((0 as UInt64, 0 as UInt64)) { ($0.0 + $1.packets, $0.1 + $1.bytes) }
            return ["id": Int(rule.id), "pkts": "\(sum.0)", "bytes": "\(sum.1)"]
        }
        return ["stats": stats, "slowpath-pkts": "\(slowPath[cube.name] ?? 0)"]
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        slowPath[cube.name, default: 0] += 1
        cube.logger.info("rule \(packet.reason): \(packet.length) bytes from port \(cube.port(index: packet.port)?.name ?? "\(packet.port)")")
    }
}

import ServiceABI
import ServiceKit

/// A firewall rule as the model gives it (`firewall.yang`, grouping `match` and `action`).
public struct FirewallRule: Decodable, Equatable, Keyed, Sendable {
    public enum Action: String, Decodable, Sendable { case accept = "ACCEPT", drop = "DROP", log = "LOG" }
    public enum Proto: String, Decodable, Sendable { case tcp = "TCP", udp = "UDP", icmp = "ICMP" }
    public enum Label: String, Decodable, Sendable { case new = "NEW", established = "ESTABLISHED", related = "RELATED", invalid = "INVALID" }

    public var id: UInt32
    public var src: String?
    public var dst: String?
    public var l4proto: Proto?
    public var sport: UInt16?
    public var dport: UInt16?
    public var tcpflags: String?
    public var conntrack: Label?
    public var description: String?
    public var action: Action
    public var key: UInt32 { id }

    /// The same match and action (what a rule's counters follow when ids move).
    func sameMatch(_ other: FirewallRule) -> Bool {
        var moved = other
        moved.id = id
        return moved == self
    }
}

/// How a chain's rules become the datapath's tuple-space tables (firewall.h): each rule is one or
/// two keys (a port without a protocol matches TCP and UDP) of a shape; each key holds the first
/// ACCEPT/DROP rule and the first LOG rule before it.
enum FirewallRules {
    struct Shape: Hashable {
        var srcLength: Int
        var dstLength: Int
        var fields: UInt8
        var flagsMask: UInt8
    }

    struct Key: Hashable {
        var shape: Shape
        var src: UInt32       // host order, masked
        var dst: UInt32
        var sport: UInt16
        var dport: UInt16
        var proto: UInt8
        var flags: UInt8
        var label: UInt8
    }

    struct Match: Equatable {
        var rule = FW_NO_RULE
        var slot: UInt32 = 0
        var action = UInt32(FW_ACCEPT.rawValue)
        var logRule = FW_NO_RULE
        var logSlot: UInt32 = 0
    }

    enum Failure: Error {
        case field(String, String)
    }

    static let flagBits: [String: UInt8] = ["FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20, "ECE": 0x40, "CWR": 0x80]

    static func prefix(_ text: String?, field: String) throws -> IPv4Prefix {
        guard let text else { return IPv4Prefix(address: IPv4Address(0), length: 0) }
        if let address = IPv4Address(text) { return IPv4Prefix(address: address, length: 32) }
        guard let prefix = IPv4Prefix(text) else { throw Failure.field(field, "'\(text)' is not an IPv4 address or prefix") }
        return prefix
    }

    /// The keys of one rule.
    static func keys(of rule: FirewallRule) throws -> [Key] {
        let src = try prefix(rule.src, field: "src"), dst = try prefix(rule.dst, field: "dst")
        var flagsMask: UInt8 = 0, flags: UInt8 = 0
        for part in (rule.tcpflags ?? "").split(separator: ",") {
            let negated = part.hasPrefix("!")
            guard let bit = flagBits[String(negated ? part.dropFirst() : part)] else {
                throw Failure.field("tcpflags", "'\(part)' is not a TCP flag (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)")
            }
            flagsMask |= bit
            if !negated { flags |= bit }
        }
        if flagsMask != 0, let proto = rule.l4proto, proto != .tcp {
            throw Failure.field("tcpflags", "TCP flags with l4proto \(proto.rawValue)")
        }
        if rule.l4proto == .icmp && (rule.sport != nil || rule.dport != nil) {
            throw Failure.field(rule.sport != nil ? "sport" : "dport", "ICMP has no ports")
        }
        let protos: [UInt8]
        switch rule.l4proto {
        case .tcp?: protos = [6]
        case .udp?: protos = [17]
        case .icmp?: protos = [1]
        case nil: protos = flagsMask != 0 ? [6] : (rule.sport != nil || rule.dport != nil) ? [6, 17] : []
        }
        var fields: UInt8 = 0
        if !protos.isEmpty { fields |= UInt8(FW_FIELD_PROTO.rawValue) }
        if rule.sport != nil { fields |= UInt8(FW_FIELD_SPORT.rawValue) }
        if rule.dport != nil { fields |= UInt8(FW_FIELD_DPORT.rawValue) }
        if rule.conntrack != nil { fields |= UInt8(FW_FIELD_LABEL.rawValue) }
        let shape = Shape(srcLength: src.length, dstLength: dst.length, fields: fields, flagsMask: flagsMask)
        let label: UInt8 = switch rule.conntrack {
        case .new?: UInt8(FW_LABEL_NEW.rawValue)
        case .established?: UInt8(FW_LABEL_ESTABLISHED.rawValue)
        case .related?: UInt8(FW_LABEL_RELATED.rawValue)
        case .invalid?: UInt8(FW_LABEL_INVALID.rawValue)
        case nil: 0
        }
        return (protos.isEmpty ? [0] : protos).map { proto in
            Key(shape: shape, src: src.network.value, dst: dst.network.value, sport: rule.sport ?? 0, dport: rule.dport ?? 0,
                proto: proto, flags: flags, label: label)
        }
    }

    static func action(_ action: FirewallRule.Action) -> UInt32 {
        switch action {
        case .accept: UInt32(FW_ACCEPT.rawValue)
        case .drop: UInt32(FW_DROP.rawValue)
        case .log: UInt32(FW_LOG.rawValue)
        }
    }

    /// A chain compiled: its shapes in the order of their first rule, and every key's match.
    struct Compiled {
        var shapes: [Shape] = []
        var firstRule: [Shape: UInt32] = [:]
        var matches: [Key: Match] = [:]

        /// Adds a rule after every rule already added (rules are added in id order).
        mutating func add(_ rule: FirewallRule, slot: UInt32) throws {
            for key in try FirewallRules.keys(of: rule) {
                if firstRule[key.shape] == nil {
                    firstRule[key.shape] = rule.id
                    shapes.append(key.shape)
                }
                var match = matches[key] ?? Match()
                if rule.action == .log {
                    if match.logRule == FW_NO_RULE && match.rule == FW_NO_RULE { (match.logRule, match.logSlot) = (rule.id, slot) }
                } else if match.rule == FW_NO_RULE {
                    (match.rule, match.slot, match.action) = (rule.id, slot, FirewallRules.action(rule.action))
                }
                matches[key] = match
            }
        }
    }

    static func compile(_ rules: [FirewallRule], slots: [UInt32: UInt32]) throws -> Compiled {
        var compiled = Compiled()
        for rule in rules.sorted(by: { $0.id < $1.id }) {
            try compiled.add(rule, slot: slots[rule.id] ?? 0)
        }
        return compiled
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }

    static func datapathShape(_ shape: Shape, firstRule: UInt32) -> fw_shape {
        fw_shape(src_mask: mask(shape.srcLength).bigEndian, dst_mask: mask(shape.dstLength).bigEndian, fields: shape.fields,
                 flags_mask: shape.flagsMask, reserved: 0, first_rule: firstRule)
    }

    static func datapathKey(_ key: Key, shapeIndex: UInt32) -> fw_rule_key {
        fw_rule_key(shape: shapeIndex, src: key.src.bigEndian, dst: key.dst.bigEndian, sport: key.sport.bigEndian, dport: key.dport.bigEndian,
                    proto: key.proto, flags: key.flags, label: key.label, reserved: 0)
    }

    static func datapathMatch(_ match: Match) -> fw_rule_match {
        fw_rule_match(rule: match.rule, slot: match.slot, action: match.action, log_rule: match.logRule, log_slot: match.logSlot)
    }
}

import BPFKit
import Foundation
import ServiceABI
import ServiceKit

/// firewall (transparent): a stateful IPv4 ACL with chains INGRESS and EGRESS. Rules become a
/// tuple-space search in the datapath (`FirewallRules`); a rule appended after the others is
/// added in place, any other change builds the chain's other generation and swaps to it at once.
public final class Firewall: CubeService {
    public static let name = "firewall"
    public init() {}

    public enum OnOff: String, Decodable, Sendable { case on = "ON", off = "OFF" }
    public enum ChainName: String, Decodable, Sendable { case ingress = "INGRESS", egress = "EGRESS" }

    public struct Chain: Decodable, Equatable, Keyed {
        var name: ChainName
        var `default`: FirewallRule.Action
        var rules: KeyedList<FirewallRule>
        public var key: ChainName { name }
        enum CodingKeys: String, CodingKey { case name, `default`, rules = "rule" }
    }

    public struct Timeouts: Decodable, Equatable {
        var synSent, synRecv, established, finWait, closeWait, lastAck, timeWait, close, udp, udpStream, icmp: UInt32
        enum CodingKeys: String, CodingKey {
            case synSent = "tcp-syn-sent", synRecv = "tcp-syn-recv", established = "tcp-established", finWait = "tcp-fin-wait"
            case closeWait = "tcp-close-wait", lastAck = "tcp-last-ack", timeWait = "tcp-time-wait", close = "tcp-close"
            case udp, udpStream = "udp-stream", icmp
        }
        /// Seconds by `fw_state`.
        var byState: [UInt32] { [synSent, synRecv, established, finWait, closeWait, lastAck, timeWait, close, udp, udpStream, icmp] }
    }

    public struct Config: Decodable {
        var conntrack: OnOff
        var acceptEstablished: OnOff
        var timeouts: Timeouts
        var chains: KeyedList<Chain>
        enum CodingKeys: String, CodingKey { case conntrack, acceptEstablished = "accept-established", timeouts, chains = "chain" }
        /// What every chain's configuration in the datapath carries besides its rules.
        var tracking: [OnOff] { [conntrack, acceptEstablished] }
    }

    public static var bindings: [ConfigBinding<Firewall>] {
        [.on(\.timeouts, apply: Firewall.timeouts), .on(\.chains, \.tracking, apply: Firewall.chains)]
    }

    /// What this host knows of a chain's tables.
    struct ChainTables {
        var generation: UInt32 = 0
        var compiled = FirewallRules.Compiled()
        /// Keys written in the current generation (taken out after a swap).
        var keys: [fw_rule_key] = []
        var slots: [UInt32: UInt32] = [:]
        var free: [UInt32] = []
        var nextSlot: UInt32
    }

    private var tables: [String: [ChainName: ChainTables]] = [:]

    static func index(_ chain: ChainName) -> UInt32 { chain == .ingress ? UInt32(FW_INGRESS.rawValue) : UInt32(FW_EGRESS.rawValue) }

    // MARK: - Checks

    public func validate(_ change: Change<Config>) throws {
        for chain in change.config.chains {
            let path = "chain[name='\(chain.name.rawValue)']"
            if chain.default == .log {
                throw ServiceFailure.invalid(path: path + "/default", "a chain's default is ACCEPT or DROP")
            }
            let before = change.previous?.chains[chain.name]?.rules
            let added = Self.appended(chain.rules, after: before)
            for rule in added ?? chain.rules.entries {
                if rule.conntrack != nil && change.config.conntrack == .off {
                    throw ServiceFailure.invalid(path: "\(path)/rule[id='\(rule.id)']/conntrack", "matching a connection state needs conntrack ON")
                }
                do {
                    _ = try FirewallRules.keys(of: rule)
                } catch FirewallRules.Failure.field(let field, let why) {
                    throw ServiceFailure.invalid(path: "\(path)/rule[id='\(rule.id)']/\(field)", why)
                }
            }
            let shapes: Int
            if let added, let known = tables[change.cube.name]?[chain.name] {
                shapes = Set(known.compiled.shapes + (try added.flatMap { try FirewallRules.keys(of: $0).map(\.shape) })).count
            } else {
                shapes = try FirewallRules.compile(chain.rules.entries, slots: [:]).shapes.count
            }
            if shapes > Int(FW_MAX_SHAPES) {
                throw ServiceFailure.invalid(path: path + "/rule", "the rules have \(shapes) shapes (which fields they match, prefix lengths, TCP flags): at most \(FW_MAX_SHAPES)")
            }
        }
    }

    /// The rules `rules` has after `before`'s, when that is all that changed (an append).
    static func appended(_ rules: KeyedList<FirewallRule>, after before: KeyedList<FirewallRule>?) -> [FirewallRule]? {
        guard let before else { return nil }
        let difference = rules.difference(from: before)
        guard difference.removed.isEmpty, difference.changed.isEmpty else { return nil }
        let last = before.entries.map(\.id).max()
        guard difference.added.allSatisfy({ last == nil || $0.id > last! }) else { return nil }
        return difference.added.sorted { $0.id < $1.id }
    }

    // MARK: - Bindings

    func timeouts(_ change: Change<Config>) throws {
        let table = try change.cube.table("fw_timeouts")
        for (state, seconds) in change.config.timeouts.byState.enumerated() {
            try table.update(UInt32(state), UInt64(seconds) * 1_000_000_000)
        }
    }

    func chains(_ change: Change<Config>) throws {
        for name in [ChainName.ingress, .egress] {
            let chain = change.config.chains[name] ?? Chain(name: name, default: .accept, rules: KeyedList())
            let before = change.previous?.chains[name]
            if let before, before == chain, change.previous?.tracking == change.config.tracking, tables[change.cube.name]?[name] != nil {
                continue
            }
            try program(chain, before: before?.rules, config: change.config, cube: change.cube)
        }
    }

    private func chainConfig(_ chain: Chain, generation: UInt32, config: Config) -> fw_chain_config {
        fw_chain_config(generation: generation, default_action: FirewallRules.action(chain.default),
                        conntrack: config.conntrack == .on ? 1 : 0, accept_established: config.acceptEstablished == .on ? 1 : 0)
    }

    private func shapeBase(_ chain: ChainName, generation: UInt32) -> UInt32 {
        (Self.index(chain) * 2 + (generation & 1)) * UInt32(FW_MAX_SHAPES)
    }

    private func program(_ chain: Chain, before: KeyedList<FirewallRule>?, config: Config, cube: Cube<Config>) throws {
        let rulesTable = try cube.table("fw_rules"), shapesTable = try cube.table("fw_shapes")
        let countsTable = try cube.table("fw_shape_counts"), configTable = try cube.table("fw_chain_config")
        let chainIndex = Self.index(chain.name)
        var state = try tables[cube.name]?[chain.name] ?? recover(chain, cube: cube)
        defer { tables[cube.name, default: [:]][chain.name] = state }

        if let added = Self.appended(chain.rules, after: before), tables[cube.name]?[chain.name] != nil {
            // Appended after every rule: new keys and shapes in place, nothing that classified changes.
            let oldShapes = state.compiled.shapes.count
            var touched: [FirewallRules.Key] = []
            for rule in added {
                let slot = try fresh(&state, cube: cube)
                state.slots[rule.id] = slot
                try state.compiled.add(rule, slot: slot)
                touched += try FirewallRules.keys(of: rule)
            }
            let base = shapeBase(chain.name, generation: state.generation)
            for index in oldShapes..<state.compiled.shapes.count {
                let shape = state.compiled.shapes[index]
                try shapesTable.update(base + UInt32(index), FirewallRules.datapathShape(shape, firstRule: state.compiled.firstRule[shape]!))
            }
            if state.compiled.shapes.count != oldShapes {
                try countsTable.update(chainIndex * 2 + (state.generation & 1), UInt32(state.compiled.shapes.count))
            }
            for key in Set(touched) {
                let shapeIndex = base + UInt32(state.compiled.shapes.firstIndex(of: key.shape)!)
                let datapathKey = FirewallRules.datapathKey(key, shapeIndex: shapeIndex)
                try rulesTable.update(datapathKey, FirewallRules.datapathMatch(state.compiled.matches[key]!))
                state.keys.append(datapathKey)
            }
            try configTable.update(chainIndex, chainConfig(chain, generation: state.generation, config: config))
            return
        }

        // Any other change: slots follow their rules (by id, else by the same match), the other
        // generation is built and swapped to, then the old one emptied.
        var slots: [UInt32: UInt32] = [:]
        let old = Dictionary((before?.entries ?? []).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        // Rules moved by an insert keep their counters: old rules by what they match, not claimed yet.
        var moved = Dictionary(grouping: (before?.entries ?? []).filter { state.slots[$0.id] != nil }, by: Self.signature)
        for rule in chain.rules where old[rule.id] == rule {
            slots[rule.id] = state.slots[rule.id]
            moved[Self.signature(rule)]?.removeAll { $0.id == rule.id }
        }
        for rule in chain.rules where slots[rule.id] == nil {
            if let claimed = moved[Self.signature(rule)]?.first(where: { state.slots[$0.id].map { !slots.values.contains($0) } ?? false }) {
                slots[rule.id] = state.slots[claimed.id]
                moved[Self.signature(rule)]?.removeAll { $0.id == claimed.id }
            } else if before == nil, let slot = state.slots[rule.id] {
                slots[rule.id] = slot          // read back from the tables after a restart
            }
        }
        for slot in Set(state.slots.values).subtracting(slots.values) { release(slot, state: &state) }
        state.slots = [:]
        for rule in chain.rules {
            state.slots[rule.id] = try slots[rule.id] ?? fresh(&state, cube: cube)
        }
        let compiled = try FirewallRules.compile(chain.rules.entries, slots: state.slots)
        let next = state.generation ^ 1
        let base = shapeBase(chain.name, generation: next)
        var written: [fw_rule_key] = []
        for (index, shape) in compiled.shapes.enumerated() {
            try shapesTable.update(base + UInt32(index), FirewallRules.datapathShape(shape, firstRule: compiled.firstRule[shape]!))
        }
        let shapeIndex = Dictionary(uniqueKeysWithValues: compiled.shapes.enumerated().map { ($1, base + UInt32($0)) })
        for (key, match) in compiled.matches {
            let datapathKey = FirewallRules.datapathKey(key, shapeIndex: shapeIndex[key.shape]!)
            try rulesTable.update(datapathKey, FirewallRules.datapathMatch(match))
            written.append(datapathKey)
        }
        try countsTable.update(chainIndex * 2 + (next & 1), UInt32(compiled.shapes.count))
        // The swap: one write, read once per packet.
        try configTable.update(chainIndex, chainConfig(chain, generation: next, config: config))
        if !state.keys.isEmpty {
            usleep(10_000)  // packets classifying with the old generation finish first
            for key in state.keys { try? rulesTable.delete(key) }
        }
        try countsTable.update(chainIndex * 2 + (state.generation & 1), UInt32(0))
        state.generation = next
        state.compiled = compiled
        state.keys = written
    }

    /// After a restart of this host: the generation that classifies, its keys, and each rule's
    /// counters slot, read back from the tables (they outlive the host).
    private func recover(_ chain: Chain, cube: Cube<Config>) throws -> ChainTables {
        let chainIndex = Self.index(chain.name)
        let generation = try cube.table("fw_chain_config").lookup(chainIndex, as: fw_chain_config.self)?.generation ?? 0
        var state = ChainTables(generation: generation, nextSlot: UInt32(FW_FIRST_RULE_SLOT) + chainIndex * UInt32(FW_MAX_RULES))
        let base = shapeBase(chain.name, generation: generation)
        let rulesTable = try cube.table("fw_rules")
        for key in try rulesTable.keys(as: fw_rule_key.self) where key.shape >= base && key.shape < base + UInt32(FW_MAX_SHAPES) {
            state.keys.append(key)
            if let match = try rulesTable.lookup(key, as: fw_rule_match.self) {
                if match.rule != FW_NO_RULE { state.slots[match.rule] = match.slot }
                if match.log_rule != FW_NO_RULE { state.slots[match.log_rule] = match.log_slot }
            }
        }
        state.nextSlot = max(state.nextSlot, (state.slots.values.max() ?? 0) + 1)
        return state
    }

    /// A slot with zeroed counters.
    private func fresh(_ state: inout ChainTables, cube: Cube<Config>) throws -> UInt32 {
        let slot: UInt32
        if let reused = state.free.popLast() {
            slot = reused
        } else {
            slot = state.nextSlot
            state.nextSlot += 1
        }
        try cube.table("fw_counters").updatePerCPU(slot, fw_counter(packets: 0, bytes: 0))
        return slot
    }

    /// A slot no rule uses any more (zeroed when `fresh` hands it out again).
    private func release(_ slot: UInt32, state: inout ChainTables) {
        state.free.append(slot)
    }

    public func removed(_ cube: Cube<Config>) { tables[cube.name] = nil }

    /// A rule's match and action without its id.
    static func signature(_ rule: FirewallRule) -> String {
        json(rule).filter { $0.key != "id" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    // MARK: - State

    private func counter(_ cube: Cube<Config>, _ slot: UInt32) throws -> (packets: UInt64, bytes: UInt64) {
        try cube.table("fw_counters").lookupPerCPU(slot, as: fw_counter.self).reduce((0, 0)) { ($0.0 + $1.packets, $0.1 + $1.bytes) }
    }

    static let stateNames = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",
                             "UNREPLIED", "REPLIED", "ICMP"]

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        var chains: [[String: Any]] = []
        for name in [ChainName.ingress, .egress] {
            guard let chain = cube.config?.chains[name] else { continue }
            let slots = tables[cube.name]?[name]?.slots ?? [:]
            let stats = try chain.rules.map { rule -> [String: Any] in
                let counted = try slots[rule.id].map { try counter(cube, $0) } ?? (packets: 0, bytes: 0)
                var entry: [String: Any] = ["id": Int(rule.id), "pkts": "\(counted.packets)", "bytes": "\(counted.bytes)"]
                if let description = rule.description { entry["description"] = description }
                return entry
            }
            chains.append(["name": name.rawValue, "stats": stats, "default-pkts": "\(try counter(cube, Self.index(name)).packets)"])
        }
        var sessions: [[String: Any]] = []
        let connections = try cube.table("fw_connections")
        let nanoseconds = DatapathClock.nanoseconds
        let timeouts = cube.config?.timeouts.byState ?? []
        for key in try connections.keys(as: fw_connection_key.self) {
            guard let connection = try connections.lookup(key, as: fw_connection.self), Int(connection.state) < Self.stateNames.count else { continue }
            let lifetime = UInt64(Int(connection.state) < timeouts.count ? timeouts[Int(connection.state)] : 30) * 1_000_000_000
            let age = nanoseconds > connection.last_seen ? nanoseconds - connection.last_seen : 0
            guard age < lifetime else { continue }
            let forward = connection.originator == 0
            let (src, dst) = forward ? (key.a_ip, key.b_ip) : (key.b_ip, key.a_ip)
            let (sport, dport) = forward ? (key.a_port, key.b_port) : (key.b_port, key.a_port)
            sessions.append(["src": IPv4Address(networkOrder: src).description, "dst": IPv4Address(networkOrder: dst).description,
                             "l4proto": key.proto == 6 ? "TCP" : key.proto == 17 ? "UDP" : "ICMP",
                             "sport": Int(UInt16(bigEndian: sport)), "dport": Int(UInt16(bigEndian: dport)),
                             "state": Self.stateNames[Int(connection.state)], "eta": Int((lifetime - age) / 1_000_000_000)])
        }
        return ["chain": chains, "session-table": sessions]
    }

    // MARK: - Actions

    public func action(_ name: String, path: [String], input: [String: Any], on cube: Cube<Config>) throws -> ActionResult {
        guard path.count == 2, path[0] == "chain", let chainName = ChainName(rawValue: path[1].uppercased()) else {
            throw ServiceFailure.refused("firewall has no action '\(name)' at \(path.joined(separator: "/"))")
        }
        let chain = cube.config?.chains[chainName] ?? Chain(name: chainName, default: .accept, rules: KeyedList())
        var rules = chain.rules.entries.sorted { $0.id < $1.id }
        let fields = input.filter { $0.key != "id" && $0.key != "operation" }
        func nextID(_ rules: [FirewallRule]) -> UInt32 { rules.last.map { $0.id + 1 } ?? 0 }
        func rewrite() -> ActionWrite {
            ActionWrite(.put, ["chain", chainName.rawValue], body: ["name": chainName.rawValue, "default": chain.default.rawValue, "rule": rules.map(Self.json)])
        }
        switch name {
        case "append":
            let id = nextID(rules)
            if cube.config?.chains[chainName] == nil {
                return ActionResult(output: ["id": Int(id)], write: ActionWrite(.post, ["chain"], body: ["name": chainName.rawValue, "rule": [fields.merging(["id": Int(id)]) { $1 }]]))
            }
            return ActionResult(output: ["id": Int(id)], write: ActionWrite(.post, ["chain", chainName.rawValue, "rule"], body: fields.merging(["id": Int(id)]) { $1 }))
        case "insert":
            let id = UInt32(input["id"] as? Int ?? 0)
            rules = rules.map { rule in var moved = rule; if moved.id >= id { moved.id += 1 }; return moved }
            rules.append(try Self.rule(fields, id: id))
            rules.sort { $0.id < $1.id }
            return ActionResult(output: ["id": Int(id)], write: rewrite())
        case "delete":
            if let id = input["id"] as? Int {
                guard rules.contains(where: { $0.id == UInt32(id) }) else { throw ServiceFailure.refused("chain \(chainName.rawValue) has no rule \(id)") }
                return ActionResult(write: ActionWrite(.delete, ["chain", chainName.rawValue, "rule", "\(id)"]))
            }
            let before = rules.count
            rules.removeAll { rule in fields.allSatisfy { field in (Self.json(rule)[field.key]).map { "\($0)" } == "\(field.value)" } && !fields.isEmpty }
            guard rules.count < before else { throw ServiceFailure.refused("no rule of chain \(chainName.rawValue) has exactly those fields") }
            return ActionResult(write: rewrite())
        case "batch":
            for operation in (input["rules"] as? [Any] ?? []).compactMap({ $0 as? [String: Any] }) {
                let id = UInt32(operation["id"] as? Int ?? 0)
                let given = operation.filter { $0.key != "id" && $0.key != "operation" }
                switch operation["operation"] as? String {
                case "APPEND": rules.append(try Self.rule(given, id: nextID(rules)))
                case "INSERT":
                    rules = rules.map { rule in var moved = rule; if moved.id >= id { moved.id += 1 }; return moved }
                    rules.append(try Self.rule(given, id: id))
                case "DELETE": rules.removeAll { $0.id == id }
                default:   // UPDATE
                    rules.removeAll { $0.id == id }
                    rules.append(try Self.rule(given, id: id))
                }
                rules.sort { $0.id < $1.id }
            }
            return ActionResult(write: rewrite())
        case "reset-counters":
            let table = try cube.table("fw_counters")
            for slot in (tables[cube.name]?[chainName]?.slots.values).map(Array.init) ?? [] {
                try table.updatePerCPU(slot, fw_counter(packets: 0, bytes: 0))
            }
            try table.updatePerCPU(Self.index(chainName), fw_counter(packets: 0, bytes: 0))
            return ActionResult()
        default:
            throw ServiceFailure.refused("firewall has no action '\(name)'")
        }
    }

    static func json(_ rule: FirewallRule) -> [String: Any] {
        var object: [String: Any] = ["id": Int(rule.id), "action": rule.action.rawValue]
        if let value = rule.src { object["src"] = value }
        if let value = rule.dst { object["dst"] = value }
        if let value = rule.l4proto { object["l4proto"] = value.rawValue }
        if let value = rule.sport { object["sport"] = Int(value) }
        if let value = rule.dport { object["dport"] = Int(value) }
        if let value = rule.tcpflags { object["tcpflags"] = value }
        if let value = rule.conntrack { object["conntrack"] = value.rawValue }
        if let value = rule.description { object["description"] = value }
        return object
    }

    static func rule(_ fields: [String: Any], id: UInt32) throws -> FirewallRule {
        var object = fields
        object["id"] = Int(id)
        if object["action"] == nil { object["action"] = "DROP" }
        do {
            return try JSONDecoder().decode(FirewallRule.self, from: JSONSerialization.data(withJSONObject: object))
        } catch {
            throw ServiceFailure.refused("rule \(id): \(error)")
        }
    }
}

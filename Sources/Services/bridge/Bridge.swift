import BPFKit
import Foundation
import PCNDatapathABI
import ServiceABI
import ServiceKit

/// bridge: 802.1Q VLANs, learning and flooding in the fast path (bridge.c); here the tables that
/// say which ports are in which VLAN, static entries, aging, the slow-path floods the kernel cannot
/// do, and the spanning tree (one 802.1D instance per VLAN, SpanningTree.swift), whose port states
/// the fast path enforces.
public final class Bridge: CubeService {
    public static let name = "bridge"
    public init() {}

    public struct Config: Decodable {
        enum Mode: String, Decodable { case access, trunk }
        struct Access: Decodable, Equatable { var vlanid: UInt16 }
        struct Allowed: Decodable, Equatable, Keyed {
            var vlanid: UInt16
            var key: UInt16 { vlanid }
        }
        struct Trunk: Decodable, Equatable {
            var allowed: KeyedList<Allowed>?
            var nativeVlanEnabled: Bool
            var nativeVlan: UInt16
            enum CodingKeys: String, CodingKey { case allowed, nativeVlanEnabled = "native-vlan-enabled", nativeVlan = "native-vlan" }
        }
        struct PortTree: Decodable, Equatable, Keyed {
            var vlan: UInt16
            var pathCost: UInt16
            var portPriority: UInt8
            var key: UInt16 { vlan }
            enum CodingKeys: String, CodingKey { case vlan, pathCost = "path-cost", portPriority = "port-priority" }
        }
        struct Port: Decodable, Equatable, Keyed {
            var name: String
            var peer: String?
            var mac: MACAddress?
            var mode: Mode
            var access: Access?
            var trunk: Trunk?
            var stp: KeyedList<PortTree>?
            var key: String { name }

            /// The VLANs of the port, and which of them it sends untagged.
            var vlans: (all: Set<UInt16>, untagged: Set<UInt16>) {
                switch mode {
                case .access:
                    let vlan = access?.vlanid ?? 1
                    return ([vlan], [vlan])
                case .trunk:
                    var all = Set((trunk?.allowed ?? KeyedList()).map(\.vlanid))
                    guard let trunk, trunk.nativeVlanEnabled else { return (all, []) }
                    all.insert(trunk.nativeVlan)
                    return (all, [trunk.nativeVlan])
                }
            }
        }
        struct Tree: Decodable, Equatable, Keyed {
            var vlan: UInt16
            var priority: UInt16
            var forwardDelay: UInt8
            var helloTime: UInt8
            var maxMessageAge: UInt8
            var key: UInt16 { vlan }
            enum CodingKeys: String, CodingKey {
                case vlan, priority, forwardDelay = "forward-delay", helloTime = "hello-time", maxMessageAge = "max-message-age"
            }
        }
        struct Entry: Decodable, Equatable, Keyed {
            var vlan: UInt16
            var mac: MACAddress
            var port: String
            var key: String { "\(vlan) \(mac)" }
        }
        struct FilteringDatabase: Decodable, Equatable {
            var agingTime: UInt32
            var entry: KeyedList<Entry>
            enum CodingKeys: String, CodingKey { case agingTime = "aging-time", entry }
        }
        var type: String?
        var mac: MACAddress?
        var stpEnabled: Bool
        var stp: KeyedList<Tree>
        var fdb: FilteringDatabase
        var ports: KeyedList<Port>
        enum CodingKeys: String, CodingKey { case type, mac, stpEnabled = "stp-enabled", stp, fdb, ports }
    }

    public static var bindings: [ConfigBinding<Bridge>] {
        [.on(\.fdb.agingTime, \.stpEnabled, apply: Bridge.settings),
         .on(\.ports, \.stp, apply: Bridge.topology),
         .on(\.fdb.entry, \.ports, apply: Bridge.staticEntries)]
    }

    /// What this host keeps per cube: one spanning tree per VLAN and what it last wrote.
    final class Instance {
        var trees: [UInt16: SpanningTree] = [:]
        var written: [UInt16: bridge_vlan] = [:]
        var groups: [[UInt32: UInt32]] = Array(repeating: [:], count: Int(PCN_FLOOD_GROUPS))
        var stpEnabled = false
        var resumed = false
    }

    private var instances: [String: Instance] = [:]

    private func instance(_ cube: Cube<Config>) -> Instance {
        if let known = instances[cube.name] { return known }
        let fresh = Instance()
        instances[cube.name] = fresh
        return fresh
    }

    private static var now: Double { DatapathClock.seconds }

    /// A locally administered address made from a name (stable across restarts).
    static func derivedMAC(_ name: String) -> MACAddress {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        var bytes = (0..<6).map { UInt8(truncatingIfNeeded: hash >> (8 * UInt64($0))) }
        bytes[0] = (bytes[0] & 0xfc) | 0x02
        return MACAddress(bytes: bytes)
    }

    private static func mac(of port: Config.Port, cube: String) -> MACAddress { port.mac ?? derivedMAC("\(cube)/\(port.name)") }

    // MARK: - Checks

    public func validate(_ change: Change<Config>) throws {
        let config = change.config
        var vlansInUse = Set<UInt16>()
        for port in config.ports {
            let vlans = port.vlans.all
            vlansInUse.formUnion(vlans)
            if port.mode == .trunk, vlans.isEmpty {
                throw ServiceFailure.invalid(path: "ports[name='\(port.name)']/trunk", "a trunk needs allowed VLANs or its native VLAN")
            }
            for tree in port.stp ?? KeyedList() where !vlans.contains(tree.vlan) {
                throw ServiceFailure.invalid(path: "ports[name='\(port.name)']/stp[vlan='\(tree.vlan)']",
                                             "port \(port.name) is not in VLAN \(tree.vlan) (its VLANs: \(vlans.sorted().map(String.init).joined(separator: ", ")))")
            }
        }
        for entry in config.fdb.entry {
            guard let port = config.ports[entry.port] else { continue }
            if !port.vlans.all.contains(entry.vlan) {
                throw ServiceFailure.invalid(path: "fdb/entry[vlan='\(entry.vlan)'][mac='\(entry.mac)']/port",
                                             "port \(entry.port) is not in VLAN \(entry.vlan)")
            }
        }
        if config.ports.count > Int(BRIDGE_MAX_PORTS) {
            throw ServiceFailure.invalid(path: "ports", "a bridge has at most \(BRIDGE_MAX_PORTS) ports (its VLANs keep their members as 32-bit masks)")
        }
    }

    // MARK: - Bindings

    func settings(_ change: Change<Config>) throws {
        let config = change.config
        try change.cube.table("bridge_config").update(UInt32(0), bridge_config(aging_time: config.fdb.agingTime, stp_enabled: config.stpEnabled ? 1 : 0))
    }

    /// Ports and their VLANs, the spanning trees of those VLANs, and the tables that follow.
    func topology(_ change: Change<Config>) throws {
        let cube = change.cube, config = change.config, known = instance(cube)
        let portsTable = try cube.table("bridge_ports")
        for port in config.ports {
            guard let index = cube.port(named: port.name)?.index else { continue }
            let pvid: UInt16 = switch port.mode {
            case .access: port.access?.vlanid ?? 1
            case .trunk: port.trunk.map { $0.nativeVlanEnabled ? $0.nativeVlan : 0 } ?? 0
            }
            try portsTable.update(UInt32(index), bridge_port(pvid: pvid, access: port.mode == .access ? 1 : 0))
        }
        let now = Self.now
        let vlans = Set(config.ports.flatMap(\.vlans.all))
        let resuming = !known.resumed
        for vlan in known.trees.keys where !vlans.contains(vlan) { known.trees[vlan] = nil }
        var outputs: [(UInt16, [SpanningTree.Output])] = []
        for vlan in vlans.sorted() {
            let tree = config.stp[vlan]
            let timers = SpanningTree.Timers(helloTime: Double(tree?.helloTime ?? 2), maxAge: Double(tree?.maxMessageAge ?? 20),
                                             forwardDelay: Double(tree?.forwardDelay ?? 15))
            let identity = BridgeID(priority: tree?.priority ?? 32768, mac: config.mac ?? Self.derivedMAC(cube.name))
            var settings: [Int: SpanningTree.PortSettings] = [:]
            for port in config.ports where port.vlans.all.contains(vlan) {
                guard let cubePort = cube.port(named: port.name) else { continue }
                let mine = port.stp?[vlan]
                let id = UInt16(mine?.portPriority ?? 128) << 8 | UInt16((cubePort.index + 1) & 0xff)
                settings[cubePort.index] = .init(id: id, pathCost: UInt32(mine?.pathCost ?? 4), enabled: !cubePort.peer.isEmpty)
            }
            let spanning = known.trees[vlan] ?? SpanningTree(bridge: identity, timers: timers)
            let isNew = known.trees[vlan] == nil
            known.trees[vlan] = spanning
            outputs.append((vlan, spanning.configure(bridge: identity, timers: timers, ports: settings, now: now)))
            if isNew && resuming, let written = try cube.table("bridge_vlans").lookup(UInt32(vlan), as: bridge_vlan.self) {
                // Restarted: the datapath still enforces the states; the tree picks them up.
                var states: [Int: SpanningTree.PortState] = [:]
                for index in settings.keys {
                    let bit = UInt32(1) << UInt32(index)
                    states[index] = written.forwarding & bit != 0 ? .forwarding : written.learning & bit != 0 ? .learning : .blocking
                }
                spanning.resume(states: states, now: now)
                known.written[vlan] = written
            }
        }
        known.resumed = true
        known.stpEnabled = config.stpEnabled
        try writeVlans(cube, config: config, known: known)
        for (vlan, out) in outputs { try carryOut(out, vlan: vlan, cube: cube, config: config) }
    }

    /// bridge_vlans (members, tagging, the spanning tree's states) and XDP's flood groups.
    private func writeVlans(_ cube: Cube<Config>, config: Config, known: Instance) throws {
        let table = try cube.table("bridge_vlans")
        var wanted: [UInt16: bridge_vlan] = [:]
        for port in config.ports {
            guard let index = cube.port(named: port.name)?.index else { continue }
            let bit = UInt32(1) << UInt32(index), vlans = port.vlans
            for vlan in vlans.all {
                var entry = wanted[vlan] ?? bridge_vlan()
                entry.members |= bit
                if vlans.untagged.contains(vlan) { entry.untagged |= bit }
                let state = config.stpEnabled ? known.trees[vlan]?.ports[index]?.state ?? .blocking : .forwarding
                if state == .learning || state == .forwarding { entry.learning |= bit }
                if state == .forwarding { entry.forwarding |= bit }
                wanted[vlan] = entry
            }
        }
        try assignFloodGroups(&wanted, cube: cube, config: config, known: known)
        for (vlan, entry) in wanted where known.written[vlan].map({ !Self.same($0, entry) }) ?? true {
            try table.update(UInt32(vlan), entry)
            known.written[vlan] = entry
        }
        for vlan in Array(known.written.keys) where wanted[vlan] == nil {
            try table.delete(UInt32(vlan))
            known.written[vlan] = nil
        }
        for vlan in try table.keys(as: UInt32.self) where wanted[UInt16(truncatingIfNeeded: vlan)] == nil { try table.delete(vlan) }
    }

    private static func same(_ a: bridge_vlan, _ b: bridge_vlan) -> Bool {
        a.members == b.members && a.learning == b.learning && a.forwarding == b.forwarding && a.untagged == b.untagged
            && a.flood_group == b.flood_group && a.flood_untagged == b.flood_untagged
    }

    /// XDP floods with one broadcast to a group of netdev ports: each VLAN whose forwarding ports
    /// are all netdevs sending it the same way gets the group of exactly those ports (VLANs with the
    /// same ports share one); the others, and VLANs beyond PCN_FLOOD_GROUPS sets, flood through the
    /// slow path. TC clones per port and needs none.
    private func assignFloodGroups(_ wanted: inout [UInt16: bridge_vlan], cube: Cube<Config>, config: Config, known: Instance) throws {
        guard let type = config.type, type != "TC" else { return }
        var ifindex: [Int: UInt32] = [:]
        for port in cube.ports where !port.peer.isEmpty && !port.peer.contains(":") {
            let index = if_nametoindex(port.peer)
            if index != 0 { ifindex[port.index] = index }
        }
        var sets: [[UInt32: UInt32]] = []
        for vlan in wanted.keys.sorted() {
            var entry = wanted[vlan]!
            let ports = (0..<Int(BRIDGE_MAX_PORTS)).filter { entry.forwarding & entry.members & (1 << UInt32($0)) != 0 }
            let untagged = ports.filter { entry.untagged & (1 << UInt32($0)) != 0 }
            guard !ports.isEmpty, ports.allSatisfy({ ifindex[$0] != nil }), untagged.isEmpty || untagged.count == ports.count else { continue }
            let members = Dictionary(uniqueKeysWithValues: ports.map { (UInt32($0), ifindex[$0]!) })
            let slot = sets.firstIndex(of: members) ?? (sets.count < Int(PCN_FLOOD_GROUPS) ? sets.count : -1)
            guard slot >= 0 else { continue }
            if slot == sets.count { sets.append(members) }
            entry.flood_group = UInt32(slot + 1)
            entry.flood_untagged = untagged.isEmpty ? 0 : 1
            wanted[vlan] = entry
        }
        for slot in 0..<Int(PCN_FLOOD_GROUPS) {
            let members = slot < sets.count ? sets[slot] : [:]
            guard members != known.groups[slot] else { continue }
            let group = try cube.table("pcn_flood_group_\(slot + 1)")
            for (port, index) in members { try group.update(port, index) }
            for port in known.groups[slot].keys where members[port] == nil { try? group.delete(port) }
            known.groups[slot] = members
        }
    }

    /// Static entries match the configuration; learned ones are left alone (they survive restarts).
    func staticEntries(_ change: Change<Config>) throws {
        let fdb = try change.cube.table("bridge_fdb")
        var wanted: [[UInt8]: UInt32] = [:]
        for entry in change.config.fdb.entry {
            guard let port = change.cube.port(named: entry.port) else { continue }
            wanted[Self.key(entry.mac, vlan: entry.vlan)] = UInt32(port.index)
        }
        for key in try fdb.keys() where wanted[key] == nil {
            if let value = try fdb.lookup(key: key), Self.entry(value).flags & UInt32(BRIDGE_FDB_STATIC) != 0 { try fdb.delete(key: key) }
        }
        for (key, port) in wanted {
            try fdb.update(key: key, value: Self.bytes(bridge_fdb_entry(port: port, flags: UInt32(BRIDGE_FDB_STATIC), timestamp: UInt64(Self.now))))
        }
    }

    // MARK: - Table encoding

    static func key(_ mac: MACAddress, vlan: UInt16) -> [UInt8] { mac.bytes + [UInt8(vlan & 0xff), UInt8(vlan >> 8)] }

    static func bytes<T>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static func entry(_ bytes: [UInt8]) -> bridge_fdb_entry {
        bytes.withUnsafeBytes { $0.loadUnaligned(as: bridge_fdb_entry.self) }
    }

    private struct Learned {
        var key: [UInt8]
        var vlan: UInt16
        var mac: MACAddress
        var entry: bridge_fdb_entry
        var age: UInt64
        var isStatic: Bool
    }

    private func entries(_ cube: Cube<Config>) throws -> [Learned] {
        let fdb = try cube.table("bridge_fdb")
        let now = UInt64(Self.now)
        return try fdb.keys().compactMap { key in
            guard key.count == 8, let value = try fdb.lookup(key: key) else { return nil }
            let entry = Self.entry(value)
            let isStatic = entry.flags & UInt32(BRIDGE_FDB_STATIC) != 0
            return Learned(key: key, vlan: UInt16(key[6]) | UInt16(key[7]) << 8, mac: MACAddress(bytes: Array(key[0..<6])), entry: entry,
                           age: isStatic || now < entry.timestamp ? 0 : now - entry.timestamp, isStatic: isStatic)
        }
    }

    private func flush(_ cube: Cube<Config>, vlan: UInt16?) throws {
        let fdb = try cube.table("bridge_fdb")
        for item in try entries(cube) where !item.isStatic && (vlan == nil || item.vlan == vlan) { try fdb.delete(key: item.key) }
    }

    // MARK: - State, actions, time

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        guard let config = cube.config else { return [:] }
        let aging = UInt64(config.fdb.agingTime), known = instance(cube)
        let listed: [[String: Any]] = try entries(cube).filter { $0.isStatic || $0.age <= aging }.map { item in
            ["vlan": Int(item.vlan), "mac": item.mac.description, "port": cube.port(index: Int(item.entry.port))?.name ?? "\(item.entry.port)",
             "age": Int(item.age), "type": item.isStatic ? "static" : "dynamic"]
        }
        var ports: [[String: Any]] = []
        for port in config.ports {
            guard let index = cube.port(named: port.name)?.index else { continue }
            let trees: [[String: Any]] = port.vlans.all.sorted().compactMap { vlan in
                guard let tree = known.trees[vlan], let state = tree.ports[index] else { return nil }
                guard config.stpEnabled else { return ["vlan": Int(vlan), "state": state.settings.enabled ? "forwarding" : "disabled", "role": "disabled"] }
                return ["vlan": Int(vlan), "state": state.state.rawValue, "role": state.role.rawValue, "designated-bridge": state.designatedBridge.description]
            }
            ports.append(["name": port.name, "stp": trees])
        }
        let trees: [[String: Any]] = known.trees.keys.sorted().map { vlan in
            let tree = known.trees[vlan]!
            return ["vlan": Int(vlan), "bridge-id": tree.bridge.description, "root-bridge": tree.root.description,
                    "root-port": tree.rootPort.flatMap { cube.port(index: $0)?.name } ?? "", "root-path-cost": Int(tree.rootPathCost),
                    "topology-changes": tree.topologyChanges]
        }
        return ["fdb": ["entry": listed], "ports": ports, "stp": config.stpEnabled ? trees : []]
    }

    public func action(_ name: String, path: [String], input: [String: Any], on cube: Cube<Config>) throws -> ActionResult {
        guard name == "flush" else { throw ServiceFailure.refused("bridge has no action '\(name)'") }
        try flush(cube, vlan: nil)
        cube.logger.info("filtering database flushed")
        return ActionResult(output: ["flushed": true])
    }

    public func tick(_ cube: Cube<Config>) {
        guard let config = cube.config else { return }
        let known = instance(cube)
        if let fdb = try? cube.table("bridge_fdb"), let all = try? entries(cube) {
            for item in all where !item.isStatic && item.age > UInt64(config.fdb.agingTime) { try? fdb.delete(key: item.key) }
        }
        guard config.stpEnabled else { return }
        let now = Self.now
        do {
            for (vlan, tree) in known.trees.sorted(by: { $0.key < $1.key }) {
                try carryOut(tree.tick(now: now), vlan: vlan, cube: cube, config: config)
            }
            try writeVlans(cube, config: config, known: known)
        } catch {
            cube.logger.warning("spanning tree: \(error)")
        }
    }

    public func removed(_ cube: Cube<Config>) { instances[cube.name] = nil }

    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        guard let config = cube.config else { return }
        let vlan = UInt16(truncatingIfNeeded: packet.metadata.0)
        switch packet.reason {
        case UInt16(BRIDGE_REASON_FLOOD.rawValue):
            flood(packet, vlan: vlan, cubesOnly: packet.metadata.1 != 0, cube: cube, config: config)
        case UInt16(BRIDGE_REASON_BPDU.rawValue):
            guard config.stpEnabled, let tree = instance(cube).trees[vlan], let bpdu = BPDU(frame: packet.frame) else { return }
            try carryOut(tree.received(bpdu, on: packet.port, now: Self.now), vlan: vlan, cube: cube, config: config)
            try writeVlans(cube, config: config, known: instance(cube))
        default:
            return
        }
    }

    /// Floods the kernel could not do: out of each forwarding port of the VLAN but the input one
    /// (only cube peers when the kernel served the netdevs), each with its tagging.
    private func flood(_ packet: PacketIn, vlan: UInt16, cubesOnly: Bool, cube: Cube<Config>, config: Config) {
        guard packet.frame.count == packet.length, packet.frame.count >= 14 else {
            cube.logger.warning("frame of \(packet.length) bytes is larger than the slow path carries: not flooded")
            return
        }
        guard let entry = instance(cube).written[vlan] else { return }
        var untagged = packet.frame
        if untagged[12] == 0x81 && untagged[13] == 0x00 { untagged.removeSubrange(12..<16) }
        let tagged = Array(untagged[0..<12]) + [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xff)] + untagged[12...]
        for port in cube.ports where port.index != packet.port && !port.peer.isEmpty {
            let bit = UInt32(1) << UInt32(port.index)
            guard entry.members & entry.forwarding & bit != 0, !cubesOnly || port.peer.contains(":") else { continue }
            cube.send(entry.untagged & bit != 0 ? untagged : tagged, port: port.name, direction: .egress)
        }
    }

    /// Sends the tree's BPDUs (tagged where the port carries the VLAN tagged) and flushes on a topology change.
    private func carryOut(_ outputs: [SpanningTree.Output], vlan: UInt16, cube: Cube<Config>, config: Config) throws {
        guard config.stpEnabled else { return }
        for output in outputs {
            switch output {
            case .flush:
                cube.logger.info("topology change in VLAN \(vlan): learned addresses flushed")
                try flush(cube, vlan: vlan)
            case .send(let index, let bpdu):
                guard let cubePort = cube.port(index: index), let port = config.ports[cubePort.name], !cubePort.peer.isEmpty else { continue }
                let tag: UInt16? = port.vlans.untagged.contains(vlan) ? nil : vlan
                cube.send(bpdu.frame(source: Self.mac(of: port, cube: cube.name), vlan: tag), port: cubePort.name, direction: .egress)
            }
        }
    }
}

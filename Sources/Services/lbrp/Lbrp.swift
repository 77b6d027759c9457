import BPFKit
import Foundation
import PCNDatapathABI
import ServiceABI
import ServiceKit

/// lbrp: a reverse-proxy L4 load balancer. Each service gets a Maglev table of its backends
/// (`Maglev`) written as its own slots (lbrp.h), in the other of two generations and swapped in by
/// one write of the service's entry; a change to one service writes that service only. Sessions
/// are the datapath's: this host removes those of a removed backend, so they are balanced again.
public final class Lbrp: CubeService {
    public static let name = "lbrp"
    public init() {}

    public enum PortType: String, Decodable, Sendable { case frontend = "FRONTEND", backend = "BACKEND" }
    public enum Mode: String, Decodable, Sendable { case single = "SINGLE", multi = "MULTI" }
    public enum Proto: String, Decodable, Sendable { case icmp = "ICMP", tcp = "TCP", udp = "UDP", all = "ALL" }

    public struct Port: Decodable, Equatable, Keyed {
        var name: String
        var type: PortType
        var ip: String?
        public var key: String { name }
    }

    public struct Backend: Decodable, Equatable, Keyed {
        var ip: String
        var port: UInt16
        var weight: UInt16
        public var key: String { ip }
    }

    public struct ServiceKey: Hashable, Sendable, CustomStringConvertible {
        var vip: String
        var vport: UInt16
        var proto: Proto
        public var description: String { "service[vip='\(vip)'][vport='\(vport)'][proto='\(proto.rawValue)']" }
    }

    public struct Service: Decodable, Equatable, Keyed {
        var vip: String
        var vport: UInt16
        var proto: Proto
        var backends: KeyedList<Backend>
        public var key: ServiceKey { ServiceKey(vip: vip, vport: vport, proto: proto) }
        enum CodingKeys: String, CodingKey { case vip, vport, proto, backends = "backend" }
    }

    public struct Rewrite: Decodable, Equatable {
        var from: String?
        var to: String?
        enum CodingKeys: String, CodingKey { case from = "ip-range", to = "new_ip_range" }
    }

    public struct Config: Decodable {
        var ports: KeyedList<Port>
        var mode: Mode
        var rewrite: Rewrite?
        var services: KeyedList<Service>
        enum CodingKeys: String, CodingKey { case ports, mode = "port_mode", rewrite = "src-ip-rewrite", services = "service" }
        var settings: Settings { Settings(ports: ports, mode: mode, rewrite: rewrite) }
    }

    public struct Settings: Equatable {
        var ports: KeyedList<Port>
        var mode: Mode
        var rewrite: Rewrite?
    }

    public static var bindings: [ConfigBinding<Lbrp>] {
        [.on(\.settings, apply: Lbrp.settings), .on(\.services, apply: Lbrp.services)]
    }

    /// What this host wrote for a service.
    struct Written {
        var index: UInt32
        var generation: UInt32
        var size: UInt32
        var backendIDs: [String: UInt32]    // by backend ip
    }

    struct CubeState {
        var services: [ServiceKey: Written] = [:]
        var freeIndices: [UInt32] = []
        var nextIndex: UInt32 = 0
        var freeIDs: [UInt32] = []
        var nextID: UInt32 = 0
    }

    private var state: [String: CubeState] = [:]

    // MARK: - Checks

    public func validate(_ change: Change<Config>) throws {
        let config = change.config
        let frontends = config.ports.filter { $0.type == .frontend }, backends = config.ports.filter { $0.type == .backend }
        if backends.count > 1 {
            throw ServiceFailure.invalid(path: "ports[name='\(backends[1].name)']/type", "an lbrp has one BACKEND port")
        }
        if config.mode == .single && frontends.count > 1 {
            throw ServiceFailure.invalid(path: "ports[name='\(frontends[1].name)']/type", "port_mode SINGLE has one FRONTEND port (MULTI has many)")
        }
        if config.mode == .multi, let port = frontends.first(where: { $0.ip == nil }) {
            throw ServiceFailure.invalid(path: "ports[name='\(port.name)']/ip", "port_mode MULTI needs the ip of the client behind each FRONTEND port")
        }
        if let rewrite = config.rewrite, rewrite.from != nil || rewrite.to != nil {
            guard let from = rewrite.from.flatMap(IPv4Prefix.init), let to = rewrite.to.flatMap(IPv4Prefix.init), from.length == to.length else {
                throw ServiceFailure.invalid(path: "src-ip-rewrite", "ip-range and new_ip_range are two prefixes of the same length")
            }
        }
        var keys: [String: ServiceKey] = [:]
        for service in config.services {
            let path = service.key.description
            let backendAddresses = Set(service.backends.map(\.ip))
            if backendAddresses.contains(service.vip) {
                throw ServiceFailure.invalid(path: path + "/vip", "the VIP \(service.vip) is one of its backends' addresses")
            }
            for key in Self.datapathKeys(service.key) {
                let text = "\(key.vip)/\(key.vport)/\(key.proto)"
                if let other = keys[text] {
                    throw ServiceFailure.invalid(path: path + "/proto", "\(service.proto.rawValue) overlaps \(other) (ALL is TCP, UDP and ICMP)")
                }
                keys[text] = service.key
            }
        }
        if keys.count > Int(LB_SERVICES) {
            throw ServiceFailure.invalid(path: "service", "\(keys.count) service entries (ALL counts three): at most \(LB_SERVICES)")
        }
    }

    /// The datapath's keys of a service (ALL is three; ICMP echo is looked up with vport 0).
    static func datapathKeys(_ key: ServiceKey) -> [(vip: String, vport: UInt16, proto: UInt8)] {
        switch key.proto {
        case .tcp: [(key.vip, key.vport, 6)]
        case .udp: [(key.vip, key.vport, 17)]
        case .icmp: [(key.vip, 0, 1)]
        case .all: [(key.vip, key.vport, 6), (key.vip, key.vport, 17), (key.vip, 0, 1)]
        }
    }

    // MARK: - Bindings

    func settings(_ change: Change<Config>) throws {
        let cube = change.cube, config = change.config
        var types: [Int: UInt32] = [:]
        for port in config.ports {
            guard let index = cube.port(named: port.name)?.index else { continue }
            types[index] = UInt32(port.type == .frontend ? LB_PORT_FRONTEND.rawValue : LB_PORT_BACKEND.rawValue)
        }
        let portTable = try cube.table("lb_ports")
        for index in 0..<Int(PCN_MAX_PORTS) { try portTable.update(UInt32(index), types[index] ?? 0) }
        func index(of type: PortType) -> UInt32 {
            config.ports.first { $0.type == type }.flatMap { cube.port(named: $0.name) }.map { UInt32($0.index) } ?? UInt32(PCN_NO_PORT)
        }
        var value = lb_config(mode: UInt32(config.mode == .multi ? LB_MULTI.rawValue : LB_SINGLE.rawValue),
                              frontend_port: index(of: .frontend), backend_port: index(of: .backend),
                              rewrite_from: 0, rewrite_mask: 0, rewrite_to: 0)
        if let from = config.rewrite?.from.flatMap(IPv4Prefix.init), let to = config.rewrite?.to.flatMap(IPv4Prefix.init) {
            value.rewrite_from = from.network.networkOrder
            value.rewrite_mask = from.mask.bigEndian
            value.rewrite_to = to.network.networkOrder
        }
        try cube.table("lb_config").update(UInt32(0), value)
        let frontends = try cube.table("lb_frontends")
        var wanted: [UInt32: UInt32] = [:]
        for port in config.ports where port.type == .frontend && config.mode == .multi {
            guard let address = port.ip.flatMap(IPv4Address.init), let index = cube.port(named: port.name)?.index else { continue }
            wanted[address.networkOrder] = UInt32(index)
        }
        for key in try frontends.keys(as: UInt32.self) where wanted[key] == nil { try frontends.delete(key) }
        for (key, port) in wanted { try frontends.update(key, port) }
    }

    func services(_ change: Change<Config>) throws {
        let cube = change.cube
        var cubeState = try state[cube.name] ?? recover(cube)
        defer { state[cube.name] = cubeState }
        let difference = change.config.services.difference(from: change.previous?.services)
        let rewrite: [Service]
        if change.previous == nil {
            rewrite = change.config.services.entries
            // Entries of services gone while this host was away.
            let keep = Set(rewrite.map(\.key))
            for key in cubeState.services.keys where !keep.contains(key) { try remove(key, cube: cube, state: &cubeState) }
        } else {
            rewrite = difference.added + difference.changed
            for service in difference.removed { try remove(service.key, cube: cube, state: &cubeState) }
        }
        for service in rewrite { try program(service, cube: cube, state: &cubeState) }
    }

    /// Writes a service's table in its other generation, swaps to it, removes the old one, and the
    /// sessions of backends it no longer has.
    private func program(_ service: Service, cube: Cube<Config>, state cubeState: inout CubeState) throws {
        let slots = try cube.table("lb_slots"), servicesTable = try cube.table("lb_services")
        var written = cubeState.services[service.key] ?? Written(index: Self.take(&cubeState.freeIndices, &cubeState.nextIndex), generation: 1, size: 0, backendIDs: [:])
        let backends = service.backends.entries.sorted { $0.ip < $1.ip }
        var ids: [String: UInt32] = [:]
        for backend in backends {
            if let id = written.backendIDs[backend.ip] {
                ids[backend.ip] = id
            } else {
                let id = Self.take(&cubeState.freeIDs, &cubeState.nextID)
                try cube.table("lb_backend_counters").updatePerCPU(id, lb_counter(packets: 0, bytes: 0))
                ids[backend.ip] = id
            }
        }
        let size = Maglev.size(backends: backends.count)
        let table = Maglev.table(backends.map { ("\($0.ip):\($0.port)", Int($0.weight)) }, size: size)
        let next = written.generation ^ 1
        for (slot, backendIndex) in table.enumerated() {
            let backend = backends[backendIndex]
            let value = lb_backend(ip: IPv4Address(backend.ip)?.networkOrder ?? 0, port: backend.port.bigEndian, reserved: 0, id: ids[backend.ip]!)
            try slots.update(lb_slot_key(table: written.index * 2 + next, slot: UInt32(slot)), value)
        }
        let entry = lb_service(index: written.index, size: UInt32(size), generation: next, counter: written.index)
        for key in Self.datapathKeys(service.key) {
            try servicesTable.update(lb_service_key(vip: IPv4Address(key.vip)?.networkOrder ?? 0, vport: key.vport.bigEndian, proto: key.proto, reserved: 0), entry)
        }
        for slot in 0..<written.size { try? slots.delete(lb_slot_key(table: written.index * 2 + written.generation, slot: slot)) }
        let gone = Set(written.backendIDs.values).subtracting(ids.values)
        if !gone.isEmpty {
            try dropSessions(of: gone, cube: cube)
            cubeState.freeIDs += gone
        }
        written.generation = next
        written.size = UInt32(size)
        written.backendIDs = ids
        cubeState.services[service.key] = written
    }

    private func remove(_ key: ServiceKey, cube: Cube<Config>, state cubeState: inout CubeState) throws {
        guard let written = cubeState.services.removeValue(forKey: key) else { return }
        let slots = try cube.table("lb_slots"), servicesTable = try cube.table("lb_services")
        for datapathKey in Self.datapathKeys(key) {
            try? servicesTable.delete(lb_service_key(vip: IPv4Address(datapathKey.vip)?.networkOrder ?? 0, vport: datapathKey.vport.bigEndian, proto: datapathKey.proto, reserved: 0))
        }
        for slot in 0..<written.size { try? slots.delete(lb_slot_key(table: written.index * 2 + written.generation, slot: slot)) }
        try dropSessions(of: Set(written.backendIDs.values), cube: cube)
        try cube.table("lb_service_drops").updatePerCPU(written.index, lb_counter(packets: 0, bytes: 0))
        cubeState.freeIndices.append(written.index)
        cubeState.freeIDs += written.backendIDs.values
    }

    /// The sessions on backends that are gone: their next packet is balanced again.
    private func dropSessions(of backends: Set<UInt32>, cube: Cube<Config>) throws {
        let sessions = try cube.table("lb_sessions")
        for key in try sessions.keys(as: lb_session_key.self) {
            if let session = try sessions.lookup(key, as: lb_session.self), backends.contains(session.backend) {
                try? sessions.delete(key)
            }
        }
    }

    private static func take(_ free: inout [UInt32], _ next: inout UInt32) -> UInt32 {
        if let reused = free.popLast() { return reused }
        defer { next += 1 }
        return next
    }

    /// After a restart of this host: each service's index, generation and backend ids, read back
    /// from its entry and its slots (they outlive the host).
    private func recover(_ cube: Cube<Config>) throws -> CubeState {
        var recovered = CubeState()
        let servicesTable = try cube.table("lb_services"), slots = try cube.table("lb_slots")
        var byIndex: [UInt32: (lb_service, [lb_service_key])] = [:]
        for key in try servicesTable.keys(as: lb_service_key.self) {
            guard let entry = try servicesTable.lookup(key, as: lb_service.self) else { continue }
            byIndex[entry.index, default: (entry, [])].1.append(key)
        }
        var usedIDs = Set<UInt32>()
        for (index, (entry, keys)) in byIndex {
            guard let serviceKey = Self.serviceKey(keys) else { continue }
            var ids: [String: UInt32] = [:]
            for slot in 0..<entry.size {
                if let backend = try slots.lookup(lb_slot_key(table: index * 2 + (entry.generation & 1), slot: slot), as: lb_backend.self) {
                    ids[IPv4Address(networkOrder: backend.ip).description] = backend.id
                    usedIDs.insert(backend.id)
                }
            }
            recovered.services[serviceKey] = Written(index: index, generation: entry.generation & 1, size: entry.size, backendIDs: ids)
        }
        let indices = Set(byIndex.keys)
        recovered.nextIndex = (indices.max() ?? 0) + (indices.isEmpty ? 0 : 1)
        recovered.freeIndices = (0..<recovered.nextIndex).filter { !indices.contains($0) }
        recovered.nextID = (usedIDs.max() ?? 0) + (usedIDs.isEmpty ? 0 : 1)
        recovered.freeIDs = (0..<recovered.nextID).filter { !usedIDs.contains($0) }
        return recovered
    }

    /// The service a set of datapath keys came from (three keys: ALL).
    private static func serviceKey(_ keys: [lb_service_key]) -> ServiceKey? {
        guard let first = keys.first(where: { $0.proto != 1 }) ?? keys.first else { return nil }
        let vip = IPv4Address(networkOrder: first.vip).description
        let proto: Proto = keys.count >= 3 ? .all : first.proto == 6 ? .tcp : first.proto == 17 ? .udp : .icmp
        return ServiceKey(vip: vip, vport: proto == .icmp ? 0 : UInt16(bigEndian: first.vport), proto: proto)
    }

    public func removed(_ cube: Cube<Config>) { state[cube.name] = nil }

    // MARK: - State and slow path

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        guard let config = cube.config, let known = state[cube.name] else { return [:] }
        let nanoseconds = DatapathClock.nanoseconds
        var flows: [UInt32: Int] = [:]
        let sessions = try cube.table("lb_sessions")
        for key in try sessions.keys(as: lb_session_key.self) where key.direction == 0 {
            guard let session = try sessions.lookup(key, as: lb_session.self) else { continue }
            let lifetime = UInt64(key.proto == 6 ? LB_TIMEOUT_TCP : key.proto == 17 ? LB_TIMEOUT_UDP : LB_TIMEOUT_ICMP) * 1_000_000_000
            if nanoseconds - min(nanoseconds, session.last_seen) < lifetime { flows[session.backend, default: 0] += 1 }
        }
        let counters = try cube.table("lb_backend_counters"), drops = try cube.table("lb_service_drops")
        var services: [[String: Any]] = []
        for service in config.services {
            guard let written = known.services[service.key] else { continue }
            let backends = try service.backends.compactMap { backend -> [String: Any]? in
                guard let id = written.backendIDs[backend.ip] else { return nil }
                let sum = try counters.lookupPerCPU(id, as: lb_counter.self).reduce((0 as UInt64, 0 as UInt64)) { ($0.0 + $1.packets, $0.1 + $1.bytes) }
                return ["ip": backend.ip, "pkts": "\(sum.0)", "bytes": "\(sum.1)", "active-flows": flows[id] ?? 0]
            }
            let dropped = try drops.lookupPerCPU(written.index, as: lb_counter.self).reduce(0 as UInt64) { $0 + $1.packets }
            services.append(["vip": service.vip, "vport": Int(service.vport), "proto": service.proto.rawValue,
                             "backend": backends, "no-backend-drops": "\(dropped)"])
        }
        return ["service": services]
    }

    /// MULTI: non-IP frames from the backends (not ARP) go to every FRONTEND port.
    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        guard let config = cube.config else { return }
        for port in config.ports where port.type == .frontend {
            cube.send(packet.frame, port: port.name)
        }
    }
}

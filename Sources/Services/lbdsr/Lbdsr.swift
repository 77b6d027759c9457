import BPFKit
import Foundation
import PCNDatapathABI
import ServiceABI
import ServiceKit

/// lbdsr: direct server return for one VIP. The pool becomes a Maglev table (lbrp's `Maglev`)
/// written in the other of two slot sets and swapped in with the configuration; a removed backend's
/// sessions are deleted so its flows are balanced again.
public final class Lbdsr: CubeService {
    public static let name = "lbdsr"
    public init() {}

    public struct Port: Decodable, Equatable, Keyed {
        enum Kind: String, Decodable { case frontend = "FRONTEND", backend = "BACKEND" }
        var name: String
        var type: Kind
        public var key: String { name }
    }

    public struct Frontend: Decodable, Equatable {
        var vip: String?
        var mac: String?
    }

    public struct Backend: Decodable, Equatable, Keyed {
        var id: UInt16
        var mac: String
        var weight: UInt16
        public var key: UInt16 { id }
    }

    public struct Pool: Decodable, Equatable {
        var pool: KeyedList<Backend>
        init() { pool = KeyedList() }
        public init(from decoder: Decoder) throws {
            pool = try decoder.container(keyedBy: CodingKeys.self).decode(KeyedList<Backend>.self, forKey: .pool)
        }
        enum CodingKeys: String, CodingKey { case pool }
    }

    public struct Config: Decodable {
        var ports: KeyedList<Port>
        var frontend: Frontend?
        var backend: Pool?
        var whole: Whole { Whole(ports: ports, frontend: frontend, pool: backend?.pool ?? KeyedList()) }
    }

    public struct Whole: Equatable {
        var ports: KeyedList<Port>
        var frontend: Frontend?
        var pool: KeyedList<Backend>
    }

    public static var bindings: [ConfigBinding<Lbdsr>] { [.on(\.whole, apply: Lbdsr.program)] }

    private var generations: [String: (generation: UInt32, size: UInt32)] = [:]

    public func validate(_ change: Change<Config>) throws {
        let ports = change.config.ports
        for kind in [Port.Kind.frontend, .backend] where ports.filter({ $0.type == kind }).count > 1 {
            let second = ports.filter { $0.type == kind }[1]
            throw ServiceFailure.invalid(path: "ports[name='\(second.name)']/type", "an lbdsr has one \(kind.rawValue) port")
        }
        let pool = change.config.backend?.pool.entries ?? []
        if pool.count > 2000 {
            throw ServiceFailure.invalid(path: "backend/pool", "\(pool.count) backends: at most 2000")
        }
        var macs: [String: UInt16] = [:]
        for backend in pool {
            let mac = backend.mac.lowercased()
            if let other = macs[mac] {
                throw ServiceFailure.invalid(path: "backend/pool[id='\(backend.id)']/mac", "\(backend.mac) is already the MAC of backend \(other)")
            }
            macs[mac] = backend.id
        }
    }

    func program(_ change: Change<Config>) throws {
        let cube = change.cube, config = change.config
        let configTable = try cube.table("lbdsr_config"), slots = try cube.table("lbdsr_slots")
        var current = try generations[cube.name] ?? configTable.lookup(UInt32(0), as: lbdsr_config.self).map { ($0.generation & 1, $0.size) } ?? (0, 0)
        let pool = config.backend?.pool.entries.sorted { $0.id < $1.id } ?? []
        let size = Maglev.size(backends: pool.count)
        let table = Maglev.table(pool.map { ($0.mac.lowercased(), Int($0.weight)) }, size: size)
        let next = current.generation ^ 1
        let previous = change.previous?.backend?.pool
        for backend in pool where previous?[backend.id] == nil && change.previous != nil {
            try cube.table("lbdsr_counters").updatePerCPU(UInt32(backend.id), UInt64(0))
        }
        for (slot, index) in table.enumerated() {
            var value = lbdsr_backend()
            withUnsafeMutableBytes(of: &value.mac) { $0.copyBytes(from: MACAddress(pool[index].mac)?.bytes ?? []) }
            value.id = pool[index].id
            try slots.update(next * UInt32(LBDSR_SLOTS) + UInt32(slot), value)
        }
        func port(_ kind: Port.Kind) -> UInt32 {
            config.ports.first { $0.type == kind }.flatMap { cube.port(named: $0.name) }.map { UInt32($0.index) } ?? UInt32(PCN_NO_PORT)
        }
        var value = lbdsr_config()
        value.vip = config.frontend?.vip.flatMap { IPv4Address($0) }?.networkOrder ?? 0
        withUnsafeMutableBytes(of: &value.mac) { $0.copyBytes(from: config.frontend?.mac.flatMap { MACAddress($0) }?.bytes ?? [0, 0, 0, 0, 0, 0]) }
        value.frontend_port = port(.frontend)
        value.backend_port = port(.backend)
        value.size = UInt32(size)
        value.generation = next
        try configTable.update(UInt32(0), value)   // the swap
        current = (next, UInt32(size))
        generations[cube.name] = current
        // Flows of backends that are gone: balanced again on their next packet.
        let kept = Set(pool.map(\.id))
        if let previous, previous.contains(where: { !kept.contains($0.id) }) {
            let sessions = try cube.table("lbdsr_sessions")
            for key in try sessions.keys(as: lbdsr_flow.self) {
                if let backend = try sessions.lookup(key, as: lbdsr_backend.self), !kept.contains(backend.id) { try? sessions.delete(key) }
            }
        }
    }

    public func removed(_ cube: Cube<Config>) { generations[cube.name] = nil }

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        let counters = try cube.table("lbdsr_counters")
        let pool = try (cube.config?.backend?.pool.entries ?? []).map { backend -> [String: Any] in
            ["id": Int(backend.id), "pkts": "\(try counters.lookupPerCPU(UInt32(backend.id), as: UInt64.self).reduce(0, +))"]
        }
        return ["backend": ["pool": pool]]
    }
}

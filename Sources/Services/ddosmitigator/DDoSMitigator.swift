import BPFKit
import ServiceABI
import ServiceKit

/// ddosmitigator (transparent): drops entering IPv4 packets of blacklisted sources and destinations.
public final class DDoSMitigator: CubeService {
    public static let name = "ddosmitigator"
    public init() {}

    public static var bindings: [ConfigBinding<DDoSMitigator>] {
        [.on("blacklist-src", apply: DDoSMitigator.sources), .on("blacklist-dst", apply: DDoSMitigator.destinations)]
    }

    /// Dropped-packet totals at the last tick, for the rate.
    private var lastTotal: [String: UInt64] = [:]
    private var rate: [String: UInt64] = [:]

    func sources(_ change: Change) throws { try program(change, list: "blacklist-src", table: "ddos_blacklist_src") }
    func destinations(_ change: Change) throws { try program(change, list: "blacklist-dst", table: "ddos_blacklist_dst") }

    /// Adds the new entries (a counter that starts at 0) and removes the ones gone; entries that stay
    /// keep their counters.
    private func program(_ change: Change, list: String, table name: String) throws {
        let table = try change.cube.table(name)
        let wanted = Set(change.config.list(list).compactMap { $0.string("ip").flatMap(IPv4Address.init).map(\.networkOrder) })
        let present = Set(try table.keys(as: UInt32.self))
        for key in present.subtracting(wanted) { try table.delete(key) }
        for key in wanted.subtracting(present) { try table.updatePerCPU(key, UInt64(0)) }
    }

    private func drops(_ cube: Cube, _ table: String) throws -> [(IPv4Address, UInt64)] {
        let map = try cube.table(table)
        return try map.keys(as: UInt32.self).map { key in
            (IPv4Address(networkOrder: key), try map.lookupPerCPU(key, as: UInt64.self).reduce(0, +))
        }
    }

    private func stat(_ cube: Cube, _ which: ddos_stat) throws -> UInt64 {
        try cube.table("ddos_stats").lookupPerCPU(which.rawValue, as: UInt64.self).reduce(0, +)
    }

    private func total(_ cube: Cube) throws -> UInt64 { try stat(cube, DDOS_STAT_DROPPED) }

    public func state(of cube: Cube) throws -> [String: Any] {
        var state: [String: Any] = [
            "stats": ["pkts": "\(try total(cube))", "pps": "\(rate[cube.name] ?? 0)", "seen": "\(try stat(cube, DDOS_STAT_SEEN))"],
        ]
        for (list, table) in [("blacklist-src", "ddos_blacklist_src"), ("blacklist-dst", "ddos_blacklist_dst")] {
            state[list] = try drops(cube, table).map { ["ip": $0.0.description, "drop-pkts": "\($0.1)"] }
        }
        return state
    }

    public func tick(_ cube: Cube) {
        guard let now = try? total(cube) else { return }
        let before = lastTotal[cube.name] ?? now
        rate[cube.name] = now >= before ? now - before : 0
        lastTotal[cube.name] = now
    }

    public func removed(_ cube: Cube) {
        lastTotal[cube.name] = nil
        rate[cube.name] = nil
    }
}

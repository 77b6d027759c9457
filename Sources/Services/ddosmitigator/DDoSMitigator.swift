import BPFKit
import ServiceABI
import ServiceKit

/// ddosmitigator (transparent): drops entering IPv4 packets of blacklisted sources and destinations.
public final class DDoSMitigator: CubeService {
    public static let name = "ddosmitigator"
    public init() {}

    public struct Config: Decodable {
        struct Entry: Decodable, Equatable, Keyed {
            var ip: IPv4Address
            var key: IPv4Address { ip }
        }
        var sources: KeyedList<Entry>
        var destinations: KeyedList<Entry>
        enum CodingKeys: String, CodingKey { case sources = "blacklist-src", destinations = "blacklist-dst" }
    }

    public static var bindings: [ConfigBinding<DDoSMitigator>] {
        [.on(\.sources, apply: DDoSMitigator.sources), .on(\.destinations, apply: DDoSMitigator.destinations)]
    }

    /// Dropped-packet totals at the last tick, for the rate.
    private var lastTotal: [String: UInt64] = [:]
    private var rate: [String: UInt64] = [:]

    func sources(_ change: Change<Config>) throws {
        try program(change.config.sources, before: change.previous?.sources, table: try change.cube.table("ddos_blacklist_src"))
    }

    func destinations(_ change: Change<Config>) throws {
        try program(change.config.destinations, before: change.previous?.destinations, table: try change.cube.table("ddos_blacklist_dst"))
    }

    /// Adds the new entries (a counter that starts at 0) and removes the ones gone; entries that stay
    /// keep their counters. Applied anew (no `before`), the table is compared with the whole list.
    private func program(_ list: KeyedList<Config.Entry>, before: KeyedList<Config.Entry>?, table: BPFMap) throws {
        let (added, removed): ([UInt32], [UInt32])
        if before != nil {
            let difference = list.difference(from: before)
            (added, removed) = (difference.added.map(\.ip.networkOrder), difference.removed.map(\.ip.networkOrder))
        } else {
            let wanted = Set(list.map(\.ip.networkOrder)), present = Set(try table.keys(as: UInt32.self))
            (added, removed) = (Array(wanted.subtracting(present)), Array(present.subtracting(wanted)))
        }
        for key in removed { try table.delete(key) }
        for key in added { try table.updatePerCPU(key, UInt64(0)) }
    }

    private func drops(_ cube: Cube<Config>, _ table: String) throws -> [(IPv4Address, UInt64)] {
        let map = try cube.table(table)
        return try map.keys(as: UInt32.self).map { key in
            (IPv4Address(networkOrder: key), try map.lookupPerCPU(key, as: UInt64.self).reduce(0, +))
        }
    }

    private func stat(_ cube: Cube<Config>, _ which: ddos_stat) throws -> UInt64 {
        try cube.table("ddos_stats").lookupPerCPU(which.rawValue, as: UInt64.self).reduce(0, +)
    }

    private func total(_ cube: Cube<Config>) throws -> UInt64 { try stat(cube, DDOS_STAT_DROPPED) }

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        var state: [String: Any] = [
            "stats": ["pkts": "\(try total(cube))", "pps": "\(rate[cube.name] ?? 0)", "seen": "\(try stat(cube, DDOS_STAT_SEEN))"],
        ]
        for (list, table) in [("blacklist-src", "ddos_blacklist_src"), ("blacklist-dst", "ddos_blacklist_dst")] {
            state[list] = try drops(cube, table).map { ["ip": $0.0.description, "drop-pkts": "\($0.1)"] }
        }
        return state
    }

    public func tick(_ cube: Cube<Config>) {
        guard let now = try? total(cube) else { return }
        let before = lastTotal[cube.name] ?? now
        rate[cube.name] = now >= before ? now - before : 0
        lastTotal[cube.name] = now
    }

    public func removed(_ cube: Cube<Config>) {
        lastTotal[cube.name] = nil
        rate[cube.name] = nil
    }
}

/// Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights: each backend walks its own
/// permutation of the table's slots (from a hash of its name) and takes the next free one, as many
/// times per round as its weight allows; so each backend holds a share of the slots proportional
/// to its weight, and adding or removing one of N backends moves about 1/N of them.
public enum Maglev {
    /// Slots for `count` backends: one when there is one; else the first prime of a short ladder
    /// with at least 64 per backend (each backend's share is then within about 1/64 of its weight's).
    /// A ladder, not a size per count: a table keeps its size while backends come and go (a new
    /// size would move nearly every flow), so only crossing 3, 63 or 1,023 backends resizes it.
    public static let sizes = [251, 4093, 65_521, 131_071]

    public static func size(backends count: Int) -> Int {
        guard count > 1 else { return count }
        return sizes.first { $0 >= 64 * count } ?? sizes.last!
    }

    /// The backend index of each slot. `backends`: names (stable: the table only depends on them)
    /// and weights (≥ 1).
    public static func table(_ backends: [(name: String, weight: Int)], size: Int) -> [Int] {
        guard !backends.isEmpty, size > 0 else { return [] }
        guard size > 1 else { return [0] }
        let offsets = backends.map { Int(fnv1a($0.name, seed: 0xcbf2_9ce4_8422_2325) % UInt64(size)) }
        let skips = backends.map { Int(fnv1a($0.name, seed: 0x8422_2325_cbf2_9ce4) % UInt64(size - 1)) + 1 }
        let heaviest = Double(backends.map(\.weight).max() ?? 1)
        var next = [Int](repeating: 0, count: backends.count)
        var credit = [Double](repeating: 0, count: backends.count)
        var table = [Int](repeating: -1, count: size)
        var filled = 0
        while true {
            for index in backends.indices {
                credit[index] += Double(backends[index].weight) / heaviest
                while credit[index] >= 1 {
                    credit[index] -= 1
                    var slot = (offsets[index] + next[index] * skips[index]) % size
                    while table[slot] >= 0 {
                        next[index] += 1
                        slot = (offsets[index] + next[index] * skips[index]) % size
                    }
                    table[slot] = index
                    next[index] += 1
                    filled += 1
                    if filled == size { return table }
                }
            }
        }
    }

    /// FNV-1a, 64 bits: stable across runs (Swift's Hasher is seeded per process).
    static func fnv1a(_ text: String, seed: UInt64) -> UInt64 {
        var hash = seed
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

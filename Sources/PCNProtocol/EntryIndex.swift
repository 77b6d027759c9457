import Foundation
import JSONText

/// Where the entry with given keys is in a large list of a JSON tree, without scanning the list.
///
/// Lists are values: a list's buffer never changes while something holds it, so an index kept
/// with the list it was built for (holding it) stays right, and is found again by the buffer's
/// address. An edit that writes entries in place or appends them (`ConfigEdit.applied`) hands the
/// index on to its result, so a run of writes to one large list builds it once.
public final class EntryIndex: @unchecked Sendable {
    public static let shared = EntryIndex()
    /// Shorter lists are scanned.
    static let threshold = 32
    /// Indexed lists kept (the most recent ones).
    static let capacity = 8

    private struct Indexed {
        let list: [Any]
        let names: [String]
        var positions: [String: Int]
    }

    private let lock = NSLock()
    private var recent: [(address: UInt, indexed: Indexed)] = []

    /// The key of an entry: its key leaves' texts in `names` order.
    public static func key(of entry: Any, _ names: [String]) -> String? {
        guard let object = entry as? [String: Any] else { return nil }
        if names.count == 1 { return object[names[0]].map(JSONText.text) ?? "" }
        return names.map { object[$0].map(JSONText.text) ?? "" }.joined(separator: "\u{0}")
    }

    public static func key(_ keys: [String: String], _ names: [String]) -> String {
        names.map { keys[$0] ?? "" }.joined(separator: "\u{0}")
    }

    private static func address(_ list: [Any]) -> UInt? {
        list.withUnsafeBufferPointer { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    /// The position in `list` of the first entry whose key leaves `names` have the texts of `key`.
    public func position(of key: String, names: [String], in list: [Any]) -> Int? {
        guard list.count >= Self.threshold, let address = Self.address(list) else {
            return list.firstIndex { Self.key(of: $0, names) == key }
        }
        lock.lock()
        defer { lock.unlock() }
        if let hit = recent.first(where: { $0.address == address && $0.indexed.names == names }) {
            return hit.indexed.positions[key]
        }
        var positions: [String: Int] = [:]
        positions.reserveCapacity(list.count)
        for (index, entry) in list.enumerated() {
            if let entryKey = Self.key(of: entry, names), positions[entryKey] == nil { positions[entryKey] = index }
        }
        remember(address, Indexed(list: list, names: names, positions: positions))
        return positions[key]
    }

    public func position(of keys: [String: String], in list: [Any]) -> Int? {
        let names = keys.keys.sorted()
        return position(of: Self.key(keys, names), names: names, in: list)
    }

    /// `edited` is `original` with entries written in place and `appended` (keys, in order) added at
    /// its end: its index is the original's plus those, when the original's is known.
    public func handOn(from original: [Any], to edited: [Any], names: [String], appended: [String]) {
        guard edited.count >= Self.threshold, let from = Self.address(original), let to = Self.address(edited) else { return }
        lock.lock()
        defer { lock.unlock() }
        guard let known = recent.first(where: { $0.address == from && $0.indexed.names == names }) else { return }
        var positions = known.indexed.positions
        for (offset, key) in appended.enumerated() where positions[key] == nil {
            positions[key] = original.count + offset
        }
        remember(to, Indexed(list: edited, names: names, positions: positions))
    }

    private func remember(_ address: UInt, _ indexed: Indexed) {
        recent.removeAll { $0.address == address }
        recent.append((address, indexed))
        if recent.count > Self.capacity { recent.removeFirst() }
    }
}

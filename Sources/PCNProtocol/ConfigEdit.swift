import Foundation
import JSONText

/// A change of one cube's configuration that carries only what changed in its large lists.
///
/// pcn-api validates a write on `base`: the whole new configuration except that each list in
/// `cuts` (a list whose entries stand alone in the model) holds only the entries the write created
/// or changed. The full configuration is the previous one with, in each cut list, the `removed`
/// entries taken out and `base`'s entries put in (in place, or appended when new). pcn-api's journal
/// and a cube-host both rebuild it that way, so the cost of a write follows what it changed.
public struct ConfigEdit {
    /// The new configuration, the cut lists holding only what was written.
    public var base: [String: Any]
    public var cuts: [ConfigCut]

    public init(base: [String: Any], cuts: [ConfigCut] = []) {
        self.base = base
        self.cuts = cuts
    }

    /// The whole new configuration, from the one it was cut against.
    public func applied(to previous: [String: Any]?) -> [String: Any] {
        var result: Any = base
        for cut in cuts {
            let original = cut.previousPath.flatMap { ConfigPath.get(previous, $0) } as? [Any] ?? []
            var entries = original
            for gone in cut.removed {
                if let index = cut.position(of: gone, in: entries) { entries.remove(at: index) }
            }
            // Positions are looked up in the list as it was (indexed), or among those appended here.
            let unshifted = cut.removed.isEmpty ? original : entries
            var appended: [String] = []
            var appendedAt: [String: Int] = [:]
            for case let written as [String: Any] in ConfigPath.get(base, cut.path) as? [Any] ?? [] {
                let key = EntryIndex.key(of: written, cut.keys) ?? ""
                if let index = EntryIndex.shared.position(of: key, names: cut.keys, in: unshifted) ?? appendedAt[key] {
                    entries[index] = written
                } else {
                    appendedAt[key] = entries.count
                    entries.append(written)
                    appended.append(key)
                }
            }
            if cut.removed.isEmpty {
                EntryIndex.shared.handOn(from: original, to: entries, names: cut.keys, appended: appended)
            }
            result = ConfigPath.set(result, cut.path, to: entries.isEmpty ? nil : entries) ?? base
        }
        return result as? [String: Any] ?? base
    }

    public var object: [String: Any] { ["base": base, "cuts": cuts.map(\.object)] }

    public init(object: [String: Any]) throws {
        guard let base = object["base"] as? [String: Any] else { throw ConfigCut.Malformed("an edit has no 'base' object") }
        self.base = base
        cuts = try (object["cuts"] as? [Any] ?? []).map { try ConfigCut(object: $0) }
    }
}

/// A list of a configuration that an edit carries in part.
public struct ConfigCut {
    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Where the list is in the new configuration: member names and, through the lists above it,
    /// entry positions (`["chain", 1, "rule"]`), as a decoder's coding path names it.
    public var path: [Any]
    /// Where it was in the previous configuration (entries above it may have moved); nil: it was not.
    public var previousPath: [Any]?
    /// The list's key leaves.
    public var keys: [String]
    /// Entries the write removed, as they were.
    public var removed: [[String: Any]]

    public init(path: [Any], previousPath: [Any]?, keys: [String], removed: [[String: Any]] = []) {
        self.path = path
        self.previousPath = previousPath
        self.keys = keys
        self.removed = removed
    }

    /// The coding path as text (`chain/1/rule`): how a decoder of the configuration finds the list.
    public var pathText: String { ConfigPath.text(path) }
    public var previousPathText: String? { previousPath.map(ConfigPath.text) }

    func position(of entry: [String: Any], in entries: [Any]) -> Int? {
        EntryIndex.shared.position(of: EntryIndex.key(of: entry, keys) ?? "", names: keys, in: entries)
    }

    public var object: [String: Any] { ["path": path, "previous-path": previousPath ?? NSNull(), "keys": keys, "removed": removed] }

    public init(object: Any) throws {
        guard let object = object as? [String: Any], let path = object["path"] as? [Any], let keys = object["keys"] as? [String] else {
            throw Malformed("a cut needs 'path' and 'keys'")
        }
        self.path = try ConfigPath.checked(path)
        previousPath = try (object["previous-path"] as? [Any]).map(ConfigPath.checked)
        self.keys = keys
        removed = (object["removed"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
    }
}

/// Paths of member names and entry positions into JSON trees.
public enum ConfigPath {
    public static func text(_ path: [Any]) -> String {
        path.map { step in (step as? Int).map(String.init) ?? JSONText.text(step) }.joined(separator: "/")
    }

    static func checked(_ path: [Any]) throws -> [Any] {
        try path.map { step in
            if let name = step as? String { return name }
            if let number = step as? NSNumber, !JSONText.isBoolean(number), number.intValue >= 0 { return number.intValue }
            throw ConfigCut.Malformed("a path step is a member name or an entry position, not \(step)")
        }
    }

    public static func get(_ tree: Any?, _ path: [Any]) -> Any? {
        var current = tree
        for step in path {
            if let name = step as? String {
                current = (current as? [String: Any])?[name]
            } else if let index = step as? Int, let entries = current as? [Any], entries.indices.contains(index) {
                current = entries[index]
            } else {
                return nil
            }
        }
        return current
    }

    /// `tree` with the value at `path` replaced (nil removes a member); containers on the way are
    /// created, positions must exist.
    public static func set(_ tree: Any?, _ path: [Any], to value: Any?) -> Any? {
        guard let step = path.first else { return value }
        let rest = Array(path.dropFirst())
        if let name = step as? String {
            var object = tree as? [String: Any] ?? [:]
            object[name] = set(object[name], rest, to: value)
            return object
        }
        guard let index = step as? Int, var entries = tree as? [Any], entries.indices.contains(index) else { return tree }
        entries[index] = set(entries[index], rest, to: value) ?? entries[index]
        return entries
    }
}

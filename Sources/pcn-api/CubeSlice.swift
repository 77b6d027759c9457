import Foundation
import JSONText
import PCNProtocol
import YangKit

/// What a write validates and sends of a cube: the whole new configuration, except that each
/// independent list (`IndependentLists`) holds only the entries the write touches. Validating that
/// gives what validating everything gives, since no rule of the model relates those entries to
/// anything else; the untouched entries were valid when they were written.
struct CubeSlice {
    /// What the write does at `steps` (below the cube): `patch` is a PATCH body there (the entries
    /// it names are the ones it touches); `replaces` a PUT or POST of the whole subtree.
    struct Scope {
        var steps: [Target.Step]
        var patch: Any?
        var replaces: Bool
    }

    struct Part {
        var steps: [Target.Step]
        var path: [Any]
        var previousPath: [Any]?
        var keys: [String]
        var written: [Any]
        var before: [Any]
        var removed: [[String: Any]]
    }

    private(set) var parts: [Part] = []

    /// Finds the independent lists of `new` and the entries of each that `scope` touches.
    init(new: [String: Any], old: [String: Any]?, top: SchemaNode, independent: IndependentLists, scope: Scope) {
        guard !independent.isEmpty, let old else { return }
        walk(new, node: top, steps: [], path: [], old: old, oldPath: [], independent: independent, scope: scope)
    }

    private mutating func walk(_ object: [String: Any], node: SchemaNode, steps: [Target.Step], path: [Any],
                               old: [String: Any]?, oldPath: [Any]?, independent: IndependentLists, scope: Scope) {
        for child in node.children where child.config && (child.kind == .list || child.kind == .container) {
            guard let value = object[child.name] else { continue }
            let memberSteps = steps + [.member(child.name)]
            let memberPath = path + [child.name]
            let oldValue = old?[child.name]
            let oldMemberPath = oldPath.map { $0 + [child.name] }
            if child.kind == .container {
                if let inner = value as? [String: Any] {
                    walk(inner, node: child, steps: memberSteps, path: memberPath, old: oldValue as? [String: Any], oldPath: oldMemberPath,
                         independent: independent, scope: scope)
                }
            } else if independent.contains(child) {
                guard let touched = Self.touched(memberSteps, keys: child.keys, scope: scope) else { continue }
                let entries = value as? [Any] ?? []
                let before = oldValue as? [Any] ?? []
                var part = Part(steps: memberSteps, path: memberPath, previousPath: oldValue == nil ? nil : oldMemberPath,
                                keys: child.keys.sorted(), written: [], before: [], removed: [])
                // The entries after the old ones (a write's additions) by key, made once when needed.
                var added: [String: Any]?
                for keys in touched {
                    let wasAt = EntryIndex.shared.position(of: keys, in: before)
                    let was = wasAt.map { before[$0] }
                    let now = Self.entry(keys, in: entries, near: wasAt, before: before.count, added: &added, names: child.keys)
                    if let now { part.written.append(now) }
                    if let was { part.before.append(was) }
                    if now == nil, let was = was as? [String: Any] { part.removed.append(was) }
                }
                parts.append(part)
            } else {
                let oldEntries = oldValue as? [Any]
                for (index, entry) in (value as? [Any] ?? []).enumerated() {
                    guard let entry = entry as? [String: Any] else { continue }
                    let keys = Dictionary(uniqueKeysWithValues: child.keys.map { ($0, entry[$0].map(ConfigCheck.text) ?? "") })
                    let oldIndex = oldEntries?.firstIndex { ConfigTree.matches($0, keys) }
                    walk(entry, node: child, steps: memberSteps + [.entry(keys)], path: memberPath + [index],
                         old: oldIndex.flatMap { oldEntries?[$0] as? [String: Any] },
                         oldPath: oldIndex.flatMap { index in oldMemberPath.map { $0 + [index] } },
                         independent: independent, scope: scope)
                }
            }
        }
    }

    /// The entry with `keys` in the new list, looked for first where the write's edits leave it:
    /// in place (`near`, its position before) or appended after the `before` entries; else scanned.
    static func entry(_ keys: [String: String], in entries: [Any], near position: Int?, before count: Int,
                      added: inout [String: Any]?, names: [String]) -> Any? {
        if let position, entries.indices.contains(position), ConfigTree.matches(entries[position], keys) { return entries[position] }
        if position == nil, entries.count > count {
            if added == nil {
                var index: [String: Any] = [:]
                for entry in entries[count...] {
                    guard let object = entry as? [String: Any] else { continue }
                    let text = names.map { object[$0].map(ConfigCheck.text) ?? "" }.joined(separator: "\u{0}")
                    if index[text] == nil { index[text] = entry }
                }
                added = index
            }
            if let hit = added?[names.map { keys[$0] ?? "" }.joined(separator: "\u{0}")] { return hit }
        }
        return entries.first { ConfigTree.matches($0, keys) }
    }

    /// The keys of the entries of the list at `list` that the write touches; nil: possibly all.
    static func touched(_ list: [Target.Step], keys: [String], scope: Scope) -> [[String: String]]? {
        let target = scope.steps
        if target.count > list.count, Array(target.prefix(list.count)) == list {
            // The write is inside one entry of the list (or is that entry).
            if case .entry(let keys) = target[list.count] { return [keys] }
            return nil
        }
        if target.count <= list.count, Array(list.prefix(target.count)) == target {
            // The list is inside what the write changes.
            if scope.replaces { return nil }
            guard let patch = scope.patch else { return [] }
            let named = ConfigTree.get(patch, list[target.count...]) as? [Any] ?? []
            return named.compactMap { entry in
                guard let object = entry as? [String: Any] else { return nil }
                return Dictionary(uniqueKeysWithValues: keys.map { ($0, object[$0].map(ConfigCheck.text) ?? "") })
            }
        }
        return []
    }

    var isEmpty: Bool { parts.isEmpty }

    /// True if the list at `steps` is cut.
    func cuts(_ steps: [Target.Step]) -> Bool { parts.contains { $0.steps == steps } }

    /// `cube` (the new configuration) with each cut list holding only the written entries.
    func cutNew(_ cube: [String: Any]) -> [String: Any] {
        parts.reduce(cube) { tree, part in ConfigPath.set(tree, part.path, to: part.written) as? [String: Any] ?? tree }
    }

    /// `cube` (the previous configuration) with each cut list holding only the touched entries.
    func cutOld(_ cube: [String: Any]?) -> [String: Any]? {
        guard let cube else { return nil }
        return parts.reduce(cube) { tree, part in
            guard let previousPath = part.previousPath else { return tree }
            return ConfigPath.set(tree, previousPath, to: part.before) as? [String: Any] ?? tree
        }
    }

    /// The edit that turns the previous configuration into the new one, `base` being the cut
    /// configuration as validated (its defaults filled in).
    func edit(base: [String: Any]) -> ConfigEdit {
        ConfigEdit(base: base, cuts: parts.map { ConfigCut(path: $0.path, previousPath: $0.previousPath, keys: $0.keys, removed: $0.removed) })
    }
}

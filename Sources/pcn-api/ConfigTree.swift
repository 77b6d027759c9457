import Foundation
import PCNProtocol
import YangKit

/// Where a REST path points in a service's data: `/polycube/v1/router/r1/ports/p1/ip` is the cube
/// r1, then the member `ports`, the entry keyed p1, the member `ip`. One path segment per list key.
struct Target {
    enum Step: Equatable {
        case member(String)
        case entry([String: String])
    }

    let service: String
    /// The cube (the service list's key); nil for the service's whole list.
    let cube: String?
    /// Steps below the cube entry.
    let steps: [Step]
    /// The schema node the path ends on.
    let node: SchemaNode
    /// True when the path names a list without its keys (all entries).
    let isCollection: Bool

    /// The data path in errors: `/router:router[name='r1']/ports[name='p1']/ip`.
    var dataPath: String {
        var path = "/\(service):\(service)"
        if let cube { path += "[name='\(cube)']" }
        for step in steps {
            switch step {
            case .member(let name): path += "/" + name
            case .entry(let keys): path += keys.sorted { $0.key < $1.key }.map { "[\($0.key)='\($0.value)']" }.joined()
            }
        }
        return path
    }

    enum ResolveError: Error {
        case notInModel(String)
    }

    /// Resolves the segments after the service name against the service's top list.
    static func resolve(service: String, top: SchemaNode, segments: [String]) throws -> Target {
        guard let cube = segments.first else {
            return Target(service: service, cube: nil, steps: [], node: top, isCollection: true)
        }
        var node = top
        var steps: [Step] = []
        var rest = segments.dropFirst()[...]
        var isCollection = false
        while let segment = rest.popFirst() {
            guard let child = node.child(segment) else {
                let known = node.children.map(\.name).joined(separator: ", ")
                throw ResolveError.notInModel("'\(node.name)' has no member '\(segment)' (it has \(known))")
            }
            node = child
            steps.append(.member(child.name))
            if child.kind == .list {
                if rest.count < child.keys.count {
                    guard rest.isEmpty else {
                        throw ResolveError.notInModel("'\(child.name)' is keyed by \(child.keys.joined(separator: ", ")): give one path segment per key")
                    }
                    isCollection = true
                    break
                }
                var keys: [String: String] = [:]
                for key in child.keys {
                    // An enumeration key in any case names its entry (`chain/ingress`: INGRESS).
                    let given = rest.popFirst()!
                    keys[key] = child.child(key).flatMap { $0.type == .enumeration ? $0.canonicalEnum(given) : nil } ?? given
                }
                steps.append(.entry(keys))
            } else if child.kind == .leaf || child.kind == .leafList || child.kind == .action {
                guard rest.isEmpty else { throw ResolveError.notInModel("'\(child.name)' is a \(child.kind.rawValue): nothing is below it") }
            }
        }
        return Target(service: service, cube: cube, steps: steps, node: node, isCollection: isCollection)
    }
}

/// Reading and changing JSON trees (values from JSONSerialization) along target steps.
enum ConfigTree {
    static func matches(_ entry: Any, _ keys: [String: String]) -> Bool {
        guard let object = entry as? [String: Any] else { return false }
        return keys.allSatisfy { object[$0.key].map(ConfigCheck.text) == $0.value }
    }

    static func get(_ value: Any?, _ steps: ArraySlice<Target.Step>) -> Any? {
        guard let first = steps.first else { return value }
        switch first {
        case .member(let name):
            guard let object = value as? [String: Any] else { return nil }
            return get(object[name], steps.dropFirst())
        case .entry(let keys):
            guard let entries = value as? [Any], let index = EntryIndex.shared.position(of: keys, in: entries) else { return nil }
            return get(entries[index], steps.dropFirst())
        }
    }

    /// `value` with the node at `steps` replaced by `new` (nil removes it). Missing containers on the
    /// way are created; a missing list entry is created with its keys.
    static func set(_ value: Any?, _ steps: ArraySlice<Target.Step>, to new: Any?) -> Any? {
        guard let first = steps.first else { return new }
        switch first {
        case .member(let name):
            var object = value as? [String: Any] ?? [:]
            object[name] = set(object[name], steps.dropFirst(), to: new)
            return object
        case .entry(let keys):
            var entries = value as? [Any] ?? []
            if let index = EntryIndex.shared.position(of: keys, in: entries) {
                if let updated = set(entries[index], steps.dropFirst(), to: new) {
                    entries[index] = updated
                } else {
                    entries.remove(at: index)
                }
            } else if new != nil {
                var entry: [String: Any] = keys
                if let updated = set(entry, steps.dropFirst(), to: new) as? [String: Any] { entry = updated }
                entries.append(entry)
            }
            return entries
        }
    }

    /// `cube` without the list entries at `paths`, data paths relative to the cube as a service names
    /// them (`route[network='0.0.0.0/0'][nexthop='10.1.0.2']`). A path the model does not have is the
    /// service's mistake: refused, nothing changed.
    static func removing(_ paths: [String], from cube: [String: Any], top: SchemaNode, path cubePath: String) throws -> [String: Any] {
        var result: Any? = cube
        for path in paths {
            guard let steps = steps(ofDataPath: path, under: top), case .entry? = steps.last else {
                throw RestFailure(409, tag: "operation-failed", path: cubePath, "the service asked to remove '\(path)', which is no list entry of its model: nothing was changed")
            }
            result = set(result, steps[...], to: nil)
        }
        return result as? [String: Any] ?? cube
    }

    /// Steps of a data path relative to a node (`a/b[k='v'][k2='v2']/c`); nil when the model has no such node.
    static func steps(ofDataPath path: String, under top: SchemaNode) -> [Target.Step]? {
        var steps: [Target.Step] = []
        var node = top
        var rest = Substring(path)
        while !rest.isEmpty {
            let nameEnd = rest.firstIndex { $0 == "[" || $0 == "/" } ?? rest.endIndex
            guard let child = node.child(String(rest[..<nameEnd])) else { return nil }
            node = child
            steps.append(.member(child.name))
            rest = rest[nameEnd...]
            var keys: [String: String] = [:]
            // Predicates: [key='value'], the value quoted (it may hold '/' and ']').
            while rest.first == "[" {
                guard let equals = rest.firstIndex(of: "="), rest[rest.index(after: equals)...].first == "'" else { return nil }
                let key = String(rest[rest.index(after: rest.startIndex)..<equals])
                let valueStart = rest.index(equals, offsetBy: 2)
                guard let quote = rest[valueStart...].firstIndex(of: "'"), rest[rest.index(after: quote)...].first == "]" else { return nil }
                keys[key] = String(rest[valueStart..<quote])
                rest = rest[rest.index(quote, offsetBy: 2)...]
            }
            if !keys.isEmpty {
                guard child.kind == .list, Set(keys.keys) == Set(child.keys) else { return nil }
                steps.append(.entry(keys))
            }
            if rest.first == "/" { rest = rest.dropFirst() }
        }
        return steps.isEmpty ? nil : steps
    }

    /// RFC 7386-style merge of a PATCH body into what is there: objects merge member by member,
    /// list entries merge by key, anything else is replaced. A list entry without all its keys is
    /// refused (400 missing-element at `path`): it names no entry to merge into.
    static func merge(_ base: Any?, _ patch: Any, node: SchemaNode, path: String) throws -> Any {
        switch node.kind {
        // A container, or one entry of a list (patched at the entry's path).
        case let kind where kind == .container || (kind == .list && patch is [String: Any]):
            guard var object = base as? [String: Any], let changes = patch as? [String: Any] else { return patch }
            for (name, value) in changes {
                if let child = node.child(name) {
                    object[child.name] = try merge(object[child.name], value, node: child, path: path + "/" + child.name)
                } else {
                    object[name] = value
                }
            }
            return object
        case .list:
            guard var entries = base as? [Any], let changes = patch as? [Any] else { return patch }
            // Positions by key, kept as entries are added: a patch of n new entries costs O(n).
            func keyText(_ entry: Any) -> String? {
                guard let object = entry as? [String: Any] else { return nil }
                let values = node.keys.compactMap { object[$0].map(ConfigCheck.text) }
                return values.count == node.keys.count ? values.joined(separator: "\u{0}") : nil
            }
            var positions: [String: Int] = [:]
            for (index, entry) in entries.enumerated() {
                if let text = keyText(entry), positions[text] == nil { positions[text] = index }
            }
            for change in changes {
                guard let object = change as? [String: Any] else { entries.append(change); continue }
                let keys = Dictionary(uniqueKeysWithValues: node.keys.compactMap { key in object[key].map { (key, ConfigCheck.text($0)) } })
                guard keys.count == node.keys.count else {
                    let missing = node.keys.filter { keys[$0] == nil }
                    throw RestFailure(400, tag: "missing-element", path: path,
                                      "an entry of '\(node.name)' without its key \(missing.joined(separator: ", ")): it names no entry to change")
                }
                let entryPath = path + keys.sorted { $0.key < $1.key }.map { "[\($0.key)='\($0.value)']" }.joined()
                let text = node.keys.map { keys[$0]! }.joined(separator: "\u{0}")
                if let index = positions[text] {
                    entries[index] = try merge(entries[index], change, node: node, path: entryPath)
                } else {
                    positions[text] = entries.count
                    entries.append(change)
                }
            }
            return entries
        default:
            return patch
        }
    }
}

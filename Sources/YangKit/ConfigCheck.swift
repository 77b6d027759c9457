import Foundation
import JSONText

/// One error of a write, as RFC 8040 reports it (`ietf-restconf:errors`).
public struct RestconfError: Codable, Equatable, Sendable, CustomStringConvertible {
    public var type: String
    public var tag: String
    public var path: String?
    public var message: String

    public init(tag: String, path: String?, message: String, type: String = "application") {
        self.type = type
        self.tag = tag
        self.path = path
        // A message quoting what it was given stays readable however large that was.
        self.message = message.count > Self.longestMessage ? String(message.prefix(Self.longestMessage)) + "… (cut)" : message
    }

    public static let longestMessage = 2048

    /// A value as errors quote it: in quotes, cut after 48 characters (a bad value may be megabytes).
    public static func quoted(_ text: String) -> String {
        text.count <= 48 ? "'\(text)'" : "'\(text.prefix(48))…' (\(text.count) characters)"
    }

    enum CodingKeys: String, CodingKey {
        case type = "error-type", tag = "error-tag", path = "error-path", message = "error-message"
    }

    public var description: String { (path.map { "\($0): " } ?? "") + message }
}

/// Checks a candidate configuration subtree against its schema node, node by node, and reports
/// every problem at once (libyang 2.1 stops at the first): unknown members, read-only (config false)
/// members, values against their types (ranges, lengths, patterns, enums), missing keys and
/// mandatory leaves, duplicate keys, min/max-elements, and init-only members changed after creation.
/// Values are typed as the model says (a number given as a string for a uint16, an enum in another
/// case), and the typed candidate is returned. Rules across the tree (must, when, leafref, unique)
/// are libyang's, checked afterwards on the whole candidate (`YangContext.normalize`).
public struct ConfigCheck {
    public let context: YangContext

    public init(context: YangContext) { self.context = context }

    public struct Result {
        public var value: Any
        public var errors: [RestconfError]

        public init(value: Any, errors: [RestconfError]) {
            self.value = value
            self.errors = errors
        }
    }

    /// `existing` is what is stored now at the same place (nil when it is being created).
    public func check(_ value: Any, node: SchemaNode, path: String, existing: Any?) -> Result {
        var errors: [RestconfError] = []
        let typed = visit(value, node: node, path: path, existing: existing, errors: &errors)
        return Result(value: typed, errors: errors)
    }

    private func visit(_ value: Any, node: SchemaNode, path: String, existing: Any?, errors: inout [RestconfError]) -> Any {
        switch node.kind {
        case .leaf:
            return leaf(value, node: node, path: path, existing: existing, errors: &errors)
        case .leafList:
            guard let items = value as? [Any] else {
                errors.append(.init(tag: "invalid-value", path: path, message: "'\(node.name)' is a leaf-list: give an array of values"))
                return value
            }
            if node.maxElements > 0 && items.count > node.maxElements {
                errors.append(.init(tag: "operation-failed", path: path, message: "'\(node.name)' has \(items.count) entries, at most \(node.maxElements) allowed"))
            }
            return items.map { leaf($0, node: node, path: path, existing: nil, errors: &errors) }
        case .container:
            guard let object = value as? [String: Any] else {
                errors.append(.init(tag: "invalid-value", path: path, message: "'\(node.name)' is a container: give an object"))
                return value
            }
            return members(object, of: node, path: path, existing: existing as? [String: Any], creating: existing == nil, errors: &errors)
        case .list:
            guard let entries = value as? [Any] else {
                errors.append(.init(tag: "invalid-value", path: path, message: "'\(node.name)' is a list: give an array of entries"))
                return value
            }
            return list(entries, node: node, path: path, existing: existing as? [Any], errors: &errors)
        case .action:
            errors.append(.init(tag: "invalid-value", path: path, message: "'\(node.name)' is an action: call it with POST, it holds no data"))
            return value
        }
    }

    /// The entries of a list, each keyed, checked against the entry stored with the same keys.
    public func list(_ entries: [Any], node: SchemaNode, path: String, existing: [Any]?, errors: inout [RestconfError]) -> [Any] {
        var seen = Set<String>()
        // The stored entries by their keys (one lookup per entry, not a scan).
        var stored: [String: [String: Any]] = [:]
        for case let entry as [String: Any] in existing ?? [] {
            stored[node.keys.map { entry[$0].map(Self.text) ?? "" }.joined(separator: "\u{0}")] = entry
        }
        let typed = entries.map { entry -> Any in
            guard let object = entry as? [String: Any] else {
                errors.append(.init(tag: "invalid-value", path: path, message: "an entry of list '\(node.name)' must be an object"))
                return entry
            }
            let keys = node.keys.map { key in (key, object[key].map(Self.text) ?? "") }
            let entryPath = path + keys.map { "[\($0.0)='\($0.1)']" }.joined()
            for (key, text) in keys where text.isEmpty {
                errors.append(.init(tag: "missing-element", path: entryPath, message: "an entry of '\(node.name)' lacks its key '\(key)'"))
            }
            let identity = keys.map(\.1).joined(separator: "\u{0}")
            if !seen.insert(identity).inserted {
                errors.append(.init(tag: "data-exists", path: entryPath, message: "'\(node.name)' has two entries with the key \(keys.map { "\($0.0)=\($0.1)" }.joined(separator: ","))"))
            }
            let before = stored[identity]
            // An entry as it is stored was checked when it was written: a write to one entry of a
            // large list checks that entry, not the whole list again.
            if let before, JSONText.equal(object, before) { return before }
            return members(object, of: node, path: entryPath, existing: before, creating: before == nil, errors: &errors)
        }
        if typed.count < node.minElements {
            errors.append(.init(tag: "operation-failed", path: path, message: "'\(node.name)' needs at least \(node.minElements) entries, has \(typed.count)"))
        }
        if node.maxElements > 0 && typed.count > node.maxElements {
            errors.append(.init(tag: "operation-failed", path: path, message: "'\(node.name)' allows at most \(node.maxElements) entries, has \(typed.count)"))
        }
        return typed
    }

    /// The members of a container or list entry.
    public func members(_ object: [String: Any], of node: SchemaNode, path: String, existing: [String: Any]?, creating: Bool,
                        errors: inout [RestconfError]) -> [String: Any] {
        var typed: [String: Any] = [:]
        for (name, value) in object.sorted(by: { $0.key < $1.key }) {
            let childPath = path + "/" + name
            guard let child = node.child(name), child.kind != .action else {
                let known = node.children.filter { $0.config && $0.kind != .action }.map(\.name)
                errors.append(.init(tag: "unknown-element", path: path + "/" + String(name.prefix(64)),
                                    message: "'\(node.name)' has no member \(RestconfError.quoted(name)) (it has \(known.joined(separator: ", ")))"))
                continue
            }
            guard child.config else {
                errors.append(.init(tag: "invalid-value", path: childPath, message: "'\(name)' is read-only (state, config false)"))
                continue
            }
            let before = existing?[name] ?? existing?["\(child.module):\(name)"]
            if child.initOnly, !creating, let before, Self.text(before) != Self.text(value) {
                errors.append(.init(tag: "invalid-value", path: childPath,
                                    message: "'\(name)' is set when '\(Self.entryName(path))' is created and cannot change (it is \(RestconfError.quoted(Self.text(before))))"))
                continue
            }
            typed[child.name] = visit(value, node: child, path: childPath, existing: before, errors: &errors)
        }
        for child in node.children where child.config && child.mandatory && child.kind == .leaf && typed[child.name] == nil && child.defaultValue == nil {
            errors.append(.init(tag: "missing-element", path: path + "/" + child.name, message: "'\(child.name)' is mandatory"))
        }
        for child in node.children where child.config && (child.kind == .list || child.kind == .leafList) && child.minElements > 0 && typed[child.name] == nil {
            errors.append(.init(tag: "operation-failed", path: path + "/" + child.name, message: "'\(child.name)' needs at least \(child.minElements) entries, has 0"))
        }
        return typed
    }

    private func leaf(_ value: Any, node: SchemaNode, path: String, existing: Any?, errors: inout [RestconfError]) -> Any {
        if value is [Any] || value is [String: Any] {
            errors.append(.init(tag: "invalid-value", path: path, message: "'\(node.name)' is a leaf: give a single value"))
            return value
        }
        if node.type == .empty { return [NSNull()] }
        var text = Self.text(value)
        if node.type == .enumeration, let canonical = node.canonicalEnum(text) { text = canonical }
        if node.type == .boolean, ["true", "false"].contains(text.lowercased()) { text = text.lowercased() }
        if let reason = node.check(text, in: context) {
            let typeName = node.typeName ?? node.type?.name ?? "value"
            var message = "\(RestconfError.quoted(text)) is not a valid \(typeName)"
            if node.type == .enumeration { message += " (one of \(node.enums.joined(separator: ", ")))" }
            else if !reason.contains("pattern") && !reason.contains("does not conform") {
                // libyang quotes the value whole: quote it short, like the rest of the message.
                let told = text.count > 48 ? reason.replacingOccurrences(of: "\"\(text)\"", with: RestconfError.quoted(text)) : reason
                message += ": \(told.count > 200 ? told.prefix(200) + "…" : told)"
            }
            errors.append(.init(tag: "invalid-value", path: path, message: message))
            return value
        }
        switch node.type {
        case .boolean: return text == "true"
        case let type? where type.isJSONNumber: return Int(text) ?? value
        default: return text
        }
    }

    /// A JSON scalar as YANG text.
    public static func text(_ value: Any) -> String { JSONText.text(value) }

    /// `r1` from `/router:router[name='r1']/...` (the last keyed entry of the path).
    static func entryName(_ path: String) -> String {
        guard let open = path.range(of: "='", options: .backwards), let close = path[open.upperBound...].firstIndex(of: "'") else { return path }
        return String(path[open.upperBound..<close])
    }
}

import Foundation
import YangKit

/// What a service's model exports at /polycube/v1/metrics: polycube-base's `name-metric`,
/// `type-metric` and `help-metric` on a numeric config-false leaf (its value) or on a list (its
/// number of entries). Unlike Polycube, no JSON path is written by hand: the node's place in the
/// model is the path, and the keys of the lists above it become labels.
struct ServiceMetric {
    enum Kind: String { case counter, gauge }

    let service: String
    /// The family name (a counter's samples add `_total`).
    let family: String
    let kind: Kind
    let help: String
    /// The nodes from the cube entry's member down to the exported node.
    let path: [SchemaNode]
    /// One label per key of the lists on the path above the node, in path order.
    let labels: [(list: String, key: String, label: String)]

    private static let reservedLabels: Set = ["cube", "service"]

    /// Every declaration of the services' models, or all that is wrong with them (the model is refused).
    static func declarations(_ tops: [String: SchemaNode]) throws -> [ServiceMetric] {
        var found: [ServiceMetric] = []
        var problems: [String] = []
        for service in tops.keys.sorted() {
            collect(tops[service]!, service: service, path: [], into: &found, problems: &problems)
        }
        for (family, metrics) in Dictionary(grouping: found, by: \.family) where metrics.count > 1 {
            problems.append("name-metric '\(family)' is declared more than once: " + metrics.map(\.location).sorted().joined(separator: ", "))
        }
        guard problems.isEmpty else {
            throw RestFailure(400, problems.map { RestconfError(tag: "invalid-value", path: nil, message: $0) })
        }
        return found
    }

    var location: String { "\(service):" + path.map(\.name).joined(separator: "/") }

    private static func collect(_ node: SchemaNode, service: String, path: [SchemaNode], into found: inout [ServiceMetric], problems: inout [String]) {
        for child in node.children where child.kind != .action {
            let childPath = path + [child]
            if let declared = child.metric {
                let location = "\(service):" + childPath.map(\.name).joined(separator: "/")
                if let metric = check(declared, node: child, service: service, path: childPath, location: location, problems: &problems) {
                    found.append(metric)
                }
            }
            collect(child, service: service, path: childPath, into: &found, problems: &problems)
        }
    }

    private static func check(_ declared: SchemaNode.Metric, node: SchemaNode, service: String, path: [SchemaNode],
                              location: String, problems: inout [String]) -> ServiceMetric? {
        let before = problems.count
        guard let name = declared.name else {
            problems.append("\(location) has type-metric or help-metric but no name-metric")
            return nil
        }
        if name.range(of: "^[a-zA-Z_:][a-zA-Z0-9_:]*$", options: .regularExpression) == nil {
            problems.append("name-metric '\(name)' of \(location) is not an OpenMetrics name (letters, digits, _ and :, not starting with a digit)")
        } else if name.hasPrefix("pcn_") {
            problems.append("name-metric '\(name)' of \(location): names starting with pcn_ are pcn-api's own")
        }
        let kind = declared.type.map { Kind(rawValue: $0.lowercased()) } ?? .gauge
        if kind == nil {
            problems.append("type-metric '\(declared.type!)' of \(location) is not counter or gauge (a node gives one number)")
        }
        switch node.kind {
        case .leaf where !node.config && (node.type?.isNumeric ?? false):
            break
        case .list:
            if kind == .counter { problems.append("\(location) is a list: its number of entries is a gauge, not a counter") }
        default:
            problems.append("\(location) carries name-metric but is not a numeric config-false leaf or a list")
        }
        var labels: [(list: String, key: String, label: String)] = []
        var used = reservedLabels
        for list in path.dropLast() where list.kind == .list {
            for key in list.keys {
                var label = key.replacingOccurrences(of: "-", with: "_")
                if used.contains(label) { label = list.name.replacingOccurrences(of: "-", with: "_") + "_" + label }
                used.insert(label)
                labels.append((list.name, key, label))
            }
        }
        guard problems.count == before, let kind else { return nil }
        let family = kind == .counter && name.hasSuffix("_total") ? String(name.dropLast("_total".count)) : name
        return ServiceMetric(service: service, family: family, kind: kind,
                             help: declared.help ?? node.description ?? (node.kind == .list ? "Entries of list \(location)" : "Value of \(location)"),
                             path: path, labels: labels)
    }

    /// The samples of this metric in one cube (its configuration merged with its state).
    func samples(in cube: [String: Any]) -> [(labels: [(String, String)], value: String)] {
        var out: [(labels: [(String, String)], value: String)] = []
        func walk(_ value: Any?, depth: Int, labels: [(String, String)]) {
            let node = path[depth]
            let isLast = depth == path.count - 1
            if isLast {
                if node.kind == .list {
                    out.append((labels, "\((value as? [Any])?.count ?? 0)"))
                } else if let number = Self.number(value) {
                    out.append((labels, number))
                }
                return
            }
            switch node.kind {
            case .list:
                for entry in value as? [Any] ?? [] {
                    guard let entry = entry as? [String: Any] else { continue }
                    let keyLabels = self.labels.filter { $0.list == node.name }.map { ($0.label, ConfigCheck.text(entry[$0.key] ?? "")) }
                    walk(entry[path[depth + 1].name], depth: depth + 1, labels: labels + keyLabels)
                }
            default:
                walk((value as? [String: Any])?[path[depth + 1].name], depth: depth + 1, labels: labels)
            }
        }
        walk(cube[path[0].name], depth: 0, labels: [])
        return out
    }

    /// A leaf's value as OpenMetrics text (RFC 7951 writes 64-bit integers and decimals as strings).
    private static func number(_ value: Any?) -> String? {
        switch value {
        case let number as NSNumber:
            return number.stringValue
        case let text as String where Double(text) != nil:
            return text
        default:
            return nil
        }
    }
}

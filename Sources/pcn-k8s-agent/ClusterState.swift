import Foundation

/// The cluster as the agent knows it: the objects of the kinds it reads, by namespace/name.
struct ClusterState: Equatable {
    var nodes: [String: Node] = [:]
    var pods: [String: Pod] = [:]
    var services: [String: KubeService] = [:]
    var endpointSlices: [String: EndpointSlice] = [:]
    var policies: [String: NetworkPolicy] = [:]
    var namespaces: [String: Namespace] = [:]

    static let kinds = ["Node", "Pod", "Service", "EndpointSlice", "NetworkPolicy", "Namespace"]

    struct DecodeFailure: Error, CustomStringConvertible {
        var description: String
    }

    static func key(_ meta: ObjectMeta) -> String { (meta.namespace ?? "default") + "/" + meta.name }

    /// Adds (or replaces) one object given as its JSON; objects of other kinds are skipped (false).
    @discardableResult
    mutating func apply(_ object: [String: Any], origin: String) throws -> Bool {
        guard let kind = object["kind"] as? String else {
            throw DecodeFailure(description: "\(origin): an object without 'kind'")
        }
        if kind == "List" || kind.hasSuffix("List") {
            for (index, item) in (object["items"] as? [Any] ?? []).enumerated() {
                guard var item = item as? [String: Any] else { throw DecodeFailure(description: "\(origin): items[\(index)] is not an object") }
                // A typed list (NodeList) leaves its items' kind out.
                if item["kind"] == nil, kind != "List" { item["kind"] = String(kind.dropLast(4)) }
                try apply(item, origin: "\(origin) items[\(index)]")
            }
            return true
        }
        guard Self.kinds.contains(kind) else { return false }
        let data = try JSONSerialization.data(withJSONObject: object)
        let name = ((object["metadata"] as? [String: Any])?["name"] as? String).map { " '\($0)'" } ?? ""
        do {
            let decoder = JSONDecoder()
            switch kind {
            case "Node":
                let node = try decoder.decode(Node.self, from: data)
                nodes[node.metadata.name] = node
            case "Pod":
                let pod = try decoder.decode(Pod.self, from: data)
                pods[Self.key(pod.metadata)] = pod
            case "Service":
                let service = try decoder.decode(KubeService.self, from: data)
                services[Self.key(service.metadata)] = service
            case "EndpointSlice":
                let slice = try decoder.decode(EndpointSlice.self, from: data)
                endpointSlices[Self.key(slice.metadata)] = slice
            case "NetworkPolicy":
                let policy = try decoder.decode(NetworkPolicy.self, from: data)
                policies[Self.key(policy.metadata)] = policy
            case "Namespace":
                let namespace = try decoder.decode(Namespace.self, from: data)
                namespaces[namespace.metadata.name] = namespace
            default:
                return false
            }
        } catch let error as DecodingError {
            throw DecodeFailure(description: "\(origin): \(kind)\(name): \(Self.describe(error))")
        }
        return true
    }

    /// Removes one object (a watch's DELETED event).
    mutating func remove(kind: String, meta: ObjectMeta) {
        switch kind {
        case "Node": nodes[meta.name] = nil
        case "Pod": pods[Self.key(meta)] = nil
        case "Service": services[Self.key(meta)] = nil
        case "EndpointSlice": endpointSlices[Self.key(meta)] = nil
        case "NetworkPolicy": policies[Self.key(meta)] = nil
        case "Namespace": namespaces[meta.name] = nil
        default: break
        }
    }

    /// A decoding error as the path of the field and what was wrong with it.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the object" : String(text.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context)): '\(key.stringValue)' is missing"
        case .typeMismatch(let type, let context): return "\(path(context)): not a \(type)"
        case .valueNotFound(let type, let context): return "\(path(context)): a \(type) is missing"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

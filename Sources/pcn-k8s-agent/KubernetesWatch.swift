import Foundation

/// One kind's list + watch against the Kubernetes API, as pure state: what a list answer and each
/// watch event do to the cluster, the resourceVersion to resume from, and when to list again.
struct ResourceWatch {
    let kind: String
    /// The collection's path (`/api/v1/nodes`).
    let path: String
    var resourceVersion: String?

    static let all: [ResourceWatch] = [
        ResourceWatch(kind: "Node", path: "/api/v1/nodes"),
        ResourceWatch(kind: "Namespace", path: "/api/v1/namespaces"),
        ResourceWatch(kind: "Pod", path: "/api/v1/pods"),
        ResourceWatch(kind: "Service", path: "/api/v1/services"),
        ResourceWatch(kind: "EndpointSlice", path: "/apis/discovery.k8s.io/v1/endpointslices"),
        ResourceWatch(kind: "NetworkPolicy", path: "/apis/networking.k8s.io/v1/networkpolicies"),
    ]

    init(kind: String, path: String) {
        self.kind = kind
        self.path = path
    }

    enum Outcome: Equatable {
        case applied
        /// The server no longer has our resourceVersion (410 Gone, "too old"): list again.
        case relist
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The watch request that goes on from what was seen (bookmarks keep the version fresh).
    var watchPath: String {
        path + "?watch=1&allowWatchBookmarks=true" + (resourceVersion.map { "&resourceVersion=" + $0 } ?? "")
    }

    /// A list answer (`NodeList`): the kind's objects in `state` become exactly these.
    mutating func applyList(_ data: Data, to state: inout ClusterState) throws {
        guard let list = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "\(path): the list answer is not a JSON object")
        }
        if list["kind"] as? String == "Status" { throw Failure(description: "\(path): \(Self.status(list))") }
        guard let items = list["items"] as? [Any] else { throw Failure(description: "\(path): the list answer has no items") }
        var fresh = state
        fresh.removeAll(kind: kind)
        for (index, item) in items.enumerated() {
            guard var object = item as? [String: Any] else { throw Failure(description: "\(path): items[\(index)] is not an object") }
            object["kind"] = kind   // a list's items leave their kind out
            try fresh.apply(object, origin: "\(path) items[\(index)]")
        }
        state = fresh
        resourceVersion = (list["metadata"] as? [String: Any])?["resourceVersion"] as? String
    }

    /// One line of a watch stream: `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`.
    mutating func applyEvent(_ line: Data, to state: inout ClusterState) throws -> Outcome {
        guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let type = event["type"] as? String, var object = event["object"] as? [String: Any] else {
            throw Failure(description: "\(path): a watch event that is not {type, object}")
        }
        let version = (object["metadata"] as? [String: Any])?["resourceVersion"] as? String
        switch type {
        case "ADDED", "MODIFIED":
            object["kind"] = object["kind"] ?? kind
            try state.apply(object, origin: "\(path) watch \(type)")
        case "DELETED":
            object["kind"] = object["kind"] ?? kind
            let data = try JSONSerialization.data(withJSONObject: object["metadata"] ?? [:])
            guard let meta = try? JSONDecoder().decode(ObjectMeta.self, from: data) else {
                throw Failure(description: "\(path): a DELETED event without metadata.name")
            }
            state.remove(kind: kind, meta: meta)
        case "BOOKMARK":
            break
        case "ERROR":
            if object["code"] as? Int == 410 {
                resourceVersion = nil
                return .relist
            }
            throw Failure(description: "\(path): \(Self.status(object))")
        default:
            throw Failure(description: "\(path): a watch event of type '\(type)'")
        }
        if let version { resourceVersion = version }
        return .applied
    }

    static func status(_ object: [String: Any]) -> String {
        "the API server answered \(object["code"].map { "\($0)" } ?? "an error"): \(object["message"] as? String ?? object["reason"] as? String ?? "")"
    }
}

extension ClusterState {
    mutating func removeAll(kind: String) {
        switch kind {
        case "Node": nodes = [:]
        case "Pod": pods = [:]
        case "Service": services = [:]
        case "EndpointSlice": endpointSlices = [:]
        case "NetworkPolicy": policies = [:]
        case "Namespace": namespaces = [:]
        default: break
        }
    }
}

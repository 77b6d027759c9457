import Foundation
import Yams

/// The cluster read from a directory of manifests (YAML or JSON, several documents a file, `List`s
/// too), in Kubernetes' own schema: where no API server can run, the agent is given the objects
/// kubectl would show. A change of any file (added, edited, removed) is a new state; a directory
/// that cannot be read whole leaves the last good state in force.
struct DirectorySource: Sendable {
    let directory: String

    /// The files' names and modification times: what a change is seen by.
    func fingerprint() -> [String: Date] {
        var stamps: [String: Date] = [:]
        for name in manifestNames() {
            let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)
            stamps[name] = attributes?[.modificationDate] as? Date ?? .distantPast
        }
        return stamps
    }

    private func manifestNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json")) }
            .sorted()
    }

    func read() throws -> ClusterState {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ClusterState.DecodeFailure(description: "the cluster directory \(directory) does not exist")
        }
        var state = ClusterState()
        for name in manifestNames() {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ClusterState.DecodeFailure(description: "\(path) cannot be read")
            }
            let documents: [Any]
            do {
                if name.hasSuffix(".json") {
                    documents = [try JSONSerialization.jsonObject(with: data)]
                } else {
                    // Iterated by hand: the sequence keeps a parse error aside instead of throwing it.
                    var sequence = try Yams.load_all(yaml: String(decoding: data, as: UTF8.self))
                    var parsed: [Any] = []
                    while let document = sequence.next() { parsed.append(document) }
                    if let error = sequence.error { throw error }
                    documents = parsed
                }
            } catch {
                throw ClusterState.DecodeFailure(description: "\(path) is not \(name.hasSuffix(".json") ? "JSON" : "YAML"): \(error)")
            }
            for (index, document) in documents.enumerated() {
                guard let object = Self.plain(document) as? [String: Any] else {
                    throw ClusterState.DecodeFailure(description: "\(path) document \(index + 1) is not an object")
                }
                try state.apply(object, origin: "\(path) document \(index + 1)")
            }
        }
        return state
    }

    /// Yams' values as JSONSerialization's (its integers and booleans are Swift's already; keys may
    /// come as non-strings: "80: x" is written as text).
    static func plain(_ value: Any) -> Any {
        switch value {
        case let map as [AnyHashable: Any]:
            var object: [String: Any] = [:]
            for (key, inner) in map { object["\(key.base)"] = plain(inner) }
            return object
        case let list as [Any]:
            return list.map(plain)
        default:
            return value
        }
    }
}

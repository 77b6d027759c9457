import Foundation
import JSONText
import PCNProtocol
import YangKit

/// Transparent cubes, and what the service list and the cubes' services are.
extension ConfigEngine {
    // MARK: - Transparent cubes

    /// Attaches a transparent cube (pcn-core checks the position and types) and stores it.
    func attach(_ request: [String: String]) async throws {
        try await exclusively { try await attachNow(request) }
    }

    func attachNow(_ request: [String: String]) async throws {
        guard let cube = request["cube"], let to = request["to"] ?? request["port"] else {
            throw RestFailure(400, tag: "missing-element", "attach needs {\"cube\": name, \"port\": netdev or cube:port}")
        }
        // The chain's order after the attach is what replay rebuilds.
        let chain: [String]
        do {
            _ = try await core.call(CubeAttach(cube: cube, to: to, position: request["position"], before: request["before"], after: request["after"]))
            chain = try await core.chain(at: to)
        } catch {
            throw RestFailure(core: error)
        }
        var attachments = store.attachments.filter { $0["cube"] != cube }
        attachments.removeAll { chain.contains($0["cube"] ?? "") }
        attachments += chain.map { ["cube": $0, "to": to] }
        do {
            try store.commit(store.document, changed: [], attachments: attachments)
        } catch {
            // pcn-core attached it; what is stored must say so or the attach is undone.
            _ = try? await core.call(CubeDetach(name: cube))
            throw storageFailure(error)
        }
    }

    /// Detaches `cube`; with `from` (Polycube's `detach CUBE PORT`), only if that is where it is attached.
    func detach(_ cube: String, from: String? = nil) async throws {
        try await exclusively { try await detachNow(cube, from: from) }
    }

    func detachNow(_ cube: String, from: String? = nil) async throws {
        if let from {
            let parent: String?
            do {
                guard let found = try await core.cubes().first(where: { $0.name == cube }) else {
                    throw RestFailure(404, tag: "data-missing", "cube '\(cube)' does not exist")
                }
                parent = found.parent
            } catch let failure as RestFailure {
                throw failure
            } catch {
                throw RestFailure(core: error)
            }
            guard parent == from else {
                throw RestFailure(409, tag: "data-missing", parent.map { "'\(cube)' is attached to \($0), not to \(from)" } ?? "'\(cube)' is not attached (asked to detach it from \(from))")
            }
        }
        do {
            _ = try await core.call(CubeDetach(name: cube))
        } catch {
            throw RestFailure(core: error)
        }
        do {
            try store.commit(store.document, changed: [], attachments: store.attachments.filter { $0["cube"] != cube })
        } catch {
            throw storageFailure(error)
        }
    }

    /// Where `cube` is attached (as stored) and the IPv4 address there: a cube port's `ip` leaf as
    /// committed, or the netdev's first address.
    func attachment(of cube: String) -> CubeAttachment.Answer {
        guard let parent = store.attachments.first(where: { $0["cube"] == cube })?["to"] else {
            return CubeAttachment.Answer(parent: nil, address: nil)
        }
        let parts = parent.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else {
            return CubeAttachment.Answer(parent: parent, address: NetdevAddress.ipv4(of: parent))
        }
        for case let list as [Any] in store.document.values {
            guard let owner = list.first(where: { ConfigTree.matches($0, ["name": parts[0]]) }) as? [String: Any] else { continue }
            let port = (owner["ports"] as? [Any])?.first { ConfigTree.matches($0, ["name": parts[1]]) } as? [String: Any]
            let address = (port?["ip"] as? String)?.split(separator: "/").first.map(String.init)
            return CubeAttachment.Answer(parent: parent, address: address)
        }
        return CubeAttachment.Answer(parent: parent, address: nil)
    }

    /// Re-attaches stored transparent cubes that pcn-core does not have attached (after a restart).
    func replayAttachments() async {
        guard let cubes = try? await core.cubes() else { return }
        for attachment in store.attachments {
            guard let cube = attachment["cube"], let to = attachment["to"],
                  let current = cubes.first(where: { $0.name == cube }), current.parent == nil else { continue }
            do {
                _ = try await core.call(CubeAttach(cube: cube, to: to, position: "last"))
            } catch {
                logger.info("replay: '\(cube)' not attached to \(to) yet: \(error)")
            }
        }
    }

    /// `GET /polycube/v1/services`, as JSON.
    func serviceList() -> Data {
        let list: [[String: Any]] = services.values.sorted { $0.name < $1.name }.map { service in
            ["name": service.name, "cube-host": service.endpoint,
             "cubes": (store.document["\(service.name):\(service.name)"] as? [Any])?.count ?? 0]
        }
        return (try? JSONText.data(list)) ?? Data("[]".utf8)
    }

    func schema(of service: String) throws -> SchemaNode {
        guard let top = tops[service] else {
            throw RestFailure(404, tag: "invalid-value", "no service '\(service)' is registered (registered: \(services.keys.sorted().joined(separator: ", ")))")
        }
        return top
    }

    /// The service of a cube, for `/<cube>/...` paths.
    func service(ofCube cube: String) -> String? {
        for (member, value) in store.document {
            if (value as? [Any])?.contains(where: { ConfigTree.matches($0, ["name": cube]) }) == true {
                return String(member.split(separator: ":").first ?? "")
            }
        }
        return nil
    }
}

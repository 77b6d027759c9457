import Foundation
import JSONText
import IPC
import Logging
import YangKit

/// Makes the datapath and the service's cube-host match a cube's new configuration. The generic
/// part (the cube, its type, ports, peers, log level) goes to pcn-core, compared with what pcn-core
/// has now (so replaying after a restart of either side is the same call); the whole configuration
/// goes to the cube-host (`cube.apply {cube, config, replay}`; it compares with what it applied last,
/// so only the new configuration crosses the bus). Anything refused undoes what was
/// done, in reverse order, and the refusal is returned.
struct Applier {
    let core: CoreClient
    let logger: Logger

    private var bus: BusClient { core.bus }

    /// A pcn-core request whose answer is only "done".
    nonisolated(nonsending) private func datapath(_ method: String, _ body: [String: Any]) async throws {
        _ = try await core.request(method, body)
    }

    private static func ports(_ cube: [String: Any]?) -> [(name: String, peer: String)] {
        (cube?["ports"] as? [Any] ?? []).compactMap { entry in
            guard let port = entry as? [String: Any], let name = port["name"] as? String else { return nil }
            return (name, port["peer"] as? String ?? "")
        }
    }

    nonisolated(nonsending) func apply(service: String, endpoint: String, top: SchemaNode, old: [String: Any]?, new: [String: Any]?, replaying: Bool) async throws {
        guard let name = (new ?? old)?["name"] as? String else { return }
        let path = "/\(service):\(service)[name='\(name)']"
        var undo: [() async throws -> Void] = []
        func rollback() async {
            for step in undo.reversed() {
                do { try await step() } catch { logger.error("undoing a refused change of \(name): \(error)") }
            }
        }
        let actual: CoreCube?
        do {
            actual = try await core.cubes().first { $0.name == name }
        } catch {
            throw RestFailure(core: error)
        }

        guard let new else {
            // Deletion: the cube-host lets go first, then the datapath.
            try await cubeHost(endpoint, name: name, config: nil, replay: false, path: path)
            if let actual {
                for port in actual.ports where !port.peer.isEmpty {
                    try? await datapath("port.set-peer", ["cube": name, "port": port.name, "peer": ""])
                }
                do {
                    try await datapath("cube.destroy", ["name": name])
                } catch {
                    throw RestFailure(core: error, path: path)
                }
            }
            return
        }

        do {
            if actual == nil {
                let transparent = top.child("ports") == nil
                try await datapath("cube.create", ["name": name, "service": service, "type": new["type"] as? String ?? "TC", "transparent": transparent])
                undo.append { try await datapath("cube.destroy", ["name": name]) }
            }
        } catch {
            throw RestFailure(core: error, path: path)
        }
        do {
            let level = new["loglevel"] as? String ?? "INFO"
            let previousLevel = actual?.loglevel ?? "INFO"
            if level != previousLevel {
                try await datapath("cube.set-loglevel", ["name": name, "level": level])
                undo.append { try await datapath("cube.set-loglevel", ["name": name, "level": previousLevel]) }
            }
            let wanted = Self.ports(new)
            let existing = actual?.ports ?? []
            for port in existing where !wanted.contains(where: { $0.name == port.name }) {
                if !port.peer.isEmpty { try await datapath("port.set-peer", ["cube": name, "port": port.name, "peer": ""]) }
                try await datapath("port.remove", ["cube": name, "port": port.name])
                undo.append {
                    try await datapath("port.add", ["cube": name, "port": port.name])
                    if !port.peer.isEmpty { try await datapath("port.set-peer", ["cube": name, "port": port.name, "peer": port.peer]) }
                }
            }
            for port in wanted where !existing.contains(where: { $0.name == port.name }) {
                try await datapath("port.add", ["cube": name, "port": port.name])
                undo.append { try await datapath("port.remove", ["cube": name, "port": port.name]) }
            }
            for port in wanted {
                let before = existing.first { $0.name == port.name }?.peer ?? ""
                guard port.peer != before else { continue }
                do {
                    try await datapath("port.set-peer", ["cube": name, "port": port.name, "peer": port.peer])
                    undo.append { try await datapath("port.set-peer", ["cube": name, "port": port.name, "peer": before]) }
                } catch where replaying {
                    // The peer's cube may come with a service that has not registered yet: its own
                    // replay links the two ends.
                    logger.info("replay of \(name):\(port.name): peer '\(port.peer)' not linked yet: \((error as? BusError)?.message ?? "\(error)")")
                } catch {
                    throw RestFailure(core: error, path: "\(path)/ports[name='\(port.name)']/peer", refusal: (400, "invalid-value"))
                }
            }
            try await cubeHost(endpoint, name: name, config: new, replay: replaying, path: path)
        } catch {
            await rollback()
            if let failure = error as? RestFailure { throw failure }
            throw RestFailure(core: error, path: path)
        }
    }

    /// The service's part: the cube-host applies the whole configuration of the cube, or refuses.
    /// `replay`: apply all of it anew (pcn-api or the cube-host restarted), not only what changed.
    nonisolated(nonsending) private func cubeHost(_ endpoint: String, name: String, config: [String: Any]?, replay: Bool, path: String) async throws {
        let body: [String: Any] = ["cube": name, "config": config ?? NSNull(), "replay": replay]
        do {
            _ = try await bus.request(endpoint, method: "cube.apply", payload: Array(try JSONText.data(body)), timeout: .seconds(30))
        } catch let error as BusError where error.code == .noRoute || error.code == .disconnected {
            throw RestFailure(503, tag: "resource-denied", path: path, "\(endpoint) is not running: the change was not applied")
        } catch let error as BusError where error.code == .badRequest {
            // The service found the configuration invalid (e.g. overlapping addresses): the client's error.
            throw RestFailure(400, tag: "invalid-value", path: error.path ?? path, error.message)
        } catch let error as BusError {
            throw RestFailure(409, tag: "operation-failed", path: error.path ?? path, "\(endpoint) refused the change: \(error.message)")
        }
    }
}

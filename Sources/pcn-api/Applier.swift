import Foundation
import IPC
import Logging
import PCNProtocol
import YangKit

/// Carries one validated change of a cube (phase (a), libyang, is the caller's) through the other
/// phases of the write path, in this order:
///   (b) the cube-host checks the candidate (`cube.check`: the service's rules; nothing changes);
///   (c) pcn-core applies the datapath part, cube, ports, peers and log level, as one change (`cube.configure`);
///   (d) the cube-host applies (`cube.apply`, with pcn-core's answer: node and port indices);
///   (e) the caller commits the datastore.
/// A refusal in (b) or (c) changes nothing anywhere; a failure in (d) undoes (c), and a failed
/// commit undoes (c) and (d) by applying the old configuration the same way.
struct Applier {
    let core: CoreClient
    let logger: Logger

    private var bus: BusClient { core.bus }

    /// The datapath part of a cube's configuration (what pcn-core is told).
    private static func datapathPart(service: String, top: SchemaNode, _ config: [String: Any], lenient: Bool) -> CubeConfigure {
        let name = config["name"] as? String ?? ""
        let transparent = top.child("ports") == nil
        let ports = transparent ? nil : (config["ports"] as? [Any] ?? []).compactMap { entry -> CubeConfigure.Port? in
            guard let port = entry as? [String: Any], let name = port["name"] as? String else { return nil }
            return CubeConfigure.Port(name: name, peer: port["peer"] as? String ?? "")
        }
        return CubeConfigure(name: name, service: service, type: config["type"] as? String ?? "TC", transparent: transparent,
                             loglevel: config["loglevel"] as? String ?? "INFO", ports: ports, lenientPeers: lenient ? true : nil,
                             shadow: transparent ? nil : config["shadow"] as? Bool ?? false,
                             span: transparent ? nil : config["span"] as? Bool ?? false)
    }

    /// `edit`, when it cuts lists, is what the cube-host is sent of `new` (see `ConfigEdit`).
    nonisolated(nonsending) func apply(service: String, endpoint: String, top: SchemaNode, old: [String: Any]?, new: [String: Any]?,
                                       edit: ConfigEdit? = nil, replaying: Bool) async throws {
        guard let name = (new ?? old)?["name"] as? String else { return }
        let path = "/\(service):\(service)[name='\(name)']"
        let host = CubeHostBus(bus, endpoint: endpoint, connectWithin: .seconds(5))

        // (b) The service's rules, before anything changes. A replay re-applies what was committed.
        if !replaying {
            var answer = CubeCheckAnswer()
            try await cubeHost(endpoint, path: path) {
                if let edit, !edit.cuts.isEmpty, old != nil {
                    do {
                        answer = try await host.call(CubeCheck(cube: name, config: edit.base, cuts: edit.cuts), timeout: .seconds(30))
                        return
                    } catch let error as BusError where error.code == .needsWhole {
                        // It cannot rebuild the configuration from the part: it gets all of it.
                    }
                }
                answer = try await host.call(CubeCheck(cube: name, config: new), timeout: .seconds(30))
            }
            if !answer.dependents.isEmpty { throw DependentEntries(paths: answer.dependents) }
        }

        guard let new else {
            // (c) The datapath lets go of the cube and its links in one change, then (d) the cube-host.
            do {
                _ = try await core.call(CubeDestroy(name: name, ifExists: true))
            } catch {
                throw RestFailure(core: error, path: path)
            }
            do {
                _ = try await host.call(CubeApply(cube: name, config: nil, replay: false, datapath: nil))
            } catch {
                logger.warning("\(endpoint) did not let go of the deleted cube '\(name)': \(error)")
            }
            return
        }

        // (c) One reconcile, skipped when the datapath part did not change.
        let wanted = Self.datapathPart(service: service, top: top, new, lenient: replaying)
        let before = old.map { Self.datapathPart(service: service, top: top, $0, lenient: true) }
        let description: CubeDescription?
        if replaying || before.map({ !Self.sameDatapath($0, wanted) }) ?? true {
            var request = wanted
            if let before, !replaying {
                // A peer this write does not touch cannot make it fail (a pod's veth deleted under its port).
                let previous = Dictionary((before.ports ?? []).map { ($0.name, $0.peer) }, uniquingKeysWith: { a, _ in a })
                request.ports = wanted.ports?.map { port in
                    var port = port
                    if !port.peer.isEmpty, previous[port.name] == port.peer { port.kept = true }
                    return port
                }
            }
            do {
                description = try await core.call(request)
            } catch let error as BusError where error.path != nil && !replaying {
                throw RestFailure(400, tag: "invalid-value", path: "\(path)/\(error.path!)", error.message)
            } catch {
                throw RestFailure(core: error, path: path)
            }
        } else {
            description = nil
        }
        func undoDatapath() async {
            guard description != nil, !replaying else { return }
            do {
                if let before {
                    _ = try await core.call(before)
                } else {
                    _ = try await core.call(CubeDestroy(name: name, ifExists: true))
                }
            } catch {
                logger.error("undoing the datapath part of a refused change of \(name): \(error)")
            }
        }

        // (d) The cube-host applies; a refusal undoes (c).
        do {
            try await cubeHost(endpoint, path: path) {
                // A write applies what (b) checked (not sent again); a replay sends the configuration.
                let apply = replaying ? CubeApply(cube: name, config: new, replay: true, datapath: description)
                                      : CubeApply(cube: name, config: nil, checked: true, replay: false, datapath: description)
                _ = try await host.call(apply, timeout: .seconds(30))
            }
        } catch {
            await undoDatapath()
            throw error
        }
    }

    /// The service accepts the write only with these entries (paths relative to the cube) removed as
    /// well; nothing was changed yet.
    struct DependentEntries: Error {
        var paths: [String]
    }

    private static func sameDatapath(_ a: CubeConfigure, _ b: CubeConfigure) -> Bool {
        a.type == b.type && a.transparent == b.transparent && a.loglevel == b.loglevel && a.ports == b.ports
            && a.shadow == b.shadow && a.span == b.span
    }

    /// A cube-host call, its failures as the client's errors: not running → 503, the service found
    /// the configuration invalid → 400 with its path, any other refusal → 409.
    nonisolated(nonsending) private func cubeHost(_ endpoint: String, path: String, _ call: () async throws -> Void) async throws {
        do {
            try await call()
        } catch let error as BusError where !bus.isRegistered {
            // Not on the bus at all: its hub, pcn-core, is what cannot be reached.
            throw RestFailure(core: error, path: path)
        } catch let error as BusError where error.code == .noRoute || error.code == .disconnected {
            throw RestFailure(503, tag: "resource-denied", path: path, "\(endpoint) is not running: the change was not applied")
        } catch let error as BusError where error.code == .badRequest {
            throw RestFailure(400, tag: "invalid-value", path: error.path ?? path, error.message)
        } catch let error as BusError {
            throw RestFailure(409, tag: "operation-failed", path: error.path ?? path, "\(endpoint) refused the change: \(error.message)")
        }
    }
}

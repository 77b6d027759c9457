import Foundation
import JSONText
import PCNProtocol

extension ConfigEngine {
    // MARK: - Reads

    /// The configuration at a target, as JSON.
    func readJSON(_ target: Target) async throws -> Data {
        try JSONText.data(try await read(target))
    }

    /// The state (config false) of a cube: the generic leaves from pcn-core (service-name, ports'
    /// status and transparent cubes, a transparent cube's parent) and what the cube-host answers to
    /// `cube.state {cube}` (counters, tables: read from its maps), merged over its configuration.
    /// `coreCubes`: pcn-core's cubes when the caller has them already.
    func withState(_ cube: [String: Any], service: String, coreCubes: [CubeDescription]? = nil) async -> [String: Any] {
        await stateRead(cube, service: service, coreCubes: coreCubes).merged
    }

    /// The same, and whether the cube-host answered.
    func stateRead(_ cube: [String: Any], service: String, coreCubes: [CubeDescription]? = nil) async -> (merged: [String: Any], answered: Bool) {
        guard let name = cube["name"] as? String else { return (cube, false) }
        var merged = cube
        merged["service-name"] = service
        merged["uuid"] = Self.uuid(naming: "\(service)/\(name)")
        let cubes: [CubeDescription]? = if let coreCubes { coreCubes } else { try? await core.cubes(timeout: .seconds(5)) }
        if let live = cubes?.first(where: { $0.name == name }) {
            if let parent = live.parent { merged["parent"] = parent }
            if var ports = merged["ports"] as? [Any] {
                for (index, entry) in ports.enumerated() {
                    guard var port = entry as? [String: Any], let livePort = live.ports.first(where: { $0.name == port["name"] as? String }) else { continue }
                    port["status"] = livePort.peer.isEmpty ? "DOWN" : "UP"
                    port["uuid"] = Self.uuid(naming: "\(service)/\(name)/\(livePort.name)")
                    // A netdev deleted under the port: pcn-core released it, and so does what is shown.
                    if livePort.peer.isEmpty, let peer = port["peer"] as? String, !peer.isEmpty, !peer.contains(":"),
                       !FileManager.default.fileExists(atPath: "/sys/class/net/\(peer)") {
                        port["peer"] = ""
                    }
                    if !livePort.tcubes.isEmpty { port["tcubes"] = livePort.tcubes }
                    ports[index] = port
                }
                merged["ports"] = ports
            }
        }
        var answered = false
        if let endpoint = services[service]?.endpoint,
           let state = try? await CubeHostBus(bus, endpoint: endpoint).call(CubeStateQuery(cube: name), timeout: .seconds(5)).object,
           let top = tops[service] {
            merged = (try? ConfigTree.merge(merged, state, node: top, path: "")) as? [String: Any] ?? merged
            // It has the cube (a cube-host without it refuses the query), with or without state.
            answered = true
        }
        return (merged, answered)
    }

    /// A cube's or port's `uuid`: derived from its names (cube names are unique on a machine), so it
    /// is the same after every restart and needs no storage; RFC 4122's layout, version 8 (custom).
    static func uuid(naming name: String) -> String {
        // Two FNV-1a 64-bit hashes with different offsets: 128 bits.
        func fnv(_ offset: UInt64) -> UInt64 {
            var hash = offset
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
            return hash
        }
        var bytes = withUnsafeBytes(of: fnv(0xcbf29ce484222325).bigEndian, Array.init) + withUnsafeBytes(of: fnv(0x84222325cbf29ce4).bigEndian, Array.init)
        bytes[6] = (bytes[6] & 0x0f) | 0x80  // version 8
        bytes[8] = (bytes[8] & 0x3f) | 0x80  // RFC 4122 variant
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }

    func read(_ target: Target) async throws -> Any {
        let list = store.document["\(target.service):\(target.service)"] as? [Any] ?? []
        guard let cube = target.cube else { return list }
        guard let stored = list.first(where: { ConfigTree.matches($0, ["name": cube]) }) as? [String: Any] else {
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "cube '\(cube)' does not exist")
        }
        let (entry, answered) = await stateRead(stored, service: target.service)
        guard let value = ConfigTree.get(entry, target.steps[...]) else {
            if !target.node.config && !answered {
                // State comes from the cube-host: down, or restarted and not given the cube yet.
                throw RestFailure(503, tag: "resource-denied", path: target.dataPath,
                                  "\(services[target.service]?.endpoint ?? "the cube-host") gave no state for cube '\(cube)' (not running, or not given its configuration yet): try again")
            }
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "nothing is configured at \(target.dataPath)")
        }
        return value
    }

    var etag: String { store.etag }
    var lastModified: Date { store.lastModified }
}

extension ConfigEngine {
    /// One chunk of the stream the target's node names, from its cube's cube-host.
    func streamChunk(_ target: Target, from cursor: UInt64?, maxRecords: Int?) async throws -> (header: Data, data: Data, records: Int, next: UInt64) {
        let list = store.document["\(target.service):\(target.service)"] as? [Any] ?? []
        guard let cube = target.cube, list.contains(where: { ConfigTree.matches($0, ["name": cube]) }) else {
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "cube '\(target.cube ?? "")' does not exist")
        }
        guard let endpoint = services[target.service]?.endpoint else {
            throw RestFailure(503, tag: "resource-denied", path: target.dataPath, "the cube-host of \(target.service) is not registered")
        }
        let path = target.steps.compactMap { step -> String? in
            if case .member(let name) = step { return name }
            return nil
        }
        let answer: [String: Any]
        do {
            answer = try await CubeHostBus(bus, endpoint: endpoint).call(
                CubeStreamRead(cube: cube, path: path, from: cursor, limit: 60 << 10, maxRecords: maxRecords), timeout: .seconds(5)).object
        } catch {
            throw RestFailure(503, tag: "resource-denied", path: target.dataPath, "\(endpoint) did not serve the stream: \(error)")
        }
        return (Data(base64Encoded: answer["header"] as? String ?? "") ?? Data(), Data(base64Encoded: answer["data"] as? String ?? "") ?? Data(),
                (answer["records"] as? NSNumber)?.intValue ?? 0, (answer["next"] as? String).flatMap { UInt64($0) } ?? cursor ?? 0)
    }
}

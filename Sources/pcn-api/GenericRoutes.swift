import Foundation
import JSONText
import Hummingbird
import IPC
import PCNProtocol
import NIOCore
import YangKit

/// The service-independent part of the tree: `cubes`, `netdevs`, `connect`, `disconnect`,
/// `attach`, `detach`, `topology`.
struct GenericRoutes: Sendable {
    let core: CoreClient
    let engine: ConfigEngine
    let services: ServiceRoutes

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.get("cubes") { _, _ in await proxy { try JSONEncoder().encode(try await core.cubes()) } }
        v1.get("topology") { _, _ -> Response in
            struct Topology: Encodable { var cubes: [CubeDescription]; var netdevs: [String: [String]] }
            return await proxy {
                try JSONEncoder().encode(Topology(cubes: try await core.cubes(), netdevs: try await core.call(NetdevChains(), timeout: .seconds(10))))
            }
        }
        v1.get("topology/:netdev") { _, context -> Response in
            await run {
                let name = context.parameters.get("netdev") ?? ""
                guard FileManager.default.fileExists(atPath: "/sys/class/net/\(name)") else {
                    throw RestFailure(404, tag: "data-missing", "no netdev '\(name)' on this machine")
                }
                return await proxy { try JSONText.data(try await netdevTopology(name)) }
            }
        }
        v1.get("netdevs") { _, _ in Self.json((try? JSONText.data(Self.netdevs())) ?? Data("[]".utf8)) }
        v1.post("connect") { request, _ in await link(request, connect: true) }
        v1.post("disconnect") { request, _ in await link(request, connect: false) }
        v1.post("attach") { request, _ -> Response in
            await run {
                let body = try await Self.object(request)
                try await engine.attach(body.compactMapValues { $0 as? String })
                return Response(status: .noContent)
            }
        }
        v1.post("detach") { request, _ -> Response in
            await run {
                let body = try await Self.object(request)
                guard let cube = body["cube"] as? String else { throw RestFailure(400, tag: "missing-element", "detach needs {\"cube\": name}") }
                try await engine.detach(cube, from: body["port"] as? String)
                return Response(status: .noContent)
            }
        }
    }

    /// What `netdev`'s packets go through, as Polycube's `topology show NETDEV` prints it: ingress
    /// from the wire through the transparent cubes to the cube port it is the peer of (or the host's
    /// stack); egress the same cubes the other way.
    private func netdevTopology(_ netdev: String) async throws -> [String: Any] {
        let chain = try await core.call(NetdevChains(), timeout: .seconds(10))[netdev] ?? []
        let peer = try await core.cubes().lazy.flatMap { cube in cube.ports.filter { $0.peer == netdev }.map { "\(cube.name):\($0.name)" } }.first
        let end = peer ?? "stack"
        return ["name": netdev, "peer": peer ?? "", "ingress": chain + [end], "egress": chain.reversed() + [end]]
    }

    /// `connect {peer1, peer2}`: a cube port with a netdev or another cube's port (the link is set on
    /// both ends); `disconnect {peer1}` (or peer2) removes it.
    private func link(_ request: Request, connect: Bool) async -> Response {
        await run {
            let body = try await Self.object(request)
            var ends = [body["peer1"] as? String, body["peer2"] as? String].compactMap { $0 }
            guard connect ? ends.count == 2 : !ends.isEmpty else {
                throw RestFailure(400, tag: "missing-element", connect ? "connect needs {\"peer1\": \"cube:port\", \"peer2\": \"cube:port or netdev\"}" : "disconnect needs {\"peer1\": \"cube:port\"}")
            }
            if !ends[0].contains(":") { ends.reverse() }
            let parts = ends[0].split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw RestFailure(400, tag: "invalid-value", "'\(ends[0])' is not cube:port") }
            guard let service = await engine.service(ofCube: parts[0]) else {
                throw RestFailure(404, tag: "data-missing", "cube '\(parts[0])' does not exist")
            }
            let top = try await engine.schema(of: service)
            let target = try Target.resolve(service: service, top: top, segments: [parts[0], "ports", parts[1], "peer"])
            if connect {
                _ = try await engine.write(.put, target, body: try JSONText.data(ends[1]), ifMatch: nil)
            } else {
                _ = try await engine.write(.delete, target, body: nil, ifMatch: nil)
            }
            return Response(status: .noContent)
        }
    }

    private func run(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as RestFailure {
            return RestError.response(failure)
        } catch Target.ResolveError.notInModel(let message) {
            return RestError.response(status: .notFound, tag: "invalid-value", message: message)
        } catch {
            return RestError.response(status: .internalServerError, tag: "operation-failed", message: "\(error)")
        }
    }

    /// pcn-core's answer as JSON, or what its failure means to the client.
    private func proxy(_ answer: () async throws -> Data) async -> Response {
        do {
            return Self.json(try await answer())
        } catch {
            return RestError.response(RestFailure(core: error))
        }
    }

    static func json(_ data: Data) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func object(_ request: Request) async throws -> [String: Any] {
        let buffer = try await RequestBodies.collect(request, limit: 1 << 20)
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any] else {
            throw RestFailure(400, tag: "malformed-message", "the body must be a JSON object")
        }
        return object
    }

    /// The host's network interfaces.
    static func netdevs() -> [[String: Any]] {
        let root = "/sys/class/net"
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted().map { name in
            func read(_ file: String) -> String { ((try? String(contentsOfFile: "\(root)/\(name)/\(file)", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
            return ["name": name, "ifindex": Int(read("ifindex")) ?? 0, "mac": read("address"), "mtu": Int(read("mtu")) ?? 0, "status": read("operstate")]
        }
    }
}

import Foundation
import JSONText
import Hummingbird
import IPC

/// pcn-core as pcn-api reaches it: every datapath request goes through `request`, and what a
/// failure means to a REST client is decided in one place, `RestFailure(core:)`.
struct CoreClient: Sendable {
    let bus: BusClient

    /// Sends `method` with `body` as JSON; pcn-core's answer, or its BusError unchanged. While
    /// pcn-core (the bus hub) is down a request fails after 5 s, enough to ride out a restart.
    nonisolated(nonsending) func request(_ method: String, _ body: [String: Any]? = nil, timeout: Duration = .seconds(60)) async throws -> BusMessage {
        let payload = try body.map { Array(try JSONText.data($0)) } ?? []
        return try await bus.request("core", method: method, payload: payload, timeout: timeout, connectWithin: .seconds(5))
    }

    /// Every cube pcn-core has now.
    func cubes(timeout: Duration = .seconds(10)) async throws -> [CoreCube] {
        try await request("cube.list", timeout: timeout).decode([CoreCube].self)
    }

    /// The transparent cubes at `point` (a netdev or `cube:port`), in chain order.
    func chain(at point: String) async throws -> [String] {
        try await request("chain.list", ["at": point], timeout: .seconds(10)).decode([String].self)
    }
}

/// A cube as pcn-core describes it (`cube.list`): what pcn-api reads of the running datapath.
struct CoreCube: Decodable {
    struct Port: Decodable {
        var name: String
        var peer: String
        var tcubes: [String]
    }
    var name: String
    var service: String
    var loglevel: String
    var parent: String?
    var ports: [Port]
}

extension RestFailure {
    /// A failed pcn-core request as the client's error: 503 while pcn-core cannot be reached,
    /// else its refusal with `refusal`'s status and tag (409 operation-failed unless the caller
    /// knows the request's content was at fault).
    init(core error: any Error, path: String? = nil, refusal: (status: Int, tag: String) = (409, "operation-failed")) {
        let unreachable: Set<BusError.Code> = [.noRoute, .disconnected, .closed, .timeout, .queueFull]
        if let error = error as? BusError, !unreachable.contains(error.code) {
            self.init(refusal.status, tag: refusal.tag, path: path, error.message)
        } else {
            self.init(503, tag: "resource-denied", path: path, "pcn-core is not reachable: \((error as? BusError)?.message ?? "\(error)")")
        }
    }
}

extension RestError {
    static func response(_ failure: RestFailure) -> Response {
        response(status: .init(code: failure.status), errors: failure.errors)
    }
}

import Foundation
import JSONText
import Hummingbird
import IPC
import PCNProtocol

/// pcn-core as pcn-api reaches it: every datapath request is a typed call of the contract, and
/// what a failure means to a REST client is decided in one place, `RestFailure(core:)`.
struct CoreClient: Sendable {
    let bus: BusClient
    /// While pcn-core (the bus hub) is down a call fails after 5 s, enough to ride out a restart.
    private var core: CoreBus { CoreBus(bus, connectWithin: .seconds(5)) }

    init(bus: BusClient) { self.bus = bus }

    /// pcn-core's answer, or its BusError unchanged.
    nonisolated(nonsending) func call<C: CoreCall>(_ call: C, timeout: Duration = .seconds(60)) async throws -> C.Answer {
        try await core.call(call, timeout: timeout)
    }

    /// Every cube pcn-core has now.
    func cubes(timeout: Duration = .seconds(10)) async throws -> [CubeDescription] {
        try await call(CubeList(), timeout: timeout)
    }

    /// The transparent cubes at `point` (a netdev or `cube:port`), in chain order.
    func chain(at point: String) async throws -> [String] {
        try await call(ChainList(at: point), timeout: .seconds(10))
    }
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

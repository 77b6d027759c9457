import Foundation
import Hummingbird
import IPC

/// The REST tree under /polycube/v1.
struct RestRoutes: Sendable {
    let bus: BusClient
    let logs: LogsRoute

    struct Version: ResponseEncodable {
        var name = "polycube-swift"
        var version = "0.1.0"
        var api = "/polycube/v1"
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let v1 = router.group("polycube/v1")
        v1.get { _, _ in Version() }
        v1.get("version") { _, _ in Version() }
        // The bus as the hub sees it: which components are registered, their queues and drops.
        v1.get("bus") { _, _ -> Response in
            do {
                let answer = try await bus.request(HubMethod.hubName, method: HubMethod.stats, timeout: .seconds(2))
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: answer.payload)))
            } catch {
                return RestError.response(status: .serviceUnavailable, tag: "resource-denied",
                                          message: "the bus hub (pcn-core) is not reachable: \(error)")
            }
        }
        v1.get("logs") { request, _ in try await logs.handle(request) }
        return router
    }
}

/// RFC 8040 error bodies.
enum RestError {
    static func response(status: HTTPResponse.Status, tag: String, message: String, path: String? = nil) -> Response {
        var error: [String: String] = ["error-type": "application", "error-tag": tag, "error-message": message]
        if let path { error["error-path"] = path }
        let body = ["ietf-restconf:errors": ["error": [error]]]
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/yang-data+json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

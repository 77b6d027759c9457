import Foundation
import Hummingbird
import IPC
import YangKit

/// The REST tree under /polycube/v1.
struct RestRoutes: Sendable {
    let bus: BusClient
    let logs: LogsRoute
    let services: ServiceRoutes
    /// When set, every route below needs it.
    let token: BearerToken?

    struct Version: ResponseEncodable {
        var name = "polycube-swift"
        var version = "0.1.0"
        var api = "/polycube/v1"
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let core = CoreClient(bus: bus)
        // First: Hummingbird applies a middleware only to the routes added after it.
        if let token { router.add(middleware: BearerTokenMiddleware(token: token)) }
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
        v1.get("services") { _, _ -> Response in
            let data = await services.engine.serviceList()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        GenericRoutes(core: core, engine: services.engine, services: services).register(v1)
        // Answers its body unvalidated: what bench/api compares validated writes with.
        v1.post("echo") { request, _ -> Response in
            var request = request
            do {
                let body = try await RequestBodies.collect(request, limit: services.bodyLimit)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
            } catch let failure as RestFailure {
                return RestError.response(failure)
            }
        }
        v1.get("metrics") { request, _ in await MetricsRoute(core: core, engine: services.engine).handle(accept: request.headers[values: .accept]) }
        v1.get("schema/**") { request, _ in
            let rest = request.uri.path.components(separatedBy: "/polycube/v1/schema/").last ?? ""
            return await services.schema(segments: rest.split(separator: "/").map(String.init))
        }
        // Everything else under /polycube/v1 is a service's tree (or a cube's, redirected).
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            v1.on("**", method: method) { request, _ in
                let path = request.uri.path
                let rest = path.hasPrefix("/polycube/v1/") ? String(path.dropFirst("/polycube/v1/".count)) : ""
                let segments = rest.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
                return await services.handle(request, segments: segments)
            }
        }
        return router
    }
}

/// RFC 8040 error bodies.
enum RestError {
    static func response(status: HTTPResponse.Status, tag: String, message: String, path: String? = nil) -> Response {
        response(status: status, errors: [RestconfError(tag: tag, path: path, message: message)])
    }

    static func response(status: HTTPResponse.Status, errors: [RestconfError]) -> Response {
        struct Body: Encodable {
            struct Errors: Encodable { var error: [RestconfError] }
            var errors: Errors
            enum CodingKeys: String, CodingKey { case errors = "ietf-restconf:errors" }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(Body(errors: .init(error: errors)))) ?? Data()
        return Response(status: status, headers: [.contentType: "application/yang-data+json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

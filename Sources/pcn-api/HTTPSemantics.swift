import Foundation
import Hummingbird
import NIOCore
import YangKit

/// What HTTP says around the routes (RFC 9110): HEAD is GET without the body, OPTIONS answers the
/// methods a path has, a method a path does not have is 405 with `Allow`, a path nothing serves is
/// 404, and every refusal, the router's own included, carries a RESTCONF error body.
struct HTTPSemantics<Inner: HTTPResponder>: HTTPResponder where Inner.Context == BasicRequestContext {
    let inner: Inner
    let routes: RouteMethods

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        let path = request.uri.path
        let allowed = routes.methods(at: path)
        switch request.method {
        case .head:
            var head = request.head
            head.method = .get
            // GET's answer: the HTTP encoder knows the request was HEAD and sends no body.
            return try await respond(to: Request(head: head, body: request.body), context: context)
        case .options:
            guard !allowed.isEmpty else { return Self.notFound(path) }
            return Response(status: .noContent, headers: [.allow: Self.allowHeader(allowed)])
        default:
            break
        }
        guard !allowed.isEmpty else { return Self.notFound(path) }
        guard allowed.contains(request.method) else {
            var response = RestError.response(status: .methodNotAllowed, tag: "operation-not-supported",
                                              message: "\(request.method.rawValue) is not a method of \(path) (it has \(Self.allowHeader(allowed)))")
            response.headers[.allow] = Self.allowHeader(allowed)
            return response
        }
        do {
            return try await inner.respond(to: request, context: context)
        } catch let error as HTTPError {
            // The router's and the framework's own refusals (no route, a body too large): the same body as ours.
            return RestError.response(status: error.status, tag: Self.tag(error.status), message: error.body ?? error.status.reasonPhrase)
        }
    }

    static func notFound(_ path: String) -> Response {
        RestError.response(status: .notFound, tag: "invalid-value", message: "nothing is served at \(RestconfError.quoted(path)): the API is under /polycube/v1")
    }

    static func allowHeader(_ methods: [HTTPRequest.Method]) -> String {
        var names = methods.map(\.rawValue)
        if methods.contains(.get) { names.append("HEAD") }
        names.append("OPTIONS")
        return names.joined(separator: ", ")
    }

    static func tag(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 404: "invalid-value"
        case 405: "operation-not-supported"
        case 413: "too-big"
        case 401, 403: "access-denied"
        case 400..<500: "malformed-message"
        default: "operation-failed"
        }
    }
}

/// The methods each route of the router has, matched as the router matches: a literal segment
/// before a parameter (`{name}`, `:name`, `*`), either before `**`.
struct RouteMethods: Sendable {
    private struct Route: Sendable {
        var segments: [Substring]
        var methods: [HTTPRequest.Method]
    }
    private let routes: [Route]

    init(_ described: [Router<BasicRequestContext>.RouteDescription]) {
        var byPath: [String: [HTTPRequest.Method]] = [:]
        for route in described { byPath["\(route.path)", default: []].append(route.method) }
        routes = byPath.map { Route(segments: $0.key.split(separator: "/"), methods: Self.ordered($0.value)) }
    }

    /// The methods of the most specific route that matches `path`; empty when none does.
    func methods(at path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        var best: (score: [Int], methods: [HTTPRequest.Method])?
        for route in routes {
            guard let score = Self.score(route.segments, segments) else { continue }
            if best.map({ $0.score.lexicographicallyPrecedes(score) }) ?? true { best = (score, route.methods) }
        }
        return best?.methods ?? []
    }

    /// Per segment 2 for a literal, 1 for a parameter, 0 for `**` (nil: no match); higher is more specific.
    private static func score(_ pattern: [Substring], _ path: [Substring]) -> [Int]? {
        var score: [Int] = []
        for (index, part) in pattern.enumerated() {
            if part == "**" { return index < path.count ? score + [0] : nil }
            guard index < path.count else { return nil }
            if part.hasPrefix(":") || part.hasPrefix("{") || part == "*" {
                score.append(1)
            } else if part == path[index] {
                score.append(2)
            } else {
                return nil
            }
        }
        return score.count == path.count ? score : nil
    }

    private static func ordered(_ methods: [HTTPRequest.Method]) -> [HTTPRequest.Method] {
        let order: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
        return order.filter(methods.contains) + methods.filter { !order.contains($0) }
    }
}

/// Request bodies, read up to the configured limit (`--max-body-size`).
enum RequestBodies {
    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw tooLarge(limit)
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge(limit)
        }
    }

    private static func tooLarge(_ limit: Int) -> RestFailure {
        RestFailure(413, tag: "too-big", "the body is larger than \(limit) bytes, the limit pcn-api was started with (--max-body-size)")
    }
}

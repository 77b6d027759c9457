import Foundation
import JSONText
import Hummingbird
import IPC
import NIOCore
import YangKit

/// The services' trees: `/polycube/v1/<service>/<cube>/<path...>` with GET, POST, PUT, PATCH and
/// DELETE, from the models the cube-hosts registered; `/polycube/v1/<cube>/...` redirects to the
/// cube's service.
struct ServiceRoutes: Sendable {
    let engine: ConfigEngine
    /// The largest request body read, in bytes.
    let bodyLimit: Int

    static let jsonTypes = ["application/json", "application/yang-data+json"]

    func handle(_ request: Request, segments: [String]) async -> Response {
        do {
            guard let first = segments.first else {
                throw RestFailure(404, tag: "invalid-value", "no such resource")
            }
            let top: SchemaNode
            do {
                top = try await engine.schema(of: first)
            } catch {
                // `/polycube/v1/r1/...`: the cube's service is found from the datastore.
                if let service = await engine.service(ofCube: first) {
                    let location = "/polycube/v1/" + ([service] + segments).joined(separator: "/")
                    return Response(status: .temporaryRedirect, headers: [.location: location])
                }
                throw error
            }
            let target: Target
            do {
                target = try Target.resolve(service: first, top: top, segments: Array(segments.dropFirst()))
            } catch Target.ResolveError.notInModel(let message) {
                throw RestFailure(404, tag: "invalid-value", path: "/polycube/v1/" + segments.joined(separator: "/"), message)
            }
            switch request.method {
            case .get:
                if let contentType = target.node.stream, target.cube != nil,
                   request.headers[values: .accept].contains(where: { $0.lowercased().contains(contentType) }) {
                    return try await stream(request, target: target, contentType: contentType)
                }
                return await json(Self.withLinks(try await engine.readJSON(target), node: target.node, segments: segments), status: .ok)
            case .post, .put, .patch, .delete:
                let method = ConfigEngine.Method(rawValue: request.method.rawValue)!
                var body: Data?
                if method != .delete {
                    let buffer = try await RequestBodies.collect(request, limit: bodyLimit)
                    let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                    if buffer.readableBytes > 0 {
                        guard let contentType, Self.jsonTypes.contains(contentType) else {
                            throw RestFailure(415, tag: "invalid-value", "the body must be application/json or application/yang-data+json (got \(contentType ?? "no Content-Type"))")
                        }
                        body = Data(buffer: buffer)
                    }
                }
                if target.node.kind == .action {
                    guard method == .post else {
                        throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "'\(target.node.name)' is an action: call it with POST")
                    }
                    return await json(try await engine.call(target, input: body), status: .ok)
                }
                let created = try await engine.write(method, target, body: body, ifMatch: request.headers[.ifMatch])
                var headers = HTTPFields()
                headers[.eTag] = await engine.etag
                let status: HTTPResponse.Status = created && method != .patch ? .created : .noContent
                return Response(status: status, headers: headers)
            default:
                throw RestFailure(405, tag: "operation-not-supported", "\(request.method.rawValue) is not supported")
            }
        } catch let failure as RestFailure {
            return RestError.response(failure)
        } catch {
            return RestError.response(status: .internalServerError, tag: "operation-failed", message: "\(error)")
        }
    }

    /// A node's byte stream (polycube-base's `stream`): the header, then records as they come, until
    /// the client goes away, `count` records were sent or `seconds` passed. The first chunk is read
    /// before answering, so an unknown cube or a cube-host that is down is an error status, not an
    /// empty stream.
    private func stream(_ request: Request, target: Target, contentType: String) async throws -> Response {
        let query = request.uri.queryParameters
        func number(_ name: String) throws -> Int? {
            guard let text = query[Substring(name)].map(String.init) else { return nil }
            guard let value = Int(text), value > 0 else {
                throw RestFailure(400, tag: "invalid-value", path: name, "\(name) must be a positive whole number, not '\(text)'")
            }
            return value
        }
        let count = try number("count")
        let deadline = try number("seconds").map { ContinuousClock.now + .seconds($0) }
        let engine = self.engine
        let first = try await engine.streamChunk(target, from: nil, maxRecords: count)
        let body = ResponseBody { writer in
            var cursor = first.next
            var sent = 0
            try await writer.write(ByteBuffer(bytes: first.header))
            while count.map({ sent < $0 }) ?? true, deadline.map({ ContinuousClock.now < $0 }) ?? true {
                guard let chunk = try? await engine.streamChunk(target, from: cursor, maxRecords: count.map { $0 - sent }) else { break }
                cursor = chunk.next
                if chunk.records > 0 {
                    try await writer.write(ByteBuffer(bytes: chunk.data))
                    sent += chunk.records
                } else {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: contentType, .cacheControl: "no-store"], body: body)
    }

    /// `GET /polycube/v1/schema/<service>/<path...>`: what pcnctl needs for help and completion.
    func schema(segments: [String]) async -> Response {
        do {
            guard let service = segments.first else {
                throw RestFailure(404, tag: "invalid-value", "give a service: /polycube/v1/schema/<service>/<path...>")
            }
            let top = try await engine.schema(of: service)
            // Paths name schema nodes; a data path's list keys (`chain/INGRESS/append`) are skipped.
            var node = top
            var keysLeft = 0
            for segment in segments.dropFirst() {
                if keysLeft > 0 {
                    keysLeft -= 1
                    continue
                }
                if node.kind == .list, node !== top, node.child(segment) == nil, node.input.isEmpty {
                    keysLeft = node.keys.count - 1
                    continue
                }
                guard let child = node.child(segment) ?? node.input.first(where: { $0.name == segment }) else {
                    throw RestFailure(404, tag: "invalid-value", "'\(node.name)' has no member '\(segment)' (it has \(node.children.map(\.name).joined(separator: ", ")))")
                }
                node = child
            }
            let data = try JSONText.data(Self.describe(node, depth: 1))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        } catch let failure as RestFailure {
            return RestError.response(failure)
        } catch {
            return RestError.response(status: .internalServerError, tag: "operation-failed", message: "\(error)")
        }
    }

    static func describe(_ node: SchemaNode, depth: Int) -> [String: Any] {
        var out: [String: Any] = ["name": node.name, "kind": node.kind.rawValue, "config": node.config]
        if let description = node.description { out["description"] = description }
        if let type = node.typeName ?? node.type?.name { out["type"] = type }
        if !node.enums.isEmpty { out["enum"] = node.enums }
        if let value = node.defaultValue { out["default"] = value }
        if !node.keys.isEmpty { out["keys"] = node.keys }
        if node.mandatory { out["mandatory"] = true }
        if node.initOnly { out["init-only"] = true }
        if let stream = node.stream { out["stream"] = stream }
        if depth > 0 {
            if !node.children.isEmpty { out["children"] = node.children.map { describe($0, depth: depth - 1) } }
            if !node.input.isEmpty { out["input"] = node.input.map { describe($0, depth: depth - 1) } }
        }
        return out
    }

    /// HATEOAS, as Polycube's REST: an object read (a cube, a list entry, a container) carries
    /// `_links`, one `{rel, href}` for itself and for each member and action its model node has.
    static func withLinks(_ data: Data, node: SchemaNode, segments: [String]) -> Data {
        guard var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return data }
        let escaped = segments.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? $0 }
        let base = "/polycube/v1/" + escaped.joined(separator: "/") + "/"
        object["_links"] = [["rel": "self", "href": base]] + node.children.map { ["rel": $0.name, "href": base + $0.name + "/"] }
        return (try? JSONText.data(object)) ?? data
    }

    private func json(_ data: Data, status: HTTPResponse.Status) async -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.eTag] = await engine.etag
        headers[.lastModified] = Self.httpDate(await engine.lastModified)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}

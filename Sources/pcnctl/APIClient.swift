import Foundation
import JSONText
import PCNHTTP

struct APIClient {
    let base: String
    /// PEM bundle pcn-api's certificate must chain to (https); nil: the system's CAs.
    var caFile: String?
    /// Sent as `Authorization: Bearer` on every request.
    var token: String?

    static let genericPaths: Set = ["services", "cubes", "netdevs", "topology", "connect", "disconnect", "attach", "detach",
                                    "bus", "version", "logs", "schema", "metrics"]

    /// `r1 ports p1` is `router r1 ports p1`: a path that starts with a cube's name gets its service
    /// (pcn-api would redirect, but a redirect drops the body of a POST or PATCH).
    func withService(_ path: [String]) async -> [String] {
        guard let first = path.first, !Self.genericPaths.contains(first) else { return path }
        let services = ((try? await getJSON("services")) as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        guard !services.contains(first) else { return path }
        let cubes = (try? await getJSON("cubes")) as? [[String: Any]] ?? []
        guard let service = cubes.first(where: { $0["name"] as? String == first })?["service"] as? String else { return path }
        return [service] + path
    }

    /// True if `service cube member...` names a YANG action of the service's model.
    func isAction(_ path: [String]) async -> Bool {
        guard path.count >= 3, !Self.genericPaths.contains(path[0]) else { return false }
        let node = (try? await getJSON("schema/" + ([path[0]] + path.dropFirst(2)).joined(separator: "/"))) as? [String: Any]
        return node?["kind"] as? String == "action"
    }

    /// Where `service cube words...` is in the service's model: the member names from the
    /// service down (list keys left out) and whether the words stop at a whole list (no entry key).
    func schemaPosition(_ path: [String]) async -> (members: [String], wholeList: Bool)? {
        guard path.count >= 2, !Self.genericPaths.contains(path[0]) else { return nil }
        var members: [String] = []
        var pendingKeys = 0, wholeList = false
        var node = (try? await getJSON("schema/" + path[0])) as? [String: Any]
        for word in path.dropFirst(2) {
            if pendingKeys > 0 { pendingKeys -= 1; wholeList = false; continue }
            let children = node?["children"] as? [[String: Any]] ?? []
            guard let child = children.first(where: { $0["name"] as? String == word }) else { return nil }
            members.append(word)
            node = ((try? await getJSON("schema/" + ([path[0]] + members).joined(separator: "/"))) as? [String: Any]) ?? child
            wholeList = child["kind"] as? String == "list"
            pendingKeys = wholeList ? (child["keys"] as? [String])?.count ?? 1 : 0
        }
        return (members, wholeList)
    }

    /// True if `path` names a list of the model (not one of its entries) whose parent exists: pcn-api's
    /// 404 is then about the list having no entries, not about the cube (`router nosuch ports show`).
    func isEmptyList(_ path: [String]) async -> Bool {
        guard let position = await schemaPosition(path), position.wholeList else { return false }
        let parent = path.dropLast().map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? $0 }
        return (try? await getJSON(parent.joined(separator: "/"))) != nil
    }

    /// The model's member order for `value` shown at `path` and each container and list inside it,
    /// keyed by the member names below the shown node.
    func memberOrder(_ path: [String], value: Any) async -> [[String]: [String]] {
        guard let position = await schemaPosition(path) else { return [:] }
        var order: [[String]: [String]] = [:]
        var pending: [([String], Any)] = [([], value)]
        while let (relative, item) = pending.popLast() {
            var objects: [[String: Any]] = []
            if let object = item as? [String: Any] { objects = [object] }
            if let list = item as? [Any] { objects = list.compactMap { $0 as? [String: Any] } }
            guard !objects.isEmpty, order[relative] == nil else { continue }
            let schema = (try? await getJSON("schema/" + ([path[0]] + position.members + relative).joined(separator: "/"))) as? [String: Any]
            order[relative] = (schema?["children"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            for object in objects {
                for (key, inner) in object where inner is [String: Any] || inner is [Any] { pending.append((relative + [key], inner)) }
            }
        }
        return order
    }

    /// The content type of the stream `service cube member...` names (polycube-base's `stream`), if any.
    func streamType(_ path: [String]) async -> String? {
        guard path.count >= 3, !Self.genericPaths.contains(path[0]) else { return nil }
        let node = (try? await getJSON("schema/" + ([path[0]] + path.dropFirst(2)).joined(separator: "/"))) as? [String: Any]
        return node?["stream"] as? String
    }

    /// GETs the stream at `path` and writes it to standard output as it comes; the status and, when
    /// it is not 200, the error body.
    func stream(_ path: [String], query: [(String, String)], contentType: String) throws -> (Int, Data) {
        let escaped = path.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? $0 }
        var components = URLComponents(string: base + "/polycube/v1/" + escaped.joined(separator: "/"))
        if !query.isEmpty { components?.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        guard let url = components?.url?.absoluteString else { throw CommandFailure(message: "'\(base)' is not a valid URL", code: 64) }
        signal(SIGPIPE, SIG_IGN)  // a reader that stops (tcpdump -c N) ends the stream, not pcnctl
        return try transfer("GET", url, accept: contentType, timeout: 30, streamTo: STDOUT_FILENO)
    }

    /// GET /polycube/v1/<path> as JSON, nil on any failure.
    func getJSON(_ path: String) async throws -> Any? {
        let (status, data) = try transfer("GET", base + "/polycube/v1/" + path, timeout: 30)
        guard status == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    struct Logs: Decodable {
        var lines: [String]
        var next: Int
    }

    func logs(_ query: [(String, String)]) async throws -> Logs {
        var components = URLComponents(string: base + "/polycube/v1/logs")
        components?.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        guard let url = components?.url else { throw CommandFailure(message: "'\(base)' is not a valid URL", code: 64) }
        let (status, data) = try transfer("GET", url.absoluteString, timeout: 40)
        guard status == 200, let logs = try? JSONDecoder().decode(Logs.self, from: data) else {
            throw CommandFailure(message: Render.error(status: status, body: data), code: 1)
        }
        return logs
    }

    func send(_ request: CommandLineRequest) async throws -> (Int, Data) {
        let escaped = request.path.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? $0 }
        let body = try request.body.map { try JSONText.data($0) }
        return try transfer(request.method, base + "/polycube/v1/" + escaped.joined(separator: "/"), body: body, timeout: 30)
    }

    /// One exchange with pcn-api: the status and body of its answer, whatever the status.
    private func transfer(_ method: String, _ url: String, body: Data? = nil, accept: String = "application/json", timeout: Int,
                          streamTo fd: Int32 = -1) throws -> (Int, Data) {
        var headers = ["Accept: " + accept]
        if body != nil { headers.append("Content-Type: application/json") }
        if let token { headers.append("Authorization: Bearer " + token) }
        do {
            let response = try HTTPTransport.perform(method: method, url: url, body: body, headers: headers,
                                                     caFile: caFile, timeoutSeconds: timeout, streamTo: fd)
            return (response.status, response.body)
        } catch let failure as HTTPTransport.Failure {
            throw CommandFailure(message: "cannot reach pcn-api at \(base): \(failure.reason)"
                + (failure.reason.contains("certificate") ? " (give the CA that signed pcn-api's certificate: --cacert or PCN_API_CACERT)" : "")
                + (failure.reason.contains("Empty reply") && base.hasPrefix("http:") ? " (does it serve https? then use an https:// URL)" : ""),
                code: 69)
        }
    }
}

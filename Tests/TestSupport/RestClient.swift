import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Requests to pcn-api's REST tree, for tests.
public struct RestClient: Sendable {
    /// `http://127.0.0.1:<port>/polycube/v1`
    public let base: String
    public let port: Int

    public init(port: Int) {
        self.port = port
        base = "http://127.0.0.1:\(port)/polycube/v1"
    }

    public struct Answer: CustomStringConvertible {
        public var status: Int
        public var headers: [String: String]
        public var json: Any?
        /// The body as text (OpenMetrics, for one).
        public var text: String
        /// The `ietf-restconf:errors` entries of an error answer.
        public var errors: [[String: String]] {
            ((json as? [String: Any])?["ietf-restconf:errors"] as? [String: Any])?["error"] as? [[String: String]] ?? []
        }
        public var description: String { "HTTP \(status) \(json.map { "\($0)" } ?? "")" }
    }

    @discardableResult
    public func call(_ method: String, _ path: String, _ body: String? = nil, contentType: String = "application/json",
                     headers: [String: String] = [:]) async throws -> Answer {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.timeoutInterval = 120
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)".lowercased()] = "\(value)" }
        let json = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        return Answer(status: http.statusCode, headers: fields, json: json, text: String(decoding: data, as: UTF8.self))
    }
}

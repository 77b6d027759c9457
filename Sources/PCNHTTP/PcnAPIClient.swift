import Foundation
import JSONText

/// pcn-api as the programs beside it use it (pcn-cni, the node agent): JSON in and out below
/// `/polycube/v1`, the bearer token and CA if given, a refusal as an error quoting pcn-api's messages.
public struct PcnAPIClient: Sendable {
    public let base: String
    public var token: String?
    public var caFile: String?

    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// The HTTP status of the refusal; nil when pcn-api could not be reached.
        public var status: Int?
        public var description: String
    }

    public init(base: String, token: String? = nil, caFile: String? = nil) {
        self.base = base
        self.token = token
        self.caFile = caFile
    }

    /// The token in `path` (its one line), nil if the file cannot be read.
    public static func token(fromFile path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// One exchange: the status and the answer's JSON, whatever the status.
    public func call(_ method: String, _ path: String, _ body: Any? = nil, timeout: Int = 30) throws -> (status: Int, json: Any?) {
        var headers = ["Accept: application/json"]
        if body != nil { headers.append("Content-Type: application/json") }
        if let token { headers.append("Authorization: Bearer " + token) }
        let data = try body.map { try JSONText.data($0) }
        do {
            let response = try HTTPTransport.perform(method: method, url: base + "/polycube/v1" + path, body: data, headers: headers,
                                                     caFile: caFile, timeoutSeconds: timeout)
            return (response.status, try? JSONSerialization.jsonObject(with: response.body, options: [.fragmentsAllowed]))
        } catch let failure as HTTPTransport.Failure {
            throw Failure(status: nil, description: "cannot reach pcn-api at \(base): \(failure.reason)")
        }
    }

    /// GET, nil for a 404.
    public func get(_ path: String, timeout: Int = 30) throws -> Any? {
        let answer = try call("GET", path, timeout: timeout)
        if answer.status == 404 { return nil }
        guard answer.status == 200 else { throw refusal("GET", path, answer) }
        return answer.json
    }

    /// A call that must succeed (2xx); its answer.
    @discardableResult
    public func must(_ method: String, _ path: String, _ body: Any? = nil, timeout: Int = 30) throws -> Any? {
        let answer = try call(method, path, body, timeout: timeout)
        guard (200..<300).contains(answer.status) else { throw refusal(method, path, answer) }
        return answer.json
    }

    public func refusal(_ method: String, _ path: String, _ answer: (status: Int, json: Any?)) -> Failure {
        let errors = ((answer.json as? [String: Any])?["ietf-restconf:errors"] as? [String: Any])?["error"] as? [[String: Any]] ?? []
        let messages = errors.compactMap { $0["error-message"] as? String }.joined(separator: "; ")
        return Failure(status: answer.status,
                       description: "pcn-api refused \(method) \(path): HTTP \(answer.status)\(messages.isEmpty ? "" : ": " + messages)")
    }

    /// A list key as one path segment (`10.10.2.0/24` → `10.10.2.0%2F24`).
    public static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
    }
}

import Foundation
import JSONText
import PCNHTTP

/// The pods' FRONTEND ports of the node's lbrp cube, through pcn-api's REST tree.
struct PodPorts {
    let config: NetworkConfig
    private let token: String?

    init(_ config: NetworkConfig) throws {
        self.config = config
        if let path = config.tokenFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CNIError(.invalidConfig, "tokenFile \(path) cannot be read")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = nil
        }
    }

    private var cubePath: String { "/polycube/v1/lbrp/" + config.lbrp }

    /// The cube, or nil if pcn-api has no such lbrp.
    func cube(timeout: Int = 10) throws -> [String: Any]? {
        let (status, body) = try exchange("GET", cubePath, timeout: timeout)
        if status == 404 { return nil }
        guard status == 200 else { throw refusal("GET", cubePath, status, body) }
        return try? JSONSerialization.jsonObject(with: body) as? [String: Any]
    }

    /// pcn-core's cubes (pcn-api asks it): fails when the datapath's process is down.
    func datapathCubes(timeout: Int) throws -> [[String: Any]] {
        let (status, body) = try exchange("GET", "/polycube/v1/cubes", timeout: timeout)
        guard status == 200 else { throw refusal("GET", "/polycube/v1/cubes", status, body) }
        return (try? JSONSerialization.jsonObject(with: body) as? [[String: Any]]) ?? []
    }

    func ports() throws -> [[String: Any]] {
        guard let cube = try cube() else { throw missingCube() }
        return cube["ports"] as? [[String: Any]] ?? []
    }

    func port(_ name: String) throws -> [String: Any]? {
        let path = cubePath + "/ports/" + name
        let (status, body) = try exchange("GET", path, timeout: 10)
        if status == 404 { return nil }
        guard status == 200 else { throw refusal("GET", path, status, body) }
        return try? JSONSerialization.jsonObject(with: body) as? [String: Any]
    }

    func add(port name: String, ip: String, peer: String) throws {
        let path = cubePath + "/ports/" + name
        let body = try JSONText.data(["type": "FRONTEND", "ip": ip, "peer": peer])
        let (status, answer) = try exchange("POST", path, body: body, timeout: 30)
        guard (200..<300).contains(status) else {
            if status == 404, try cube() == nil { throw missingCube() }
            throw refusal("POST", path, status, answer)
        }
    }

    /// Deletes a port; false if it was not there.
    @discardableResult
    func delete(port name: String) throws -> Bool {
        let path = cubePath + "/ports/" + name
        let (status, answer) = try exchange("DELETE", path, timeout: 30)
        if status == 404 { return false }
        guard (200..<300).contains(status) else { throw refusal("DELETE", path, status, answer) }
        return true
    }

    func missingCube() -> CNIError {
        CNIError(.apiRefused, "pcn-api at \(config.api) has no lbrp cube '\(config.lbrp)' (the node's pods attach to its FRONTEND ports; the node agent creates it)")
    }

    private func exchange(_ method: String, _ path: String, body: Data? = nil, timeout: Int) throws -> (Int, Data) {
        var headers = ["Accept: application/json"]
        if body != nil { headers.append("Content-Type: application/json") }
        if let token { headers.append("Authorization: Bearer " + token) }
        do {
            let response = try HTTPTransport.perform(method: method, url: config.api + path, body: body, headers: headers,
                                                     caFile: config.caFile, timeoutSeconds: timeout)
            return (response.status, response.body)
        } catch let failure as HTTPTransport.Failure {
            throw CNIError(.apiUnreachable, "cannot reach pcn-api at \(config.api): \(failure.reason)")
        }
    }

    private func refusal(_ method: String, _ path: String, _ status: Int, _ body: Data) -> CNIError {
        var reason = "HTTP \(status)"
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
           let errors = (object["ietf-restconf:errors"] as? [String: Any])?["error"] as? [[String: Any]] {
            reason += ": " + errors.compactMap { $0["error-message"] as? String }.joined(separator: "; ")
        }
        return CNIError(status == 503 ? .tryAgainLater : .apiRefused, "pcn-api refused \(method) \(path): \(reason)")
    }
}

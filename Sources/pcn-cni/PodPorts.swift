import Foundation
import PCNHTTP

/// The pods' FRONTEND ports of the node's lbrp cube, through pcn-api's REST tree.
struct PodPorts {
    let config: NetworkConfig
    private let api: PcnAPIClient

    init(_ config: NetworkConfig) throws {
        self.config = config
        var token: String?
        if let path = config.tokenFile {
            guard let read = PcnAPIClient.token(fromFile: path) else { throw CNIError(.invalidConfig, "tokenFile \(path) cannot be read") }
            token = read
        }
        api = PcnAPIClient(base: config.api, token: token, caFile: config.caFile)
    }

    private var cubePath: String { "/lbrp/" + config.lbrp }

    /// The cube, or nil if pcn-api has no such lbrp.
    func cube(timeout: Int = 10) throws -> [String: Any]? {
        try translated { try api.get(cubePath, timeout: timeout) as? [String: Any] }
    }

    /// pcn-core's cubes (pcn-api asks it): fails when the datapath's process is down.
    func datapathCubes(timeout: Int) throws -> [[String: Any]] {
        try translated { try api.get("/cubes", timeout: timeout) as? [[String: Any]] ?? [] }
    }

    func ports() throws -> [[String: Any]] {
        guard let cube = try cube() else { throw missingCube() }
        return cube["ports"] as? [[String: Any]] ?? []
    }

    func port(_ name: String) throws -> [String: Any]? {
        try translated { try api.get(cubePath + "/ports/" + name, timeout: 10) as? [String: Any] }
    }

    func add(port name: String, ip: String, peer: String) throws {
        let path = cubePath + "/ports/" + name
        let answer = try translated { try api.call("POST", path, ["type": "FRONTEND", "ip": ip, "peer": peer]) }
        guard (200..<300).contains(answer.status) else {
            if answer.status == 404, try cube() == nil { throw missingCube() }
            throw Self.cniError(api.refusal("POST", path, answer))
        }
    }

    /// Deletes a port; false if it was not there.
    @discardableResult
    func delete(port name: String) throws -> Bool {
        let path = cubePath + "/ports/" + name
        let answer = try translated { try api.call("DELETE", path) }
        if answer.status == 404 { return false }
        guard (200..<300).contains(answer.status) else { throw Self.cniError(api.refusal("DELETE", path, answer)) }
        return true
    }

    func missingCube() -> CNIError {
        CNIError(.apiRefused, "pcn-api at \(config.api) has no lbrp cube '\(config.lbrp)' (the node's pods attach to its FRONTEND ports; the node agent creates it)")
    }

    /// pcn-api's failures as CNI errors: unreachable 101, busy (503) 11, any other refusal 102.
    private func translated<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let failure as PcnAPIClient.Failure { throw Self.cniError(failure) }
    }

    private static func cniError(_ failure: PcnAPIClient.Failure) -> CNIError {
        switch failure.status {
        case nil: return CNIError(.apiUnreachable, failure.description)
        case 503?: return CNIError(.tryAgainLater, failure.description)
        default: return CNIError(.apiRefused, failure.description)
        }
    }
}

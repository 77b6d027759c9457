import Foundation
import JSONText

/// The network configuration on stdin: the specification's keys, pcn-cni's own, and everything
/// else kept as it came (delegates get the whole object).
struct NetworkConfig {
    var raw: [String: Any]
    var cniVersion: String
    var name: String
    /// The IPAM delegate's section and its `type`.
    var ipam: [String: Any]
    var ipamType: String
    /// pcn-api: its base URL, the bearer token file and the CA its certificate chains to.
    var api = "http://127.0.0.1:9000"
    var tokenFile: String?
    var caFile: String?
    /// The lbrp cube (MULTI port mode) pods get a FRONTEND port of.
    var lbrp = "ilb0"
    var mtu: Int?
    /// Where pcn-cni keeps one record per attachment (for DEL without prevResult and for GC).
    var dataDir = "/var/lib/cni/pcn-cni"
    var prevResult: [String: Any]?
    /// GC: the attachments still valid, as (container ID, interface name).
    var validAttachments: [(containerID: String, ifname: String)]?

    static let ownKeys = ["api", "tokenFile", "cacert", "lbrp", "mtu", "dataDir"]

    /// Parses and checks stdin; `command` decides what is required.
    static func parse(_ data: Data, command: Invocation.Command) throws -> NetworkConfig {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CNIError(.decodeFailure, "the network configuration on stdin is not JSON", details: "\(error)")
        }
        guard let raw = object as? [String: Any] else {
            throw CNIError(.decodeFailure, "the network configuration on stdin must be a JSON object")
        }
        guard let version = raw["cniVersion"] as? String else {
            throw CNIError(.invalidConfig, "cniVersion is missing or not a string")
        }
        guard CNIVersion.supported.contains(version) else {
            throw CNIError(.incompatibleVersion, "cniVersion '\(version)' is not supported (pcn-cni speaks \(CNIVersion.supported.joined(separator: ", ")))")
        }
        func string(_ key: String) throws -> String? {
            guard let value = raw[key] else { return nil }
            guard let text = value as? String, !text.isEmpty else { throw CNIError(.invalidConfig, "\(key) must be a non-empty string") }
            return text
        }
        guard let name = try string("name") else { throw CNIError(.invalidConfig, "name (the network's name) is missing") }
        guard Invocation.isValidContainerID(name) else {
            throw CNIError(.invalidConfig, "name '\(name)' may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit")
        }
        guard raw["type"] is String else { throw CNIError(.invalidConfig, "type is missing or not a string") }
        guard let ipam = raw["ipam"] as? [String: Any] else {
            throw CNIError(.invalidConfig, "ipam is missing: pcn-cni takes the pod's address from an IPAM plugin (for example {\"type\": \"host-local\", \"subnet\": \"10.10.1.0/24\"})")
        }
        guard let ipamType = ipam["type"] as? String, !ipamType.isEmpty, !ipamType.contains("/") else {
            throw CNIError(.invalidConfig, "ipam.type must name an IPAM plugin in CNI_PATH (for example host-local)")
        }
        var config = NetworkConfig(raw: raw, cniVersion: version, name: name, ipam: ipam, ipamType: ipamType)
        if let api = try string("api") {
            guard let url = URL(string: api), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw CNIError(.invalidConfig, "api '\(api)' is not pcn-api's URL (http:// or https://, then the host)")
            }
            config.api = api.hasSuffix("/") ? String(api.dropLast()) : api
        }
        config.tokenFile = try string("tokenFile")
        config.caFile = try string("cacert")
        if let lbrp = try string("lbrp") {
            guard Invocation.isValidContainerID(lbrp) else { throw CNIError(.invalidConfig, "lbrp '\(lbrp)' is not a cube name") }
            config.lbrp = lbrp
        }
        if let mtu = raw["mtu"] {
            guard let number = mtu as? NSNumber, !JSONText.isBoolean(number), number.doubleValue == Double(number.intValue),
                  (68...65535).contains(number.intValue) else {
                throw CNIError(.invalidConfig, "mtu must be a whole number from 68 to 65535 (it is \(mtu))")
            }
            config.mtu = number.intValue
        }
        if let dataDir = try string("dataDir") {
            guard dataDir.hasPrefix("/") else { throw CNIError(.invalidConfig, "dataDir '\(dataDir)' must be an absolute path") }
            config.dataDir = dataDir
        }
        if let previous = raw["prevResult"] {
            guard let object = previous as? [String: Any] else { throw CNIError(.invalidConfig, "prevResult must be an object") }
            config.prevResult = object
        }
        if command == .gc {
            // The specification names it cni.dev/valid-attachments; libcni also sets cni.dev/attachments.
            guard let list = raw["cni.dev/valid-attachments"] ?? raw["cni.dev/attachments"] else {
                throw CNIError(.invalidConfig, "GC needs cni.dev/valid-attachments (the attachments to keep)")
            }
            guard let entries = list as? [Any] else { throw CNIError(.invalidConfig, "cni.dev/valid-attachments must be a list") }
            config.validAttachments = try entries.enumerated().map { index, entry in
                guard let object = entry as? [String: Any], let id = object["containerID"] as? String, let ifname = object["ifname"] as? String else {
                    throw CNIError(.invalidConfig, "cni.dev/valid-attachments[\(index)] must be {\"containerID\": …, \"ifname\": …}")
                }
                return (id, ifname)
            }
        }
        return config
    }

    /// The configuration a delegate is given: the same object, at the version it speaks.
    func forDelegate(version: String) -> [String: Any] {
        var object = raw
        object["cniVersion"] = version
        if let prevResult { object["prevResult"] = CNIResult(json: prevResult).json(version: version) }
        return object
    }
}

import Foundation
import Yams

/// Where pcnctl reaches pcn-api, each setting from the first of: its option, its environment
/// variable, the settings file (`$PCNCTL_CONFIG`, else `~/.config/pcn/pcnctl.yaml`, else
/// `/etc/pcn/pcnctl.yaml`, which scripts/install writes), the default.
struct ClientSettings {
    var url = "http://127.0.0.1:9000"
    var caFile: String?
    var tokenFile: String?

    static let keys = ["url": "PCN_API_URL", "cacert": "PCN_API_CACERT", "token-file": "PCN_API_TOKEN_FILE"]

    init(url urlOption: String?, cacert: String?, tokenFile tokenOption: String?,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let file = try Self.settingsFile(environment: environment)
        func pick(_ option: String?, _ key: String) -> String? {
            let variable = Self.keys[key]!
            return [option, environment[variable], file[key]].lazy.compactMap { $0 }.first { !$0.isEmpty }
        }
        // polycubectl's variable names the REST base (`http://localhost:9000/polycube/v1/`): its
        // scripts keep working with pcnctl linked as polycubectl.
        let polycubectl = environment["POLYCUBECTL_URL"].map { value -> String in
            var base = value
            while base.hasSuffix("/") { base.removeLast() }
            return base.hasSuffix("/polycube/v1") ? String(base.dropLast("/polycube/v1".count)) : base
        }
        url = [urlOption, environment["PCN_API_URL"], polycubectl, file["url"]].lazy.compactMap { $0 }.first { !$0.isEmpty } ?? url
        caFile = pick(cacert, "cacert")
        tokenFile = pick(tokenOption, "token-file")
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw CommandFailure(message: "'\(url)' is not a valid URL (http:// or https://, then the host)", code: 64)
        }
    }

    /// The bearer token in `tokenFile`, if one is given.
    func token() throws -> String? {
        guard let path = tokenFile else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(message: "cannot read the token file \(path)" + (FileManager.default.fileExists(atPath: path) ? " (permission denied)" : " (no such file)"), code: 66)
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: \.isNewline) else {
            throw CommandFailure(message: "the token file \(path) must hold one line, the token", code: 66)
        }
        return token
    }

    /// The settings file's keys, or none if there is no file.
    static func settingsFile(environment: [String: String]) throws -> [String: String] {
        let home = environment["HOME"].map { environment["XDG_CONFIG_HOME"] ?? $0 + "/.config" }
        let candidates: [String]
        if let explicit = environment["PCNCTL_CONFIG"], !explicit.isEmpty {
            guard FileManager.default.fileExists(atPath: explicit) else {
                throw CommandFailure(message: "PCNCTL_CONFIG names \(explicit), which does not exist", code: 66)
            }
            candidates = [explicit]
        } else {
            candidates = [home.map { $0 + "/pcn/pcnctl.yaml" }, "/etc/pcn/pcnctl.yaml"].compactMap { $0 }
        }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(message: "cannot read the settings file \(path) (permission denied)", code: 66)
        }
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: String(decoding: data, as: UTF8.self))
        } catch {
            throw CommandFailure(message: "the settings file \(path) is not YAML: \(error)", code: 78)
        }
        guard let loaded else { return [:] }
        guard let map = loaded as? [String: Any] else {
            throw CommandFailure(message: "the settings file \(path) must be a mapping of url, cacert and token-file", code: 78)
        }
        var settings: [String: String] = [:]
        for (key, value) in map {
            guard keys[key] != nil else {
                throw CommandFailure(message: "the settings file \(path) has an unknown key '\(key)' (known: url, cacert, token-file)", code: 78)
            }
            guard let text = value as? String else {
                throw CommandFailure(message: "the settings file \(path): '\(key)' must be a string", code: 78)
            }
            settings[key] = text
        }
        return settings
    }
}

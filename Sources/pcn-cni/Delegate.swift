import Foundation
import HostCommands

/// A delegated plugin (the IPAM plugin), run from CNI_PATH with the same environment.
struct Delegate {
    let type: String
    let invocation: Invocation

    func executable() throws -> String {
        for directory in invocation.path {
            let candidate = directory + "/" + type
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CNIError(.invalidConfig, "ipam.type '\(type)' is not a plugin in CNI_PATH (\(invocation.path.joined(separator: ":")))")
    }

    /// The versions it speaks (its VERSION answer).
    func supportedVersions() throws -> [String] {
        let answer = try call(.version, ["cniVersion": CNIVersion.latest], environment: [:])
        guard let versions = answer?["supportedVersions"] as? [String] else {
            throw CNIError(.delegateFailure, "the IPAM plugin \(type) did not list its versions")
        }
        return versions
    }

    /// The version to talk to it in: the highest both speak, not above the configuration's.
    func version(for config: NetworkConfig) throws -> String {
        let theirs = try supportedVersions()
        guard let version = CNIVersion.highestCommon(theirs, ceiling: config.cniVersion) else {
            throw CNIError(.incompatibleVersion, "the IPAM plugin \(type) speaks \(theirs.joined(separator: ", ")), none of them at or below cniVersion \(config.cniVersion)")
        }
        return version
    }

    /// Runs `command` with `config`; its answer (nil when it printed nothing). Its error object
    /// becomes ours, with its code and the plugin named.
    @discardableResult
    func call(_ command: Invocation.Command, _ config: [String: Any], environment overrides: [String: String]) throws -> [String: Any]? {
        var environment = invocation.environment
        environment["CNI_COMMAND"] = command.rawValue
        for (key, value) in overrides { environment[key] = value }
        let input: Data
        do { input = try JSONSerialization.data(withJSONObject: config) } catch {
            throw CNIError(.invalidConfig, "the configuration cannot be given to \(type)", details: "\(error)")
        }
        let outcome = try Subprocess.run(try executable(), [], stdin: input, environment: environment)
        let answer = outcome.stdout.isEmpty ? nil : try? JSONSerialization.jsonObject(with: outcome.stdout) as? [String: Any]
        guard outcome.status == 0 else {
            var error = CNIError(.delegateFailure, "IPAM plugin \(type), \(command.rawValue): "
                + ((answer?["msg"] as? String) ?? (outcome.stderr.isEmpty ? "exit status \(outcome.status)" : outcome.stderr)),
                details: answer?["details"] as? String)
            if let code = answer?["code"] as? Int { error.rawCode = code }
            throw error
        }
        if !outcome.stdout.isEmpty, answer == nil {
            throw CNIError(.delegateFailure, "IPAM plugin \(type), \(command.rawValue): its answer is not a JSON object")
        }
        return answer
    }
}

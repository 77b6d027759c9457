import Foundation

/// What the runtime asked for, from the CNI_* environment variables.
struct Invocation {
    enum Command: String, CaseIterable {
        case add = "ADD", del = "DEL", check = "CHECK", status = "STATUS", gc = "GC", version = "VERSION"
    }

    var command: Command
    var containerID = ""
    var netns = ""
    var ifname = ""
    var args: [String: String] = [:]
    /// Where delegated plugins (IPAM) are looked for.
    var path: [String] = []
    /// The environment delegates are run with (the caller's, CNI_COMMAND and the attachment set per call).
    var environment: [String: String]

    static func parse(_ environment: [String: String]) throws -> Invocation {
        guard let name = environment["CNI_COMMAND"], !name.isEmpty else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND is not set (one of \(Command.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let command = Command(rawValue: name) else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND '\(name)' is not a CNI command (one of \(Command.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var invocation = Invocation(command: command, environment: environment)
        let required: [String]
        switch command {
        case .add, .check: required = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
        case .del: required = ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]
        case .gc: required = ["CNI_PATH"]
        case .status, .version: required = []
        }
        let missing = required.filter { (environment[$0] ?? "").isEmpty }
        guard missing.isEmpty else {
            throw CNIError(.invalidEnvironment, "\(command.rawValue) needs \(missing.joined(separator: ", ")), which \(missing.count == 1 ? "is" : "are") not set")
        }
        invocation.containerID = environment["CNI_CONTAINERID"] ?? ""
        invocation.netns = environment["CNI_NETNS"] ?? ""
        invocation.ifname = environment["CNI_IFNAME"] ?? ""
        invocation.path = (environment["CNI_PATH"] ?? "").split(separator: ":").map(String.init)
        if required.contains("CNI_CONTAINERID"), !Self.isValidContainerID(invocation.containerID) {
            throw CNIError(.invalidEnvironment, "CNI_CONTAINERID '\(invocation.containerID)' is not a container ID (a letter or digit, then letters, digits, '_', '.' or '-')")
        }
        if required.contains("CNI_IFNAME"), let problem = Self.interfaceNameProblem(invocation.ifname) {
            throw CNIError(.invalidEnvironment, "CNI_IFNAME '\(invocation.ifname)' \(problem)")
        }
        for pair in (environment["CNI_ARGS"] ?? "").split(separator: ";") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS: '\(pair)' is not KEY=VALUE")
            }
            invocation.args[String(parts[0])] = String(parts[1])
        }
        return invocation
    }

    static func isValidContainerID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, first.isASCIIAlphanumeric else { return false }
        return id.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || "_.-".unicodeScalars.contains($0) }
    }

    /// Why `name` cannot be a Linux interface name, or nil if it can.
    static func interfaceNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.utf8.count > 15 { return "is longer than 15 bytes" }
        if name == "." || name == ".." { return "is not an interface name" }
        if name.unicodeScalars.contains(where: { $0 == "/" || $0 == ":" || $0.properties.isWhitespace }) {
            return "has a '/', ':' or a space"
        }
        return nil
    }
}

extension Unicode.Scalar {
    var isASCIIAlphanumeric: Bool { isASCII && (properties.isAlphabetic || ("0"..."9").contains(self)) }
}

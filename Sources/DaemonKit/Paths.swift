import ArgumentParser
import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A setting given by a flag, else by its environment variable; empty means not given.
public enum Setting {
    public static func value(flag: String?, environment variable: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        return nil
    }
}

/// The paths of DESIGN.md §7, each from its flag, else its environment variable, else the default.
/// Every daemon takes the same flags so one set of overrides isolates a whole stack.
public struct PathOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("runtime-dir"), help: "Bus sockets and ready markers (env PCN_RUNTIME_DIR, default /run/pcn).")
    public var runtimeDirFlag: String?

    @Option(name: .customLong("bpffs-root"), help: "Where BPF objects are pinned (env PCN_BPFFS_ROOT, default /sys/fs/bpf/pcn).")
    public var bpffsRootFlag: String?

    @Option(name: .customLong("state-dir"), help: "Datastore and state (env PCN_STATE_DIR, default /var/lib/pcn).")
    public var stateDirFlag: String?

    @Option(name: .customLong("config-dir"), help: "Configuration (env PCN_CONFIG_DIR, default /etc/pcn).")
    public var configDirFlag: String?

    @Option(name: .customLong("log-dir"), help: "Log files (env PCN_LOG_DIR, default /var/log/pcn).")
    public var logDirFlag: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (env PCN_LOG_LEVEL, default info).")
    public var logLevelFlag: String?

    public init() {}

    private static func pick(_ flag: String?, _ variable: String, _ fallback: String) -> String {
        Setting.value(flag: flag, environment: variable) ?? fallback
    }

    public var runtimeDir: String { Self.pick(runtimeDirFlag, "PCN_RUNTIME_DIR", "/run/pcn") }
    public var bpffsRoot: String { Self.pick(bpffsRootFlag, "PCN_BPFFS_ROOT", "/sys/fs/bpf/pcn") }
    public var stateDir: String { Self.pick(stateDirFlag, "PCN_STATE_DIR", "/var/lib/pcn") }
    public var configDir: String { Self.pick(configDirFlag, "PCN_CONFIG_DIR", "/etc/pcn") }
    public var logDir: String { Self.pick(logDirFlag, "PCN_LOG_DIR", "/var/log/pcn") }
    public var logLevelName: String { Self.pick(logLevelFlag, "PCN_LOG_LEVEL", "info") }

    /// The hub's socket inside the runtime directory.
    public var busSocket: String { runtimeDir + "/bus.sock" }

    public func validate() throws {
        guard LogSetup.level(named: logLevelName) != nil else {
            throw ValidationError("log level '\(logLevelName)' is not one of trace, debug, info, notice, warning, error, critical")
        }
    }
}

/// A directory a daemon needs; checked (and created) before it reports ready.
public enum DirectoryCheck {
    /// Creates `path` (and parents) if missing and checks it is a writable directory.
    public static func writable(_ path: String, purpose: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw DaemonError("\(purpose) \(path) exists and is not a directory") }
        } else {
            var prefix = ""
            for component in path.split(separator: "/", omittingEmptySubsequences: true) {
                prefix += "/" + component
                if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                    throw DaemonError("cannot create \(purpose) \(path): \(prefix): \(String(cString: strerror(errno)))")
                }
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw DaemonError("\(purpose) \(path) is not writable: \(String(cString: strerror(errno)))")
        }
    }

    /// Creates `path` if needed and checks it lives on a bpf filesystem.
    public static func bpffs(_ path: String) throws {
        try writable(path, purpose: "bpffs root")
        let onBPFFS = pcn_is_bpffs(path)
        guard onBPFFS >= 0 else { throw DaemonError("cannot stat bpffs root \(path): \(String(cString: strerror(errno)))") }
        guard onBPFFS == 1 else {
            throw DaemonError("bpffs root \(path) is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)")
        }
    }
}

/// A start-up failure: reported as one line, then the daemon exits non-zero.
public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

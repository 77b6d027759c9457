import Foundation

/// Finds a directory of shipped resources (the `bpf/` tree, the `yang/` models): a flag, else an
/// environment variable, else next to the executable (a checkout: up to five levels above it), else
/// the installed copy: `<bindir>/../share/pcn` (scripts/install), else /usr/share/pcn.
public enum ResourceDirectory {
    /// `marker` is a file the directory must contain, relative to it.
    public static func locate(flag: String?, environment: String, name: String, marker: String) -> String? {
        if let given = Setting.value(flag: flag, environment: environment) { return given }
        let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var directory = binDirectory
        for _ in 0..<5 {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent(marker).path) { return candidate.path }
            directory.deleteLastPathComponent()
        }
        let beside = binDirectory.deletingLastPathComponent().appendingPathComponent("share/pcn/\(name)").path
        for installed in [beside, "/usr/share/pcn/\(name)"] where FileManager.default.fileExists(atPath: "\(installed)/\(marker)") {
            return installed
        }
        return nil
    }
}

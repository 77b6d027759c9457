import Foundation

/// Where the host's tools are: Debian has them in /usr/sbin and /usr/bin, older systems in /sbin, /bin.
public enum HostTools {
    public static let ip = find("ip")
    public static let bridge = find("bridge")
    public static let ethtool = find("ethtool")
    public static let nsenter = find("nsenter")

    /// The first of /usr/sbin, /sbin, /usr/bin, /bin that has `name` (else /usr/sbin/<name>, so
    /// that running it reports it missing).
    public static func find(_ name: String) -> String {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { $0 + "/" + name }
            .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/" + name
    }
}

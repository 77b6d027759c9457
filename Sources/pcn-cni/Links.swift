import Foundation
import HostCommands

/// The kernel side of an attachment, through iproute2 (`ip`), in the root namespace or, through
/// nsenter, in the pod's (CNI_NETNS is a path, which `ip -n` does not take).
enum Links {

    /// Runs `ip arguments` (in `netns` if given); its output, or a link failure naming the command.
    @discardableResult
    static func ip(_ arguments: [String], netns: String? = nil, input: String? = nil) throws -> String {
        let outcome = try run(HostTools.ip, arguments, netns: netns, input: input)
        guard outcome.status == 0 else {
            throw CNIError(.linkFailure, "ip \(arguments.joined(separator: " "))\(netns.map { " in \($0)" } ?? ""): \(outcome.stderr)")
        }
        return String(decoding: outcome.stdout, as: UTF8.self)
    }

    static func run(_ executable: String, _ arguments: [String], netns: String?, input: String? = nil) throws -> Subprocess.Outcome {
        let stdin = input.map { Data($0.utf8) }
        if let netns { return try Subprocess.run(HostTools.nsenter, ["--net=" + netns, executable] + arguments, stdin: stdin) }
        return try Subprocess.run(executable, arguments, stdin: stdin)
    }

    /// `ip -json addr show dev NAME`: the link and its addresses; nil if there is no such link.
    static func link(_ name: String, netns: String? = nil) throws -> [String: Any]? {
        let outcome = try run(HostTools.ip, ["-json", "addr", "show", "dev", name], netns: netns)
        guard outcome.status == 0 else {
            if outcome.stderr.contains("does not exist") { return nil }
            throw CNIError(.linkFailure, "ip addr show dev \(name)\(netns.map { " in \($0)" } ?? ""): \(outcome.stderr)")
        }
        let list = try? JSONSerialization.jsonObject(with: outcome.stdout) as? [[String: Any]]
        return list?.first
    }

    /// The IPv4 addresses of a link (`ip -json addr` form) as `a.b.c.d/len`.
    static func addresses(of link: [String: Any]) -> [String] {
        (link["addr_info"] as? [[String: Any]] ?? []).compactMap { info in
            guard info["family"] as? String == "inet", let local = info["local"] as? String, let length = info["prefixlen"] as? Int else { return nil }
            return "\(local)/\(length)"
        }
    }

    /// True if `netns` is a path to a network namespace.
    static func isNetworkNamespace(_ netns: String) -> Bool {
        guard FileManager.default.fileExists(atPath: netns) else { return false }
        return (try? run(HostTools.ip, ["link", "show", "lo"], netns: netns).status) == 0
    }

    /// Deletes a root-namespace link; true if it was there.
    @discardableResult
    static func delete(_ name: String) throws -> Bool {
        let outcome = try run(HostTools.ip, ["link", "del", name], netns: nil)
        if outcome.status == 0 { return true }
        if outcome.stderr.contains("Cannot find device") || outcome.stderr.contains("does not exist") { return false }
        throw CNIError(.linkFailure, "ip link del \(name): \(outcome.stderr)")
    }

    /// Turns off transmit checksum offload on a link in `netns`: a pod's TCP through an XDP cube
    /// needs it (a CHECKSUM_PARTIAL skb loses its pending checksum as an xdp_frame).
    static func disableTxChecksum(_ name: String, netns: String) throws {
        let outcome = try run(HostTools.ethtool, ["-K", name, "tx", "off"], netns: netns)
        guard outcome.status == 0 else { throw CNIError(.linkFailure, "ethtool -K \(name) tx off in \(netns): \(outcome.stderr)") }
    }
}

import Foundation
import HostCommands
import Logging

/// The node's own side of its cubes, in the namespace the agent runs in: the veth between the
/// router's `to_host` port and the node's stack (with the route to the pods), and the kernel VXLAN
/// device the router's `to_vxlan` port sends through, with one forwarding entry per other node.
struct HostNetwork {
    static let routerEnd = "pcnk8s0"
    static let hostEnd = "pcnk8s1"
    static let vxlan = "pcnvxlan0"
    let settings: AgentSettings

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let outcome = try Subprocess.run(executable, arguments)
        guard outcome.status == 0 else {
            throw Failure(description: "\(executable.split(separator: "/").last!) \(arguments.joined(separator: " ")): \(outcome.stderr)")
        }
        return outcome.output
    }

    static func linkExists(_ name: String) -> Bool {
        (try? Subprocess.run(HostTools.ip, ["link", "show", "dev", name]).status) == 0
    }

    /// The MAC of the router's `to_vxlan` port on the node with address `ip`: set by the agent (not
    /// derived from the cube's names, which are the same on every node), so each node's VXLAN
    /// forwards unicast frames to the one node that has it.
    static func vtepMAC(nodeIP: String) -> String {
        let bytes = (IPv4(nodeIP)?.value ?? 0)
        return "02:18:" + (0..<4).map { String(format: "%02x", bytes >> (24 - 8 * UInt32($0)) & 0xff) }.joined(separator: ":")
    }

    func ensure(_ plan: NodePlan) throws {
        let ip = HostTools.ip
        if !Self.linkExists(Self.routerEnd) {
            try Self.run(ip, ["link", "add", Self.routerEnd, "type", "veth", "peer", "name", Self.hostEnd])
        }
        try Self.run(ip, ["link", "set", Self.routerEnd, "up"])
        try Self.run(ip, ["link", "set", Self.hostEnd, "up"])
        try Self.run(ip, ["addr", "replace", settings.hostAddress + "/30", "dev", Self.hostEnd])
        try Self.run(ip, ["route", "replace", settings.clusterCIDR, "via", settings.routerHostAddress, "dev", Self.hostEnd])
        // NodePort: what nat0 forwarded goes to nlb0, in front of the router.
        try Self.run(ip, ["route", "replace", settings.nodePortAddress + "/32", "via", settings.routerHostAddress, "dev", Self.hostEnd])
        // Pods' egress goes through this stack, out of the underlay.
        try "1\n".write(toFile: "/proc/sys/net/ipv4/ip_forward", atomically: false, encoding: .utf8)

        if !Self.linkExists(Self.vxlan) {
            try Self.run(ip, ["link", "add", Self.vxlan, "type", "vxlan", "id", String(settings.vni), "local", plan.nodeIP,
                              "dev", settings.underlay, "dstport", "4789", "nolearning"])
        }
        let underlayMTU = (try? Self.run(ip, ["-json", "link", "show", "dev", settings.underlay]))
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: Any]] }?.first?["mtu"] as? Int ?? 1500
        try Self.run(ip, ["link", "set", Self.vxlan, "mtu", String(underlayMTU - 50), "up"])

        // Forwarding entries: broadcast (ARP) to every other node, and each node's router MAC to it.
        var wanted = Set<String>()
        for peer in plan.peers {
            wanted.insert("00:00:00:00:00:00 \(peer)")
            wanted.insert("\(Self.vtepMAC(nodeIP: peer)) \(peer)")
        }
        let shown = try Self.run(HostTools.bridge, ["-json", "fdb", "show", "dev", Self.vxlan])
        var present = Set<String>()
        for entry in (try? JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [[String: Any]]) ?? [] {
            guard let mac = entry["mac"] as? String, let dst = entry["dst"] as? String else { continue }
            present.insert("\(mac) \(dst)")
        }
        for entry in present.subtracting(wanted) {
            let parts = entry.split(separator: " ").map(String.init)
            try Self.run(HostTools.bridge, ["fdb", "del", parts[0], "dev", Self.vxlan, "dst", parts[1]])
        }
        for entry in wanted.subtracting(present).sorted() {
            let parts = entry.split(separator: " ").map(String.init)
            try Self.run(HostTools.bridge, ["fdb", "append", parts[0], "dev", Self.vxlan, "dst", parts[1]])
        }
    }
}

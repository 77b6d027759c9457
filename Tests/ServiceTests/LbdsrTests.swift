import Foundation
import TestSupport
import XCTest

/// lbdsr with real traffic. The client c has two interfaces: one on the FRONTEND port
/// (10.S.0.1/24, the VIP 10.S.0.100 is on this network) and one on the backends' LAN (10.S.1.1/24,
/// a Linux bridge in a namespace joining backends b1-b3 and the BACKEND port). The backends hold
/// the VIP on lo and answer the client through the LAN, never through the balancer.
final class LbdsrTests: ServiceStackTestCase {
    func testDirectServerReturnTC() async throws { try await directServerReturn(type: "TC", subnet: 96) }

    private func directServerReturn(type: String, subnet: Int) async throws {
        let vip = "10.\(subnet).0.100", frontendMAC = "02:00:00:\(subnet):00:01"
        let p = network.prefix, lan = p + "lan"
        func ip(_ arguments: [String]) throws {
            let result = try runCommand("/usr/bin/ip", arguments)
            guard result.status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")): \(result.stderr)") }
        }
        try ip(["netns", "add", lan])
        network.adopt(namespace: lan)
        try ip(["-n", lan, "link", "add", "lanbr", "type", "bridge"])
        try ip(["-n", lan, "link", "set", "lanbr", "up"])
        /// Moves a root-namespace link into the LAN's bridge.
        func plug(_ link: String) throws {
            try ip(["link", "set", link, "netns", lan])
            try ip(["-n", lan, "link", "set", link, "master", "lanbr", "up"])
        }
        let client = try network.host("c", address: "10.\(subnet).0.1/24")
        if type != "TC" { _ = try network.exec(client.namespace, ["ethtool", "-K", p + "cn", "tx", "off"]) }
        let side = try network.host("s", address: "10.\(subnet).1.1/24")   // the client's LAN interface, moved into c
        try ip(["-n", side.namespace, "link", "set", p + "sn", "netns", client.namespace])
        _ = try network.exec(client.namespace, ["ip", "addr", "add", "10.\(subnet).1.1/24", "dev", p + "sn"])
        _ = try network.exec(client.namespace, ["ip", "link", "set", p + "sn", "up"])
        // arp_ignore: the client answers ARP for its LAN address only on the LAN (else a backend may
        // learn its FRONTEND side's MAC, whichever answer comes first, and answer through the balancer).
        for setting in ["net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.\(p)cn.rp_filter=0", "net.ipv4.conf.\(p)sn.rp_filter=0",
                        "net.ipv4.conf.all.arp_ignore=1"] {
            _ = try network.exec(client.namespace, ["sysctl", "-qw", setting])
        }
        try plug(side.interface)
        var macs: [String] = []
        var servers: [BackgroundCommand] = []
        defer { servers.forEach { $0.stop() } }
        let tools = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: tools) }
        try LbrpTests.script.write(toFile: tools + "/lb.py", atomically: true, encoding: .utf8)
        for index in 1...3 {
            let backend = try network.host("b\(index)", address: "10.\(subnet).1.1\(index)/24", gateway: "10.\(subnet).1.1")
            try plug(backend.interface)
            for command in [["ip", "addr", "add", vip + "/32", "dev", "lo"], ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"],
                            ["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"]] {
                _ = try network.exec(backend.namespace, command)
            }
            macs.append(try network.exec(backend.namespace, ["cat", "/sys/class/net/\(p)b\(index)n/address"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            servers.append(try BackgroundCommand("/usr/bin/ip", ["netns", "exec", backend.namespace, "python3", tools + "/lb.py", "serve", vip, "8080", tools + "/b\(index)"]))
        }
        // The BACKEND port's link into the LAN.
        try ip(["link", "add", p + "be", "type", "veth", "peer", "name", p + "bel"])
        network.adopt(link: p + "be")
        try ip(["link", "set", p + "be", "up"])
        try plug(p + "bel")

        try await must("POST", "/lbdsr/dsr1", #"""
            {"type":"\#(type)","ports":[{"name":"fe","type":"FRONTEND","peer":"\#(client.interface)"},{"name":"be","type":"BACKEND","peer":"\#(p)be"}],
             "frontend":{"vip":"\#(vip)","mac":"\#(frontendMAC)"},
             "backend":{"pool":[{"id":1,"mac":"\#(macs[0])"},{"id":2,"mac":"\#(macs[1])"}]}}
            """#)
        func accepted(_ index: Int) -> Int {
            Int((try? String(contentsOfFile: tools + "/b\(index).count", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        }
        func burst(_ count: Int) throws -> String {
            try network.exec(client.namespace, ["python3", tools + "/lb.py", "burst", vip, "8080", "\(count)"], timeout: 120).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try await Task.sleep(for: .seconds(0.5))

        // Requests through the balancer, answers around it: its BACKEND side sees no TCP from the VIP.
        // Captured on the LAN's end of the BACKEND link: what the balancer sends goes straight there.
        let capture = tools + "/be.pcap"
        let dump = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", lan, "tcpdump", "-n", "-U", "--immediate-mode", "-i", p + "bel", "-w", capture, "tcp"])
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: capture) { usleep(20_000) }
        usleep(200_000)
        XCTAssertEqual(try burst(200), "200")
        usleep(300_000)
        dump.stop()
        let seen = try runCommand("/usr/bin/tcpdump", ["-n", "-r", capture]).stdout.split(separator: "\n")
        XCTAssertGreaterThan(seen.filter { $0.contains("> \(vip).8080") }.count, 200, "requests pass the BACKEND port")
        XCTAssertEqual(seen.filter { $0.contains("IP \(vip).8080 >") }.count, 0, "no answer does: \(seen.prefix(5))")
        let neighbour = try network.exec(client.namespace, ["ip", "neigh", "show", vip]).stdout
        XCTAssertTrue(neighbour.contains(frontendMAC), "the balancer answered ARP for the VIP: \(neighbour)")
        try? await eventually(timeout: 20) { accepted(1) + accepted(2) >= 200 }
        XCTAssertEqual(accepted(1) + accepted(2), 200)
        XCTAssertGreaterThan(accepted(1), 50)
        XCTAssertGreaterThan(accepted(2), 50)
        XCTAssertEqual(accepted(3), 0)

        // A backend added at run time gets its share; counters per backend.
        try await must("POST", "/lbdsr/dsr1/backend/pool/3", #"{"id":3,"mac":"\#(macs[2])"}"#)
        XCTAssertEqual(try burst(300), "300")
        try? await eventually(timeout: 20) { accepted(1) + accepted(2) + accepted(3) >= 500 }
        XCTAssertGreaterThan(accepted(3), 50, "the new backend")
        let pool = try await must("GET", "/lbdsr/dsr1/backend/pool") as? [[String: Any]] ?? []
        XCTAssertEqual(pool.count, 3)
        XCTAssertTrue(pool.allSatisfy { Int($0["pkts"] as? String ?? "") ?? 0 > 0 }, "\(pool)")
        // Bad input: one MAC twice.
        let twice = try await rest.call("POST", "/lbdsr/dsr1/backend/pool/4", #"{"id":4,"mac":"\#(macs[2])"}"#)
        XCTAssertEqual(twice.status, 400, twice.text)
    }
}

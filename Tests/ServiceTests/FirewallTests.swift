import Foundation
import TestSupport
import XCTest

/// The firewall with real traffic: a namespace `a` (10.70.x.1) and the root namespace (10.70.x.2)
/// over a veth pair, the firewall attached to the root-side end. INGRESS sees what `a` sends,
/// EGRESS what is sent to `a`.
final class FirewallTests: ServiceStackTestCase {
    func testRulesCountersAndOrderTC() async throws { try await rulesCountersAndOrder(type: "TC", subnet: 70) }
    func testRulesCountersAndOrderXDP() async throws { try await rulesCountersAndOrder(type: "XDP_SKB", subnet: 71) }
    /// Native XDP on the veth for INGRESS, TC for EGRESS (what the host sends).
    func testRulesCountersAndOrderXDPDRV() async throws { try await rulesCountersAndOrder(type: "XDP_DRV", subnet: 77) }

    private func attached(_ type: String, subnet: Int) async throws -> (namespace: String, interface: String) {
        let a = try network.host("a", address: "10.\(subnet).0.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.\(subnet).0.2/24", "dev", a.interface])
        // XDP frames carry no pending checksum: the sender finishes its own (MACHINE-NOTES).
        if type == "XDP_DRV" { _ = try network.exec(a.namespace, ["ethtool", "-K", a.interface + "n", "tx", "off"]) }
        try await must("POST", "/firewall/fw1", #"{"type":"\#(type)"}"#)
        try await must("POST", "/attach", #"{"cube":"fw1","port":"\#(a.interface)"}"#)
        return a
    }

    /// Packets per rule id. `waiting`: a read that fails (the cube-host is not back yet) is empty.
    private func stats(_ chain: String, waiting: Bool = false) async throws -> [Int: Int] {
        let rows: [[String: Any]]
        if waiting {
            rows = (try? await rest.call("GET", "/firewall/fw1/chain/\(chain)/stats"))?.json as? [[String: Any]] ?? []
        } else {
            rows = try await must("GET", "/firewall/fw1/chain/\(chain)/stats") as? [[String: Any]] ?? []
        }
        return Dictionary(uniqueKeysWithValues: rows.compactMap { row in
            (row["id"] as? Int).map { ($0, Int(row["pkts"] as? String ?? "") ?? -1) }
        })
    }

    private func rulesCountersAndOrder(type: String, subnet: Int) async throws {
        let a = try await attached(type, subnet: subnet)
        let near = "10.\(subnet).0.2", far = "10.\(subnet).0.1"
        XCTAssertTrue(try network.ping(from: a.namespace, to: near), "a chain without rules accepts")

        try await must("PUT", "/firewall/fw1/chain/INGRESS", #"{"name":"INGRESS","default":"DROP"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 1), "default DROP")
        // Polycube's grammar: the cube's name for its service, a chain in any case, the action by name.
        let appended = try runCommand(productsDirectory.appendingPathComponent("pcnctl").path,
                                      ["--url", "http://127.0.0.1:\(rest.port)", "fw1", "chain", "ingress", "append", "src=\(far)", "l4proto=icmp", "action=ACCEPT", "-json"])
        XCTAssertEqual(appended.status, 0, appended.stderr)
        XCTAssertEqual((try? JSONSerialization.jsonObject(with: Data(appended.stdout.utf8)) as? [String: Any])?["id"] as? Int, 0, appended.stdout)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 3), "the rule lets ping through")
        var counted = try await stats("INGRESS")
        XCTAssertEqual(counted[0], 3, "three echo requests matched rule 0: \(counted)")

        // An earlier /8 DROP beats the later /32 ACCEPT; the ACCEPT keeps its counter as it moves.
        try await must("POST", "/firewall/fw1/chain/INGRESS/insert", #"{"id":0,"src":"10.0.0.0/8","action":"DROP"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 2))
        counted = try await stats("INGRESS")
        XCTAssertEqual(counted[0], 2, "\(counted)")
        XCTAssertEqual(counted[1], 3, "the moved rule kept its counter: \(counted)")
        try await must("DELETE", "/firewall/fw1/chain/INGRESS/rule/0")
        XCTAssertTrue(try network.ping(from: a.namespace, to: near))

        // TCP to one port only; a port without a protocol does not let ICMP through (Polycube's #339).
        let port = Int.random(in: 40_000...49_000)
        try await must("POST", "/firewall/fw1/chain/INGRESS/append", #"{"dport":\#(port),"action":"ACCEPT"}"#)
        XCTAssertTrue(try tcpConnects(from: a.namespace, to: near, port: port))
        XCTAssertFalse(try tcpConnects(from: a.namespace, to: near, port: port + 1))
        // Without the ICMP rule (id 1), the port rule (id 2) is left: it must not admit ping.
        try await must("DELETE", "/firewall/fw1/chain/INGRESS/rule/1")
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 1), "dport alone matches TCP and UDP, not ICMP")
        try await must("POST", "/firewall/fw1/chain/INGRESS/append", #"{"src":"\#(far)","l4proto":"ICMP","action":"ACCEPT"}"#)

        // LOG counts and logs, then the search goes on to the ACCEPT after it.
        try await must("POST", "/firewall/fw1/chain/INGRESS/insert", #"{"id":0,"l4proto":"ICMP","action":"LOG","description":"seen"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2), "LOG goes on to the next matching rule")
        counted = try await stats("INGRESS")
        XCTAssertEqual(counted[0], 2, "the LOG rule counted: \(counted)")
        try await eventually(timeout: 10) { self.logLines.contains { $0.contains("[fw1]") && $0.contains("rule 0: \(far) -> \(near)") } }
        // delete by fields, reset-counters.
        try await must("POST", "/firewall/fw1/chain/INGRESS/delete", #"{"l4proto":"ICMP","action":"LOG","description":"seen"}"#)
        let left = try await must("GET", "/firewall/fw1/chain/INGRESS/rule") as? [[String: Any]] ?? []
        XCTAssertFalse(left.contains { $0["action"] as? String == "LOG" }, "\(left)")
        try await must("POST", "/firewall/fw1/chain/INGRESS/reset-counters")
        counted = try await stats("INGRESS")
        XCTAssertTrue(counted.values.allSatisfy { $0 == 0 }, "\(counted)")

        // Bad rules: 400 with the path, nothing changed.
        let before = try await rest.call("GET", "/firewall/fw1/chain/INGRESS").text
        for (body, path) in [(#"{"src":"10.0.0.0/33"}"#, "src"), (#"{"dport":70000}"#, "dport"), (#"{"tcpflags":"SYN,BOGUS"}"#, "tcpflags"),
                             (#"{"conntrack":"WEIRD"}"#, "conntrack"), (#"{"l4proto":"ICMP","dport":80}"#, "dport")] {
            let answer = try await rest.call("POST", "/firewall/fw1/chain/INGRESS/append", body)
            XCTAssertEqual(answer.status, 400, "\(body): \(answer.text)")
            XCTAssertTrue(answer.errors.first?["error-path"]?.hasSuffix(path) == true, "\(body): \(answer.text)")
        }
        let after = try await rest.call("GET", "/firewall/fw1/chain/INGRESS").text
        XCTAssertEqual(before, after)
        XCTAssertTrue(try tcpConnects(from: a.namespace, to: near, port: port))
    }

    func testConnectionTrackingTC() async throws {
        let a = try await attached("TC", subnet: 72)
        let near = "10.72.0.2", far = "10.72.0.1"
        // Only the root namespace opens connections: NEW leaves (EGRESS), only what belongs to a
        // connection comes back (INGRESS).
        try await must("PATCH", "/firewall/fw1", #"""
            {"chain":[{"name":"INGRESS","default":"DROP","rule":[{"id":0,"conntrack":"ESTABLISHED","action":"ACCEPT"},{"id":1,"conntrack":"RELATED","action":"ACCEPT"}]},
                      {"name":"EGRESS","default":"DROP","rule":[{"id":0,"conntrack":"NEW","action":"ACCEPT"},{"id":1,"conntrack":"ESTABLISHED","action":"ACCEPT"}]}]}
            """#)
        let port = Int.random(in: 40_000...49_000)
        XCTAssertTrue(try tcpConnects(from: nil, to: far, port: port, listenIn: a.namespace), "the root namespace opens a connection")
        XCTAssertFalse(try tcpConnects(from: a.namespace, to: near, port: port), "a cannot open one")
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 1), "a's ping is NEW: dropped")
        let sessions = try await must("GET", "/firewall/fw1/session-table") as? [[String: Any]] ?? []
        XCTAssertTrue(sessions.contains { $0["l4proto"] as? String == "TCP" && $0["dport"] as? Int == port && $0["src"] as? String == near }, "\(sessions)")

        // A UDP datagram to a closed port of a: its ICMP port unreachable comes back RELATED.
        let relatedBefore = (try await stats("INGRESS"))[1] ?? 0
        _ = try runCommand("/bin/sh", ["-c", "echo x | nc -u -w1 \(far) 9"])
        try await eventually(timeout: 5) { (try? await self.stats("INGRESS")[1]) ?? 0 > relatedBefore }
        let opened = try await stats("EGRESS")[0] ?? 0
        XCTAssertGreaterThanOrEqual(opened, 2, "the TCP SYN and the UDP datagram left as NEW")
    }

    /// 10,000 rules in one batch, then more by append: the verdict is right whichever rule decides
    /// (the 1st, the 5,000th, the 10,000th), and a killed cube-host leaves verdicts and counters as
    /// they were (the tables outlive it; the restarted one reads its counters back).
    func testTenThousandRulesAndACubeHostRestartTC() async throws {
        let a = try await attached("TC", subnet: 73)
        let near = "10.73.0.2"
        // Rule i drops source 10.200.x.y; three of them name a's address as a /32, a /24, a /16
        // instead, at ids 0, 4999 and 9999.
        func rule(_ id: Int, _ source: String, _ action: String) -> String {
            #"{"id":\#(id),"operation":"APPEND","src":"\#(source)","action":"\#(action)"}"#
        }
        var rules = (0..<10_000).map { rule($0, "10.200.\($0 / 250).\($0 % 250 + 1)", "DROP") }
        rules[9_999] = rule(9_999, "10.73.0.0/16", "ACCEPT")
        try await must("PUT", "/firewall/fw1/chain/INGRESS", #"{"name":"INGRESS","default":"DROP"}"#)
        try await must("POST", "/firewall/fw1/chain/INGRESS/batch", #"{"rules":[\#(rules.joined(separator: ","))]}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2), "the 10,000th rule accepts")
        try await must("PATCH", "/firewall/fw1/chain/INGRESS/rule/4999", #"{"src":"10.73.0.0/24","action":"DROP"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 1), "the 5,000th drops first")
        try await must("PATCH", "/firewall/fw1/chain/INGRESS/rule/0", #"{"src":"10.73.0.1","action":"ACCEPT"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2), "the 1st accepts before both")
        let rows = try await must("GET", "/firewall/fw1/chain/INGRESS/rule") as? [Any] ?? []
        XCTAssertEqual(rows.count, 10_000)

        // 200 appends onto the 10,000: each one a rule after the others, in place.
        for index in 0..<200 {
            let answer = try await must("POST", "/firewall/fw1/chain/INGRESS/append", #"{"src":"10.201.0.\#(index + 1)","action":"DROP"}"#) as? [String: Any]
            XCTAssertEqual(answer?["id"] as? Int, 10_000 + index)
        }
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2))
        var counted = try await stats("INGRESS")
        XCTAssertEqual(counted[0], 4, "\(counted[0] ?? -1)")

        kill9("cube-host/firewall")
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2), "verdicts without the cube-host")
        let unread = try await rest.call("GET", "/firewall/fw1/chain/INGRESS/stats")
        XCTAssertEqual(unread.status, 503, "state is the cube-host's to give: \(unread.text)")
        XCTAssertTrue(unread.errors.first?["error-message"]?.contains("gave no state") == true, unread.text)
        try startCubeHost("firewall")
        try await eventually(timeout: 30) { ((try? await self.stats("INGRESS", waiting: true))?[0] ?? 0) == 6 }
        try await must("POST", "/firewall/fw1/chain/INGRESS/append", #"{"src":"10.73.0.1","l4proto":"TCP","action":"DROP"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2), "an append after the restart leaves rule 0 deciding ping")
        counted = try await stats("INGRESS")
        XCTAssertEqual(counted[0], 8, "rule 0's counter survived the restart")
    }

    /// Rule changes that rebuild the chain (inserts before the accepting rule) under a UDP flow the
    /// old and new rule sets both accept: not one datagram lost.
    func testRuleChangesUnderAFlowLoseNothingTC() async throws {
        let a = try await attached("TC", subnet: 74)
        let near = "10.74.0.2"
        try await must("PUT", "/firewall/fw1/chain/INGRESS", #"{"name":"INGRESS","default":"DROP","rule":[{"id":0,"src":"10.74.0.1","action":"ACCEPT"}]}"#)
        let port = Int.random(in: 40_000...49_000)
        let server = try BackgroundCommand("/usr/bin/iperf3", ["-s", "-1", "-B", near, "-p", "\(port)"])
        defer { server.stop() }
        try await Task.sleep(for: .milliseconds(500))
        let network = self.network, namespace = a.namespace
        let flow = Task.detached {
            try network.exec(namespace, ["iperf3", "-c", near, "-p", "\(port)", "-u", "-b", "20M", "-l", "1200", "-t", "4", "-J"], timeout: 60)
        }
        for index in 0..<6 {
            try await Task.sleep(for: .milliseconds(400))
            try await must("POST", "/firewall/fw1/chain/INGRESS/insert", #"{"id":0,"src":"10.99.\#(index).0/24","action":"DROP"}"#)
        }
        let result = try await flow.value
        let summary = ((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["end"] as? [String: Any])?["sum"] as? [String: Any]
        let packets = (summary?["packets"] as? NSNumber)?.intValue ?? 0
        let lost = (summary?["lost_packets"] as? NSNumber)?.intValue ?? -1
        XCTAssertGreaterThan(packets, 5_000, result.stdout.prefix(600).description)
        XCTAssertEqual(lost, 0, "datagrams lost while the rules changed")
        let rules = try await must("GET", "/firewall/fw1/chain/INGRESS/rule") as? [[String: Any]] ?? []
        XCTAssertEqual(rules.count, 7)
    }

    /// pcn-core killed with kill -9 and started again: connections and verdicts are as they were.
    func testAKilledCoreKeepsSessionsAndVerdictsTC() async throws {
        let a = try await attached("TC", subnet: 75)
        let near = "10.75.0.2", far = "10.75.0.1"
        try await must("PATCH", "/firewall/fw1", #"""
            {"chain":[{"name":"INGRESS","default":"DROP","rule":[{"id":0,"conntrack":"ESTABLISHED","action":"ACCEPT"}]},
                      {"name":"EGRESS","default":"DROP","rule":[{"id":0,"conntrack":"NEW","action":"ACCEPT"},{"id":1,"conntrack":"ESTABLISHED","action":"ACCEPT"}]}]}
            """#)
        let port = Int.random(in: 40_000...49_000)
        XCTAssertTrue(try tcpConnects(from: nil, to: far, port: port, listenIn: a.namespace))
        // UDP: answered only once the root namespace spoke first.
        let echo = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", a.namespace, "nc", "-u", "-l", far, "\(port)"])
        defer { echo.stop() }
        try await Task.sleep(for: .milliseconds(300))
        _ = try runCommand("/bin/sh", ["-c", "echo hello | nc -u -w1 \(far) \(port)"])
        var sessions = try await must("GET", "/firewall/fw1/session-table") as? [[String: Any]] ?? []
        XCTAssertTrue(sessions.contains { $0["l4proto"] as? String == "UDP" && $0["dport"] as? Int == port }, "\(sessions)")
        let before = sessions.count

        kill9("pcn-core")
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 1), "verdicts without pcn-core: a's ping is NEW, dropped")
        try start("pcn-core", ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path])
        try await eventually(timeout: 30) {
            ((try? await self.rest.call("GET", "/firewall/fw1/session-table"))?.json as? [Any])?.count ?? 0 >= before
        }
        sessions = try await must("GET", "/firewall/fw1/session-table") as? [[String: Any]] ?? []
        XCTAssertTrue(sessions.contains { $0["l4proto"] as? String == "TCP" && $0["dport"] as? Int == port }, "the TCP session survived: \(sessions)")
        XCTAssertTrue(try tcpConnects(from: nil, to: far, port: port + 1, listenIn: a.namespace), "new connections after the restart")
        XCTAssertFalse(try tcpConnects(from: a.namespace, to: near, port: port + 2))
    }

    /// accept-established: answers come back with no rule for them; ping is a pseudo-connection.
    func testAcceptEstablishedTC() async throws {
        let a = try await attached("TC", subnet: 76)
        let near = "10.76.0.2", far = "10.76.0.1"
        try await must("PATCH", "/firewall/fw1", #"{"accept-established":"ON","chain":[{"name":"INGRESS","default":"DROP"}]}"#)
        XCTAssertTrue(try rootPing(far), "the root namespace's pings: echo replies are ESTABLISHED")
        XCTAssertFalse(try network.ping(from: a.namespace, to: near, count: 1), "a's own pings are NEW: dropped")
        let port = Int.random(in: 40_000...49_000)
        XCTAssertTrue(try tcpConnects(from: nil, to: far, port: port, listenIn: a.namespace))
        XCTAssertFalse(try tcpConnects(from: a.namespace, to: near, port: port + 1))
        try await must("PATCH", "/firewall/fw1", #"{"accept-established":"OFF"}"#)
        XCTAssertFalse(try rootPing(far, count: 1), "without it, the replies meet INGRESS's default")
    }

    private func rootPing(_ address: String, count: Int = 3) throws -> Bool {
        try runCommand("/usr/bin/ping", ["-c", "\(count)", "-i", "0.2", "-W", "2", address]).status == 0
    }
}

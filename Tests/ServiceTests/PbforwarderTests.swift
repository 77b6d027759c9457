import Foundation
import TestSupport
import XCTest

/// pbforwarder with real traffic: hosts h1, h2, h3 (10.S.0.1-3/24) on ports p1-p3, neighbours
/// static (the rules, not ARP, decide where a frame goes).
final class PbforwarderTests: ServiceStackTestCase {
    func testRulesOnEachLayerTC() async throws { try await rulesOnEachLayer(type: "TC", subnet: 90) }
    func testRulesOnEachLayerXDP() async throws { try await rulesOnEachLayer(type: "XDP_SKB", subnet: 91) }

    private func rulesOnEachLayer(type: String, subnet: Int) async throws {
        let hosts = try (1...3).map { try network.host("h\($0)", address: "10.\(subnet).0.\($0)/24") }
        let macs = try hosts.enumerated().map { index, host in try mac(of: network.prefix + "h\(index + 1)n", in: host.namespace) }
        for (index, host) in hosts.enumerated() {
            for (other, mac) in macs.enumerated() where other != index {
                _ = try network.exec(host.namespace, ["ip", "neigh", "replace", "10.\(subnet).0.\(other + 1)", "lladdr", mac, "dev", network.prefix + "h\(index + 1)n", "nud", "permanent"])
            }
            _ = try network.exec(host.namespace, ["ip", "neigh", "replace", "10.\(subnet).0.99", "lladdr", "02:00:00:00:00:99", "dev", network.prefix + "h\(index + 1)n", "nud", "permanent"])
            if type != "TC" { _ = try network.exec(host.namespace, ["ethtool", "-K", network.prefix + "h\(index + 1)n", "tx", "off"]) }
        }
        let ports = hosts.enumerated().map { #"{"name":"p\#($0 + 1)","peer":"\#($1.interface)"}"# }.joined(separator: ",")
        let h2 = "10.\(subnet).0.2", h3 = "10.\(subnet).0.3"
        let port = Int.random(in: 40_000...49_000)
        try await must("POST", "/pbforwarder/pbf1", #"""
            {"type":"\#(type)","ports":[\#(ports)],"rules":[
              {"id":0,"in_port":"p2","action":"FORWARD","out_port":"p1"},
              {"id":1,"in_port":"p3","action":"FORWARD","out_port":"p1"},
              {"id":2,"dst_mac":"\#(macs[1])","action":"FORWARD","out_port":"p2"},
              {"id":3,"dst_ip":"\#(h3)","l4_proto":"TCP","dst_port":\#(port),"action":"FORWARD","out_port":"p3"},
              {"id":4,"dst_ip":"10.\#(subnet).0.99","action":"SLOWPATH"}]}
            """#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: h2, count: 3), "L2: by destination MAC")
        XCTAssertFalse(try network.ping(from: hosts[0].namespace, to: h3, count: 1), "no rule for ping to h3: dropped")
        XCTAssertTrue(try tcpConnects(from: hosts[0].namespace, to: h3, port: port, listenIn: hosts[2].namespace), "L4: one TCP port to h3")
        XCTAssertFalse(try tcpConnects(from: hosts[0].namespace, to: h3, port: port + 1, listenIn: hosts[2].namespace), "another port: dropped")
        var stats = try await counters()
        XCTAssertEqual(stats[2], 3, "three echo requests by rule 2: \(stats)")

        // L3: a prefix rule before the others; then the slow path.
        try await must("POST", "/pbforwarder/pbf1/rules/5", #"{"src_ip":"10.\#(subnet).0.0/30","dst_ip":"\#(h3)","action":"FORWARD","out_port":"p3"}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: h3, count: 2), "L3: by addresses")
        _ = try network.exec(hosts[0].namespace, ["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.\(subnet).0.99"])
        try await eventually(timeout: 5) {
            let cube = (try? await self.rest.call("GET", "/pbforwarder/pbf1"))?.json as? [String: Any]
            return Int(cube?["slowpath-pkts"] as? String ?? "") == 2
        }
        stats = try await counters()
        XCTAssertEqual(stats[4], 2, "\(stats)")
        XCTAssertEqual(stats[2], 3, "other rules' counters unchanged by a rule added: \(stats)")

        // L2: a VLAN-tagged flow (scapy) steered to h3 by its VLAN id; the other VLAN is dropped.
        try await must("POST", "/pbforwarder/pbf1/rules/6", #"{"vlan":7,"action":"FORWARD","out_port":"p3"}"#)
        let testNetwork = network, h3Namespace = hosts[2].namespace, h3Interface = network.prefix + "h3n"
        let capture = Task.detached {
            try testNetwork.exec(h3Namespace, ["timeout", "8", "tcpdump", "-c", "3", "-eni", h3Interface, "vlan 7 or vlan 8"])
        }
        try await Task.sleep(for: .seconds(1.5))
        for vlan in [8, 7] {
            let script = """
                from scapy.all import *
                sendp(Ether(dst="02:00:00:00:00:77")/Dot1Q(vlan=\(vlan))/IP(src="10.\(subnet).0.1", dst="10.\(subnet).0.77")/UDP(dport=9), iface="\(network.prefix)h1n", count=3, verbose=0)
                """
            _ = try network.exec(hosts[0].namespace, ["/usr/bin/python3", "-c", script])
        }
        let captured = try await capture.value
        XCTAssertTrue(captured.stdout.contains("vlan 7") && !captured.stdout.contains("vlan 8"), captured.stdout)
        XCTAssertTrue(captured.stderr.contains("3 packets captured"), captured.stderr)
        stats = try await counters()
        XCTAssertEqual(stats[6], 3, "\(stats)")

        // The cube-host killed under traffic: nothing lost, counters kept.
        let pinging = Task.detached { try testNetwork.pingCounts(from: hosts[0].namespace, to: h2, count: 300, interval: "0.01") }
        try await Task.sleep(for: .milliseconds(500))
        kill9("cube-host/pbforwarder")
        try startCubeHost("pbforwarder")
        let (sent, received) = try await pinging.value
        XCTAssertEqual(received, sent, "pings lost while pbforwarder's cube-host restarted")
        try await eventually(timeout: 10) { (try? await self.counters())?[2] == 3 + sent }

        // 1,000 rules, the one that matters last.
        var rules = (0..<999).map { #"{"id":\#($0),"src_ip":"10.201.\#($0 / 250).\#($0 % 250 + 1)","action":"DROP"}"# }
        rules += [#"{"id":999,"dst_mac":"\#(macs[1])","action":"FORWARD","out_port":"p2"}"#,
                  #"{"id":1000,"in_port":"p2","action":"FORWARD","out_port":"p1"}"#]
        try await must("PATCH", "/pbforwarder/pbf1", #"{"rules":[\#(rules.joined(separator: ","))]}"#)
        try await must("DELETE", "/pbforwarder/pbf1/rules/2")
        try await must("DELETE", "/pbforwarder/pbf1/rules/0")
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: h2, count: 2), "the 1,000th rule forwards")
        stats = try await counters()
        XCTAssertEqual(stats[999], 2, "\(stats[999] ?? -1)")

        // Bad input: 400 with the path, nothing changed.
        let before = try await rest.call("GET", "/pbforwarder/pbf1/rules").text
        for (body, path) in [(#"{"id":2000,"action":"FORWARD","out_port":"nope"}"#, "out_port"), (#"{"id":2001,"vlan":4095}"#, "vlan"),
                             (#"{"id":2002,"action":"FORWARD"}"#, "out_port"), (#"{"id":2003,"src_ip":"10.0.0.0/33"}"#, "src_ip"),
                             (#"{"id":2004,"l4_proto":"ICMP","dst_port":80}"#, "dst_port")] {
            let answer = try await rest.call("POST", "/pbforwarder/pbf1/rules", body)
            XCTAssertEqual(answer.status, 400, "\(body): \(answer.text)")
            XCTAssertTrue(answer.errors.first?["error-path"]?.contains(path) == true, "\(body): \(answer.text)")
        }
        let after = try await rest.call("GET", "/pbforwarder/pbf1/rules").text
        XCTAssertEqual(before, after)
    }

    private func counters() async throws -> [Int: Int] {
        let rows = try await must("GET", "/pbforwarder/pbf1/stats") as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: rows.compactMap { row in (row["id"] as? Int).map { ($0, Int(row["pkts"] as? String ?? "") ?? -1) } })
    }

    private func mac(of interface: String, in namespace: String) throws -> String {
        let shown = try network.exec(namespace, ["cat", "/sys/class/net/\(interface)/address"]).stdout
        return shown.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func tcpConnects(from: String, to address: String, port: Int, listenIn: String) throws -> Bool {
        let server = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", listenIn, "nc", "-l", address, "\(port)"])
        defer { server.stop() }
        Thread.sleep(forTimeInterval: 0.3)
        return try network.exec(from, ["nc", "-z", "-w", "2", address, "\(port)"], timeout: 10).status == 0
    }
}

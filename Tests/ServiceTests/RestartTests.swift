import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A cube-host killed with -9 while traffic flows: the fast path forwards throughout, learned state
/// survives, queued packet-in is handled once the cube-host is back.
final class RestartTests: ServiceStackTestCase {
    /// Kills the component `times` times, `every` seconds apart, starting it again after `down` seconds.
    private func killRepeatedly(_ service: String, times: Int, every: Double = 1.0, down: Double = 0.3) throws {
        for _ in 0..<times {
            Thread.sleep(forTimeInterval: every)
            kill9("cube-host/\(service)")
            Thread.sleep(forTimeInterval: down)
            try startCubeHost(service)
        }
    }

    private func json(_ value: Any?) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value ?? NSNull(), options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    func testKillingTheRouterAndDDoSCubeHostsLosesNoPacketAndResetsNoFlowTC() async throws {
        try await killDuringTraffic(type: "TC", subnet: 71)
    }

    func testKillingTheRouterAndDDoSCubeHostsLosesNoPacketAndResetsNoFlowXDP() async throws {
        try await killDuringTraffic(type: "XDP_SKB", subnet: 74)
    }

    private func killDuringTraffic(type: String, subnet: Int) async throws {
        let hosts = try routedHosts(2, subnet: subnet)
        if type != "TC" {
            // TCP from a namespace's stack through an XDP redirect needs its checksum done in software
            // (docs/datapath.md, "XDP on veth").
            for host in hosts { _ = try network.exec(host.namespace, ["ethtool", "-K", host.namespace + "n", "tx", "off"]) }
        }
        try await router("r1", type: type, hosts: hosts, subnet: subnet)
        try await must("POST", "/ddosmitigator/d1", #"{"type":"\#(type)"}"#)
        try await must("POST", "/attach", #"{"cube":"d1","port":"r1:p2"}"#)
        try await must("POST", "/ddosmitigator/d1/blacklist-src", #"{"ip":"10.\#(subnet).9.9"}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))
        XCTAssertTrue(try network.ping(from: hosts[1].namespace, to: hosts[0].address))
        let arpBefore = try json(try await learnedNeighbours("r1"))
        let configBefore = try json(try await must("GET", "/router/r1/route"))
        let seenBefore = Int((try await must("GET", "/ddosmitigator/d1/stats") as? [String: Any])?["seen"] as? String ?? "") ?? 0

        let network = self.network
        let (h1, h2) = (hosts[0], hosts[1])
        let ping = Task.detached { try network.pingCounts(from: h1.namespace, to: h2.address, count: 800, interval: "0.01") }
        let flow = Task.detached { () throws -> (status: Int32, bytes: Int, output: String) in
            let result = try network.iperf3(from: h1.namespace, to: h2.namespace, address: h2.address, seconds: 8)
            return (result.status, ((result.end?["sum_received"] as? [String: Any])?["bytes"] as? Int) ?? 0, result.output)
        }
        try killRepeatedly("router", times: 3)
        try killRepeatedly("ddosmitigator", times: 2)
        let (sent, received) = try await ping.value
        let tcp = try await flow.value

        XCTAssertEqual(sent, 800)
        XCTAssertEqual(received, sent, "pings lost while the cube-hosts were killed")
        XCTAssertEqual(tcp.status, 0, "the TCP flow failed: \(tcp.output.suffix(600))")
        XCTAssertGreaterThan(tcp.bytes, 1_000_000, "the TCP flow moved \(tcp.bytes) bytes")

        // Learned neighbours and the configuration are as they were; the counters went on.
        try await eventually(timeout: 20) { (try? await self.rest.call("GET", "/router/r1/arp-table"))?.status == 200 }
        let arpAfter = try json(try await learnedNeighbours("r1"))
        XCTAssertEqual(arpAfter, arpBefore)
        let configAfter = try json(try await must("GET", "/router/r1/route"))
        XCTAssertEqual(configAfter, configBefore)
        let seenAfter = Int((try await must("GET", "/ddosmitigator/d1/stats") as? [String: Any])?["seen"] as? String ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(seenAfter, seenBefore + 800, "ddosmitigator's counter is monotonic across restarts")
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))
    }

    func testAnARPResolutionStartedWhileTheRouterCubeHostIsDownCompletesWhenItReturns() async throws {
        let hosts = try routedHosts(3, subnet: 72)
        try await router("r1", type: "TC", hosts: hosts, subnet: 72)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))
        kill9("cube-host/router")
        // h3 was never resolved: its first packet needs the slow path (ARP request, packet held).
        let network = self.network
        let (h1, h3) = (hosts[0], hosts[2])
        let ping = Task.detached { try network.exec(h1.namespace, ["ping", "-c", "1", "-W", "20", h3.address]) }
        try await Task.sleep(for: .milliseconds(1500))
        try startCubeHost("router")
        let result = try await ping.value
        XCTAssertEqual(result.status, 0, "the ping that waited for ARP: \(result.stdout)")
        let arp = (try await must("GET", "/router/r1/arp-table") as? [[String: Any]]) ?? []
        XCTAssertTrue(arp.contains { $0["address"] as? String == h3.address }, "\(arp)")
    }

    func testKillingTheBridgeCubeHostKeepsItsFilteringDatabase() async throws {
        let a = try network.host("a", address: "10.73.0.1/24"), b = try network.host("b", address: "10.73.0.2/24")
        try await must("POST", "/simplebridge/br1", #"{"ports":[{"name":"port1","peer":"\#(a.interface)"},{"name":"port2","peer":"\#(b.interface)"}],"fdb":{"entry":[{"address":"02:00:00:00:00:0b","port":"port1"}]}}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.73.0.2"))
        func learned() async throws -> Set<String> {
            let entries = (try await must("GET", "/simplebridge/br1/fdb/entry") as? [[String: Any]]) ?? []
            return Set(entries.map { "\($0["address"] ?? "") \($0["port"] ?? "") \($0["type"] ?? "")" })
        }
        let before = try await learned()
        XCTAssertEqual(before.count, 3, "\(before)")

        let network = self.network
        let ping = Task.detached { try network.pingCounts(from: a.namespace, to: "10.73.0.2", count: 400, interval: "0.01") }
        try killRepeatedly("simplebridge", times: 2)
        let (sent, received) = try await ping.value
        XCTAssertEqual(received, sent, "pings lost while the bridge's cube-host was killed")
        try await eventually(timeout: 20) { (try? await learned()) == before }
    }
}

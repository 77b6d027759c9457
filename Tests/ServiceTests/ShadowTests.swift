import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Shadow and span (Polycube's `shadow=true`, `span=true`): a router's namespace `pcn-<cube>` has one
/// interface per port with the port's MAC and addresses; Linux tools there speak through the ports;
/// with span, tcpdump there sees the router's traffic. Real namespaces and packets.
final class ShadowTests: ServiceStackTestCase {
    override class var startsStackInSetUp: Bool { false }

    func testShadowRouterTC() async throws { try await shadowRouter(type: "TC") }
    func testShadowRouterXDP() async throws { try await shadowRouter(type: "XDP_SKB") }

    private func shadowRouter(type: String) async throws {
        try await startStack(services: ["router"])
        defer { network.tearDown() }
        // Cube names (and so shadow namespaces) are the machine's: this one is the test's own.
        let cube = network.prefix + "r"
        let namespace = "pcn-" + cube
        network.adopt(namespace: namespace)
        let hosts = try routedHosts(2, subnet: 71)
        let ports = hosts.enumerated().map { index, host in
            #"{"name":"p\#(index + 1)","ip":"10.71.\#(index + 1).254/24","peer":"\#(host.interface)"}"#
        }
        try await must("POST", "/router/\(cube)", #"{"type":"\#(type)","shadow":true,"ports":[\#(ports.joined(separator: ","))]}"#)
        try await must("POST", "/router/\(cube)/ports/p1/secondaryip", #"{"ip":"10.71.1.253/24"}"#)

        // The namespace's interfaces are the ports: their names, MACs and addresses.
        let cubeJSON = try await must("GET", "/router/\(cube)") as? [String: Any]
        XCTAssertEqual(cubeJSON?["shadow"] as? Bool, true)
        let macs = Dictionary(uniqueKeysWithValues: (cubeJSON?["ports"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", $0["mac"] as? String ?? "") })
        try await eventually(timeout: 10) { (try? self.interfaces(in: namespace))?["p1"]?.addresses == ["10.71.1.253/24", "10.71.1.254/24"] }
        let inside = try interfaces(in: namespace)
        XCTAssertEqual(inside["p1"]?.addresses, ["10.71.1.253/24", "10.71.1.254/24"], "\(inside)")
        XCTAssertEqual(inside["p2"]?.addresses, ["10.71.2.254/24"], "\(inside)")
        XCTAssertEqual(inside["p1"]?.mac, macs["p1"])
        XCTAssertEqual(inside["p2"]?.mac, macs["p2"])

        // Linux in the namespace reaches the hosts behind the router, through its ports.
        XCTAssertTrue(try network.ping(from: namespace, to: hosts[0].address), "namespace -> h1")
        XCTAssertTrue(try network.ping(from: namespace, to: hosts[1].address), "namespace -> h2")
        // What is for the router's addresses goes up the namespace's stack (a TCP server there answers).
        XCTAssertTrue(try tcpConnects(from: hosts[0].namespace, to: "10.71.1.254", port: 7101, listenIn: namespace), "h1 -> namespace TCP")
        XCTAssertTrue(try network.ping(from: hosts[1].namespace, to: "10.71.2.254"), "h2 -> router address")
        // Routing between the hosts is the cube's, as before.
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address), "h1 -> h2")

        // The namespace outlives a restart of pcn-core, and pings to it keep being answered meanwhile.
        kill9("pcn-core")
        try start("pcn-core", ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path])
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: "10.71.1.254"), "after pcn-core restart")
        XCTAssertEqual(try interfaces(in: namespace)["p2"]?.addresses, ["10.71.2.254/24"])

        // An address removed from the router leaves the namespace too.
        try await must("DELETE", "/router/\(cube)/ports/p1/secondaryip/10.71.1.253%2F24")
        try await eventually(timeout: 10) { (try? self.interfaces(in: namespace))?["p1"]?.addresses == ["10.71.1.254/24"] }

        if type == "TC" {
            // Span: tcpdump in the namespace sees what the router routes between the hosts.
            try await must("PATCH", "/router/\(cube)", #"{"span":true}"#)
            let seen = try captured(in: namespace, "p2", filter: "icmp") {
                XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 3))
            }
            XCTAssertEqual(seen.filter { $0.contains("\(hosts[0].address) > \(hosts[1].address): ICMP echo request") }.count, 3, "\(seen)")
            XCTAssertEqual(seen.filter { $0.contains("\(hosts[1].address) > \(hosts[0].address): ICMP echo reply") }.count, 3, "\(seen)")
            // Each ping to the router's address is answered once (by the namespace), not twice.
            let reply = try network.exec(hosts[0].namespace, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.71.1.254"])
            XCTAssertEqual(reply.status, 0, reply.stdout)
            XCTAssertFalse(reply.stdout.contains("DUP"), reply.stdout)
        } else {
            let refused = try await rest.call("PATCH", "/router/\(cube)", #"{"span":true}"#)
            XCTAssertEqual(refused.status, 400, "\(refused)")
            XCTAssertTrue("\(refused.json ?? "")".contains("XDP"), "\(refused)")
        }

        // shadow is chosen at creation; span needs it.
        let changed = try await rest.call("PATCH", "/router/\(cube)", #"{"shadow":false}"#)
        XCTAssertEqual(changed.status, 400, "\(changed)")
        let noShadow = try await rest.call("POST", "/router/\(network.prefix)n", #"{"span":true}"#)
        XCTAssertEqual(noShadow.status, 400, "\(noShadow)")

        // Deleting the cube removes its namespace.
        try await must("DELETE", "/router/\(cube)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/run/netns/\(namespace)"))
    }

    // MARK: - Tools

    /// The namespace's interfaces (lo aside): MAC and sorted IPv4 addresses.
    private func interfaces(in namespace: String) throws -> [String: (mac: String, addresses: [String])] {
        let result = try runCommand("/usr/bin/ip", ["-n", namespace, "-j", "addr", "show"])
        let links = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
        var found: [String: (mac: String, addresses: [String])] = [:]
        for link in links {
            guard let name = link["ifname"] as? String, name != "lo" else { continue }
            let addresses = (link["addr_info"] as? [[String: Any]] ?? []).compactMap { info -> String? in
                guard info["family"] as? String == "inet", let local = info["local"] as? String, let length = info["prefixlen"] as? Int else { return nil }
                return "\(local)/\(length)"
            }
            found[name] = (link["address"] as? String ?? "", addresses.sorted())
        }
        return found
    }
}

import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The six services end to end: REST configuration, real packets between namespaces, TC and XDP_SKB.
final class ServiceTests: ServiceStackTestCase {
    // MARK: - simplebridge

    func testBridgeTC() async throws { try await bridgePingsBothWays(type: "TC") }
    func testBridgeXDP() async throws { try await bridgePingsBothWays(type: "XDP_SKB") }

    private func bridgePingsBothWays(type: String) async throws {
        let a = try network.host("a", address: "10.61.0.1/24"), b = try network.host("b", address: "10.61.0.2/24")
        try await must("POST", "/simplebridge/br1", #"{"type":"\#(type)","ports":[{"name":"port1","peer":"\#(a.interface)"},{"name":"port2","peer":"\#(b.interface)"}]}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.61.0.2"))
        XCTAssertTrue(try network.ping(from: b.namespace, to: "10.61.0.1"))

        // Both hosts were learned (fast path), on their ports.
        let fdb = try await must("GET", "/simplebridge/br1/fdb") as? [String: Any]
        let learned = (fdb?["entry"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "DYNAMIC" }
        XCTAssertEqual(Set(learned.compactMap { $0["port"] as? String }), ["port1", "port2"], "\(fdb ?? [:])")
        XCTAssertEqual(fdb?["aging-time"] as? Int, 300)

        // A static entry is listed as such; flush forgets the learned ones only.
        try await must("POST", "/simplebridge/br1/fdb/entry", #"{"address":"02:00:00:00:00:0a","port":"port2"}"#)
        let flushed = try await must("POST", "/simplebridge/br1/fdb/flush") as? [String: Any]
        XCTAssertEqual(flushed?["flushed"] as? Bool, true)
        // (A host's own chatter, IPv6 neighbour discovery, may be learned again right after the flush.)
        let after = (try await must("GET", "/simplebridge/br1/fdb/entry") as? [[String: Any]]) ?? []
        XCTAssertEqual(after.filter { $0["type"] as? String == "STATIC" }.compactMap { $0["address"] as? String }, ["02:00:00:00:00:0a"], "\(after)")
        XCTAssertLessThan(after.filter { $0["type"] as? String == "DYNAMIC" }.count, learned.count + 1, "\(after)")
        // Traffic still flows (flooded until learned again).
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.61.0.2"))

        // Aging: with a 2-second aging time a silent host's entry goes away.
        try await must("PATCH", "/simplebridge/br1/fdb/aging-time", "2")
        try await eventually(timeout: 15) {
            let entries = (try? await self.must("GET", "/simplebridge/br1/fdb/entry") as? [[String: Any]]) ?? []
            return entries.allSatisfy { $0["type"] as? String == "STATIC" }
        }
    }

    // MARK: - router

    func testRouterTC() async throws { try await routerFullMesh(type: "TC") }
    func testRouterXDP() async throws { try await routerFullMesh(type: "XDP_SKB") }

    /// A router joining three /24 networks: every host pings every other one and the router's addresses.
    private func routerFullMesh(type: String) async throws {
        let hosts = try routedHosts(3, subnet: 62)
        try await router("r1", type: type, hosts: hosts, subnet: 62)
        for from in hosts {
            for to in hosts where to.address != from.address {
                XCTAssertTrue(try network.ping(from: from.namespace, to: to.address, count: 2), "\(from.address) -> \(to.address)")
            }
            XCTAssertTrue(try network.ping(from: from.namespace, to: "10.62.3.254", count: 1), "\(from.address) -> router")
        }
        // Nowhere to route to: dropped under the router's own reason.
        XCTAssertFalse(try network.ping(from: hosts[0].namespace, to: "10.99.0.1", count: 2))
        // The neighbours were learned from traffic; the connected routes are listed.
        let arp = (try await must("GET", "/router/r1/arp-table") as? [[String: Any]]) ?? []
        XCTAssertEqual(Set(arp.compactMap { $0["address"] as? String }), ["10.62.1.1", "10.62.2.1", "10.62.3.1"], "\(arp)")
        XCTAssertTrue(arp.allSatisfy { $0["type"] as? String == "DYNAMIC" })
        let metrics = try await rest.call("GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"router_arp_entries{cube="r1",service="router"} 3"#), metrics)
        XCTAssertTrue(metrics.contains(#"router_routes{cube="r1",service="router"} 3"#), "three connected networks: \(metrics)")
        XCTAssertTrue(metrics.contains(#"pcn_cube_drops_total{cube="r1",service="router",reason="no-route"} 2"#), metrics)
        // TTL 1 across the router: ICMP time exceeded from the router's address on that side.
        let expired = try network.exec(hosts[0].namespace, ["ping", "-c", "1", "-t", "1", "-W", "2", "10.62.2.1"])
        XCTAssertTrue(expired.stdout.contains("From 10.62.1.254") && expired.stdout.contains("Time to live exceeded"), expired.stdout)
        // A broadcast ping is not answered by the router.
        let broadcast = try network.exec(hosts[0].namespace, ["ping", "-b", "-c", "1", "-W", "1", "10.62.1.255"])
        XCTAssertNotEqual(broadcast.status, 0)
    }

    func testThreeRoutersTC() async throws { try await threeRoutersOnSlash30Links(type: "TC") }
    func testThreeRoutersXDP() async throws { try await threeRoutersOnSlash30Links(type: "XDP_SKB") }

    /// h1 — r1 — r2 — r3 — h3; r1–r2 on 10.63.12.0/30, r2–r3 on secondary addresses 10.63.23.0/30,
    /// default routes on r1 and r3.
    private func threeRoutersOnSlash30Links(type: String) async throws {
        let h1 = try network.host("h1", address: "10.63.1.1/24", gateway: "10.63.1.254")
        let h3 = try network.host("h3", address: "10.63.3.1/24", gateway: "10.63.3.254")
        try await must("POST", "/router/r1", #"{"type":"\#(type)","ports":[{"name":"to_h1","ip":"10.63.1.254/24","peer":"\#(h1.interface)"},{"name":"to_r2","ip":"10.63.12.1/30"}]}"#)
        try await must("POST", "/router/r2", #"{"type":"\#(type)","ports":[{"name":"to_r1","ip":"10.63.12.2/30"},{"name":"to_r3","ip":"10.63.99.1/30","secondaryip":[{"ip":"10.63.23.1/30"}]}]}"#)
        try await must("POST", "/router/r3", #"{"type":"\#(type)","ports":[{"name":"to_h3","ip":"10.63.3.254/24","peer":"\#(h3.interface)"},{"name":"to_r2","ip":"10.63.98.2/30","secondaryip":[{"ip":"10.63.23.2/30"}]}]}"#)
        try await must("POST", "/connect", #"{"peer1":"r1:to_r2","peer2":"r2:to_r1"}"#)
        try await must("POST", "/connect", #"{"peer1":"r2:to_r3","peer2":"r3:to_r2"}"#)
        try await must("POST", "/router/r1/route", #"{"network":"0.0.0.0/0","nexthop":"10.63.12.2"}"#)
        try await must("POST", "/router/r3/route", #"{"network":"0.0.0.0/0","nexthop":"10.63.23.1"}"#)
        try await must("POST", "/router/r2/route", #"{"network":"10.63.1.0/24","nexthop":"10.63.12.1"}"#)
        try await must("POST", "/router/r2/route", #"{"network":"10.63.3.0/24","nexthop":"10.63.23.2","pathcost":5}"#)
        XCTAssertTrue(try network.ping(from: h1.namespace, to: "10.63.3.1"))
        XCTAssertTrue(try network.ping(from: h3.namespace, to: "10.63.1.1"))
        // The routers' own addresses, primary and secondary, across the chain.
        for address in ["10.63.12.2", "10.63.23.1", "10.63.23.2", "10.63.3.254"] {
            XCTAssertTrue(try network.ping(from: h1.namespace, to: address, count: 1), address)
        }
        let routes = (try await must("GET", "/router/r2/route") as? [[String: Any]]) ?? []
        XCTAssertTrue(routes.contains { $0["network"] as? String == "10.63.3.0/24" && $0["interface"] as? String == "to_r3" && $0["pathcost"] as? Int == 5 }, "\(routes)")
        // Connected networks show the next hop `local`, as in Polycube.
        XCTAssertTrue(routes.contains { $0["network"] as? String == "10.63.12.0/30" && $0["nexthop"] as? String == "local" && $0["interface"] as? String == "to_r1" }, "\(routes)")
        // A secondary address inside a network the port already has is accepted (Polycube does) and answers.
        try await must("POST", "/router/r1/ports/to_h1/secondaryip", #"{"ip":"10.63.1.200/24"}"#)
        XCTAssertTrue(try network.ping(from: h1.namespace, to: "10.63.1.200", count: 1))
        XCTAssertTrue(try network.ping(from: h1.namespace, to: "10.63.3.1", count: 1))

        // Deleting the secondary address a route goes through removes the route too (Polycube does),
        // in the datastore and the datapath; a new route through a network no port has is still refused.
        try await must("DELETE", "/router/r3/ports/to_r2/secondaryip/10.63.23.2%2F30")
        let r3Routes = (try await must("GET", "/router/r3/route") as? [[String: Any]]) ?? []
        XCTAssertFalse(r3Routes.contains { $0["nexthop"] as? String == "10.63.23.1" }, "\(r3Routes)")
        XCTAssertFalse(r3Routes.contains { $0["network"] as? String == "10.63.23.0/30" }, "\(r3Routes)")
        XCTAssertFalse(try network.ping(from: h3.namespace, to: "10.63.1.1", count: 1), "r3 has no default route any more")
        let refused = try await rest.call("POST", "/router/r3/route", #"{"network":"0.0.0.0/0","nexthop":"10.63.23.1"}"#)
        XCTAssertEqual(refused.status, 400, "\(refused)")
        // Deleting a port removes the routes through it; the other routes stay.
        try await must("DELETE", "/router/r2/ports/to_r1")
        let r2Routes = (try await must("GET", "/router/r2/route") as? [[String: Any]]) ?? []
        XCTAssertFalse(r2Routes.contains { $0["nexthop"] as? String == "10.63.12.1" }, "\(r2Routes)")
        XCTAssertTrue(r2Routes.contains { $0["network"] as? String == "10.63.3.0/24" && $0["nexthop"] as? String == "10.63.23.2" }, "\(r2Routes)")
        let stored = try await must("GET", "/router/r2") as? [String: Any]
        XCTAssertEqual((stored?["ports"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["to_r3"])
    }

    /// Learned neighbours age: one re-created with a new MAC is reached again once the old entry's
    /// probes go unanswered; one that answers the probes stays; a port whose peer changes forgets its own.
    func testRouterNeighboursAgeAndFollowANewMAC() async throws {
        let hosts = try routedHosts(2, subnet: 77)
        try await router("r1", type: "TC", hosts: hosts, subnet: 77)
        try await must("PATCH", "/router/r1", #"{"arp-reachable-time":2}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 1))
        func neighbours() async -> [String: [String: Any]] {
            let entries = (try? await rest.call("GET", "/router/r1/arp-table"))?.json as? [[String: Any]] ?? []
            return Dictionary(entries.map { ($0["address"] as? String ?? "", $0) }) { a, _ in a }
        }
        let learned = await neighbours()
        XCTAssertEqual(learned[hosts[1].address]?["type"] as? String, "DYNAMIC", "\(learned)")

        // h2 gets a new MAC and says nothing: the router's entry is stale until its probes fail.
        let newMAC = "02:00:00:77:02:02"
        _ = try network.exec(hosts[1].namespace, ["ip", "link", "set", "dev", hosts[1].interface + "n", "address", newMAC])
        try await eventually(timeout: 15) {
            (try? self.network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 1)) == true
        }
        let relearned = await neighbours()
        XCTAssertEqual(relearned[hosts[1].address]?["mac"] as? String, newMAC, "\(relearned)")

        // h1 answers the probes (unicast ARP to its MAC): after several reachable times of silence it is still known.
        try await Task.sleep(for: .seconds(7))
        let probed = await neighbours()
        let h1 = probed[hosts[0].address]
        XCTAssertEqual(h1?["type"] as? String, "DYNAMIC", "\(probed)")
        XCTAssertLessThan(h1?["age"] as? Int ?? 99, 6, "\(h1 ?? [:])")

        // A port's peer changes: what it learned there is forgotten.
        try await must("PATCH", "/router/r1/ports/p2", #"{"peer":""}"#)
        let left = await neighbours()
        XCTAssertNil(left[hosts[1].address], "\(left)")
        XCTAssertNotNil(left[hosts[0].address], "\(left)")
    }

    // MARK: - helloworld, simpleforwarder

    func testHelloworldTC() async throws { try await helloworldActions(type: "TC") }
    func testHelloworldXDP() async throws { try await helloworldActions(type: "XDP_SKB") }

    private func helloworldActions(type: String) async throws {
        let a = try network.host("a", address: "10.64.0.1/24"), b = try network.host("b", address: "10.64.0.2/24")
        try await must("POST", "/helloworld/hw1", #"{"type":"\#(type)","action":"FORWARD","ports":[{"name":"p1","peer":"\#(a.interface)"},{"name":"p2","peer":"\#(b.interface)"}]}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.64.0.2"))
        try await must("PATCH", "/helloworld/hw1/action", #""SLOWPATH""#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.64.0.2", count: 2))
        // The slow path logged what it received, with the cube's name.
        try await eventually(timeout: 10) {
            self.logLines.contains { $0.contains("[cube-host/helloworld] [hw1] [INFO] packet received on port p1") }
        }
        try await must("PATCH", "/helloworld/hw1", #"{"action":"DROP"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.64.0.2", count: 2))
        // At DEBUG the fast path logs every packet, as Polycube's helloworld does.
        try await must("PATCH", "/helloworld/hw1", #"{"action":"FORWARD","loglevel":"DEBUG"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.64.0.2"))
        try await eventually(timeout: 10) {
            self.logLines.contains { $0.hasSuffix("[helloworld] [hw1] [DEBUG] Receiving packet from port 0") }
                && self.logLines.contains { $0.hasSuffix("[helloworld] [hw1] [DEBUG] Forwarding packet to port 1") }
                && self.logLines.contains { $0.hasSuffix("[helloworld] [hw1] [DEBUG] Forwarding packet to port 0") }
        }
    }

    func testSimpleForwarderTC() async throws { try await simpleForwarder(type: "TC") }
    func testSimpleForwarderXDP() async throws { try await simpleForwarder(type: "XDP_SKB") }

    private func simpleForwarder(type: String) async throws {
        let a = try network.host("a", address: "10.65.0.1/24"), b = try network.host("b", address: "10.65.0.2/24")
        try await must("POST", "/simpleforwarder/f1", #"{"type":"\#(type)","ports":[{"name":"p1","peer":"\#(a.interface)"},{"name":"p2","peer":"\#(b.interface)"}]}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.65.0.2", count: 1), "no action: dropped")
        // FORWARD before its outport is accepted, as in Polycube, and drops until the outport is set.
        try await must("POST", "/simpleforwarder/f1/actions", #"{"inport":"p1","action":"FORWARD"}"#)
        try await must("POST", "/simpleforwarder/f1/actions", #"{"inport":"p2","action":"FORWARD","outport":"p1"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.65.0.2", count: 1))
        let metrics = try await rest.call("GET", "/metrics").text
        let dropped = metrics.split(separator: "\n").first { $0.hasPrefix(#"pcn_cube_drops_total{cube="f1",service="simpleforwarder",reason="no-outport"} "#) }
        XCTAssertGreaterThan(Int(dropped?.split(separator: " ").last ?? "") ?? 0, 0, metrics)
        try await must("PATCH", "/simpleforwarder/f1/actions/p1", #"{"outport":"p2"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.65.0.2"))
        try await must("PATCH", "/simpleforwarder/f1/actions/p2", #"{"action":"SLOWPATH"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.65.0.2", count: 1))
        try await must("DELETE", "/simpleforwarder/f1/actions/p2")
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.65.0.2", count: 1))

        // The netdev behind p2 deleted: the port shows no peer and DOWN.
        XCTAssertEqual(try runCommand("/usr/bin/ip", ["link", "del", b.interface]).status, 0)
        try await eventually(timeout: 10) {
            let port = (try? await self.rest.call("GET", "/simpleforwarder/f1/ports/p2"))?.json as? [String: Any]
            return port?["peer"] as? String == "" && port?["status"] as? String == "DOWN"
        }
        let p1 = try await must("GET", "/simpleforwarder/f1/ports/p1") as? [String: Any]
        XCTAssertEqual(p1?["peer"] as? String, a.interface)
    }

    // MARK: - transparent services

    func testTransparentHelloworldOnNetdevTC() async throws { try await transparentHelloworld(type: "TC") }
    func testTransparentHelloworldOnNetdevXDP() async throws { try await transparentHelloworld(type: "XDP_SKB") }

    /// On a netdev (between a namespace and the host stack) and on a router's port.
    private func transparentHelloworld(type: String) async throws {
        let hosts = try routedHosts(2, subnet: 66)
        try await router("r1", type: type, hosts: hosts, subnet: 66)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))

        // On the cube port r1:p2.
        try await must("POST", "/transparenthelloworld/t1", #"{"type":"\#(type)","loglevel":"DEBUG"}"#)
        try await must("POST", "/attach", #"{"cube":"t1","port":"r1:p2"}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))
        // At DEBUG the fast path logs every packet with its direction, as Polycube's does.
        try await eventually(timeout: 10) {
            self.logLines.contains { $0.hasSuffix("[transparenthelloworld] [t1] [DEBUG] [INGRESS] passing packet") }
                && self.logLines.contains { $0.hasSuffix("[transparenthelloworld] [t1] [DEBUG] [EGRESS] passing packet") }
        }
        try await must("PATCH", "/transparenthelloworld/t1", #"{"ingress-action":"SLOWPATH","egress-action":"SLOWPATH"}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address), "the slow path sends packets on in both directions")
        try await eventually(timeout: 10) { self.logLines.contains { $0.contains("[t1] [INFO] ingress packet") } && self.logLines.contains { $0.contains("[t1] [INFO] egress packet") } }
        try await must("PATCH", "/transparenthelloworld/t1", #"{"egress-action":"DROP"}"#)
        XCTAssertFalse(try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 1))
        try await must("POST", "/detach", #"{"cube":"t1","port":"r1:p2"}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))

        // On a netdev: the host's veth (traffic from the host namespace to the host stack).
        let c = try network.host("c", address: "10.66.9.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.66.9.2/24", "dev", c.interface])
        try await must("POST", "/transparenthelloworld/t2", #"{"type":"\#(type)","ingress-action":"SLOWPATH"}"#)
        try await must("POST", "/attach", #"{"cube":"t2","port":"\#(c.interface)"}"#)
        XCTAssertTrue(try network.ping(from: c.namespace, to: "10.66.9.2"))
        try await must("PATCH", "/transparenthelloworld/t2", #"{"ingress-action":"DROP"}"#)
        XCTAssertFalse(try network.ping(from: c.namespace, to: "10.66.9.2", count: 1))
        try await must("PATCH", "/transparenthelloworld/t2", #"{"ingress-action":"PASS"}"#)
        XCTAssertTrue(try network.ping(from: c.namespace, to: "10.66.9.2"))
    }

    func testDDoSMitigatorTC() async throws { try await ddosMitigator(type: "TC") }
    func testDDoSMitigatorXDP() async throws { try await ddosMitigator(type: "XDP_SKB") }

    private func ddosMitigator(type: String) async throws {
        let a = try network.host("a", address: "10.67.0.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.67.0.2/24", "dev", a.interface])
        try await must("POST", "/ddosmitigator/d1", #"{"type":"\#(type)"}"#)
        try await must("POST", "/attach", #"{"cube":"d1","port":"\#(a.interface)"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.67.0.2"))
        try await must("POST", "/ddosmitigator/d1/blacklist-src", #"{"ip":"10.67.0.1"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.67.0.2", count: 3))
        let sources = (try await must("GET", "/ddosmitigator/d1/blacklist-src") as? [[String: Any]]) ?? []
        XCTAssertEqual(sources.first?["drop-pkts"] as? String, "3", "\(sources)")
        // The model's metrics (name-metric on drop-pkts and stats): the entry's key is a label.
        var metrics = try await rest.call("GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"ddosmitigator_blacklist_src_dropped_packets_total{cube="d1",service="ddosmitigator",ip="10.67.0.1"} 3"#), metrics)
        XCTAssertTrue(metrics.contains(#"ddosmitigator_dropped_packets_total{cube="d1",service="ddosmitigator"} 3"#), metrics)
        try await must("DELETE", "/ddosmitigator/d1/blacklist-src/10.67.0.1")
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.67.0.2"))
        // The requests go to 10.67.0.2: blacklisting 10.67.0.1 as a destination does not stop them.
        try await must("POST", "/ddosmitigator/d1/blacklist-dst", #"{"ip":"10.67.0.1"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.67.0.2"))
        try await must("POST", "/ddosmitigator/d1/blacklist-dst", #"{"ip":"10.67.0.2"}"#)
        XCTAssertFalse(try network.ping(from: a.namespace, to: "10.67.0.2", count: 2))
        let stats = try await must("GET", "/ddosmitigator/d1/stats") as? [String: Any]
        XCTAssertEqual(stats?["pkts"] as? String, "5", "\(stats ?? [:])")
        XCTAssertGreaterThanOrEqual(Int(stats?["seen"] as? String ?? "") ?? 0, 11)
        metrics = try await rest.call("GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"ddosmitigator_dropped_packets_total{cube="d1",service="ddosmitigator"} 5"#), metrics)
        XCTAssertTrue(metrics.contains(#"ddosmitigator_blacklist_dst_dropped_packets_total{cube="d1",service="ddosmitigator",ip="10.67.0.2"} 2"#), metrics)
        XCTAssertFalse(metrics.contains(#"ddosmitigator_blacklist_src_dropped_packets_total{cube="d1""#), "a deleted entry has no sample: \(metrics)")
        // The service's own drop reasons (PCN_DROP_REASON in ddosmitigator.c), not one "service".
        XCTAssertTrue(metrics.contains(#"pcn_cube_drops_total{cube="d1",service="ddosmitigator",reason="blacklisted-source"} 3"#), metrics)
        XCTAssertTrue(metrics.contains(#"pcn_cube_drops_total{cube="d1",service="ddosmitigator",reason="blacklisted-destination"} 2"#), metrics)
        XCTAssertTrue(metrics.contains(#"pcn_cube_drops_total{cube="d1",service="ddosmitigator",reason="service"} 0"#), metrics)
    }

    // MARK: - Bad configurations

    func testBadConfigurationsAreRefusedAndChangeNothing() async throws {
        let hosts = try routedHosts(2, subnet: 68)
        try await router("r1", type: "TC", hosts: hosts, subnet: 68)
        try await must("POST", "/ddosmitigator/d1")
        try await must("POST", "/helloworld/hw1", #"{"ports":[{"name":"p1"},{"name":"p2"}]}"#)
        let before = try await rest.call("GET", "/router/r1")
        struct Bad { var method: String; var path: String; var body: String; var errorPath: String; var words: String }
        let cases = [
            Bad(method: "POST", path: "/router/r1/ports", body: #"{"name":"p3","ip":"10.68.1.7/16"}"#,
                errorPath: "/router:router[name='r1']/ports[name='p3']/ip", words: "overlaps 10.68.1.254/24 of port p1"),
            Bad(method: "POST", path: "/router/r1/ports/p2/secondaryip", body: #"{"ip":"10.68.1.9/30"}"#,
                errorPath: "/router:router[name='r1']/ports[name='p2']/secondaryip[ip='10.68.1.9/30']/ip", words: "overlaps"),
            Bad(method: "POST", path: "/router/r1/route", body: #"{"network":"10.99.0.0/16","nexthop":"10.55.0.1"}"#,
                errorPath: "/router:router[name='r1']/route[network='10.99.0.0/16'][nexthop='10.55.0.1']/nexthop", words: "is not on the network of any port"),
            Bad(method: "POST", path: "/router/r1/route", body: #"{"network":"10.99.0.0/16","nexthop":"10.68.2.254"}"#,
                errorPath: "/router:router[name='r1']/route[network='10.99.0.0/16'][nexthop='10.68.2.254']/nexthop", words: "router's own addresses"),
            Bad(method: "PATCH", path: "/router/r1/ports/p1", body: #"{"ip":"10.68.1.300/24"}"#,
                errorPath: "/router:router[name='r1']/ports[name='p1']/ip", words: "10.68.1.300/24"),
            Bad(method: "POST", path: "/ddosmitigator/d1/blacklist-src", body: #"{"ip":"not-an-address"}"#,
                errorPath: "/ddosmitigator:ddosmitigator[name='d1']/blacklist-src[ip='not-an-address']/ip", words: "not-an-address"),
            Bad(method: "POST", path: "/ddosmitigator/d1/blacklist-dst", body: #"{"ip":"10.0.0.0/8"}"#,
                errorPath: "/ddosmitigator:ddosmitigator[name='d1']/blacklist-dst[ip='10.0.0.0/8']/ip", words: "10.0.0.0/8"),
            Bad(method: "POST", path: "/helloworld/hw1/ports", body: #"{"name":"p3"}"#,
                errorPath: "/helloworld:helloworld[name='hw1']", words: "at most two ports"),
            Bad(method: "POST", path: "/simplebridge/b1", body: #"{"fdb":{"aging-time":0}}"#,
                errorPath: "/simplebridge:simplebridge[name='b1']/fdb/aging-time", words: "0"),
        ]
        for bad in cases {
            let answer = try await rest.call(bad.method, bad.path, bad.body)
            XCTAssertEqual(answer.status, 400, "\(bad.path) \(bad.body): \(answer)")
            let error = answer.errors.first ?? [:]
            XCTAssertEqual(error["error-path"], bad.errorPath, "\(bad.body): \(answer.errors)")
            XCTAssertTrue(error["error-message"]?.contains(bad.words) == true, "\(bad.body): \(answer.errors)")
        }
        let after = try await rest.call("GET", "/router/r1")
        XCTAssertEqual(try JSONSerialization.data(withJSONObject: after.json ?? [:], options: .sortedKeys),
                       try JSONSerialization.data(withJSONObject: before.json ?? [:], options: .sortedKeys))
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address), "the router still routes")
    }
}

import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The write path's promises, with the real process set: a refusal changes nothing anywhere (the
/// datapath's programs, pcn-core's topology, the datastore, the cube-host, forwarding), and every
/// acknowledged write of concurrent clients is in all three, in order.
final class WritePathTests: ServiceStackTestCase {
    /// pcn-core's topology and a cube's stored configuration, compared before and after a refusal.
    private func snapshot(_ cube: String, service: String) async throws -> Data {
        let cubes = try await rest.call("GET", "/cubes").json ?? []
        let stored = try await rest.call("GET", "/\(service)/\(cube)").json ?? [:]
        return try JSONSerialization.data(withJSONObject: ["cubes": cubes, "stored": stored], options: .sortedKeys)
    }

    /// Every program pinned by the stack, by pin, with its kernel id: a reconcile that swaps a
    /// program changes its id.
    private func programIDs() throws -> [String: String] {
        let pins = try runCommand("/usr/bin/find", [bpffsRoot, "-type", "f"]).stdout.split(separator: "\n").map(String.init)
        var ids: [String: String] = [:]
        for pin in pins {
            let shown = try runCommand("/usr/sbin/bpftool", ["prog", "show", "pinned", pin])
            if shown.status == 0, let id = shown.stdout.split(separator: ":").first { ids[pin] = String(id) }
        }
        return ids
    }

    func testRefusedDeletesAndGenericOperationsChangeNothingWhilePingsFlow() async throws {
        let a = try network.host("a", address: "10.72.0.1/24"), b = try network.host("b", address: "10.72.0.2/24")
        try await must("POST", "/helloworld/hw0", #"{"action":"FORWARD","ports":[{"name":"p1","peer":"\#(a.interface)"},{"name":"p2","peer":"\#(b.interface)"}]}"#)
        try await must("POST", "/ddosmitigator/d1")
        try await must("POST", "/attach", #"{"cube":"d1","port":"hw0:p1"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.72.0.2", count: 1))
        let before = try await snapshot("hw0", service: "helloworld")
        let programs = try programIDs()
        XCTAssertGreaterThanOrEqual(programs.count, 3, "the cubes' and netdevs' programs are pinned: \(programs)")

        // Pings go on through every refusal below.
        let pings = Task.detached { [network] in
            try network.exec(a.namespace, ["ping", "-c", "40", "-i", "0.1", "-W", "1", "10.72.0.2"])
        }
        let refusals: [(String, String, String?, Int)] = [
            ("DELETE", "/helloworld/hw0/ports/p9", nil, 404),                         // no such port
            ("POST", "/helloworld/hw0/ports", #"{"name":"p3"}"#, 400),                 // the service: two ports at most
            ("PATCH", "/helloworld/hw0", #"{"loglevel":"LOUD"}"#, 400),               // the model
            ("PATCH", "/helloworld/hw0/ports/p2", #"{"peer":"nosuchdev0"}"#, 400),    // pcn-core: no such netdev
            ("PATCH", "/helloworld/hw0/ports/p2", #"{"peer":"\#(a.interface)"}"#, 400), // pcn-core: netdev in use
            ("POST", "/connect", #"{"peer1":"hw0:p2","peer2":"d1:p1"}"#, 400),        // not a port of a standard cube
            ("POST", "/attach", #"{"cube":"d1","port":"hw0:p2"}"#, 409),              // already attached
            ("POST", "/detach", #"{"cube":"hw0"}"#, 409),                             // not a transparent cube
        ]
        for (method, path, body, status) in refusals {
            let answer = try await rest.call(method, path, body)
            XCTAssertEqual(answer.status, status, "\(method) \(path) \(body ?? ""): \(answer)")
            let after = try await snapshot("hw0", service: "helloworld")
            XCTAssertEqual(String(decoding: after, as: UTF8.self), String(decoding: before, as: UTF8.self),
                           "\(method) \(path) \(body ?? "") changed pcn-core's topology or the datastore")
        }
        XCTAssertEqual(try programIDs(), programs, "a refused request swapped programs")
        let result = try await pings.value
        XCTAssertTrue(result.stdout.contains("40 packets transmitted, 40 received"), "pings were lost during the refusals: \(result.stdout)")

        // As in Polycube: a port's peer changes under its transparent cube, which stays attached;
        // deleting the port, or the cube, detaches the transparent cube, which stays.
        let c = try network.host("c", address: "10.72.0.3/24")
        try await must("PATCH", "/helloworld/hw0/ports/p2", #"{"peer":"\#(c.interface)"}"#)
        try await must("PATCH", "/helloworld/hw0/ports/p1", #"{"peer":""}"#)
        try await must("PATCH", "/helloworld/hw0/ports/p1", #"{"peer":"\#(a.interface)"}"#)
        let kept = try await parent(of: "d1")
        XCTAssertEqual(kept, "hw0:p1", "the attachment survives the peer changes")
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.72.0.3", count: 1))
        let portDeleted = try await rest.call("DELETE", "/helloworld/hw0/ports/p1")
        XCTAssertEqual(portDeleted.status, 204, "\(portDeleted)")
        let afterPort = try await parent(of: "d1")
        XCTAssertNil(afterPort)
        let stays = try await rest.call("GET", "/ddosmitigator/d1")
        XCTAssertEqual(stays.status, 200, "the transparent cube stays")
        try await must("POST", "/helloworld/hw0/ports", #"{"name":"p1","peer":"\#(a.interface)"}"#)
        try await must("POST", "/attach", #"{"cube":"d1","port":"hw0:p1"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: "10.72.0.3", count: 1))
        let cubeDeleted = try await rest.call("DELETE", "/helloworld/hw0")
        XCTAssertEqual(cubeDeleted.status, 204, "\(cubeDeleted)")
        let afterCube = try await parent(of: "d1")
        XCTAssertNil(afterCube)
        let stored = try String(contentsOfFile: directory + "/state/datastore.json", encoding: .utf8)
        XCTAssertFalse(stored.contains(#""to":"hw0:p1""#), "the attachment is forgotten with the cube: \(stored)")
        let cubes = (try await rest.call("GET", "/cubes").json as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertTrue(cubes.contains("d1") && !cubes.contains("hw0"), "\(cubes)")
    }

    /// Where pcn-core has a transparent cube attached.
    private func parent(of cube: String) async throws -> String? {
        let cubes = try await rest.call("GET", "/cubes").json as? [[String: Any]] ?? []
        return cubes.first { $0["name"] as? String == cube }?["parent"] as? String
    }

    func testARouterRefusalCausesNoReconcileAndLeavesNoGhostPort() async throws {
        let hosts = try routedHosts(3, subnet: 73)
        try await must("POST", "/router/r", #"{"ports":[{"name":"pa","ip":"10.73.1.254/24","peer":"\#(hosts[0].interface)"},{"name":"pb","ip":"10.73.2.254/24","peer":"\#(hosts[1].interface)"}]}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))
        let programs = try programIDs()
        XCTAssertGreaterThanOrEqual(programs.count, 3, "the router's and netdevs' programs are pinned: \(programs)")
        let before = try await snapshot("r", service: "router")

        let refused = try await rest.call("POST", "/router/r/ports", #"{"name":"pc","ip":"10.73.1.7/24","peer":"\#(hosts[2].interface)"}"#)
        XCTAssertEqual(refused.status, 400, "\(refused)")
        XCTAssertEqual(refused.errors.first?["error-path"], "/router:router[name='r']/ports[name='pc']/ip", "\(refused)")

        XCTAssertEqual(try programIDs(), programs, "the refused write was paid for with a reconcile")
        let after = try await snapshot("r", service: "router")
        XCTAssertEqual(String(decoding: after, as: UTF8.self), String(decoding: before, as: UTF8.self))
        // No ghost port in what the cube-host reports (its state is merged into the read).
        let ports = (try await must("GET", "/router/r/ports") as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertEqual(ports.sorted(), ["pa", "pb"])
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address))

        // A list entry without its key names no entry: refused, not merged into the first one.
        let keyless = try await rest.call("PATCH", "/router/r/", #"{"ports":[{"ip":"10.9.9.9/24"}]}"#)
        XCTAssertEqual(keyless.status, 400, "\(keyless)")
        XCTAssertEqual(keyless.errors.first?["error-tag"], "missing-element", "\(keyless)")
        XCTAssertEqual(keyless.errors.first?["error-path"], "/router:router[name='r']/ports", "\(keyless)")
        let pa = try await must("GET", "/router/r/ports/pa") as? [String: Any]
        XCTAssertEqual(pa?["ip"] as? String, "10.73.1.254/24")
    }

    /// 8 clients × 50 writes (POST, PATCH, DELETE of ports, PATCH of the cube), four on one router and
    /// four on a router each: every write is acknowledged (no 5xx, no 409: none conflicts), and the
    /// datastore, pcn-core and the cube-host end with exactly what the acknowledged writes say.
    func testConcurrentWritersLoseNoAcknowledgedWrite() async throws {
        try await must("POST", "/router/shared")
        for writer in 4..<8 { try await must("POST", "/router/own\(writer)") }
        let rest = self.rest
        // Writer w, cycle c: a port p (added, its address changed, deleted) and a port q that
        // replaces the q of the cycle before. What stays: each writer's last q.
        func operations(_ writer: Int) -> [(String, String, String?)] {
            let cube = writer < 4 ? "shared" : "own\(writer)"
            var operations: [(String, String, String?)] = []
            for cycle in 0..<10 {
                let p = "w\(writer)p\(cycle)", q = "w\(writer)q\(cycle)"
                operations.append(("POST", "/router/\(cube)/ports", #"{"name":"\#(p)","ip":"10.\#(100 + writer).\#(cycle).1/24"}"#))
                operations.append(("PATCH", "/router/\(cube)/ports/\(p)", #"{"ip":"10.\#(100 + writer).\#(cycle).2/24"}"#))
                operations.append(("DELETE", "/router/\(cube)/ports/\(p)", nil))
                operations.append(("POST", "/router/\(cube)/ports", #"{"name":"\#(q)","ip":"10.\#(110 + writer).\#(cycle).1/24"}"#))
                operations.append(cycle == 0 ? ("PATCH", "/router/\(cube)", #"{"loglevel":"DEBUG"}"#)
                                             : ("DELETE", "/router/\(cube)/ports/w\(writer)q\(cycle - 1)", nil))
            }
            return operations
        }
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for writer in 0..<8 {
                group.addTask {
                    var failures: [String] = []
                    for (method, path, body) in operations(writer) {
                        let answer = try await rest.call(method, path, body)
                        if !(200..<300).contains(answer.status) { failures.append("\(method) \(path) \(body ?? ""): \(answer)") }
                    }
                    return failures
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(failures, [], "writes were refused although none conflicts")

        let cubes = try await rest.call("GET", "/cubes").json as? [[String: Any]] ?? []
        for (cube, writers) in [("shared", Array(0..<4))] + (4..<8).map { ("own\($0)", [$0]) } {
            let expected = writers.map { "w\($0)q9" }.sorted()
            // The datastore, with the cube-host's state merged in (a ghost port would show).
            let stored = try await must("GET", "/router/\(cube)/ports") as? [[String: Any]] ?? []
            XCTAssertEqual(stored.compactMap { $0["name"] as? String }.sorted(), expected, "\(cube) in the datastore")
            for writer in writers {
                XCTAssertEqual(stored.first { $0["name"] as? String == "w\(writer)q9" }?["ip"] as? String, "10.\(110 + writer).9.1/24")
            }
            // pcn-core.
            let live = cubes.first { $0["name"] as? String == cube }?["ports"] as? [[String: Any]] ?? []
            XCTAssertEqual(live.compactMap { $0["name"] as? String }.sorted(), expected, "\(cube) in pcn-core")
            let level = try await must("GET", "/router/\(cube)/loglevel")
            XCTAssertEqual(level as? String, "DEBUG", "\(cube)'s log level")
        }
    }
}

/// Fresh stacks started in every order of pcn-core, pcn-api and the router's cube-host: each time,
/// a router's first ping needs ARP through the slow path, so a cube-host that pcn-core did not see
/// register would show as a ping lost.
final class StartOrderTests: ServiceStackTestCase {
    override class var startsStackInSetUp: Bool { false }

    func testTwentyFreshStartsInEveryOrderEachRouteAPingThroughTheSlowPath() async throws {
        let hosts = try routedHosts(2, subnet: 74)
        let components = ["pcn-core", "pcn-api", "cube-host/router"]
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]].map { $0.map { components[$0] } }
        var routed = 0
        for run in 0..<20 {
            let order = orders[run % orders.count] + ["pcn-logd"]
            try await startStack(order: order, services: ["router"])
            for host in hosts { _ = try network.exec(host.namespace, ["ip", "neigh", "flush", "all"]) }
            try await router("r1", type: "TC", hosts: hosts, subnet: 74)
            if try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 2) {
                routed += 1
            } else {
                XCTFail("start \(run + 1), order \(order.joined(separator: ", ")): no ping routed")
            }
            // Deleted, so the next stack finds the hosts' veths free of programs.
            try await must("DELETE", "/router/r1")
            stopStack()
        }
        XCTAssertEqual(routed, 20)
    }
}

import Foundation
import TestSupport
import XCTest

/// lbrp with real traffic: client c (10.S.0.1) on the FRONTEND port; the BACKEND port joined to
/// router r1 (p0 10.S.0.254, the client's gateway), which reaches backends b1-b4 (10.S.i.1 on
/// p1-p4). Backends run a small server on 8080: TCP accepts counted, data echoed; UDP echoed.
final class LbrpTests: ServiceStackTestCase {
    private var tools = ""

    override func setUp() async throws {
        try await super.setUp()
        tools = makeTemporaryDirectory()
        try Self.script.write(toFile: tools + "/lb.py", atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        servers.forEach { $0.stop() }
        servers.removeAll()
        try? FileManager.default.removeItem(atPath: tools)
        super.tearDown()
    }

    private var servers: [BackgroundCommand] = []

    private struct Path {
        var client: String
        var backends: [String]     // namespaces
        var subnet: Int
        func backend(_ index: Int) -> String { "10.\(subnet).\(index + 1).1" }
    }

    private func path(type: String, subnet: Int, multi: Bool = false) async throws -> Path {
        let client = try network.host("c", address: "10.\(subnet).0.1/24", gateway: "10.\(subnet).0.254")
        let second = multi ? try network.host("d", address: "10.\(subnet).0.2/24", gateway: "10.\(subnet).0.254") : nil
        let backends = try (1...4).map { try network.host("b\($0)", address: "10.\(subnet).\($0).1/24", gateway: "10.\(subnet).\($0).254") }
        if type != "TC" {
            for (index, name) in (["c"] + (1...4).map { "b\($0)" }).enumerated() {
                _ = try network.exec(([client] + backends)[index].namespace, ["ethtool", "-K", network.prefix + name + "n", "tx", "off"])
            }
        }
        let routerPorts = [#"{"name":"p0","ip":"10.\#(subnet).0.254/24"}"#] + backends.enumerated().map { index, host in
            #"{"name":"p\#(index + 1)","ip":"10.\#(subnet).\#(index + 1).254/24","peer":"\#(host.interface)"}"#
        }
        try await must("POST", "/router/r1", #"{"type":"\#(type)","ports":[\#(routerPorts.joined(separator: ","))]}"#)
        if let second {
            try await must("POST", "/lbrp/lb1", #"""
                {"type":"\#(type)","port_mode":"MULTI","ports":[{"name":"fe1","type":"FRONTEND","ip":"10.\#(subnet).0.1","peer":"\#(client.interface)"},
                 {"name":"fe2","type":"FRONTEND","ip":"10.\#(subnet).0.2","peer":"\#(second.interface)"},{"name":"backend","type":"BACKEND","peer":"r1:p0"}]}
                """#)
        } else {
            try await must("POST", "/lbrp/lb1", #"""
                {"type":"\#(type)","ports":[{"name":"frontend","type":"FRONTEND","peer":"\#(client.interface)"},{"name":"backend","type":"BACKEND","peer":"r1:p0"}]}
                """#)
        }
        for (index, host) in backends.enumerated() {
            servers.append(try BackgroundCommand("/usr/bin/ip", ["netns", "exec", host.namespace, "python3", tools + "/lb.py", "serve", "10.\(subnet).\(index + 1).1", "8080", tools + "/b\(index + 1)"]))
        }
        try await Task.sleep(for: .seconds(0.5))
        return Path(client: client.namespace, backends: backends.map(\.namespace), subnet: subnet)
    }

    private func accepted(_ index: Int) -> Int {
        Int((try? String(contentsOfFile: tools + "/b\(index + 1).count", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    }

    /// Waits until the backends in `indices` have accepted `count` connections in all (a server
    /// accepts from its backlog after the client is done).
    private func settle(_ count: Int, _ indices: Range<Int>) async throws {
        do {
            try await eventually(timeout: 20) { indices.map(self.accepted).reduce(0, +) >= count }
        } catch {
            XCTFail("the backends accepted \(indices.map(accepted)) of \(count)")
        }
    }

    private func client(_ path: Path, _ arguments: [String], timeout: TimeInterval = 120) throws -> String {
        let result = try network.exec(path.client, ["python3", tools + "/lb.py"] + arguments, timeout: timeout)
        return (result.stdout + result.stderr).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testWeightedBackendsStickyFlowsAndRestartsTC() async throws {
        let path = try await path(type: "TC", subnet: 92)
        let vip = "10.92.100.1"
        try await must("POST", "/lbrp/lb1/service/\(vip)/80/TCP", #"""
            {"vip":"\#(vip)","vport":80,"proto":"TCP","backend":[{"ip":"\#(path.backend(0))","port":8080,"weight":1},
             {"ip":"\#(path.backend(1))","port":8080,"weight":2},{"ip":"\#(path.backend(2))","port":8080,"weight":3}]}
            """#)
        // 3,000 short connections: shares within 5 % of the weights.
        XCTAssertEqual(try client(path, ["burst", vip, "80", "3000"]), "3000")
        try await settle(3000, 0..<3)
        let counts = (0..<3).map(accepted)
        XCTAssertEqual(counts.reduce(0, +), 3000, "\(counts)")
        for (index, weight) in [1, 2, 3].enumerated() {
            XCTAssertEqual(Double(counts[index]) / 3000, Double(weight) / 6, accuracy: 0.05, "backend \(index + 1): \(counts)")
        }
        let state = try await must("GET", "/lbrp/lb1/service/\(vip)/80/TCP/backend") as? [[String: Any]] ?? []
        XCTAssertEqual(state.count, 3)
        XCTAssertTrue(state.allSatisfy { Int($0["pkts"] as? String ?? "") ?? 0 > 0 }, "\(state)")

        // A long connection keeps its backend through other backends joining and leaving and
        // through kill -9 of the cube-host and of pcn-core.
        let hold = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", path.client, "python3", tools + "/lb.py", "hold", vip, "80", "14", tools + "/hold"])
        defer { hold.stop() }
        try await eventually(timeout: 10) { (0..<3).contains { FileManager.default.fileExists(atPath: self.tools + "/b\($0 + 1).held") } }
        let holder = (0..<3).first { FileManager.default.fileExists(atPath: tools + "/b\($0 + 1).held") }!
        let other = (0..<3).first { $0 != holder }!
        try await must("POST", "/lbrp/lb1/service/\(vip)/80/TCP/backend/\(path.backend(3))", #"{"ip":"\#(path.backend(3))","port":8080}"#)
        try await must("DELETE", "/lbrp/lb1/service/\(vip)/80/TCP/backend/\(path.backend(other))")
        kill9("cube-host/lbrp")
        try startCubeHost("lbrp")
        kill9("pcn-core")
        try start("pcn-core", ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path])
        try await eventually(timeout: 40) { FileManager.default.fileExists(atPath: self.tools + "/hold") }
        XCTAssertEqual(try String(contentsOfFile: tools + "/hold", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "ok",
                       "the connection to backend \(holder + 1) lasted")

        // New connections now spread over the backends left (and the new one), none to the removed one.
        let before = (0..<4).map(accepted)
        XCTAssertEqual(try client(path, ["burst", vip, "80", "400"]), "400")
        try await settle(before.reduce(0, +) + 400, 0..<4)
        let added = zip((0..<4).map(accepted), before).map { $0 - $1 }
        XCTAssertEqual(added[other], 0, "the removed backend gets nothing: \(added)")
        XCTAssertGreaterThan(added[3], 0, "the new backend gets its share: \(added)")

        // Removing the backend a connection is on: the connection is balanced again (the new
        // backend knows nothing of it and resets it).
        let hold2 = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", path.client, "python3", tools + "/lb.py", "hold", vip, "80", "4", tools + "/hold2"])
        defer { hold2.stop() }
        try await Task.sleep(for: .seconds(1))
        let rows = try await must("GET", "/lbrp/lb1/service/\(vip)/80/TCP/backend") as? [[String: Any]] ?? []
        let busy = rows.filter { ($0["active-flows"] as? Int ?? 0) > 0 }.compactMap { $0["ip"] as? String }
        XCTAssertFalse(busy.isEmpty, "\(rows)")
        // The server that holds it now: the newest held file.
        let holders = (0..<4).filter { FileManager.default.fileExists(atPath: tools + "/b\($0 + 1).held") && $0 != holder }
        if let second = holders.first {
            try await must("DELETE", "/lbrp/lb1/service/\(vip)/80/TCP/backend/\(path.backend(second))")
            try await eventually(timeout: 20) { FileManager.default.fileExists(atPath: self.tools + "/hold2") }
            XCTAssertEqual(try String(contentsOfFile: tools + "/hold2", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "broken")
        }
    }

    /// MULTI: two clients on two FRONTEND ports; answers and ARP from the backend side go to the
    /// port of their destination.
    func testMultiModeTC() async throws {
        let path = try await path(type: "TC", subnet: 95, multi: true)
        let vip = "10.95.100.1"
        try await must("POST", "/lbrp/lb1/service", #"{"vip":"\#(vip)","vport":80,"proto":"ALL","backend":[{"ip":"\#(path.backend(0))","port":8080},{"ip":"\#(path.backend(1))","port":8080}]}"#)
        XCTAssertEqual(try client(path, ["burst", vip, "80", "20"]), "20", "the first client")
        let second = network.prefix + "d"
        XCTAssertEqual(try network.exec(second, ["python3", tools + "/lb.py", "burst", vip, "80", "20"], timeout: 60).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "20", "the second client")
        XCTAssertTrue(try network.ping(from: second, to: vip, count: 2))
        XCTAssertTrue(try network.ping(from: second, to: path.backend(2), count: 1), "other traffic passes")
        try await settle(40, 0..<2)
        XCTAssertEqual(accepted(0) + accepted(1), 40)
        let bad = try await rest.call("PATCH", "/lbrp/lb1", #"{"ports":[{"name":"fe3","type":"FRONTEND"}]}"#)
        XCTAssertEqual(bad.status, 400, bad.text)
        XCTAssertTrue(bad.text.contains("fe3"), bad.text)
    }

    func testProtocolsEmptyServiceManyServicesAndBadInputTC() async throws { try await protocols(type: "TC", subnet: 93) }
    func testProtocolsEmptyServiceManyServicesAndBadInputXDP() async throws { try await protocols(type: "XDP_SKB", subnet: 94) }

    /// src-ip-rewrite: the client reaches the backends from its host part in the new range; the
    /// answers find their way back and are translated to the client's own address.
    func testSourceRewriteTC() async throws {
        let path = try await path(type: "TC", subnet: 98)
        let vip = "10.98.100.1"
        try await must("POST", "/router/r1/route", #"{"network":"10.98.50.0/24","nexthop":"10.98.0.1"}"#)
        try await must("PATCH", "/lbrp/lb1", #"{"src-ip-rewrite":{"ip-range":"10.98.0.0/24","new_ip_range":"10.98.50.0/24"}}"#)
        try await must("POST", "/lbrp/lb1/service", #"{"vip":"\#(vip)","vport":80,"proto":"TCP","backend":[{"ip":"\#(path.backend(0))","port":8080}]}"#)
        XCTAssertEqual(try client(path, ["burst", vip, "80", "3"]), "3")
        try await settle(3, 0..<1)
        XCTAssertEqual(try String(contentsOfFile: tools + "/b1.peer", encoding: .utf8), "10.98.50.1", "the backend saw the rewritten source")
        let bad = try await rest.call("PATCH", "/lbrp/lb1", #"{"src-ip-rewrite":{"ip-range":"10.98.0.0/24","new_ip_range":"10.98.50.0/16"}}"#)
        XCTAssertEqual(bad.status, 400, bad.text)
    }

    private func protocols(type: String, subnet: Int) async throws {
        let path = try await path(type: type, subnet: subnet)
        let vip = "10.\(subnet).100.2"
        try await must("POST", "/lbrp/lb1/service", #"{"vip":"\#(vip)","vport":80,"proto":"ALL","backend":[{"ip":"\#(path.backend(1))","port":8080}]}"#)
        XCTAssertTrue(try network.ping(from: path.client, to: vip, count: 2), "ICMP echo to the VIP answered by the backend")
        XCTAssertEqual(try client(path, ["udp", vip, "80"]), "\(vip):80", "UDP answered from the VIP")
        XCTAssertEqual(try client(path, ["burst", vip, "80", "5"]), "5", "TCP")
        try await settle(5, 1..<2)
        XCTAssertEqual(accepted(1), 5)

        // A service without backends drops and counts.
        try await must("POST", "/lbrp/lb1/service", #"{"vip":"10.\#(subnet).100.3","vport":80,"proto":"TCP"}"#)
        XCTAssertEqual(try client(path, ["burst", "10.\(subnet).100.3", "80", "1"]), "0")
        let empty = try await must("GET", "/lbrp/lb1/service/10.\(subnet).100.3/80/TCP") as? [String: Any] ?? [:]
        XCTAssertGreaterThan(Int(empty["no-backend-drops"] as? String ?? "") ?? 0, 0, "\(empty)")

        // Bad input: 400 with the path, nothing changed.
        let before = try await rest.call("GET", "/lbrp/lb1/service").text
        for (body, where_) in [(#"{"vip":"\#(path.backend(0))","vport":81,"proto":"TCP","backend":[{"ip":"\#(path.backend(0))","port":8080}]}"#, "vip"),
                               (#"{"vip":"10.9.9.9","vport":81,"proto":"TCP","backend":[{"ip":"10.8.8.8","port":8080,"weight":0}]}"#, "weight"),
                               (#"{"vip":"10.9.9.9","vport":81,"proto":"TCP","backend":[{"ip":"10.8.8.8","port":0}]}"#, "port"),
                               (#"{"vip":"10.9.9.9","vport":70000,"proto":"TCP"}"#, "vport"),
                               (#"{"vip":"10.9.9.9","vport":81,"proto":"TCP","backend":[{"ip":"10.8.8.8","port":1},{"ip":"10.8.8.8","port":2}]}"#, "backend"),
                               (#"{"vip":"\#(vip)","vport":80,"proto":"TCP"}"#, "")] {
            let answer = try await rest.call("POST", "/lbrp/lb1/service", body)
            XCTAssertTrue(answer.status == 400 || answer.status == 409, "\(body): \(answer.text)")
            if !where_.isEmpty { XCTAssertTrue(answer.text.contains(where_), "\(body): \(answer.text)") }
        }
        let after = try await rest.call("GET", "/lbrp/lb1/service").text
        XCTAssertEqual(after, before)

        // 10,000 services in one write; the last one serves.
        let services = (0..<10_000).map { index in
            #"{"vip":"10.\#(subnet + 100).\#(index / 250).\#(index % 250 + 1)","vport":80,"proto":"TCP","backend":[{"ip":"\#(path.backend(2))","port":8080}]}"#
        }
        try await must("PATCH", "/lbrp/lb1", #"{"service":[\#(services.joined(separator: ","))]}"#)
        XCTAssertEqual(try client(path, ["burst", "10.\(subnet + 100).39.250", "80", "3"]), "3", "the 10,000th service")
        try await settle(3, 2..<3)
        XCTAssertEqual(accepted(2), 3)

        // A service of 1,000 backends (its table 65,521 slots), then one more backend for it.
        let body = (0..<1000).map { #"{"ip":"10.\#(subnet + 100).\#(200 + $0 / 250).\#($0 % 250 + 1)","port":8080}"# }
        try await must("POST", "/lbrp/lb1/service", #"{"vip":"10.\#(subnet).100.9","vport":80,"proto":"TCP","backend":[\#(body.joined(separator: ","))]}"#)
        try await must("POST", "/lbrp/lb1/service/10.\(subnet).100.9/80/TCP/backend", #"{"ip":"\#(path.backend(3))","port":8080}"#)
        let loaded = try await must("GET", "/lbrp/lb1/service/10.\(subnet).100.9/80/TCP/backend") as? [Any] ?? []
        XCTAssertEqual(loaded.count, 1001)
    }

    /// serve ADDR PORT PREFIX: TCP and UDP on ADDR:PORT; PREFIX.count = TCP connections accepted,
    /// PREFIX.held written once a connection sends data; data and datagrams echoed.
    /// burst VIP PORT N: N connections one after another; prints how many connected.
    /// hold VIP PORT SECONDS FILE: one connection exchanging a line every 0.2 s; FILE: ok or broken.
    /// udp VIP PORT: one datagram; prints the answer's source.
    static let script = """
        import os, socket, sys, threading, time
        mode = sys.argv[1]
        def write(path, text):
            open(path + ".tmp", "w").write(text); os.rename(path + ".tmp", path)
        if mode == "serve":
            addr, port, prefix = sys.argv[2], int(sys.argv[3]), sys.argv[4]
            count = [0]; lock = threading.Lock()
            def udp():
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, port))
                while True:
                    data, peer = u.recvfrom(2048); u.sendto(data, peer)
            def conn(c):
                try:
                    while True:
                        data = c.recv(1024)
                        if not data: break
                        if not os.path.exists(prefix + ".held"): write(prefix + ".held", "1")
                        c.sendall(data)
                except OSError:
                    pass
                c.close()
            threading.Thread(target=udp, daemon=True).start()
            t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((addr, port)); t.listen(512)
            while True:
                c, peer = t.accept()
                with lock:
                    count[0] += 1; write(prefix + ".count", "%d" % count[0]); write(prefix + ".peer", peer[0])
                threading.Thread(target=conn, args=(c,), daemon=True).start()
        elif mode == "burst":
            vip, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]); ok = 0
            for i in range(n):
                s = socket.socket(); s.settimeout(2)
                try:
                    s.connect((vip, port)); ok += 1
                except OSError:
                    pass
                s.close()
            time.sleep(0.3); print(ok)
        elif mode == "hold":
            vip, port, seconds, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
            s = socket.socket(); s.settimeout(3); result = "ok"
            try:
                s.connect((vip, port)); end = time.time() + seconds; i = 0
                while time.time() < end:
                    line = b"%d\\n" % i; s.sendall(line); got = b""
                    while len(got) < len(line):
                        part = s.recv(64)
                        if not part: raise OSError("closed")
                        got += part
                    if got != line: raise OSError("wrong answer")
                    i += 1; time.sleep(0.2)
            except OSError:
                result = "broken"
            write(out, result)
        elif mode == "udp":
            vip, port = sys.argv[2], int(sys.argv[3])
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3); u.sendto(b"x", (vip, port))
            try:
                data, peer = u.recvfrom(64); print("%s:%d" % peer)
            except OSError:
                print("nothing")
        """
}

import Foundation
import TestSupport
import XCTest

/// nat with real traffic. Inside host h1 (10.S.1.1) and outside host h2 (10.S.2.1) behind router r1
/// (p1 10.S.1.254, p2 10.S.2.254), nat1 attached to r1:p2; what the far side sees is read with
/// tcpdump there. h2 routes 10.S.8.0/24 (DNAT addresses) and 10.S.9.0/24 (SNAT addresses) to r1.
final class NatTests: ServiceStackTestCase {
    func testMasqueradeSnatDnatAndPortForwardingTC() async throws { try await translations(type: "TC", subnet: 86) }
    func testMasqueradeSnatDnatAndPortForwardingXDP() async throws { try await translations(type: "XDP_SKB", subnet: 87) }

    private struct Path {
        var inside: String, outside: String      // namespaces
        var insideAddress: String, outsideAddress: String
        var routerOutside: String                // p2's address
        var subnet: Int
    }

    private func routedPath(type: String, subnet: Int) async throws -> Path {
        let hosts = try routedHosts(2, subnet: subnet)
        try await router("r1", type: type, hosts: hosts, subnet: subnet)
        for route in ["10.\(subnet).8.0/24", "10.\(subnet).9.0/24"] {
            _ = try network.exec(hosts[1].namespace, ["ip", "route", "add", route, "via", "10.\(subnet).2.254"])
        }
        if type != "TC" {
            // XDP frames carry no pending checksum: senders finish theirs (MACHINE-NOTES).
            for (index, host) in hosts.enumerated() {
                _ = try network.exec(host.namespace, ["ethtool", "-K", network.prefix + "h\(index + 1)n", "tx", "off"])
            }
        }
        try await must("POST", "/nat/nat1", #"{"type":"\#(type)"}"#)
        try await must("POST", "/attach", #"{"cube":"nat1","port":"r1:p2"}"#)
        return Path(inside: hosts[0].namespace, outside: hosts[1].namespace, insideAddress: hosts[0].address,
                    outsideAddress: hosts[1].address, routerOutside: "10.\(subnet).2.254", subnet: subnet)
    }

    private func translations(type: String, subnet: Int) async throws {
        let path = try await routedPath(type: type, subnet: subnet)
        XCTAssertTrue(try network.ping(from: path.inside, to: path.outsideAddress), "no rule: traffic passes untranslated")

        // Masquerade, enabled with Polycube's grammar, takes the router port's address.
        let enabled = try runCommand(productsDirectory.appendingPathComponent("pcnctl").path,
                                     ["--url", "http://127.0.0.1:\(rest.port)", "nat1", "rule", "masquerade", "enable"])
        XCTAssertEqual(enabled.status, 0, enabled.stderr)
        try await eventually(timeout: 10) {
            ((try? await self.rest.call("GET", "/nat/nat1/rule/masquerade"))?.json as? [String: Any])?["external-ip"] as? String == path.routerOutside
        }
        var seen = try captured(in: path.outside, network.prefix + "h2n") {
            XCTAssertTrue(try self.network.ping(from: path.inside, to: path.outsideAddress, count: 2), "masqueraded ping answered")
            XCTAssertTrue(try self.tcpConnects(from: path.inside, to: path.outsideAddress, port: 5001, listenIn: path.outside), "masqueraded TCP")
            _ = try self.network.exec(path.inside, ["sh", "-c", "echo x | nc -u -w1 \(path.outsideAddress) 5002"])
        }
        XCTAssertTrue(seen.contains { $0.contains("\(path.routerOutside) > \(path.outsideAddress): ICMP echo request") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("\(path.routerOutside).") && $0.contains("> \(path.outsideAddress).5001: Flags [S]") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("\(path.routerOutside).") && $0.contains("> \(path.outsideAddress).5002: UDP") }, seen.joined(separator: "\n"))
        XCTAssertFalse(seen.contains { $0.contains(path.insideAddress) }, "the inside address never shows outside: \(seen)")
        var table = try await must("GET", "/nat/nat1/natting-table") as? [[String: Any]] ?? []
        for proto in ["ICMP", "TCP", "UDP"] {
            XCTAssertTrue(table.contains { $0["proto"] as? String == proto && $0["originating-rule"] as? String == "masquerade"
                && $0["internal-src"] as? String == path.insideAddress && $0["external-ip"] as? String == path.routerOutside }, "\(proto): \(table)")
        }

        // An ICMP port unreachable about a masqueraded datagram reaches the inside socket (the
        // quoted header put back as it left it).
        XCTAssertEqual(try udpRefused(from: path.inside, to: path.outsideAddress, port: 9), "refused")

        // A specific SNAT rule beats masquerade.
        let snatAddress = "10.\(path.subnet).9.1"
        try await must("POST", "/nat/nat1/rule/snat/append", #"{"internal-net":"10.\#(path.subnet).1.0/24","external-ip":"\#(snatAddress)"}"#)
        seen = try captured(in: path.outside, network.prefix + "h2n") {
            XCTAssertTrue(try self.network.ping(from: path.inside, to: path.outsideAddress, count: 2), "SNAT ping answered")
            XCTAssertTrue(try self.tcpConnects(from: path.inside, to: path.outsideAddress, port: 5003, listenIn: path.outside), "SNAT TCP")
            _ = try self.network.exec(path.inside, ["sh", "-c", "echo x | nc -u -w1 \(path.outsideAddress) 5004"])
        }
        XCTAssertTrue(seen.contains { $0.contains("\(snatAddress).") && $0.contains("> \(path.outsideAddress).5004: UDP") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("\(snatAddress) > \(path.outsideAddress): ICMP echo request") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("\(snatAddress).") && $0.contains("> \(path.outsideAddress).5003: Flags [S]") }, seen.joined(separator: "\n"))
        XCTAssertEqual(try udpRefused(from: path.inside, to: path.outsideAddress, port: 10), "refused")
        // Duplicate networks are refused (Polycube's #345), nothing changed.
        let duplicate = try await rest.call("POST", "/nat/nat1/rule/snat/entry", #"{"id":7,"internal-net":"10.\#(path.subnet).1.9/24","external-ip":"10.\#(path.subnet).9.2"}"#)
        XCTAssertEqual(duplicate.status, 400, duplicate.text)
        XCTAssertTrue(duplicate.text.contains("internal-net"), duplicate.text)

        // DNAT, and port forwarding beating it for its port.
        let dnatAddress = "10.\(path.subnet).8.1"
        try await must("POST", "/nat/nat1/rule/dnat/append", #"{"external-ip":"\#(dnatAddress)","internal-ip":"\#(path.insideAddress)"}"#)
        try await must("POST", "/nat/nat1/rule/port-forwarding/append",
                       #"{"external-ip":"\#(dnatAddress)","external-port":8081,"proto":"tcp","internal-ip":"\#(path.insideAddress)","internal-port":81}"#)
        try await must("POST", "/nat/nat1/rule/port-forwarding/append",
                       #"{"external-ip":"\#(path.routerOutside)","external-port":8080,"internal-ip":"\#(path.insideAddress)","internal-port":80}"#)
        seen = try captured(in: path.inside, network.prefix + "h1n") {
            XCTAssertTrue(try self.network.ping(from: path.outside, to: dnatAddress, count: 2), "DNAT ping answered")
            XCTAssertTrue(try self.tcpConnects(from: path.outside, to: dnatAddress, port: 8081, listenIn: path.inside, listenAddress: path.insideAddress, listenPort: 81),
                          "port forwarding wins over DNAT for its port")
            XCTAssertTrue(try self.tcpConnects(from: path.outside, to: path.routerOutside, port: 8080, listenIn: path.inside, listenAddress: path.insideAddress, listenPort: 80),
                          "port forwarding from the router port's own address")
            _ = try self.network.exec(path.outside, ["sh", "-c", "echo x | nc -u -w1 \(path.routerOutside) 8080"])
            XCTAssertTrue(try self.tcpConnects(from: path.outside, to: dnatAddress, port: 5005, listenIn: path.inside, listenAddress: path.insideAddress),
                          "DNAT TCP keeps the port")
            _ = try self.network.exec(path.outside, ["sh", "-c", "echo x | nc -u -w1 \(dnatAddress) 5006"])
        }
        XCTAssertTrue(seen.contains { $0.contains("\(path.outsideAddress).") && $0.contains("> \(path.insideAddress).5005: Flags [S]") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("> \(path.insideAddress).5006: UDP") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("\(path.outsideAddress) > \(path.insideAddress): ICMP echo request") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("> \(path.insideAddress).81: Flags [S]") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("> \(path.insideAddress).80: UDP") }, "proto ALL forwards UDP too: \(seen.joined(separator: "\n"))")
        // The router's time exceeded for a DNAT'd ping leaves quoting the ping as its sender sent it.
        seen = try captured(in: path.outside, network.prefix + "h2n", verbose: true) {
            _ = try self.network.exec(path.outside, ["ping", "-c", "1", "-t", "1", "-W", "2", dnatAddress])
        }
        let exceeded = seen.joined(separator: "\n")
        XCTAssertTrue(exceeded.contains("time exceeded"), exceeded)
        XCTAssertTrue(exceeded.contains("\(path.outsideAddress) > \(dnatAddress): ICMP echo request"), "the quoted packet translated back: \(exceeded)")
        XCTAssertFalse(exceeded.contains("> \(path.insideAddress)"), exceeded)
        table = try await must("GET", "/nat/nat1/natting-table") as? [[String: Any]] ?? []
        XCTAssertTrue(table.contains { $0["originating-rule"] as? String == "portforwarding" && $0["internal-sport"] as? Int == 81
            && $0["external-ip"] as? String == dnatAddress && $0["external-port"] as? Int == 8081 }, "\(table)")
        XCTAssertTrue(table.contains { $0["originating-rule"] as? String == "dnat" && $0["proto"] as? String == "ICMP" }, "\(table)")

        // A deleted rule leaves its sessions; new flows no longer match it.
        let bySnat = table.filter { $0["originating-rule"] as? String == "snat" }.count
        XCTAssertGreaterThan(bySnat, 0, "\(table)")
        try await must("DELETE", "/nat/nat1/rule/snat")
        table = try await must("GET", "/nat/nat1/natting-table") as? [[String: Any]] ?? []
        XCTAssertEqual(table.filter { $0["originating-rule"] as? String == "snat" }.count, bySnat, "sessions stay after their rule went: \(table)")
        seen = try captured(in: path.outside, network.prefix + "h2n") {
            XCTAssertTrue(try self.network.ping(from: path.inside, to: path.outsideAddress, count: 1))
        }
        XCTAssertTrue(seen.contains { $0.contains("\(path.routerOutside) > \(path.outsideAddress): ICMP echo request") }, "masquerade again: \(seen)")
    }

    /// Masquerade on a plain netdev takes its address (Polycube's #422): the root namespace sends
    /// from a second address of its own, the far end sees the netdev's first one.
    func testMasqueradeOnANetdevTC() async throws { try await masqueradeOnANetdev(type: "TC") }
    /// Native XDP on the veth for what comes in (the replies), TC for what the host sends.
    func testMasqueradeOnANetdevXDPDRV() async throws { try await masqueradeOnANetdev(type: "XDP_DRV") }

    private func masqueradeOnANetdev(type: String) async throws {
        let a = try network.host("a", address: "10.88.0.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.88.0.2/24", "dev", a.interface])
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.88.5.5/32", "dev", a.interface])
        if type != "TC" { _ = try network.exec(a.namespace, ["ethtool", "-K", a.interface + "n", "tx", "off"]) }
        try await must("POST", "/nat/nat1", #"{"type":"\#(type)","rule":{"masquerade":{"enabled":true}}}"#)
        try await must("POST", "/attach", #"{"cube":"nat1","port":"\#(a.interface)"}"#)
        try await eventually(timeout: 10) {
            ((try? await self.rest.call("GET", "/nat/nat1/rule/masquerade"))?.json as? [String: Any])?["external-ip"] as? String == "10.88.0.2"
        }
        let seen = try captured(in: a.namespace, network.prefix + "an") {
            let ping = try runCommand("/usr/bin/ping", ["-c", "2", "-i", "0.2", "-W", "2", "-I", "10.88.5.5", "10.88.0.1"])
            XCTAssertEqual(ping.status, 0, "answered through the reverse translation: \(ping.stdout)")
            let server = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", a.namespace, "nc", "-l", "10.88.0.1", "5004"])
            defer { server.stop() }
            Thread.sleep(forTimeInterval: 0.3)
            XCTAssertEqual(try runCommand("/usr/bin/nc", ["-z", "-w", "2", "-s", "10.88.5.5", "10.88.0.1", "5004"], timeout: 10).status, 0)
        }
        XCTAssertTrue(seen.contains { $0.contains("10.88.0.2 > 10.88.0.1: ICMP echo request") }, seen.joined(separator: "\n"))
        XCTAssertTrue(seen.contains { $0.contains("10.88.0.2.") && $0.contains("> 10.88.0.1.5004: Flags [S]") }, seen.joined(separator: "\n"))
        XCTAssertFalse(seen.contains { $0.contains("10.88.5.5") }, seen.joined(separator: "\n"))
    }

    /// 1,000 UDP sources get 1,000 distinct external ports from the range; a range too small
    /// refuses the flows beyond it and counts them; a flow keeps its translation across kill -9 of
    /// the cube-host and of pcn-core.
    func testPortsAndRestartsTC() async throws {
        let path = try await routedPath(type: "TC", subnet: 89)
        try await must("PATCH", "/nat/nat1", #"{"rule":{"masquerade":{"enabled":true}},"port-range":{"low":20000,"high":21999}}"#)
        try await eventually(timeout: 10) {
            ((try? await self.rest.call("GET", "/nat/nat1/rule/masquerade"))?.json as? [String: Any])?["external-ip"] as? String == path.routerOutside
        }
        XCTAssertTrue(try network.ping(from: path.inside, to: path.outsideAddress, count: 1), "the router knows both ends")
        let script = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: script) }
        try Self.udpTools.write(toFile: script + "/udp.py", atomically: true, encoding: .utf8)
        // The far end counts the distinct sources it hears.
        let heard = script + "/heard"
        let listener = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", path.outside, "python3", script + "/udp.py", "listen", path.outsideAddress, "6000", heard])
        defer { listener.stop() }
        try await Task.sleep(for: .seconds(0.5))
        let sent = try network.exec(path.inside, ["python3", script + "/udp.py", "spray", path.outsideAddress, "6000", "30000", "1000"], timeout: 60)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        do {
            try await eventually(timeout: 10) { (try? String(contentsOfFile: heard, encoding: .utf8))?.split(separator: "\n").count ?? 0 >= 1000 }
        } catch {
            XCTFail("heard \((try? String(contentsOfFile: heard, encoding: .utf8))?.split(separator: "\n").count ?? 0) sources")
        }
        let sources = Set((try String(contentsOfFile: heard, encoding: .utf8)).split(separator: "\n"))
        XCTAssertEqual(sources.count, 1000, "1,000 distinct sources outside")
        let table = try await must("GET", "/nat/nat1/natting-table") as? [[String: Any]] ?? []
        let ports = table.filter { $0["internal-dport"] as? Int == 6000 }.compactMap { $0["external-port"] as? Int }
        XCTAssertEqual(ports.count, 1000)
        XCTAssertEqual(Set(ports).count, 1000, "no port handed out twice")
        XCTAssertTrue(ports.allSatisfy { (20000...21999).contains($0) }, "ports from the range")

        // Five ports for eight new flows to one far end: three refused and counted.
        try await must("PATCH", "/nat/nat1/port-range", #"{"low":22000,"high":22004}"#)
        _ = try network.exec(path.inside, ["python3", script + "/udp.py", "spray", path.outsideAddress, "6001", "31000", "8"], timeout: 60)
        let cube = try await must("GET", "/nat/nat1") as? [String: Any] ?? [:]
        XCTAssertEqual(Int("\(cube["ports-exhausted"] ?? "")"), 3, "\(cube)")

        // One flow (one socket, one port) across restarts: the far end hears it from one port only.
        try await must("PATCH", "/nat/nat1/port-range", #"{"low":20000,"high":21999}"#)
        let flowHeard = script + "/flow"
        let echo = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", path.outside, "python3", script + "/udp.py", "echo", path.outsideAddress, "6002", flowHeard])
        defer { echo.stop() }
        try await Task.sleep(for: .seconds(0.5))
        let flow = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", path.inside, "python3", script + "/udp.py", "flow", path.outsideAddress, "6002", script + "/answers", "12"])
        defer { flow.stop() }
        try await Task.sleep(for: .seconds(2))
        kill9("cube-host/nat")
        try await Task.sleep(for: .seconds(1.5))
        try startCubeHost("nat")
        kill9("pcn-core")
        try await Task.sleep(for: .seconds(1.5))
        try start("pcn-core", ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path])
        try await eventually(timeout: 30) { FileManager.default.fileExists(atPath: script + "/answers") }
        let answers = Int((try String(contentsOfFile: script + "/answers", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        XCTAssertGreaterThanOrEqual(answers, 110, "the flow was answered throughout (120 datagrams)")
        let peers = Set((try String(contentsOfFile: flowHeard, encoding: .utf8)).split(separator: "\n"))
        XCTAssertEqual(peers.count, 1, "one translation for the whole flow: \(peers)")
        XCTAssertTrue(peers.first?.hasPrefix(path.routerOutside + ":") == true, "\(peers)")
    }

    // MARK: - Tools

    /// "refused" when a datagram to a closed port is answered by the ICMP error the socket sees.
    private func udpRefused(from namespace: String, to address: String, port: Int) throws -> String {
        let code = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.connect(("\(address)", \(port))); s.send(b"x")
            try:
                s.recv(16); print("answered")
            except ConnectionRefusedError:
                print("refused")
            except socket.timeout:
                print("nothing")
            """
        return try network.exec(namespace, ["python3", "-c", code], timeout: 20).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// listen ADDR PORT FILE: writes each new source "ip:port" to FILE. echo ADDR PORT FILE: the
    /// same, and answers every datagram. spray ADDR PORT FIRST N: one datagram from each of N
    /// sockets bound to ports FIRST... flow ADDR PORT FILE N: one socket sends 10 datagrams a second
    /// for N seconds and writes to FILE how many were answered.
    static let udpTools = """
        import socket, sys, time
        mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        if mode in ("listen", "echo"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind((addr, port)); seen = set()
            out = open(sys.argv[4], "a")
            while True:
                data, peer = s.recvfrom(2048)
                if mode == "echo": s.sendto(data, peer)
                key = "%s:%d" % peer
                if key not in seen:
                    seen.add(key); out.write(key + "\\n"); out.flush()
        elif mode == "spray":
            first, count = int(sys.argv[4]), int(sys.argv[5]); socks = []
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", first + i)); s.sendto(b"x", (addr, port)); socks.append(s)
                if i % 20 == 19: time.sleep(0.01)
            time.sleep(0.5)
        elif mode == "flow":
            seconds = int(sys.argv[5]); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.05); answered = 0
            for i in range(seconds * 10):
                s.sendto(b"%d" % i, (addr, port))
                try:
                    s.recv(64); answered += 1
                except socket.timeout:
                    pass
                time.sleep(0.05)
            open(sys.argv[4] + ".tmp", "w").write("%d\\n" % answered)
            import os; os.rename(sys.argv[4] + ".tmp", sys.argv[4])
        """
}

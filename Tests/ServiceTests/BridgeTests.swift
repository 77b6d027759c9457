import Foundation
import TestSupport
import XCTest

/// bridge with real traffic: VLANs across trunks between bridge cubes, tagged frames from a scapy
/// host, flooding with the cube-hosts frozen, the spanning tree against a Linux bridge.
final class BridgeTests: ServiceStackTestCase {
    private final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [Bool]
        init(count: Int) { stored = Array(repeating: false, count: count) }
        func set(_ index: Int, _ value: Bool) { lock.withLock { stored[index] = value } }
        var values: [Bool] { lock.withLock { stored } }
    }

    func testVlansAcrossTrunksTC() async throws { try await vlansAcrossTrunks(type: "TC", subnet: 57) }
    func testVlansAcrossTrunksXDP() async throws { try await vlansAcrossTrunks(type: "XDP_SKB", subnet: 58) }
    func testVlansAcrossTrunksXDPDRV() async throws { try await vlansAcrossTrunks(type: "XDP_DRV", subnet: 56) }

    /// b1 —trunk(10,20,30n,40,50)— b2 —trunk(10,20,30n,60)— b3, native VLAN 30 on both trunks; a host
    /// on b1 and on b3 in each of VLANs 10..60, one on b2 in VLAN 40; all in one IP subnet, so only
    /// the VLANs keep them apart.
    private func vlansAcrossTrunks(type: String, subnet: Int) async throws {
        let vlans = [10, 20, 30, 40, 50, 60]
        var hosts: [String: (namespace: String, interface: String, address: String)] = [:]
        for (side, bridge) in [("a", 1), ("c", 3)] {
            for (i, vlan) in vlans.enumerated() {
                let address = "10.\(subnet).0.\(bridge * 10 + i + 1)"
                let host = try network.host("\(side)\(vlan)", address: address + "/24")
                hosts["b\(bridge)v\(vlan)"] = (host.namespace, host.interface, address)
            }
        }
        let middle = try network.host("b40", address: "10.\(subnet).0.99/24")
        hosts["b2v40"] = (middle.namespace, middle.interface, "10.\(subnet).0.99")
        if type != "TC" { for host in hosts.values { try offloadsOff(host) } }
        // A veth receives native XDP redirects only with an XDP program or GRO on its peer (MACHINE-NOTES).
        if type == "XDP_DRV" { for host in hosts.values { _ = try network.exec(host.namespace, ["ethtool", "-K", host.interface + "n", "gro", "on"]) } }
        let t12 = try link("t12"), t23 = try link("t23")
        func access(_ bridge: Int, _ vlan: Int) -> String {
            let peer = hosts["b\(bridge)v\(vlan)"]!.interface
            return #"{"name":"v\#(vlan)","peer":"\#(peer)","mode":"access","access":{"vlanid":\#(vlan)}}"#
        }
        func trunk(_ name: String, _ peer: String, _ allowed: [Int]) -> String {
            let list = allowed.map { #"{"vlanid":\#($0)}"# }.joined(separator: ",")
            return #"{"name":"\#(name)","peer":"\#(peer)","mode":"trunk","trunk":{"allowed":[\#(list)],"native-vlan":30}}"#
        }
        let b1Ports = vlans.map { access(1, $0) } + [trunk("up", t12.a, [10, 20, 40, 50])]
        let b3Ports = vlans.map { access(3, $0) } + [trunk("up", t23.b, [10, 20, 60])]
        let b2Ports = [access(2, 40), trunk("left", t12.b, [10, 20, 40, 50]), trunk("right", t23.a, [10, 20, 60])]
        try await must("POST", "/bridge/b1", #"{"type":"\#(type)","ports":[\#(b1Ports.joined(separator: ","))]}"#)
        try await must("POST", "/bridge/b2", #"{"type":"\#(type)","ports":[\#(b2Ports.joined(separator: ","))]}"#)
        try await must("POST", "/bridge/b3", #"{"type":"\#(type)","ports":[\#(b3Ports.joined(separator: ","))]}"#)

        // Same VLAN: through exactly the hops that allow it (30 untagged, as the trunks' native VLAN).
        var pairs: [(String, String, Bool)] = vlans.map { ("b1v\($0)", "b3v\($0)", [10, 20, 30].contains($0)) }
        pairs.append(("b1v40", "b2v40", true))
        pairs.append(("b2v40", "b3v40", false))
        // Every cross-VLAN pair between b1 and b3.
        for a in vlans { for b in vlans where a != b { pairs.append(("b1v\(a)", "b3v\(b)", false)) } }
        let results = try pingAll(pairs.map { (hosts[$0.0]!.namespace, hosts[$0.1]!.address) })
        for (pair, passed) in zip(pairs, results) {
            XCTAssertEqual(passed, pair.2, "\(type): \(pair.0) -> \(pair.1) should \(pair.2 ? "pass" : "fail")")
        }

        // The FDB lists what was learned, per VLAN and port; aging and flush empty it.
        let fdb = try await entries("b2")
        XCTAssertTrue(fdb.contains { $0["vlan"] as? Int == 10 && $0["port"] as? String == "left" && $0["type"] as? String == "dynamic" }, "\(fdb)")
        XCTAssertTrue(fdb.contains { $0["vlan"] as? Int == 30 && $0["port"] as? String == "right" }, "\(fdb)")
        try await must("POST", "/bridge/b2/fdb/flush")
        let flushed = try await entries("b2")
        XCTAssertTrue(flushed.isEmpty, "\(flushed)")
        XCTAssertTrue(try network.ping(from: hosts["b1v10"]!.namespace, to: hosts["b3v10"]!.address, count: 1))
        try await must("PATCH", "/bridge/b2/fdb", #"{"aging-time":1}"#)
        try await eventually(timeout: 10) { (try? await self.entries("b2"))?.isEmpty == true }

        // Bad input: 400 with the error path, nothing changed.
        let before = try await rest.call("GET", "/bridge/b1/ports").text
        for (path, body, leaf) in [("/bridge/b1/ports/v10/access", #"{"vlanid":0}"#, "vlanid"),
                                   ("/bridge/b1/ports/v10/access", #"{"vlanid":4095}"#, "vlanid"),
                                   ("/bridge/b1/ports/v10", #"{"trunk":{"native-vlan":5}}"#, "trunk"),
                                   ("/bridge/b1/ports/v10", #"{"stp":[{"vlan":20}]}"#, "stp"),
                                   ("/bridge/b1/fdb/entry", #"{"vlan":10,"mac":"02:00:00:00:00:01","port":"nope"}"#, "port"),
                                   ("/bridge/b1/fdb/entry", #"{"vlan":20,"mac":"02:00:00:00:00:01","port":"v10"}"#, "port")] {
            let answer = try await rest.call(path.hasSuffix("entry") ? "POST" : "PATCH", path, body)
            XCTAssertEqual(answer.status, 400, "\(path) \(body): \(answer.text)")
            XCTAssertTrue(answer.errors.first?["error-path"]?.contains(leaf) == true, "\(path) \(body): \(answer.text)")
        }
        let after = try await rest.call("GET", "/bridge/b1/ports").text
        XCTAssertEqual(before, after)
    }

    /// A trunk to a scapy host: its tagged frames reach the access port of their VLAN, the answers
    /// come back with the right tag, untagged frames belong to the native VLAN.
    func testTaggedFramesFromScapyTC() async throws { try await taggedFramesFromScapy(type: "TC", subnet: 59) }
    func testTaggedFramesFromScapyXDP() async throws { try await taggedFramesFromScapy(type: "XDP_SKB", subnet: 60) }

    private func taggedFramesFromScapy(type: String, subnet: Int) async throws {
        let trunkHost = try network.host("tr", address: "10.\(subnet).0.100/24")
        let h10 = try network.host("h10", address: "10.\(subnet).0.10/24")
        let h30 = try network.host("h30", address: "10.\(subnet).0.30/24")
        try await must("POST", "/bridge/b1", #"""
            {"type":"\#(type)","ports":[{"name":"trunk","peer":"\#(trunkHost.interface)","mode":"trunk","trunk":{"allowed":[{"vlanid":10},{"vlanid":20}],"native-vlan":30}},
                      {"name":"h10","peer":"\#(h10.interface)","access":{"vlanid":10}},
                      {"name":"h30","peer":"\#(h30.interface)","access":{"vlanid":30}}]}
            """#)
        let inside = network.prefix + "trn"
        func arp(_ target: String, vlan: Int?) throws -> String {
            let tag = vlan.map { "/Dot1Q(vlan=\($0))" } ?? ""
            let script = """
                from scapy.all import *
                conf.verb = 0
                p = Ether(dst="ff:ff:ff:ff:ff:ff", src=get_if_hwaddr("\(inside)"))\(tag)/ARP(pdst="\(target)", psrc="10.\(subnet).0.100", hwsrc=get_if_hwaddr("\(inside)"))
                a = srp1(p, iface="\(inside)", timeout=3)
                if a is None:
                    print("none")
                elif Dot1Q in a:
                    print("tagged", a[Dot1Q].vlan, a[ARP].psrc)
                else:
                    print("untagged", a[ARP].psrc)
                """
            return try network.exec(trunkHost.namespace, ["/usr/bin/python3", "-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertEqual(try arp("10.\(subnet).0.10", vlan: 10), "tagged 10 10.\(subnet).0.10", "VLAN 10 tagged to its access port and back")
        XCTAssertEqual(try arp("10.\(subnet).0.10", vlan: 20), "none", "VLAN 20 has no such host")
        XCTAssertEqual(try arp("10.\(subnet).0.30", vlan: nil), "untagged 10.\(subnet).0.30", "untagged: the native VLAN, back untagged")
        XCTAssertEqual(try arp("10.\(subnet).0.10", vlan: nil), "none", "untagged frames are not in VLAN 10")
        let fdb = try await entries("b1")
        XCTAssertTrue(fdb.contains { $0["vlan"] as? Int == 10 && $0["port"] as? String == "trunk" }, "\(fdb)")
    }

    /// ARP (broadcast) reaches every host while the cube-hosts of bridge and simplebridge are
    /// stopped: no slow path in the way.
    func testFloodingInTheKernel() async throws {
        for (service, subnet) in [("bridge", 84), ("simplebridge", 85)] {
            let hosts = try (1...3).map { try network.host("\(service.prefix(1))\($0)", address: "10.\(subnet).0.\($0)/24") }
            let ports = hosts.enumerated().map { #"{"name":"p\#($0 + 1)","peer":"\#($1.interface)"}"# }.joined(separator: ",")
            let cube = "f\(service.prefix(1))"
            try await must("POST", "/\(service)/\(cube)", #"{"ports":[\#(ports)]}"#)
            signal("cube-host/\(service)", SIGSTOP)
            defer { signal("cube-host/\(service)", SIGCONT) }
            for (i, host) in hosts.enumerated() {
                let other = "10.\(subnet).0.\((i + 1) % 3 + 1)"
                XCTAssertTrue(try network.ping(from: host.namespace, to: other, count: 2), "\(service): \(host.namespace) -> \(other) (ARP resolved in the kernel)")
            }
            signal("cube-host/\(service)", SIGCONT)
            let listed = try await must("GET", "/\(service)/\(cube)/ports") as? [[String: Any]] ?? []
            XCTAssertEqual(listed.count, 3)
        }
    }

    // MARK: - Spanning tree

    /// b1 (root by priority), b2, b3 in a triangle, and a Linux bridge between b1 and b2: b3's port
    /// to b2 and the Linux bridge's port to b2 block; pings pass with no storm; a removed link
    /// re-converges; the cube-host killed under traffic loses nothing and the states stay.
    func testSpanningTreeWithLinuxBridge() async throws {
        let subnet = 83
        let h1 = try network.host("h1", address: "10.\(subnet).0.1/24")
        let h3 = try network.host("h3", address: "10.\(subnet).0.3/24")
        let l12 = try link("l12"), l23 = try link("l23"), l31 = try link("l31"), lb1 = try link("lb1"), lb2 = try link("lb2")
        let linux = network.prefix + "lb"
        try sh("ip link add \(linux) type bridge stp_state 1 forward_delay 200 hello_time 100 max_age 600 priority 61440")
        network.adopt(link: linux)
        for end in [lb1.b, lb2.b] { try sh("ip link set \(end) master \(linux) && ip link set dev \(end) type bridge_slave cost 100") }
        try sh("ip link set \(linux) up")
        let timers = #""stp-enabled":true,"stp":[{"vlan":1,"priority":PRIO,"hello-time":1,"forward-delay":2,"max-message-age":6}]"#
        func create(_ name: String, _ priority: Int, _ mac: String, _ ports: [(String, String)]) async throws {
            let list = ports.map { #"{"name":"\#($0.0)","peer":"\#($0.1)"}"# }.joined(separator: ",")
            try await must("POST", "/bridge/\(name)", #"{"mac":"\#(mac)",\#(timers.replacingOccurrences(of: "PRIO", with: "\(priority)")),"ports":[\#(list)]}"#)
        }
        try await create("s1", 4096, "02:00:00:00:00:01", [("h1", h1.interface), ("to2", l12.a), ("to3", l31.b), ("tolb", lb1.a)])
        try await create("s2", 32768, "02:00:00:00:00:02", [("to1", l12.b), ("to3", l23.a), ("tolb", lb2.a)])
        try await create("s3", 32768, "02:00:00:00:00:03", [("h3", h3.interface), ("to2", l23.b), ("to1", l31.a)])

        try await eventually(timeout: 30) {
            guard let states = try? await self.stpStates() else { return false }
            return states["s2/to1"] == "forwarding" && states["s3/to1"] == "forwarding" && states["s2/to3"] == "forwarding"
                && states["s2/tolb"] == "forwarding" && states["s1/tolb"] == "forwarding"
        }
        var states = try await stpStates()
        XCTAssertEqual(states["s3/to2"], "blocking", "\(states)")
        XCTAssertEqual(states["s3/to2-role"], "alternate", "\(states)")
        XCTAssertEqual(try sysfs("\(lb2.b)/brport/state"), "4", "the Linux bridge blocks its port to s2 (4 = blocking)")
        XCTAssertEqual(try sysfs("\(lb1.b)/brport/state"), "3", "and forwards towards the root")
        XCTAssertEqual(try sysfs("\(linux)/bridge/root_id"), "1000.020000000001", "the Linux bridge sees s1 as root")
        let s3 = try await must("GET", "/bridge/s3/stp/1") as? [String: Any] ?? [:]
        XCTAssertEqual(s3["root-bridge"] as? String, "1000.020000000001")
        XCTAssertEqual(s3["root-port"] as? String, "to1")

        // No storm: a broadcast is seen a bounded number of times.
        XCTAssertTrue(try network.ping(from: h1.namespace, to: "10.\(subnet).0.3", count: 3))
        _ = try network.exec(h1.namespace, ["arping", "-c", "1", "-w", "1", "-i", network.prefix + "h1n", "10.\(subnet).0.77"])
        _ = try network.exec(h1.namespace, ["ping", "-b", "-c", "1", "-W", "1", "10.\(subnet).0.255"])
        try await Task.sleep(for: .seconds(2))
        let txToH3 = try await txPackets("s3", "h3")
        try await Task.sleep(for: .seconds(2))
        let later = try await txPackets("s3", "h3")
        XCTAssertLessThan(later - txToH3, 20, "frames to h3 keep coming: a loop")

        // The control plane killed under traffic: nothing lost, states and learned addresses unchanged.
        func learned() async throws -> Set<String> {
            var all = Set<String>()
            for cube in ["s1", "s2", "s3"] { all.formUnion(try await entries(cube).map { "\(cube) \($0["vlan"] ?? "") \($0["mac"] ?? "") \($0["port"] ?? "")" }) }
            return all
        }
        let fdbBefore = try await learned()
        let network = self.network
        let ping = Task.detached { try network.pingCounts(from: h1.namespace, to: "10.\(subnet).0.3", count: 400, interval: "0.01") }
        try await Task.sleep(for: .milliseconds(500))
        kill9("cube-host/bridge")
        try startCubeHost("bridge")
        let (sent, received) = try await ping.value
        XCTAssertEqual(received, sent, "pings lost while the bridge's cube-host restarted")
        try await eventually(timeout: 10) { (try? await self.stpStates())?["s3/to1"] != nil }
        let resumed = try await stpStates()
        for key in ["s3/to2", "s3/to1", "s2/to1", "s1/to2"] { XCTAssertEqual(resumed[key], states[key], "\(key) after the restart") }
        let fdbAfter = try await learned()
        XCTAssertTrue(fdbBefore.isSubset(of: fdbAfter), "learned entries lost in the restart: \(fdbBefore.subtracting(fdbAfter))")
        XCTAssertFalse(fdbBefore.isEmpty)

        // s3 loses its link to s1: its port to s2 takes over after listening and learning.
        try await must("PATCH", "/bridge/s1/ports/to3", #"{"peer":""}"#)
        try await must("PATCH", "/bridge/s3/ports/to1", #"{"peer":""}"#)
        try await eventually(timeout: 30) { (try? await self.stpStates())?["s3/to2"] == "forwarding" }
        states = try await stpStates()
        XCTAssertEqual(states["s3/to2-role"], "root", "\(states)")
        try await eventually(timeout: 10) { (try? self.network.ping(from: h1.namespace, to: "10.\(subnet).0.3", count: 1)) == true }
    }

    // MARK: - Helpers

    private func link(_ name: String) throws -> (a: String, b: String) {
        let a = network.prefix + name + "a", b = network.prefix + name + "b"
        try sh("ip link add \(a) type veth peer name \(b)")
        network.adopt(link: a)
        for end in [a, b] { try sh("sysctl -qw net.ipv6.conf.\(end).disable_ipv6=1 && ip link set \(end) up") }
        return (a, b)
    }

    private func offloadsOff(_ host: (namespace: String, interface: String, address: String)) throws {
        _ = try network.exec(host.namespace, ["ethtool", "-K", host.interface + "n", "tx", "off"])
    }

    @discardableResult
    private func sh(_ command: String) throws -> String {
        let result = try runCommand("/bin/sh", ["-c", command])
        guard result.status == 0 else { throw TestFailure("\(command): \(result.stderr)") }
        return result.stdout
    }

    private func sysfs(_ path: String) throws -> String {
        try String(contentsOfFile: "/sys/class/net/" + path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One ping per pair, all at once (failures take their timeout in parallel): whether each passed.
    private func pingAll(_ pairs: [(namespace: String, address: String)]) throws -> [Bool] {
        for namespace in Set(pairs.map(\.namespace)) { _ = try runCommand("/usr/bin/ip", ["-n", namespace, "neigh", "flush", "all"]) }
        let network = self.network, results = ResultBox(count: pairs.count), group = DispatchGroup()
        for (index, pair) in pairs.enumerated() {
            group.enter()
            Thread.detachNewThread {
                let passed = (try? network.exec(pair.namespace, ["ping", "-c", "2", "-i", "0.3", "-W", "2", pair.address]).status) == 0
                results.set(index, passed)
                group.leave()
            }
        }
        group.wait()
        return results.values
    }

    private func entries(_ cube: String) async throws -> [[String: Any]] {
        let fdb = try await must("GET", "/bridge/\(cube)/fdb") as? [String: Any]
        return fdb?["entry"] as? [[String: Any]] ?? []
    }

    /// "cube/port" -> state and "cube/port-role" -> role, VLAN 1.
    private func stpStates() async throws -> [String: String] {
        var states: [String: String] = [:]
        for cube in ["s1", "s2", "s3"] {
            let ports = try await rest.call("GET", "/bridge/\(cube)/ports").json as? [[String: Any]] ?? []
            for port in ports {
                guard let name = port["name"] as? String, let tree = (port["stp"] as? [[String: Any]])?.first(where: { $0["vlan"] as? Int == 1 }) else { continue }
                states["\(cube)/\(name)"] = tree["state"] as? String
                states["\(cube)/\(name)-role"] = tree["role"] as? String
            }
        }
        return states
    }

    /// pcn_port_tx_packets of a port, from /metrics.
    private func txPackets(_ cube: String, _ port: String) async throws -> Int {
        let text = try await rest.call("GET", "/metrics").text
        let prefix = #"pcn_port_tx_packets_total{cube="\#(cube)",service="bridge",port="\#(port)"} "#
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { throw TestFailure("no \(prefix) in /metrics") }
        return Int(line.dropFirst(prefix.count)) ?? -1
    }
}

import BPFKit
import Foundation
import DatapathKit
import IPC
import PCNDatapathABI
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// pcn-core's datapath with real packets between network namespaces.
final class DatapathTests: CoreTestCase {
    func testNetdevCubeNetdev() async throws {
        let (a, veth1) = try network.host("a", address: "10.200.0.1/24")
        let (_, veth2) = try network.host("b", address: "10.200.0.2/24")
        try await core("cube.create", ["name": "w1", "service": "testfwd"])
        try await core("port.add", ["cube": "w1", "port": "p0"])
        try await core("port.add", ["cube": "w1", "port": "p1"])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.0.2", count: 1), "no path yet, ping must fail")
        try await core("port.set-peer", ["cube": "w1", "port": "p0", "peer": veth1])
        try await core("port.set-peer", ["cube": "w1", "port": "p1", "peer": veth2])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.0.2"))
        let counters = try await stats("w1")
        XCTAssertGreaterThanOrEqual(counters["rxPackets"] as? Int ?? 0, 6)
        XCTAssertEqual(counters["redirected"] as? Int, counters["rxPackets"] as? Int)
        // Per port: the pings came in on p0 and left by p1, the answers the other way; p0 may also have
        // received frames before p1 had a peer (dropped, so never sent). The cube's rx is the ports' sum.
        let ports = try XCTUnwrap(counters["ports"] as? [String: [String: Int]])
        let p0 = try XCTUnwrap(ports["p0"]), p1 = try XCTUnwrap(ports["p1"])
        XCTAssertGreaterThanOrEqual(p1["txPackets"] ?? 0, 3)
        XCTAssertGreaterThanOrEqual(p0["txPackets"] ?? 0, 3)
        // (+1: the ports are read one after the other while the namespaces' own chatter may cross.)
        XCTAssertGreaterThanOrEqual((p0["rxPackets"] ?? 0) + 1, p1["txPackets"] ?? 0)
        XCTAssertGreaterThanOrEqual((p1["rxPackets"] ?? 0) + 1, p0["txPackets"] ?? 0)
        XCTAssertEqual((p0["rxPackets"] ?? 0) + (p1["rxPackets"] ?? 0), counters["rxPackets"] as? Int)

        // A netdev that disappears takes its port's peer with it.
        _ = try runCommand("/usr/bin/ip", ["link", "del", veth2])
        try await eventually {
            let cubes = try await self.cubeList()
            let ports = cubes.first?["ports"] as? [[String: Any]]
            return ports?.first { $0["name"] as? String == "p1" }?["peer"] as? String == ""
        }
        XCTAssertEqual(try String(contentsOfFile: directory + "/state/datapath.json", encoding: .utf8).contains(veth2), false)
        let (_, veth3) = try network.host("c", address: "10.200.0.2/24")
        try await core("port.set-peer", ["cube": "w1", "port": "p1", "peer": veth3])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.0.2"))

        // Removing a peer cuts the path again, and the drop is counted with its reason.
        try await core("port.set-peer", ["cube": "w1", "port": "p1", "peer": ""])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.0.2", count: 1))
        let after = try await stats("w1")
        XCTAssertGreaterThan((after["drops"] as? [String: Int])?["no-peer"] ?? 0, 0)
    }

    /// A port whose peer is a veth with its twin in another namespace hands packets straight to
    /// the twin (bpf_redirect_peer: the host end never transmits them, so a capture there sees only
    /// what comes in). Once the twin moves into the host end's namespace, where that cannot work,
    /// the cube goes back to an ordinary redirect by itself.
    func testVethTwinElsewhereIsReachedDirectlyAndFollowsAMove() async throws {
        let (a, veth1) = try network.host("a", address: "10.200.7.1/24")
        let (b, veth2) = try network.host("b", address: "10.200.7.2/24")
        try await core("cube.create", ["name": "w7", "service": "testfwd"])
        try await core("port.add", ["cube": "w7", "port": "p0"])
        try await core("port.add", ["cube": "w7", "port": "p1"])
        try await core("port.set-peer", ["cube": "w7", "port": "p0", "peer": veth1])
        try await core("port.set-peer", ["cube": "w7", "port": "p1", "peer": veth2])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.7.2"))

        let capture = directory + "/veth2.txt"
        let dump = try BackgroundCommand("/bin/sh", ["-c", "exec /usr/bin/tcpdump -n -l -i \"$0\" icmp > \"$1\" 2>/dev/null", veth2, capture])
        try await Task.sleep(for: .milliseconds(800))
        XCTAssertTrue(try network.ping(from: a, to: "10.200.7.2", count: 5))
        try await Task.sleep(for: .milliseconds(300))
        dump.stop()
        let seen = (try? String(contentsOfFile: capture, encoding: .utf8)) ?? ""
        XCTAssertEqual(seen.components(separatedBy: "echo request").count - 1, 0, "the requests went out of \(veth2) instead of straight to its twin:\n\(seen)")
        XCTAssertGreaterThanOrEqual(seen.components(separatedBy: "echo reply").count - 1, 5, "b's replies come in through \(veth2):\n\(seen)")

        // The twin joins the host end's namespace (this one): still reachable, now by a plain redirect.
        let twin = veth2 + "n"
        _ = try runCommand("/usr/bin/ip", ["-n", b, "link", "set", twin, "netns", "1"])
        network.adopt(link: twin)
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.200.7.2/32", "dev", twin])
        _ = try runCommand("/usr/bin/ip", ["link", "set", twin, "up"])
        _ = try runCommand("/usr/bin/ip", ["route", "add", "10.200.7.1/32", "dev", twin])
        try await eventually(timeout: 20) { try self.network.ping(from: a, to: "10.200.7.2", count: 1) }
    }

    func testCubeToCubeChain() async throws {
        let (a, veth1) = try network.host("a", address: "10.200.1.1/24")
        let (_, veth2) = try network.host("b", address: "10.200.1.2/24")
        for cube in ["c1", "c2", "c3"] {
            try await core("cube.create", ["name": cube, "service": "testfwd"])
            try await core("port.add", ["cube": cube, "port": "p0"])
            try await core("port.add", ["cube": cube, "port": "p1"])
        }
        try await core("port.set-peer", ["cube": "c1", "port": "p0", "peer": veth1])
        try await core("port.set-peer", ["cube": "c1", "port": "p1", "peer": "c2:p0"])
        try await core("port.set-peer", ["cube": "c2", "port": "p1", "peer": "c3:p0"])
        try await core("port.set-peer", ["cube": "c3", "port": "p1", "peer": veth2])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.1.2"))
        for cube in ["c1", "c2", "c3"] {
            let counters = try await stats(cube)
            XCTAssertGreaterThanOrEqual(counters["rxPackets"] as? Int ?? 0, 6, "\(cube) saw no traffic")
        }
        // The link is symmetric: c2 sees c1 as its p0 peer.
        let cubes = try await cubeList()
        let c2 = cubes.first { $0["name"] as? String == "c2" }
        let ports = c2?["ports"] as? [[String: Any]]
        XCTAssertEqual(ports?.first { $0["name"] as? String == "p0" }?["peer"] as? String, "c1:p1")
    }

    func testThirtyTwoCubeChainForwardsAndTheLimitIsCounted() async throws {
        let (a, _, veth2) = try await hostsJoined(subnet: 3, cubes: 32)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.3.2"))
        let last = try await stats("c32")
        XCTAssertGreaterThanOrEqual(last["rxPackets"] as? Int ?? 0, 6)

        // Two more cubes exceed the kernel's 33 tail calls: the packet is lost, and counted as such.
        for i in 33...34 {
            try await core("cube.create", ["name": "c\(i)", "service": "testfwd"])
            try await core("port.add", ["cube": "c\(i)", "port": "p0"])
            try await core("port.add", ["cube": "c\(i)", "port": "p1"])
        }
        try await core("port.set-peer", ["cube": "c32", "port": "p1", "peer": ""])
        try await core("port.set-peer", ["cube": "c32", "port": "p1", "peer": "c33:p0"])
        try await core("port.set-peer", ["cube": "c33", "port": "p1", "peer": "c34:p0"])
        try await core("port.set-peer", ["cube": "c34", "port": "p1", "peer": veth2])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.3.2", count: 2))
        var missed = 0
        for i in 30...34 {
            missed += ((try await stats("c\(i)"))["drops"] as? [String: Int])?["missed-tail-call"] ?? 0
        }
        XCTAssertGreaterThan(missed, 0, "a packet beyond the tail-call limit was dropped silently")
    }

    func testKilledCoreKeepsForwardingAndAdoptsItsDatapath() async throws {
        let (a, _, veth2) = try await hostsJoined(subnet: 4, cubes: 3)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.4.2", count: 1))
        let before = try await stats("c2")["rxPackets"] as? Int ?? 0

        try await assertNoPingLostWhileCoreIsKilled(from: a, to: "10.200.4.2")

        // The restarted core knows the topology, and the counters went on from where they were.
        let cubes = try await cubeList()
        XCTAssertEqual(cubes.compactMap { $0["name"] as? String }.sorted(), ["c1", "c2", "c3"])
        let after = try await stats("c2")["rxPackets"] as? Int ?? 0
        XCTAssertGreaterThanOrEqual(after, before + 600, "counters restarted instead of being adopted")
        // And it can still change it.
        try await core("port.set-peer", ["cube": "c3", "port": "p1", "peer": ""])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.4.2", count: 1))
        try await core("port.set-peer", ["cube": "c3", "port": "p1", "peer": veth2])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.4.2", count: 1))
    }

    /// A wire whose MASTER hands every packet to SLAVE 1, which forwards it.
    static let masterCallingSlave = """
        #include <pcn/cube.h>
        static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
            md->md[1] = 7;
            return call_ingress_program_with_metadata(ctx, md, 1);
        }
        """
    static let slaveForwarding = """
        #include <pcn/cube.h>
        static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
            if (md->md[1] != 7)
                return RX_DROP;
            return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
        }
        """

    func testMicroCubeReloadUnderFlowAndErrorsChangeNothing() async throws {
        let (a, _, _) = try await hostsJoined(subnet: 5, cubes: 1)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.5.2", count: 1))

        // MASTER calls a SLAVE that is not there yet: dropped, and counted as a missed tail call.
        try await core("cube.reload", ["name": "c1", "index": "0", "code": Self.masterCallingSlave].json)
        XCTAssertFalse(try network.ping(from: a, to: "10.200.5.2", count: 1))
        let missed = (try await stats("c1")["drops"] as? [String: Int])?["missed-tail-call"] ?? 0
        XCTAssertGreaterThan(missed, 0)
        try await core("cube.reload", ["name": "c1", "index": "1", "code": Self.slaveForwarding].json)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.5.2"))

        // Reloading both µCubes back and forth during a 3 s flow loses nothing.
        let flood = Task.detached { [network] in
            try network.exec(a, ["ping", "-c", "300", "-i", "0.01", "-W", "1", "10.200.5.2"], timeout: 60)
        }
        let wire = try String(contentsOf: repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf/testfwd/testfwd.c"), encoding: .utf8)
        for round in 0..<6 {
            try await core("cube.reload", ["name": "c1", "index": "0", "code": round.isMultiple(of: 2) ? wire : Self.masterCallingSlave].json)
            try await core("cube.reload", ["name": "c1", "index": "1", "code": Self.slaveForwarding + "\n// round \(round)\n"].json)
        }
        let result = try await flood.value
        XCTAssertTrue(result.stdout.contains("300 packets transmitted, 300 received"), result.stdout)

        // Code that does not compile: the compiler's message and line come back; nothing changes.
        do {
            try await core("cube.reload", ["name": "c1", "index": "0", "code": "#include <pcn/cube.h>\nstatic int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {\n  return nosuch;\n}\n"].json)
            XCTFail("code that does not compile was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("c1-ingress-0.c:3:"), "no file:line in: \(error)")
            XCTAssertTrue("\(error)".contains("nosuch"), "\(error)")
        }
        // Code the verifier rejects (reads the packet without a bounds check): its message comes back.
        do {
            try await core("cube.reload", ["name": "c1", "index": "0", "code": """
                #include <pcn/cube.h>
                static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                    unsigned char *data = pcn_data(ctx);
                    return data[100] ? RX_DROP : pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
                }
                """].json)
            XCTFail("code the verifier must reject was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("rejected"), "\(error)")
            XCTAssertTrue("\(error)".contains("invalid access to packet") || "\(error)".contains("R1 invalid mem access")
                          || "\(error)".contains("invalid"), "no verifier message in: \(error)")
        }
        await expectFailure("cube.reload", ["name": "c1", "index": "64", "code": "x"].json, containing: "out of range")
        XCTAssertTrue(try network.ping(from: a, to: "10.200.5.2", count: 2))
    }

    func testSlowPathPacketInIsDeliveredOrQueuedUntilTheSubscriberComes() async throws {
        let (a, _, _) = try await hostsJoined(subnet: 6, cubes: 1)
        try await core("cube.reload", ["name": "c1", "index": "0", "code": """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                __u32 meta[3] = {11, 22, 33};
                return pcn_pkt_controller_with_metadata(ctx, md, 42, meta);
            }
            """].json)
        try await core("packet-in.subscribe", ["cube": "c1"])
        let macA = try network.exec(a, ["cat", "/sys/class/net/\(network.prefix)an/address"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let header = MemoryLayout<pcn_packet_in>.offset(of: \pcn_packet_in.data)!
        func sourceMAC(_ message: BusMessage) -> String {
            guard message.payload.count >= header + 12 else { return "" }
            return message.payload[(header + 6)..<(header + 12)].map { String(format: "%02x", $0) }.joined(separator: ":")
        }
        // Both namespaces talk (IPv6 neighbour discovery too): wait for a frame that a sent.
        let messages = bus!.messages
        let received = Task { () -> BusMessage? in
            for await message in messages where message.method == "packet-in" && sourceMAC(message) == macA { return message }
            return nil
        }
        XCTAssertFalse(try network.ping(from: a, to: "10.200.6.2", count: 1), "the slow path must not forward")
        let firstPacketIn = await received.value
        let packetIn = try XCTUnwrap(firstPacketIn)
        let cubes = try await cubeList()
        let node = cubes.first { $0["name"] as? String == "c1" }?["node"] as? Int
        XCTAssertGreaterThan(packetIn.payload.count, header + 14)
        packetIn.payload.withUnsafeBytes { raw in
            let record = raw.loadUnaligned(as: (UInt32, UInt16, UInt16, UInt16, UInt16, UInt32, UInt32, UInt32, UInt32, UInt32).self)
            XCTAssertEqual(Int(record.0), node, "cube id")
            XCTAssertEqual(record.1, 0, "arrival port")
            XCTAssertEqual(record.3, 42, "reason")
            XCTAssertEqual(Int(record.6), packetIn.payload.count - header, "captured bytes")
            XCTAssertEqual([record.7, record.8, record.9], [11, 22, 33], "metadata")
        }
        var counters = try await stats("c1")
        XCTAssertGreaterThan(counters["toSlowPath"] as? Int ?? 0, 0)

        // A subscriber that is not there yet: packets wait in pcn-core, then all arrive when it registers.
        try await core("packet-in.subscribe", ["cube": "c1", "subscriber": "late-peer"])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.6.2", count: 2))
        counters = try await stats("c1")
        let queued = counters["slowPathQueued"] as? Int ?? 0
        XCTAssertGreaterThan(queued, 0)
        let peer = try Child("pcn-bus-peer", ["--socket", directory + "/run/bus.sock", "--name", "late-peer"])
        try peer.waitForLine { $0 == "REGISTERED 1" }
        try await eventually { peer.output.filter { $0.hasPrefix("PACKET-IN") }.count >= queued }
        counters = try await stats("c1")
        XCTAssertEqual(counters["slowPathQueued"] as? Int, 0)
        XCTAssertEqual(counters["slowPathDropped"] as? Int, 0)
    }

    /// Sends each packet-in from port 0 back: the first four to p1's egress, the rest to p0's
    /// ingress marked 77. Returns how many went each way once cancelled.
    private static func actAsSlowPath(messages: AsyncStream<BusMessage>, client: BusClient, header: Int) async -> [Int] {
        var egress = 0, ingress = 0
        for await message in messages {
            guard message.method == "packet-in" else { continue }
            let port = message.payload.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt16.self) }
            guard port == 0 else { continue }
            let frame = message.payload[header...]
            // By count, not by time: a loaded machine must not change which way each one goes.
            let toEgress = egress < 4
            let request = toEgress
                ? packetOut(cube: "c1", port: "p1", direction: PCN_DIRECTION_EGRESS, md: (0, 0, 0), frame: frame)
                : packetOut(cube: "c1", port: "p0", direction: PCN_DIRECTION_INGRESS, md: (77, 0, 0), frame: frame)
            do {
                _ = try await client.request("core", method: "packet-out", payload: request)
                if toEgress { egress += 1 } else { ingress += 1 }
            } catch {
                print("packet-out failed: \(error)")
            }
        }
        return [egress, ingress]
    }

    func testSlowPathRoundTripThroughPacketOutToEgressAndToIngress() async throws {
        try await slowPathRoundTrip(type: "TC", subnet: 7)
    }

    func testSlowPathRoundTripThroughPacketOutToEgressAndToIngressXDP() async throws {
        try await slowPathRoundTrip(type: "XDP_SKB", subnet: 17)
    }

    private func slowPathRoundTrip(type: String, subnet: Int) async throws {
        let (a, veth1, _) = try await hostsJoined(subnet: subnet, cubes: 1, type: type)
        // Everything a sends goes to the slow path, unless it comes back from it (md[0] == 77).
        try await core("cube.reload", ["name": "c1", "index": "0", "code": """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                if (md->in_port == 0 && md->md[0] != 77)
                    return pcn_pkt_controller(ctx, md, 5);
                return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
            }
            """].json)
        XCTAssertFalse(try network.ping(from: a, to: "10.200.\(subnet).2", count: 1), "no slow path yet: a's frames stop in the cube")

        // The test is the slow path: each packet-in from port 0 goes back out, to p1's egress for the
        // first four and to p0's ingress (marked 77) for the rest.
        try await core("packet-in.subscribe", ["cube": "c1"])
        let header = MemoryLayout<pcn_packet_in>.offset(of: \pcn_packet_in.data)!
        let messages = bus!.messages
        let client = await owner("testfwd")
        let reinjected = Task.detached { await DatapathTests.actAsSlowPath(messages: messages, client: client, header: header) }
        let result = try network.exec(a, ["ping", "-c", "8", "-i", "0.3", "-W", "2", "10.200.\(subnet).2"])
        XCTAssertTrue(result.stdout.contains("8 packets transmitted, 8 received"), result.stdout)

        // pcn-core's packet-out pair deleted from under it (a script cleaning interfaces): it is
        // recreated, and the slow path carries the pings again within a second.
        let pair = Datapath.packetOutPair(bpffsRoot: bpffsRoot)
        XCTAssertGreaterThan(if_nametoindex(pair.write), 0, "the packet-out pair \(pair.write) is not there")
        _ = try runCommand("/usr/sbin/ip", ["link", "del", pair.write])
        try await Task.sleep(for: .seconds(1))
        XCTAssertGreaterThan(if_nametoindex(pair.write), 0, "the packet-out pair was not recreated")
        let again = try network.exec(a, ["ping", "-c", "3", "-i", "0.3", "-W", "2", "10.200.\(subnet).2"])
        XCTAssertTrue(again.stdout.contains("3 packets transmitted, 3 received"), again.stdout)
        reinjected.cancel()
        let counts = await reinjected.value
        XCTAssertGreaterThanOrEqual(counts[0], 3, "re-injected to egress")
        XCTAssertGreaterThanOrEqual(counts[1], 3, "re-injected to ingress")

        await expectFailure("packet-out", [:], containing: "bad-request")
    }

    func testEgressProgramSeesForwardedAndHostTraffic() async throws {
        try await egressProgram(type: "TC", subnet: 8)
    }

    func testEgressProgramSeesForwardedAndHostTrafficXDP() async throws {
        try await egressProgram(type: "XDP_SKB", subnet: 18)
    }

    private func egressProgram(type: String, subnet: Int) async throws {
        let (a, veth1, _) = try await hostsJoined(subnet: subnet, cubes: 1, type: type)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.\(subnet).2", count: 1))
        let dropAtPort0 = """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                return md->in_port == 0 ? RX_DROP : RX_OK;
            }
            """
        try await core("cube.reload", ["name": "c1", "index": "0", "direction": "egress", "code": dropAtPort0].json)
        // b's answers leave through port 0's netdev: the egress program drops them.
        XCTAssertFalse(try network.ping(from: a, to: "10.200.\(subnet).2", count: 1))
        func serviceDrops() async throws -> Int { (try await stats("c1")["drops"] as? [String: Int])?["service"] ?? 0 }
        let afterForwarded = try await serviceDrops()
        XCTAssertGreaterThan(afterForwarded, 0)

        // What the host stack sends out of that netdev goes through the same program.
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.200.\(subnet).254/24", "dev", veth1])
        _ = try runCommand("/usr/bin/ping", ["-c", "1", "-W", "1", "-I", veth1, "10.200.\(subnet).1"])
        let afterHost = try await serviceDrops()
        XCTAssertGreaterThan(afterHost, afterForwarded, "host traffic did not reach the egress program")

        let passAll = dropAtPort0.replacingOccurrences(of: "RX_DROP : RX_OK", with: "RX_OK : RX_OK")
        try await core("cube.reload", ["name": "c1", "index": "0", "direction": "egress", "code": passAll].json)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.\(subnet).2"))

        // An egress SLAVE: the MASTER hands every packet to egress µCube 1.
        let callSlave = """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                return call_egress_program(ctx, 1);
            }
            """
        try await core("cube.reload", ["name": "c1", "index": "1", "direction": "egress", "code": dropAtPort0].json)
        try await core("cube.reload", ["name": "c1", "index": "0", "direction": "egress", "code": callSlave].json)
        XCTAssertFalse(try network.ping(from: a, to: "10.200.\(subnet).2", count: 1))
        try await core("cube.reload", ["name": "c1", "index": "1", "direction": "egress", "code": passAll].json)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.\(subnet).2"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: bpffsRoot + "/cubes/c1/egress-ucube1"))
    }

    /// The u64 at key 0 of a pinned array table (through bpftool, as an operator would read it).
    private func tableValue(_ pin: String) throws -> UInt64 {
        let result = try runCommand("/usr/sbin/bpftool", ["-j", "map", "lookup", "pinned", pin, "key", "0", "0", "0", "0"])
        XCTAssertEqual(result.status, 0, "\(pin): \(result.stderr)")
        let entry = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        if let formatted = entry?["formatted"] as? [String: Any], let value = formatted["value"] as? Int { return UInt64(value) }
        let bytes = (entry?["value"] as? [String] ?? []).compactMap { UInt8($0.dropFirst(2), radix: 16) }
        return bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    func testTablesArePinnedAndSharedByTheirScope() async throws {
        let (a, _, _) = try await hostsJoined(subnet: 10, cubes: 2)
        let counting = """
            #include <pcn/cube.h>
            PCN_TABLE_SHARED(pair, BPF_MAP_TYPE_ARRAY, __u32, __u64, seen_by_pair, 1);
            PCN_TABLE_PUBLIC(BPF_MAP_TYPE_ARRAY, __u32, __u64, seen_by_all, 1);
            PCN_TABLE_PRIVATE(BPF_MAP_TYPE_ARRAY, __u32, __u64, seen_here, 1);
            static __always_inline void bump(void *table) {
                __u32 zero = 0;
                __u64 *value = bpf_map_lookup_elem(table, &zero);
                if (value)
                    __sync_fetch_and_add(value, 1);
            }
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                bump(&seen_by_pair);
                bump(&seen_by_all);
                bump(&seen_here);
                return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
            }
            """
        for cube in ["c1", "c2"] { try await core("cube.reload", ["name": cube, "index": "0", "code": counting].json) }
        XCTAssertTrue(try network.ping(from: a, to: "10.200.10.2"))
        let shared = bpffsRoot + "/shared/pair/seen_by_pair", everyone = bpffsRoot + "/public/seen_by_all"
        let private1 = bpffsRoot + "/cubes/c1/private-ingress-0/seen_here", private2 = bpffsRoot + "/cubes/c2/private-ingress-0/seen_here"
        // Each cube counts its own packets privately; the pair's table and the public one count both
        // cubes' (read until a quiet moment: the namespaces' own chatter may cross between reads).
        try await eventually {
            let (s, p, one, two) = (try self.tableValue(shared), try self.tableValue(everyone), try self.tableValue(private1), try self.tableValue(private2))
            return one >= 6 && two >= 6 && s == one + two && p == s
        }
        // A reload keeps every table; a shared one goes with its last user.
        try await core("cube.reload", ["name": "c1", "index": "0", "code": counting + "\n// again\n"].json)
        XCTAssertGreaterThanOrEqual(try tableValue(shared), 12)
        for cube in ["c1", "c2"] {
            for port in ["p0", "p1"] { try await core("port.set-peer", ["cube": cube, "port": port, "peer": ""]) }
        }
        try await core("cube.destroy", ["name": "c1"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: shared), "c2 still uses the pair's table")
        try await core("cube.destroy", ["name": "c2"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: bpffsRoot + "/shared"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: everyone))
    }

    func testTheOwningCubeHostGetsItsTablesAsFdsAndNoOneElseDoes() async throws {
        let (a, _, _) = try await hostsJoined(subnet: 13, cubes: 1)
        try await core("cube.reload", ["name": "c1", "index": "0", "code": """
            #include <pcn/cube.h>
            struct {
                __uint(type, BPF_MAP_TYPE_ARRAY);
                __uint(max_entries, 1);
                __type(key, __u32);
                __type(value, __u32);
            } blocked SEC(".maps");
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                __u32 zero = 0;
                __u32 *on = bpf_map_lookup_elem(&blocked, &zero);
                if (on && *on)
                    return RX_DROP;
                return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
            }
            """].json)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.13.2", count: 1))

        func client(_ name: String) async -> BusClient {
            let client = BusClient(socketPath: directory + "/run/bus.sock", name: name, logger: quietLogger)
            client.start()
            _ = await client.waitUntilRegistered(timeout: .seconds(10))
            return client
        }
        let other = await client("cube-host/router")
        defer { other.stop() }
        do {
            _ = try await other.request("core", method: "cube.tables", payload: Array(#"{"name":"c1"}"#.utf8))
            XCTFail("another service's cube-host got c1's tables")
        } catch {
            XCTAssertTrue("\(error)".contains("cube.tables is for cube-host/testfwd only, not cube-host/router"), "\(error)")
        }
        let owner = await client("cube-host/testfwd")
        defer { owner.stop() }
        let answer = try await owner.request("core", method: "cube.tables", payload: Array(#"{"name":"c1","tables":["blocked"]}"#.utf8))
        let described = try JSONSerialization.jsonObject(with: Data(answer.payload)) as? [[String: Any]]
        XCTAssertEqual(described?.map { $0["name"] as? String }, ["blocked"])
        XCTAssertEqual(answer.fds.count, 1)
        let blocked = try BPFMap(adopting: answer.fds[0].take())
        try blocked.update(UInt32(0), UInt32(1))
        XCTAssertFalse(try network.ping(from: a, to: "10.200.13.2", count: 1), "the datapath did not see the table change")
        try blocked.update(UInt32(0), UInt32(0))
        XCTAssertTrue(try network.ping(from: a, to: "10.200.13.2", count: 1))

        let all = try await owner.request("core", method: "cube.tables", payload: Array(#"{"name":"c1"}"#.utf8))
        let names = (try JSONSerialization.jsonObject(with: Data(all.payload)) as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(names, ["blocked", "pcn_port_stats", "pcn_stats"])
        do {
            _ = try await owner.request("core", method: "cube.tables", payload: Array(#"{"name":"c1","tables":["fdb"]}"#.utf8))
            XCTFail("an unknown table was handed out")
        } catch {
            XCTAssertTrue("\(error)".contains("has no table fdb (it has blocked, pcn_port_stats, pcn_stats)"), "\(error)")
        }
    }

    func testDestroyRemovesExactlyItsPins() async throws {
        let (_, veth1, veth2) = try await hostsJoined(subnet: 9, cubes: 2)
        try await core("cube.reload", ["name": "c2", "index": "1", "code": Self.slaveForwarding].json)
        let c1 = bpffsRoot + "/cubes/c1", c2 = bpffsRoot + "/cubes/c2"
        XCTAssertTrue(FileManager.default.fileExists(atPath: c2 + "/maps/pcn_stats"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: c2 + "/ingress"))
        // c2 still has peers (c1:p1 and veth2): one change unlinks them and removes the cube.
        try await core("cube.destroy", ["name": "c2"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: bpffsRoot + "/netdevs/\(veth2)"), "netdev pins left behind")
        XCTAssertFalse(FileManager.default.fileExists(atPath: c2), "cube pins left behind")
        XCTAssertTrue(FileManager.default.fileExists(atPath: c1 + "/ingress"), "another cube's pins were touched")
        XCTAssertTrue(FileManager.default.fileExists(atPath: bpffsRoot + "/netdevs/\(veth1)/ingress"))
        await expectFailure("cube.stats", ["name": "c2"], containing: "does not exist")
    }

    func testCorruptRegistryIsRefusedAndKept() async throws {
        bus?.stop()
        core?.killAndWait(SIGTERM)
        let registry = directory + "/state/datapath.json"
        try "{ not json".write(toFile: registry, atomically: true, encoding: .utf8)
        let result = try runCommand(productsDirectory.appendingPathComponent("pcn-core").path,
                                    ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state",
                                     "--bpffs-root", bpffsRoot, "--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path, "--service-dir", repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf").path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("\(registry) is corrupt"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: registry, encoding: .utf8), "{ not json", "the file must be kept as it was")
        core = nil
        bus = nil
    }

    func testBadRequestsChangeNothing() async throws {
        let (a, veth1, _) = try await hostsJoined(subnet: 2, cubes: 1)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.2.2", count: 1))

        await expectFailure("cube.create", ["name": "c1", "service": "testfwd"], containing: "already exists")
        await expectFailure("cube.create", ["name": "x", "service": "nosuch"], containing: "unknown service 'nosuch'")
        await expectFailure("cube.create", ["name": "x", "service": "testfwd", "type": "XDP_FAST"], containing: "not one of TC, XDP_SKB, XDP_DRV")
        try await core("cube.create", ["name": "x1", "service": "testfwd", "type": "xdp_skb"])
        try await core("port.add", ["cube": "x1", "port": "p0"])
        try await core("cube.create", ["name": "w3", "service": "testfwd"])
        try await core("port.add", ["cube": "w3", "port": "p0"])
        await expectFailure("port.set-peer", ["cube": "x1", "port": "p0", "peer": "w3:p0"], containing: "not possible to connect TC and XDP ports")
        await expectFailure("port.add", ["cube": "ghost", "port": "p0"], containing: "cube 'ghost' does not exist")
        await expectFailure("port.set-peer", ["cube": "c1", "port": "p9", "peer": veth1], containing: "has no port 'p9'")
        await expectFailure("port.set-peer", ["cube": "c1", "port": "p1", "peer": "nosuchdev0"], containing: "netdev 'nosuchdev0' does not exist")
        try await core("cube.create", ["name": "w2", "service": "testfwd"])
        try await core("port.add", ["cube": "w2", "port": "p0"])
        await expectFailure("port.set-peer", ["cube": "w2", "port": "p0", "peer": veth1], containing: "already in use by c1:p0")
        await expectFailure("port.set-peer", ["cube": "w2", "port": "p0", "peer": "c1:p0"], containing: "already connected")
        await expectFailure("cube.destroy", ["name": "ghost"], containing: "cube 'ghost' does not exist")
        // Nothing of the above disturbed the path.
        XCTAssertTrue(try network.ping(from: a, to: "10.200.2.2", count: 2))
    }
}

extension Dictionary where Key == String, Value == String {
    /// The body with numeric strings as JSON numbers (for fields such as a µCube index).
    var json: [String: Any] {
        mapValues { value -> Any in Int(value).map { $0 as Any } ?? value }
    }
}

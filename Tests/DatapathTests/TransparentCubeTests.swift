import Foundation
import IPC
import PCNDatapathABI
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Transparent cubes on netdevs and on cube ports: order, positions, slow path, errors.
final class TransparentCubeTests: CoreTestCase {
    /// The cube ids a packet crossed, oldest first, from a testtrace md[1].
    static func trace(_ value: UInt32) -> [Int] {
        var ids: [Int] = []
        var rest = value
        while rest != 0 {
            ids.insert(Int(rest & 0x3ff), at: 0)
            rest >>= 10
        }
        return ids
    }

    /// Cube names by node.
    private func cubeNames() async throws -> [Int: String] {
        let list = try await cubeList()
        return Dictionary(uniqueKeysWithValues: list.map { ($0["node"] as! Int, $0["name"] as! String) })
    }

    /// The md[1] of every packet-in the test's bus client received, in order (one reader of its stream).
    private final class PacketInLog: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [UInt32] = []
        private var task: Task<Void, Never>?

        init(messages: AsyncStream<BusMessage>) {
            task = Task.detached { [self] in
                for await message in messages {
                    guard message.method == "packet-in", message.payload.count >= 28 else { continue }
                    let md1 = message.payload.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt32.self) }
                    lock.withLock { values.append(md1) }
                }
            }
        }

        var count: Int { lock.withLock { values.count } }
        func since(_ start: Int) -> [UInt32] { lock.withLock { Array(values[start...]) } }
        deinit { task?.cancel() }
    }

    private var packetIns: PacketInLog?

    /// Every testtrace packet-in seen during `body`: the traces, as lists of cube names.
    private func traces(of cubes: [String], during body: () throws -> Void) async throws -> Set<[String]> {
        for cube in cubes { try await core("packet-in.subscribe", ["cube": cube]) }
        let nodes = try await cubeNames()
        if packetIns == nil { packetIns = PacketInLog(messages: bus!.messages) }
        let start = packetIns!.count
        try body()
        try await Task.sleep(for: .milliseconds(300))
        return Set(packetIns!.since(start).map { TransparentCubeTests.trace($0).map { nodes[$0] ?? "?\($0)" } })
    }

    /// a — veth1 [n1, n2] — c1 — p1 [t1, t2, t3] — c2 — veth2 — b, each chain built with a
    /// different position; the traces the packets carry prove the order in each direction.
    private func chainOrder(type: String, subnet: Int) async throws {
        let (a, veth1, _) = try await hostsJoined(subnet: subnet, cubes: 2, type: type)
        let resetTrace = """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                md->md[1] = 0;
                return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
            }
            """
        for cube in ["c1", "c2"] { try await core("cube.reload", ["name": cube, "index": "0", "code": resetTrace].json) }
        for tcube in ["n1", "n2", "t1", "t2", "t3"] {
            try await core("cube.create", ["name": tcube, "service": "testtrace", "type": type, "transparent": true])
        }
        try await core("cube.attach", ["cube": "n2", "to": veth1])
        try await core("cube.attach", ["cube": "n1", "to": veth1, "before": "n2"])
        try await core("cube.attach", ["cube": "t2", "to": "c1:p1"])
        try await core("cube.attach", ["cube": "t3", "to": "c1:p1", "position": "last"])
        try await core("cube.attach", ["cube": "t1", "to": "c1:p1", "position": "first"])
        func chainList(_ point: String) async throws -> [String] {
            try JSONSerialization.jsonObject(with: Data(try await core("chain.list", ["at": point]).payload)) as! [String]
        }
        let netdevChain = try await chainList(veth1)
        let portChain = try await chainList("c1:p1")
        XCTAssertEqual(netdevChain, ["n1", "n2"])
        XCTAssertEqual(portChain, ["t1", "t2", "t3"])

        let seen = try await traces(of: ["n1", "n2", "t1", "t2", "t3"]) {
            XCTAssertTrue(try network.ping(from: a, to: "10.200.\(subnet).2"))
        }
        // Netdev ingress: cubes[0] first. Port egress (leaving c1): innermost first. Port ingress
        // (into c1): outermost first. Netdev egress: the reverse of its ingress.
        for expected in [["n1", "n2"], ["t1", "t2", "t3"], ["t3", "t2", "t1"], ["n2", "n1"]] {
            XCTAssertTrue(seen.contains(expected), "\(type): no packet crossed \(expected); traces seen: \(seen.sorted { $0.count > $1.count })")
        }
        for trace in seen where trace.count == 3 {
            XCTAssertTrue(trace == ["t1", "t2", "t3"] || trace == ["t3", "t2", "t1"], "\(type): out of order: \(trace)")
        }
        // Per-direction counters of a transparent cube.
        let t2 = try await stats("t2")
        let ports = try XCTUnwrap(t2["ports"] as? [String: [String: Int]])
        XCTAssertGreaterThanOrEqual(ports["ingress"]?["rxPackets"] ?? 0, 3)
        XCTAssertGreaterThanOrEqual(ports["egress"]?["txPackets"] ?? 0, 3)

        // Detaching takes a cube out of the path at once; the rest of the chain keeps its order.
        try await core("cube.detach", ["name": "t2"])
        let after = try await traces(of: []) {
            XCTAssertTrue(try network.ping(from: a, to: "10.200.\(subnet).2"))
        }
        XCTAssertTrue(after.contains(["t1", "t3"]) && after.contains(["t3", "t1"]), "\(after)")
        XCTAssertFalse(after.contains { $0.contains("t2") })
        XCTAssertTrue(FileManager.default.fileExists(atPath: bpffsRoot + "/cubes/t2/transparent-ingress"),
                      "a detached cube keeps its programs (it can be attached again)")
        try await core("cube.destroy", ["name": "t2"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: bpffsRoot + "/cubes/t2"))
        // An attached cube is detached by its destruction.
        try await core("cube.destroy", ["name": "t3"])
        let remaining = try await chainList("c1:p1")
        XCTAssertEqual(remaining, ["t1"])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.\(subnet).2"))
    }

    func testTransparentChainOrderTC() async throws {
        try await chainOrder(type: "TC", subnet: 20)
    }

    func testTransparentChainOrderXDP() async throws {
        try await chainOrder(type: "XDP_SKB", subnet: 21)
    }

    /// Sends every packet-in of the given transparent cubes on to their next hop, in their direction.
    private static func forwardFromSlowPath(messages: AsyncStream<BusMessage>, client: BusClient,
                                            names: [Int: String], header: Int) async -> Int {
        var sent = 0
        for await message in messages {
            guard message.method == "packet-in" else { continue }
            let (node, direction) = message.payload.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: 0, as: UInt32.self), $0.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            }
            guard let cube = names[Int(node)] else { continue }
            let payload = CoreTestCase.packetOut(cube: cube, port: "", direction: pcn_direction(UInt32(direction)), md: (0, 0, 0),
                                                 frame: message.payload[header...])
            if (try? await client.request("core", method: "packet-out", payload: payload)) != nil { sent += 1 }
        }
        return sent
    }

    /// Transparent cubes that send everything to the slow path, which sends each packet on to the
    /// cube's next hop: on a cube port (next: the cube, or its peer), on a netdev with a cube behind
    /// it (next: the cube, or the wire) and on a host netdev (next: the host stack, or the wire).
    func testPacketOutOfATransparentCubeGoesOnToItsNextHop() async throws {
        let (a, veth1, _) = try await hostsJoined(subnet: 22, cubes: 1)
        let slowPathOnly = """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                return pcn_pkt_controller(ctx, md, 1);
            }
            """
        for tcube in ["s1", "s2", "s3"] {
            try await core("cube.create", ["name": tcube, "service": "testtrace", "transparent": true])
            try await core("cube.reload", ["name": tcube, "index": "0", "code": slowPathOnly].json)
            try await core("packet-in.subscribe", ["cube": tcube])
        }
        try await core("cube.attach", ["cube": "s1", "to": "c1:p1"])
        try await core("cube.attach", ["cube": "s2", "to": veth1])
        // A host netdev: c's namespace talks to the root namespace's own address through s3.
        let (c, veth3) = try network.host("c", address: "10.200.23.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.200.23.254/24", "dev", veth3])
        try await core("cube.attach", ["cube": "s3", "to": veth3])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.22.2", count: 1), "no slow path yet: the frames stop")

        let names = try await cubeNames()
        let messages = bus!.messages
        let client = await owner("testtrace")
        let header = MemoryLayout<pcn_packet_in>.offset(of: \pcn_packet_in.data)!
        let relay = Task.detached { await TransparentCubeTests.forwardFromSlowPath(messages: messages, client: client, names: names, header: header) }
        let result = try network.exec(a, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.200.22.2"])
        XCTAssertTrue(result.stdout.contains("5 packets transmitted, 5 received"), result.stdout)
        let host = try network.exec(c, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.200.23.254"])
        XCTAssertTrue(host.stdout.contains("5 packets transmitted, 5 received"), host.stdout)
        relay.cancel()
        let relayed = await relay.value
        XCTAssertGreaterThanOrEqual(relayed, 20 + 10)
        for tcube in ["s1", "s2", "s3"] {
            let counters = try await stats(tcube)
            XCTAssertGreaterThanOrEqual(counters["toSlowPath"] as? Int ?? 0, 10, tcube)
        }
    }

    func testAttachRequestsAreCheckedAndChangeNothing() async throws {
        let (a, veth1, veth2) = try await hostsJoined(subnet: 24, cubes: 1)
        try await core("cube.create", ["name": "t1", "service": "testtrace", "transparent": true])
        try await core("cube.create", ["name": "t2", "service": "testtrace", "transparent": true])
        try await core("cube.create", ["name": "x1", "service": "testtrace", "type": "XDP_SKB", "transparent": true])
        try await core("cube.attach", ["cube": "t1", "to": "c1:p0"])

        await expectFailure("cube.attach", ["cube": "t1", "to": "c1:p1"], containing: "already attached to 'c1:p0'")
        await expectFailure("cube.attach", ["cube": "t2", "to": "c1:p0"], containing: "auto position")
        await expectFailure("cube.attach", ["cube": "t2", "to": "c1:p0", "after": "ghost"], containing: "'ghost' is not in this chain")
        await expectFailure("cube.attach", ["cube": "t2", "to": "c1:p0", "position": "middle"], containing: "not first, last or auto")
        await expectFailure("cube.attach", ["cube": "t2", "to": "c1:p0", "position": "first", "after": "t1"], containing: "at most one")
        await expectFailure("cube.attach", ["cube": "t2", "to": "c1:p9"], containing: "has no port 'p9'")
        await expectFailure("cube.attach", ["cube": "t2", "to": "nosuchdev0"], containing: "netdev 'nosuchdev0' does not exist")
        await expectFailure("cube.attach", ["cube": "c1", "to": veth1], containing: "standard cube")
        await expectFailure("cube.attach", ["cube": "x1", "to": "c1:p1"], containing: "type must match")
        await expectFailure("cube.attach", ["cube": "x1", "to": veth2], containing: "the types must match")
        await expectFailure("port.add", ["cube": "t2", "port": "p0"], containing: "transparent cube")
        await expectFailure("port.set-peer", ["cube": "c1", "port": "p1", "peer": "t2:p0"], containing: "transparent cube")
        await expectFailure("cube.detach", ["name": "t2"], containing: "not attached")
        await expectFailure("cube.reload", ["name": "t1", "index": "1", "code": "x"].json, containing: "index must be 0")
        // Code the compiler refuses for a transparent cube: nothing changes.
        await expectFailure("cube.reload", ["name": "t1", "index": "0", "code": "#include <pcn/cube.h>\nbroken"].json, containing: "failed")
        let chain = try JSONSerialization.jsonObject(with: Data(try await core("chain.list", ["at": "c1:p0"]).payload)) as? [String]
        XCTAssertEqual(chain, ["t1"])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.24.2", count: 2))
    }
}

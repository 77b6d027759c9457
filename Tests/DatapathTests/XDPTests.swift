import Foundation
import IPC
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// XDP cubes: both attach modes on veth, real TCP and UDP through them, µCubes, restart.
final class XDPTests: CoreTestCase {
    /// Runs an iperf3 flow from `client` to `server` (address `address`); returns iperf3's JSON end summary.
    private func iperf(from client: String, to server: String, address: String, udp: Bool) throws -> [String: Any] {
        let result = try network.iperf3(from: client, to: server, address: address, udp: udp)
        XCTAssertEqual(result.status, 0, result.output)
        return try XCTUnwrap(result.end, result.output)
    }

    /// TCP and UDP from a namespace's own stack through an XDP redirect need the checksum done
    /// before the frame leaves that stack (docs/datapath.md, "XDP on veth").
    private func checksumsInSoftware(_ namespaces: [String]) throws {
        for namespace in namespaces {
            let result = try network.exec(namespace, ["ethtool", "-K", namespace + "n", "tx", "off"])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
    }

    func testXDPGenericChainCarriesPingTCPAndUDP() async throws {
        let (a, _, _) = try await hostsJoined(subnet: 30, cubes: 3, type: "XDP_SKB")
        let b = network.prefix + "b"
        try checksumsInSoftware([a, b])
        XCTAssertTrue(try network.ping(from: a, to: "10.200.30.2"))

        let tcp = try iperf(from: a, to: b, address: "10.200.30.2", udp: false)
        let received = (tcp["sum_received"] as? [String: Any])?["bytes"] as? Int ?? 0
        XCTAssertGreaterThan(received, 1_000_000, "TCP through three XDP cubes moved \(received) bytes")

        let udp = try iperf(from: a, to: b, address: "10.200.30.2", udp: true)
        let sum = try XCTUnwrap(udp["sum"] as? [String: Any])
        XCTAssertGreaterThan(sum["packets"] as? Int ?? 0, 1000)
        XCTAssertEqual(sum["lost_packets"] as? Int, 0, "UDP datagrams lost: \(sum)")

        // The counters saw it, per cube and per port.
        let middle = try await stats("c2")
        XCTAssertGreaterThan(middle["rxPackets"] as? Int ?? 0, 2000)
        XCTAssertEqual((middle["drops"] as? [String: Int])?.values.reduce(0, +), 0)

        // µCubes in XDP: the MASTER hands each packet to a SLAVE, with its metadata.
        try await core("cube.reload", ["name": "c2", "index": "1", "code": DatapathTests.slaveForwarding].json)
        try await core("cube.reload", ["name": "c2", "index": "0", "code": DatapathTests.masterCallingSlave].json)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.30.2"))
    }

    func testXDPDriverModeOnVeth() async throws {
        let (a, veth1) = try network.host("a", address: "10.200.31.1/24")
        let (b, veth2) = try network.host("b", address: "10.200.31.2/24")
        // A frame redirected into a veth in driver mode is delivered only if the peer end can take
        // XDP frames: GRO on the namespace ends makes it so.
        for namespace in [a, b] {
            let result = try network.exec(namespace, ["ethtool", "-K", namespace + "n", "gro", "on"])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        try checksumsInSoftware([a, b])
        try await chain(2, from: veth1, to: veth2, type: "XDP_DRV")
        let link = try runCommand("/usr/bin/ip", ["-d", "link", "show", veth1]).stdout
        XCTAssertTrue(link.contains("xdp ") || link.contains("xdpdrv"), "no driver-mode XDP on \(veth1): \(link)")
        XCTAssertFalse(link.contains("xdpgeneric"), link)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.31.2"))
        let tcp = try iperf(from: a, to: b, address: "10.200.31.2", udp: false)
        XCTAssertGreaterThan((tcp["sum_received"] as? [String: Any])?["bytes"] as? Int ?? 0, 1_000_000)
    }

    func testKilledCoreAdoptsXDPCubesAndTheyKeepForwarding() async throws {
        let (a, veth1, _) = try await hostsJoined(subnet: 32, cubes: 2, type: "XDP_SKB")
        XCTAssertTrue(try network.ping(from: a, to: "10.200.32.2", count: 1))
        try await assertNoPingLostWhileCoreIsKilled(from: a, to: "10.200.32.2")
        let link = try runCommand("/usr/bin/ip", ["-d", "link", "show", veth1]).stdout
        XCTAssertTrue(link.contains("xdpgeneric"), link)
        let cubes = try await cubeList()
        XCTAssertEqual(cubes.compactMap { $0["type"] as? String }, ["XDP_SKB", "XDP_SKB"])
        // Removing the peer detaches the XDP program from the netdev.
        try await core("port.set-peer", ["cube": "c1", "port": "p0", "peer": ""])
        let after = try runCommand("/usr/bin/ip", ["-d", "link", "show", veth1]).stdout
        XCTAssertFalse(after.contains("xdpgeneric"), after)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bpffsRoot + "/netdevs/\(veth1)"))
    }
}

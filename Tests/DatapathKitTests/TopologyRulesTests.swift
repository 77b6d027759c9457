@testable import DatapathKit
import PCNDatapathABI
import PCNProtocol
import XCTest

/// The topology's rules as pure functions: no kernel, no root.
final class TopologyRulesTests: XCTestCase {
    private let netdevs: Set<String> = ["veth1", "veth2"]
    private func exists(_ device: String) -> Bool { netdevs.contains(device) }

    private func configure(_ topology: inout Topology, _ name: String, type: String = "TC", ports: [(String, String)]?,
                           lenient: Bool = false, transparent: Bool = false, shadow: Bool? = nil, span: Bool? = nil) throws -> [(port: String, reason: String)] {
        try topology.configure(CubeConfigure(name: name, service: "testfwd", type: type, transparent: transparent, loglevel: "INFO",
                                             ports: ports?.map { CubeConfigure.Port(name: $0.0, peer: $0.1) }, lenientPeers: lenient,
                                             shadow: shadow, span: span),
                               netdevExists: exists)
    }

    func testShadowCubesHaveTwinsThatOnlyTheirNamespaceSendsInto() throws {
        var topology = Topology()
        _ = try configure(&topology, "r", ports: [("p0", "veth1"), ("p1", "")], shadow: true)
        let twin = Topology.twinName(cube: "r", port: "p1")
        XCTAssertEqual(twin.count, 11)
        XCTAssertTrue(twin.hasPrefix("pcs"))
        XCTAssertNotEqual(twin, Topology.twinName(cube: "r", port: "p0"))
        XCTAssertEqual(Set(topology.shadowTwins().keys), [twin, Topology.twinName(cube: "r", port: "p0")])
        XCTAssertTrue(topology.netdevsInUse().isSuperset(of: topology.shadowTwins().keys))
        // What the namespace sends through p1's twin enters the cube as port PCN_MAX_PORTS + 1.
        let entries = topology.entries(ofNetdev: twin)
        XCTAssertEqual(entries.ingress, .node(topology.cubes["r"]!.node, port: Int(PCN_MAX_PORTS) + 1))
        XCTAssertEqual(entries.egress, .none)
        XCTAssertEqual(topology.describe(topology.cubes["r"]!).shadowNamespace, "pcn-r")

        // A twin is no peer; shadow cannot change; span needs shadow and TC; port names are interface names.
        let shadowNetdevs = netdevs.union([twin])
        XCTAssertThrowsError(try topology.checkPeer(.netdev(twin), cube: "r", port: "p1", netdevExists: { shadowNetdevs.contains($0) })) {
            XCTAssertTrue("\($0)".contains("shadow twin of r:p1"), "\($0)")
        }
        XCTAssertThrowsError(try configure(&topology, "r", ports: [("p0", "veth1")], shadow: false)) {
            XCTAssertEqual(($0 as? DatapathError)?.path, "shadow")
        }
        var copy = topology
        XCTAssertThrowsError(try configure(&copy, "r", ports: [("p0", "veth1"), ("a-port-name-of-16", "")], shadow: true)) {
            XCTAssertEqual(($0 as? DatapathError)?.path, "ports[name='a-port-name-of-16']/name")
        }
        XCTAssertThrowsError(try configure(&copy, "plain", ports: [], span: true)) { XCTAssertEqual(($0 as? DatapathError)?.path, "span") }
        XCTAssertThrowsError(try configure(&copy, "x", type: "XDP_SKB", ports: [], shadow: true, span: true)) {
            XCTAssertTrue("\($0)".contains("use a TC cube"), "\($0)")
        }
        _ = try configure(&topology, "r", ports: [("p0", "veth1"), ("p1", "")], shadow: true, span: true)
        XCTAssertEqual(topology.cubes["r"]?.span, true)
        // Without shadow a cube has no twins.
        _ = try configure(&topology, "plain", ports: [("p0", "veth2")])
        XCTAssertEqual(topology.shadowTwins().count, 2)
    }

    /// A port's peer that vanished (its netdev deleted) does not make a change of another port fail
    /// when the request says the peer is the one the port had; a new peer is still checked.
    func testAKeptPeerThatVanishedLeavesThePortUnlinked() throws {
        var topology = Topology()
        _ = try configure(&topology, "a", ports: [("p0", "veth1"), ("p1", "veth2")])
        topology.cubes["a"]!.ports[1].peer = .none   // as pcn-core forgets the peer of a netdev that vanished
        let request = CubeConfigure(name: "a", service: "testfwd", type: "TC", transparent: false, loglevel: "INFO",
                                    ports: [.init(name: "p0", peer: "veth1"), .init(name: "p1", peer: "gone0", kept: true)])
        let unlinked = try topology.configure(request, netdevExists: exists)
        XCTAssertEqual(unlinked.map(\.port), ["p1"])
        XCTAssertEqual(topology.cubes["a"]?.port("p1")?.peer, Peer.none)
        var copy = topology
        XCTAssertThrowsError(try configure(&copy, "a", ports: [("p0", "veth1"), ("p1", "gone0")])) {
            XCTAssertTrue("\($0)".contains("netdev 'gone0' does not exist"), "\($0)")
        }
    }

    func testConfigureCreatesPortsAndLinksBothEnds() throws {
        var topology = Topology()
        _ = try configure(&topology, "a", ports: [("p0", "veth1"), ("p1", "")])
        _ = try configure(&topology, "b", ports: [("p0", "a:p1")])
        XCTAssertEqual(topology.cubes["a"]?.port("p0")?.peer, .netdev("veth1"))
        XCTAssertEqual(topology.cubes["a"]?.port("p1")?.peer, .cube("b", "p0"), "the other end follows")
        XCTAssertEqual(topology.cubes["a"]?.ports.map(\.index), [0, 1])
        XCTAssertNotEqual(topology.cubes["a"]?.node, topology.cubes["b"]?.node)

        // A port removed releases the other end; a new port takes the lowest free index.
        _ = try configure(&topology, "a", ports: [("p0", "veth1"), ("p2", "")])
        XCTAssertEqual(topology.cubes["b"]?.port("p0")?.peer, Peer.none)
        XCTAssertEqual(topology.cubes["a"]?.port("p2")?.index, 1)
    }

    func testAPeerMovesBetweenPortsInOneChange() throws {
        var topology = Topology()
        _ = try configure(&topology, "a", ports: [("p0", "veth1"), ("p1", "")])
        _ = try configure(&topology, "a", ports: [("p0", ""), ("p1", "veth1")])
        XCTAssertEqual(topology.cubes["a"]?.port("p1")?.peer, .netdev("veth1"))
        XCTAssertEqual(topology.cubes["a"]?.port("p0")?.peer, Peer.none)
    }

    func testRefusalsNameWhatIsWrongAndWhere() throws {
        var topology = Topology()
        _ = try configure(&topology, "a", ports: [("p0", "veth1")])
        _ = try configure(&topology, "x", type: "XDP_SKB", ports: [("p0", "")])
        let cases: [(String, String, [(String, String)], String, String?)] = [
            ("b", "TC", [("p0", "veth1")], "already in use by a:p0", "ports[name='p0']/peer"),
            ("b", "TC", [("p0", "nosuchdev")], "netdev 'nosuchdev' does not exist", "ports[name='p0']/peer"),
            ("b", "TC", [("p0", "x:p0")], "not possible to connect TC and XDP ports", "ports[name='p0']/peer"),
            ("b", "TC", [("p0", "ghost:p0")], "peer cube 'ghost' does not exist", "ports[name='p0']/peer"),
            ("b", "TC", [("p0", "b:p0")], "cannot be its own peer", "ports[name='p0']/peer"),
            ("b", "TC", [("p0", ""), ("p0", "")], "port 'p0' is given twice", nil),
            ("b", "TC", [("bad name", "")], "port name 'bad name' is not valid", nil),
            ("b", "FAST", [], "not one of TC, XDP_SKB, XDP_DRV", nil),
            ("a", "XDP_SKB", [("p0", "veth1")], "its type cannot change", nil),
        ]
        for (name, type, ports, words, path) in cases {
            var copy = topology
            XCTAssertThrowsError(try configure(&copy, name, type: type, ports: ports), "\(name) \(ports)") { error in
                let error = error as? DatapathError
                XCTAssertTrue(error?.description.contains(words) == true, "\(error?.description ?? "?") lacks '\(words)'")
                XCTAssertEqual(error?.path, path, words)
            }
        }
    }

    func testLenientPeersAreLeftUnsetAndReported() throws {
        var topology = Topology()
        let unlinked = try configure(&topology, "a", ports: [("p0", "later:p0"), ("p1", "veth2")], lenient: true)
        XCTAssertEqual(unlinked.map(\.port), ["p0"])
        XCTAssertEqual(topology.cubes["a"]?.port("p0")?.peer, Peer.none)
        XCTAssertEqual(topology.cubes["a"]?.port("p1")?.peer, .netdev("veth2"))
    }

    func testDestroyUnlinksAndDetachesTransparentCubes() throws {
        var topology = Topology()
        _ = try configure(&topology, "a", ports: [("p0", "veth1"), ("p1", "")])
        _ = try configure(&topology, "b", ports: [("p0", "a:p1")])
        topology.cubes["d1"] = Topology.Cube(name: "d1", service: "ddosmitigator", type: .tc, transparent: true, node: 90)
        topology.cubes["d1"]!.parent = .cube("b", "p0")
        topology.cubes["b"]!.ports[0].tcubes = ["d1"]
        // As Polycube: the transparent cube is detached and stays.
        var copy = topology
        try copy.destroy(cube: "b")
        XCTAssertNil(copy.cubes["b"])
        XCTAssertNotNil(copy.cubes["d1"])
        XCTAssertNil(copy.cubes["d1"]?.parent)
        copy = topology
        try copy.removePort(cube: "b", port: "p0")
        XCTAssertNil(copy.cubes["d1"]?.parent)
        XCTAssertEqual(copy.cubes["a"]?.port("p1")?.peer, Peer.none)
        try topology.destroy(cube: "a")
        XCTAssertNil(topology.cubes["a"])
        XCTAssertEqual(topology.cubes["b"]?.port("p0")?.peer, Peer.none, "the other end is released with the cube")
    }
}

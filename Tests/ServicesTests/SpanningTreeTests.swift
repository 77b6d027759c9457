@testable import Services
import ServiceKit
import XCTest

/// The bridge's 802.1D instance in-process: BPDUs on the wire format, and three bridges in a
/// triangle exchanging them on a simulated clock.
final class SpanningTreeTests: XCTestCase {
    func testBPDUFormat() throws {
        var bpdu = BPDU(kind: .config)
        bpdu.topologyChange = true
        bpdu.root = BridgeID(priority: 4096, mac: MACAddress("02:00:00:00:00:01")!)
        bpdu.rootPathCost = 8
        bpdu.bridge = BridgeID(priority: 32768, mac: MACAddress("02:00:00:00:00:02")!)
        bpdu.port = 0x8002
        bpdu.messageAge = 1
        bpdu.maxAge = 6
        bpdu.helloTime = 1
        bpdu.forwardDelay = 2
        let frame = bpdu.frame(source: MACAddress("02:00:00:00:00:02")!, vlan: nil)
        XCTAssertEqual(frame.count, 60)
        XCTAssertEqual(Array(frame[12..<17]), [0x00, 0x26, 0x42, 0x42, 0x03], "802.3 length 38, LLC 42 42 03")
        XCTAssertEqual(Array(frame[17..<21]), [0, 0, 0, 0], "protocol 0, version 0, configuration")
        XCTAssertEqual(frame[21], 0x01, "topology change flag")
        XCTAssertEqual(Array(frame[22..<30]), [0x10, 0x00, 0x02, 0, 0, 0, 0, 0x01], "root: priority then MAC")
        XCTAssertEqual(BPDU(frame: frame), bpdu)
        let tagged = bpdu.frame(source: MACAddress("02:00:00:00:00:02")!, vlan: 20)
        XCTAssertEqual(Array(tagged[12..<16]), [0x81, 0x00, 0x00, 20])
        XCTAssertEqual(BPDU(frame: tagged), bpdu)
        let notification = BPDU(kind: .topologyChange)
        XCTAssertEqual(BPDU(frame: notification.frame(source: MACAddress("02:00:00:00:00:03")!, vlan: nil))?.kind, .topologyChange)
        XCTAssertNil(BPDU(frame: Array(frame.prefix(20))), "truncated")
        var other = frame
        other[5] = 0x0e
        XCTAssertNil(BPDU(frame: other), "not the bridge group address")
        XCTAssertEqual(bpdu.root.description, "1000.020000000001")
    }

    /// Links: (bridge, port) <-> (bridge, port).
    private final class Network {
        var trees: [SpanningTree] = []
        var links: [(Int, Int, Int, Int)] = []
        var now = 0.0
        var flushes = 0
        var sent = 0

        func peer(of bridge: Int, _ port: Int) -> (Int, Int)? {
            for (a, pa, b, pb) in links {
                if a == bridge && pa == port { return (b, pb) }
                if b == bridge && pb == port { return (a, pa) }
            }
            return nil
        }

        func deliver(_ outputs: [SpanningTree.Output], from bridge: Int) {
            var queue = outputs.map { (bridge, $0) }
            while !queue.isEmpty {
                let (source, output) = queue.removeFirst()
                switch output {
                case .flush: flushes += 1
                case .send(let port, let bpdu):
                    sent += 1
                    guard let (target, targetPort) = peer(of: source, port) else { continue }
                    let frame = bpdu.frame(source: MACAddress(bytes: [2, 0, 0, 0, UInt8(source), UInt8(port)]), vlan: nil)
                    let heard = BPDU(frame: frame)!
                    queue += trees[target].received(heard, on: targetPort, now: now).map { (target, $0) }
                }
            }
        }

        func run(seconds: Int) {
            for _ in 0..<seconds {
                now += 1
                for (index, tree) in trees.enumerated() { deliver(tree.tick(now: now), from: index) }
            }
        }
    }

    private func bridge(_ index: Int, priority: UInt16) -> BridgeID {
        BridgeID(priority: priority, mac: MACAddress(bytes: [2, 0, 0, 0, 0, UInt8(index + 1)]))
    }

    private let timers = SpanningTree.Timers(helloTime: 1, maxAge: 6, forwardDelay: 2)

    private func port(_ number: Int, enabled: Bool = true) -> SpanningTree.PortSettings {
        .init(id: 0x8000 | UInt16(number + 1), pathCost: 4, enabled: enabled)
    }

    /// Bridge 0 (priority 4096) is root; 1 and 2 (equal priority, 1 with the lower MAC) each reach it
    /// directly; on the 1–2 segment 1 is designated, so 2's port there blocks. Ports: 0 and 1.
    func testTriangleConvergesAndRecovers() {
        let network = Network()
        network.trees = [SpanningTree(bridge: bridge(0, priority: 4096), timers: timers),
                         SpanningTree(bridge: bridge(1, priority: 32768), timers: timers),
                         SpanningTree(bridge: bridge(2, priority: 32768), timers: timers)]
        // 0:0 - 1:0, 1:1 - 2:1, 2:0 - 0:1
        network.links = [(0, 0, 1, 0), (1, 1, 2, 1), (2, 0, 0, 1)]
        for (index, tree) in network.trees.enumerated() {
            network.deliver(tree.configure(bridge: bridge(index, priority: index == 0 ? 4096 : 32768), timers: timers,
                                           ports: [0: port(0), 1: port(1)], now: 0), from: index)
        }
        network.run(seconds: 8)
        let (b0, b1, b2) = (network.trees[0], network.trees[1], network.trees[2])
        XCTAssertTrue(b0.isRoot)
        XCTAssertEqual(b1.root, b0.bridge)
        XCTAssertEqual(b2.root, b0.bridge)
        XCTAssertEqual(b1.rootPort, 0)
        XCTAssertEqual(b2.rootPort, 0)
        XCTAssertEqual(b1.rootPathCost, 4)
        XCTAssertEqual(b1.ports[1]?.role, .designated)
        XCTAssertEqual(b2.ports[1]?.role, .alternate)
        XCTAssertEqual(b2.ports[1]?.state, .blocking)
        for (tree, index) in [(b0, 0), (b0, 1), (b1, 0), (b1, 1), (b2, 0)] {
            XCTAssertEqual(tree.ports[index]?.state, .forwarding, "\(tree.bridge) port \(index)")
        }
        XCTAssertGreaterThan(network.flushes, 0, "ports that start forwarding are a topology change")

        // Quiet once converged: hellos from the root and their relays, nothing more.
        let before = network.sent
        network.run(seconds: 10)
        XCTAssertLessThanOrEqual(network.sent - before, 10 * 4, "about one BPDU per designated port per hello")

        // The 2–0 link goes: 2's blocked port becomes its root port and forwards after 2 × forward delay.
        network.links.removeLast()
        network.deliver(b2.configure(bridge: b2.bridge, timers: timers, ports: [0: port(0, enabled: false), 1: port(1)], now: network.now), from: 2)
        network.deliver(b0.configure(bridge: b0.bridge, timers: timers, ports: [0: port(0), 1: port(1, enabled: false)], now: network.now), from: 0)
        XCTAssertEqual(b2.rootPort, 1)
        XCTAssertEqual(b2.rootPathCost, 8)
        XCTAssertEqual(b2.ports[1]?.state, .listening)
        network.run(seconds: 2)
        XCTAssertEqual(b2.ports[1]?.state, .learning)
        network.run(seconds: 2)
        XCTAssertEqual(b2.ports[1]?.state, .forwarding)
        XCTAssertEqual(b2.ports[0]?.state, .disabled)
    }

    /// The root goes silent: its information ages out after max age and the next best bridge takes over.
    func testInformationAgesOut() {
        let network = Network()
        network.trees = [SpanningTree(bridge: bridge(0, priority: 4096), timers: timers),
                         SpanningTree(bridge: bridge(1, priority: 32768), timers: timers)]
        network.links = [(0, 0, 1, 0)]
        for (index, tree) in network.trees.enumerated() {
            network.deliver(tree.configure(bridge: tree.bridge, timers: timers, ports: [0: port(0), 1: port(1)], now: 0), from: index)
        }
        network.run(seconds: 3)
        XCTAssertEqual(network.trees[1].root, network.trees[0].bridge)
        network.links = []
        network.run(seconds: 8)
        XCTAssertTrue(network.trees[1].isRoot, "max age 6 passed without a BPDU")
    }
}

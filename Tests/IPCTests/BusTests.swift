import BPFKit
import CBPF
import CShims
import Foundation
import IPC
import Logging
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The bus with real sockets and real processes: an in-process hub (whose log the test reads) or a
/// real pcn-core, the test process as one client, `pcn-bus-peer` processes as the others.
final class BusTests: XCTestCase {
    var directory = ""
    var socketPath: String { directory + "/bus.sock" }

    override func setUp() {
        directory = makeTemporaryDirectory()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func startHub(limits: HubLimits = HubLimits(), capture: LogCapture = LogCapture()) throws -> BusHub {
        let hub = BusHub(socketPath: socketPath, limits: limits, logger: capture.logger("hub"))
        try hub.start()
        return hub
    }

    private func client(_ name: String) async throws -> BusClient {
        let client = BusClient(socketPath: socketPath, name: name, logger: quietLogger)
        client.start()
        let registered = await client.waitUntilRegistered(timeout: .seconds(10))
        XCTAssertTrue(registered, "\(name) did not register")
        return client
    }

    private func peer(_ name: String, mode: String = "serve", extra: [String] = []) throws -> Child {
        let child = try Child("pcn-bus-peer", ["--socket", socketPath, "--name", name, "--mode", mode] + extra)
        try child.waitForLine { $0 == "REGISTERED 1" }
        return child
    }

    /// The registration table is the hub's own: a client that registered before an in-process
    /// endpoint (pcn-core's `core`) existed is seen by it, and every later registration is announced
    /// to it (it is registered by the time `localEndpoint` returns).
    func testAnEndpointSeesWhoRegisteredBeforeIt() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let early = try await client("cube-host/early")
        defer { early.stop() }
        let local = hub.localEndpoint(name: "core")
        XCTAssertTrue(hub.isRegistered("cube-host/early"), "a registration before the endpoint existed is not in the table")
        XCTAssertTrue(hub.isRegistered("core"), "the in-process endpoint is not registered once returned")
        XCTAssertFalse(hub.isRegistered("cube-host/late"))
        let notices = local.messages
        let announced = Task { () -> String? in
            for await message in notices where message.method == HubMethod.registered {
                return (try? message.decode(HubNotice.self))?.name
            }
            return nil
        }
        let late = try await client("cube-host/late")
        defer { late.stop() }
        let name = await announced.value
        XCTAssertEqual(name, "cube-host/late")
        XCTAssertTrue(hub.isRegistered("cube-host/late"))
        late.stop()
        try await eventually { !hub.isRegistered("cube-host/late") }
    }

    func testRoutingAmongThreeProcesses() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let b = try peer("peer-b")
        let c = try peer("peer-c")
        let a = try await client("tester")
        defer { a.stop() }

        let echoed = try await a.request("peer-b", method: "echo", payload: Array("hello".utf8))
        XCTAssertEqual(echoed.source, "peer-b")
        XCTAssertEqual(String(decoding: echoed.payload, as: UTF8.self), "hello")

        // b asks c on our behalf: a -> b -> c -> b -> a, three processes.
        let raw = try await a.request("peer-b", method: "relay",
                                      payload: Array(#"{"to":"peer-c","text":"via b"}"#.utf8))
        XCTAssertEqual(String(decoding: raw.payload, as: UTF8.self), "peer-c:via b")

        // A relay to nobody comes back as the hub's no-route error, through b.
        do {
            _ = try await a.request("peer-b", method: "relay", payload: Array(#"{"to":"nobody","text":"x"}"#.utf8))
            XCTFail("relay to an unknown name succeeded")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .noRoute)
            XCTAssertTrue(error.message.contains("nobody"), error.message)
        }
        _ = (b, c)
    }

    /// A body larger than a frame travels in a memfd, both ways, and reads as the body.
    func testBodiesLargerThanAFrameCrossTheBus() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let b = try peer("peer-b")
        let a = try await client("tester")
        defer { a.stop() }
        let large = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let echoed = try await a.request("peer-b", method: "echo", payload: large, timeout: .seconds(20))
        XCTAssertEqual(echoed.body.count, large.count)
        XCTAssertTrue(echoed.body == large, "the body changed on the way")
        XCTAssertNotEqual(echoed.payload.count, large.count, "a frame carried more than its limit")
        // Small bodies are unchanged.
        let small = try await a.request("peer-b", method: "echo", payload: [1, 2, 3])
        XCTAssertEqual(small.payload, [1, 2, 3])
        XCTAssertEqual(small.body, [1, 2, 3])
        _ = b
    }

    func testRequestErrorsAndTimeouts() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let b = try peer("peer-b")
        let a = try await client("tester")
        defer { a.stop() }

        do {
            _ = try await a.request("nobody", method: "echo")
            XCTFail("request to an unregistered name succeeded")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .noRoute)
        }
        let started = ContinuousClock.now
        do {
            _ = try await a.request("peer-b", method: "ignore", timeout: .milliseconds(300))
            XCTFail("an unanswered request did not time out")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .timeout)
            XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(300))
        }
        do {
            _ = try await a.request("peer-b", method: "no-such-method")
            XCTFail("unknown method succeeded")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .unknownMethod)
        }
        // A request in flight when its receiver dies is answered by the hub, not left to time out.
        async let pendingReply = a.request("peer-b", method: "ignore", timeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(200))
        b.killAndWait()
        do {
            _ = try await pendingReply
            XCTFail("request to a dead peer succeeded")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .disconnected)
        }
    }

    func testEventsAndBroadcastNotices() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let a = try await client("tester")
        defer { a.stop() }
        let collected = Task { () -> [BusMessage] in
            var seen: [BusMessage] = []
            for await message in a.messages {
                seen.append(message)
                if seen.contains(where: { $0.method == "notified" }) && seen.contains(where: { $0.method == HubMethod.unregistered }) { break }
            }
            return seen
        }
        let b = try peer("peer-b")
        try a.event("peer-b", method: "notify", payload: Array("ping".utf8))
        try await Task.sleep(for: .milliseconds(200))
        b.killAndWait()
        let seen = await collected.value
        XCTAssertEqual(seen.first { $0.method == "notified" }.map { String(decoding: $0.payload, as: UTF8.self) }, "ping")
        XCTAssertEqual(seen.first { $0.method == HubMethod.registered }?.payload, Array(#"{"name":"peer-b"}"#.utf8))
        XCTAssertEqual(seen.first { $0.method == HubMethod.unregistered }?.payload, Array(#"{"name":"peer-b"}"#.utf8))

        // An event to nobody is reported back, counted by code.
        try a.event("nobody", method: "x")
        try await eventually { a.undeliveredEvents[.noRoute] == 1 }
    }

    func testBPFMapFDPassedBetweenProcesses() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let b = try peer("peer-b")
        let a = try await client("tester")
        defer { a.stop() }
        let map = try BPFMap.create(type: BPF_MAP_TYPE_ARRAY, name: "pcn_ipc_test", keySize: 4, valueSize: 8, maxEntries: 4)
        let reply = try await a.request("peer-b", method: "map-update",
                                        payload: Array(#"{"key":2,"value":81985529216486895}"#.utf8), fds: [map.fd])
        XCTAssertEqual(String(decoding: reply.payload, as: UTF8.self), "updated map id \(map.id)")
        XCTAssertEqual(try map.lookup(UInt32(2), as: UInt64.self), 0x0123_4567_89AB_CDEF)
        _ = b
    }

    func testKilledClientIsDroppedAndReRegisters() async throws {
        let hub = try startHub()
        defer { hub.stop() }
        let a = try await client("tester")
        defer { a.stop() }
        var b = try peer("peer-b")
        _ = try await a.request("peer-b", method: "echo")
        b.killAndWait()
        try await eventually {
            let stats = try await a.request(HubMethod.hubName, method: HubMethod.stats).decode(HubStats.self)
            return !stats.endpoints.contains { $0.name == "peer-b" }
        }
        do {
            _ = try await a.request("peer-b", method: "echo")
            XCTFail("a killed peer still answers")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .noRoute, "\(error)")
        }
        b = try peer("peer-b")
        let answer = try await a.request("peer-b", method: "echo", payload: [42])
        XCTAssertEqual(answer.payload, [42])
    }

    func testClientsReconnectWhenKilledHubComesBack() async throws {
        let environment = ["PCN_BPFFS_ROOT": "/sys/fs/bpf/pcnipc-\(getpid())", "PCN_LOG_LEVEL": "warning"]
        defer { rmdir("/sys/fs/bpf/pcnipc-\(getpid())") }
        var core = try Child("pcn-core", ["--runtime-dir", directory], environment: environment)
        try await eventually { FileManager.default.fileExists(atPath: self.directory + "/ready/pcn-core") }
        let b = try peer("peer-b")
        let a = try await client("tester")
        defer { a.stop() }
        _ = try await a.request("peer-b", method: "echo")
        let pong = try await a.request("core", method: "ping")
        XCTAssertTrue(String(decoding: pong.payload, as: UTF8.self).contains("pcn-core"))

        core.killAndWait(SIGKILL)
        try await eventually { !a.isRegistered }
        core = try Child("pcn-core", ["--runtime-dir", directory], environment: environment)
        try b.waitForLine(timeout: 15) { $0 == "REGISTERED 2" }
        try await eventually(timeout: 15) { a.isRegistered }
        let answer = try await a.request("peer-b", method: "echo", payload: [7])
        XCTAssertEqual(answer.payload, [7])
        core.killAndWait(SIGTERM)
        XCTAssertEqual(core.process.terminationStatus, 0)
    }

    // MARK: - Bad input

    private func rawConnection() throws -> SeqPacketSocket {
        let socket = try SeqPacketSocket.connect(path: socketPath)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    /// True if the hub closed `socket` (a receive sees end of stream).
    private func isClosedByHub(_ socket: SeqPacketSocket) throws -> Bool {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameHeader.maxFrameSize, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            switch try socket.receive(into: buffer) {
            case .closed: return true
            case .wouldBlock: return false
            case .datagram: continue
            }
        }
    }

    func testBadFramesCloseOnlyThatConnection() async throws {
        let capture = LogCapture()
        let hub = try startHub(capture: capture)
        defer { hub.stop() }
        let b = try peer("peer-b")
        let a = try await client("tester")
        defer { a.stop() }

        let valid = try Frame(kind: .register, id: 1, destination: "hub", payload: Array("raw".utf8)).encode()
        var wrongVersion = valid
        wrongVersion[0] = 2
        var unknownKind = valid
        unknownKind[1] = 99
        let oversized = [UInt8](repeating: 1, count: FrameHeader.maxFrameSize + 100)
        let cases: [(String, [UInt8], String)] = [
            ("truncated", Array(valid.prefix(11)), "truncated frame: 11 bytes"),
            ("short body", Array(valid.dropLast()), "frame declares"),
            ("wrong version", wrongVersion, "unsupported frame version 2"),
            ("unknown kind", unknownKind, "unknown frame kind 99"),
            ("oversized", oversized, "larger than"),
            ("request before register",
             try Frame(kind: .request, id: 1, destination: "peer-b", method: "echo").encode(), "before registering"),
        ]
        for (label, bytes, reason) in cases {
            let socket = try rawConnection()
            socket.setBufferSizes(bytes: 1 << 20)
            defer { socket.close() }
            XCTAssertEqual(try socket.send(bytes), .sent, label)
            XCTAssertTrue(try isClosedByHub(socket), "\(label): connection left open")
            XCTAssertTrue(capture.lines.contains { $0.contains(reason) }, "\(label): no log line with '\(reason)' in \(capture.lines)")
            let answer = try await a.request("peer-b", method: "echo", payload: Array(label.utf8))
            XCTAssertEqual(answer.payload, Array(label.utf8))
        }
        try await eventually { hub.stats.badFrameDisconnects == UInt64(cases.count) }
        _ = b
    }

    func testTenThousandRandomFrames() async throws {
        let capture = LogCapture()
        let hub = try startHub(capture: capture)
        defer { hub.stop() }
        let b = try peer("peer-b")
        let a = try await client("tester")
        defer { a.stop() }
        var generator = SystemRandomNumberGenerator()
        var sent = 0, connections = 0
        var socket = try rawConnection()
        // Half the frames start as a registered connection, so random frames also hit the routing path.
        func fresh(registered: Bool) throws -> SeqPacketSocket {
            let s = try rawConnection()
            connections += 1
            if registered {
                _ = try s.send(try Frame(kind: .register, id: 1, destination: "hub", payload: Array("fuzz-\(connections)".utf8)).encode())
            }
            return s
        }
        socket = try fresh(registered: false)
        while sent < 10_000 {
            let count = Int.random(in: 0..<(FrameHeader.size * 3), using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if count > 2 && Bool.random() {
                bytes[0] = FrameHeader.version
                bytes[1] = UInt8.random(in: 1...5, using: &generator)
            }
            do {
                _ = try socket.send(bytes)
                sent += 1
            } catch {
                // The hub closed this one after an earlier bad frame: open another.
                socket.close()
                socket = try fresh(registered: Bool.random())
            }
            if sent % 500 == 0 {
                socket.close()
                socket = try fresh(registered: Bool.random())
            }
        }
        socket.close()
        let answer = try await a.request("peer-b", method: "echo", payload: [1, 2, 3])
        XCTAssertEqual(answer.payload, [1, 2, 3])
        try await eventually { hub.stats.badFrameDisconnects > 10 }
        XCTAssertTrue(capture.lines.contains { $0.contains("closed connection") })
        _ = b
    }

    func testFloodTowardsStalledReceiverStaysBoundedAndCounted() async throws {
        let environment = ["PCN_BPFFS_ROOT": "/sys/fs/bpf/pcnipc-\(getpid())", "PCN_LOG_LEVEL": "warning"]
        defer { rmdir("/sys/fs/bpf/pcnipc-\(getpid())") }
        let core = try Child("pcn-core", ["--runtime-dir", directory], environment: environment)
        defer { core.killAndWait(SIGTERM) }
        try await eventually { FileManager.default.fileExists(atPath: self.directory + "/ready/pcn-core") }
        let resume = directory + "/resume"
        let stalled = try peer("stalled", mode: "stall", extra: ["--resume-when", resume])
        let a = try await client("flooder")
        defer { a.stop() }
        let before = residentKiB(pid: core.pid)

        let total = 40_000
        let payload = [UInt8](repeating: 0xAB, count: 1400)
        for _ in 0..<total {
            try a.event("stalled", method: "flood", payload: payload)
        }
        // The hub handles one connection's frames in order: once this answer is back, every error
        // notice for the flood has been delivered to us too.
        let stats = try await a.request("hub", method: HubMethod.stats, payload: [], timeout: .seconds(30)).decode(HubStats.self)
        let after = residentKiB(pid: core.pid)
        let entry = try XCTUnwrap(stats.endpoints.first { $0.name == "stalled" })
        let errors = a.undeliveredEvents[.queueFull] ?? 0
        XCTAssertGreaterThan(entry.dropped, 0, "nothing was dropped: the flood did not fill the queue")
        XCTAssertEqual(errors, entry.dropped, "every dropped event must be answered with exactly one error")
        XCTAssertLessThanOrEqual(entry.queued, HubLimits().maxQueuedFrames)
        XCTAssertLessThan(after - before, 48 * 1024, "hub grew by \(after - before) KiB for a \(total * 1400 / 1024) KiB flood")

        FileManager.default.createFile(atPath: resume, contents: nil)
        let drained = try stalled.waitForLine(timeout: 30) { $0.hasPrefix("DRAINED ") }
        let received = Int(drained.dropFirst("DRAINED ".count))!
        XCTAssertEqual(UInt64(received) + entry.dropped, UInt64(total), "received + dropped must equal sent")
    }
}

import Foundation
import IPC
import PCNDatapathABI
import PCNProtocol
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// pcn-core on a test's own paths, and the bus client that drives it.
class CoreTestCase: XCTestCase {
    var directory = ""
    var bpffsRoot = ""
    var core: Child?
    var bus: BusClient?
    let network = TestNetwork()

    override func setUp() async throws {
        directory = makeTemporaryDirectory()
        bpffsRoot = "/sys/fs/bpf/pcntest-dp-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        try await setUpCoreOnly()
    }

    /// Starts pcn-core on this test's paths and connects the test's bus client.
    func setUpCoreOnly() async throws {
        core = try Child("pcn-core", ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state",
                                      "--bpffs-root", bpffsRoot, "--log-level", "warning",
                                      "--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path, "--service-dir", repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf").path])
        // The test configures the datapath as pcn-api would, and is its cubes' slow path.
        let client = BusClient(socketPath: directory + "/run/bus.sock", name: BusName.api, logger: quietLogger)
        client.start()
        let registered = await client.waitUntilRegistered(timeout: .seconds(15))
        XCTAssertTrue(registered)
        bus = client
    }

    private var owners: [String: BusClient] = [:]

    /// A client registered as `cube-host/<service>`: what may open a cube's tables, take its
    /// packet-in and send its packet-out (the contract's owner rule).
    func owner(_ service: String) async -> BusClient {
        if let known = owners[service] { return known }
        let client = BusClient(socketPath: directory + "/run/bus.sock", name: BusName.cubeHost(service), logger: quietLogger)
        client.start()
        _ = await client.waitUntilRegistered(timeout: .seconds(15))
        owners[service] = client
        return client
    }

    override func tearDown() {
        for client in owners.values { client.stop() }
        owners = [:]
        bus?.stop()
        core?.killAndWait(SIGTERM)
        network.tearDown()
        _ = try? runCommand("/bin/rm", ["-rf", bpffsRoot])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A pcn-core call, from pcn-api's name, or from the cube's owner for the methods only it may call
    /// (packet-in then still comes to the test's own client unless the body names a subscriber).
    @discardableResult
    func core(_ method: String, _ body: [String: Any]) async throws -> BusMessage {
        var body = body
        var client = bus!
        if Method(rawValue: method)?.callers == .owner, let cube = body["cube"] as? String ?? body["name"] as? String {
            let service = try await cubeList().first { $0["name"] as? String == cube }?["service"] as? String ?? "testfwd"
            client = await owner(service)
            if method == Method.packetInSubscribe.rawValue, body["subscriber"] == nil { body["subscriber"] = BusName.api }
        }
        let payload = try Array(JSONSerialization.data(withJSONObject: body))
        return try await client.request("core", method: method, payload: payload, timeout: .seconds(60))
    }

    func expectFailure(_ method: String, _ body: [String: Any], containing text: String,
                               file: StaticString = #filePath, line: UInt = #line) async {
        do {
            try await core(method, body)
            XCTFail("\(method) \(body) succeeded", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(text), "\(method): '\(error)' does not mention '\(text)'", file: file, line: line)
        }
    }

    /// `cube.list`: every cube with its node and ports.
    func cubeList() async throws -> [[String: Any]] {
        let answer = try await core("cube.list", [:])
        return try JSONSerialization.jsonObject(with: Data(answer.payload)) as! [[String: Any]]
    }

    func stats(_ cube: String) async throws -> [String: Any] {
        let answer = try await core("cube.stats", ["name": cube])
        return try JSONSerialization.jsonObject(with: Data(answer.payload)) as! [String: Any]
    }

    /// Cubes c1...cN in a line between two netdevs.
    func chain(_ count: Int, from veth1: String, to veth2: String, type: String = "TC") async throws {
        for i in 1...count {
            try await core("cube.create", ["name": "c\(i)", "service": "testfwd", "type": type])
            try await core("port.add", ["cube": "c\(i)", "port": "p0"])
            try await core("port.add", ["cube": "c\(i)", "port": "p1"])
        }
        for i in 1..<count {
            try await core("port.set-peer", ["cube": "c\(i)", "port": "p1", "peer": "c\(i + 1):p0"])
        }
        try await core("port.set-peer", ["cube": "c1", "port": "p0", "peer": veth1])
        try await core("port.set-peer", ["cube": "c\(count)", "port": "p1", "peer": veth2])
    }

    /// Namespaces a (10.200.subnet.1) and b (.2), joined by a chain of `cubes` wires c1...cN.
    func hostsJoined(subnet: Int, cubes: Int, type: String = "TC") async throws -> (a: String, veth1: String, veth2: String) {
        let (a, veth1) = try network.host("a", address: "10.200.\(subnet).1/24")
        let (_, veth2) = try network.host("b", address: "10.200.\(subnet).2/24")
        try await chain(cubes, from: veth1, to: veth2, type: type)
        return (a, veth1, veth2)
    }

    /// 300 pings 10 ms apart (3 s) from `namespace` while pcn-core is killed with SIGKILL and started
    /// again: every one must be answered.
    func assertNoPingLostWhileCoreIsKilled(from namespace: String, to address: String,
                                           file: StaticString = #filePath, line: UInt = #line) async throws {
        let flood = Task.detached { [network] in
            try network.exec(namespace, ["ping", "-c", "300", "-i", "0.01", "-W", "1", address], timeout: 60)
        }
        try await Task.sleep(for: .milliseconds(500))
        bus?.stop()
        core?.killAndWait(SIGKILL)
        try await Task.sleep(for: .milliseconds(500))
        try await setUpCoreOnly()
        let result = try await flood.value
        XCTAssertTrue(result.stdout.contains("300 packets transmitted, 300 received"), result.stdout, file: file, line: line)
    }

    /// A packet-out request: `struct pcn_packet_out_request`, then the frame.
    static func packetOut(cube: String, port: String, direction: pcn_direction, md: (UInt32, UInt32, UInt32), frame: ArraySlice<UInt8>) -> [UInt8] {
        var request = pcn_packet_out_request()
        withUnsafeMutableBytes(of: &request.cube) { raw in for (i, c) in cube.utf8.enumerated() { raw[i] = c } }
        withUnsafeMutableBytes(of: &request.port) { raw in for (i, c) in port.utf8.enumerated() { raw[i] = c } }
        request.direction = direction.rawValue
        request.md = md
        return withUnsafeBytes(of: request) { Array($0) } + frame
    }
}

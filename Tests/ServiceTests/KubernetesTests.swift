import Foundation
import TestSupport
import XCTest

/// The Kubernetes provider end to end on one machine (scripts/k8s-cluster): two nodes, each a
/// namespace with its own pcn stack and node agent, joined by a bridge; four pods plumbed by pcn-cni;
/// the cluster given to the agents as manifests. Shared by the tests of the class (a cluster takes
/// a while to start); each test leaves the manifests as it found them.
final class KubernetesTests: XCTestCase {
    nonisolated(unsafe) private static var directory = ""
    nonisolated(unsafe) private static var prefix = ""
    nonisolated(unsafe) private static var addresses: [String: String] = [:]
    nonisolated(unsafe) private static var servers: [BackgroundCommand] = []
    nonisolated(unsafe) private static var failure: String?
    private static let script = repositoryRoot.appendingPathComponent("scripts/k8s-cluster").path

    /// A TCP server on 8080 answering its pod's name and the address the connection came from; a
    /// client that prints what it was answered (or "failed").
    private static let tool = """
        import socket, sys, threading
        if sys.argv[1] == "serve":
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", int(sys.argv[3]))); s.listen(64)
            while True:
                c, peer = s.accept()
                try: c.sendall((sys.argv[2] + " " + peer[0] + "\\n").encode())
                finally: c.close()
        else:
            import time
            host, port, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0
            for _ in range(count):
                try:
                    c = socket.create_connection((host, port), timeout=2)
                    print(c.recv(100).decode().strip(), flush=True); c.close()
                except Exception as e:
                    print("failed", e, flush=True)
                time.sleep(pause)
        """

    private static func cluster(_ arguments: [String], timeout: TimeInterval = 120) throws -> String {
        let result = try runCommand(script, arguments, environment: ["PCN_BIN_DIR": productsDirectory.path], timeout: timeout)
        guard result.status == 0 else { throw TestFailure("k8s-cluster \(arguments.joined(separator: " ")): \(result.stderr)\(result.stdout)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    override class func setUp() {
        super.setUp()
        directory = makeTemporaryDirectory() + "/k8s"
        prefix = String(format: "pk%05x", UInt32.random(in: 0...0xFFFFF))
        do {
            _ = try cluster(["up", directory, "--prefix", prefix], timeout: 300)
            try tool.write(toFile: directory + "/../tool.py", atomically: true, encoding: .utf8)
            for (node, pod, label) in [("1", "a1", "app=web"), ("1", "a2", "role=client"), ("2", "b1", "app=web"), ("2", "b2", "role=other")] {
                addresses[pod] = try cluster(["pod", directory, node, pod, label])
            }
            for pod in ["a1", "b1"] {
                servers.append(try BackgroundCommand("/usr/bin/ip", ["netns", "exec", prefix + "p-" + pod, "python3", directory + "/../tool.py", "serve", pod, "8080"]))
            }
            try service(backends: ["a1", "b1"])
        } catch {
            failure = "\(error)"
        }
    }

    override class func tearDown() {
        servers.forEach { $0.stop() }
        if !directory.isEmpty {
            _ = try? cluster(["down", directory], timeout: 120)
            try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent)
        }
        super.tearDown()
    }

    override func setUp() async throws {
        if let failure = Self.failure { throw TestFailure("the cluster did not come up: \(failure)") }
    }

    override func tearDown() {
        if (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0 {
            for node in ["n1", "n2"] {
                let log = (try? String(contentsOfFile: "\(Self.directory)/\(node)/agent.log", encoding: .utf8)) ?? ""
                print("--- \(node)'s agent:\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n"))
            }
        }
    }

    /// The Service `web` (ClusterIP 10.96.0.10:80 and NodePort 30080 → 8080) and its EndpointSlice with `backends`.
    private static func service(backends: [String]) throws {
        let endpoints = backends.map { "- addresses: [\(addresses[$0]!)]\n  conditions: {ready: true}" }.joined(separator: "\n")
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec:
              type: NodePort
              clusterIP: 10.96.0.10
              selector: {app: web}
              ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-1
              namespace: default
              labels: {kubernetes.io/service-name: web}
            addressType: IPv4
            ports: [{name: http, port: 8080, protocol: TCP}]
            endpoints:
            \(endpoints.isEmpty ? "[]" : endpoints)
            """.write(toFile: directory + "/cluster/web.yaml.tmp", atomically: true, encoding: .utf8)
        guard rename(directory + "/cluster/web.yaml.tmp", directory + "/cluster/web.yaml") == 0 else { throw TestFailure("rename web.yaml") }
    }

    private func exec(_ pod: String, _ command: [String], timeout: TimeInterval = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("/usr/bin/ip", ["netns", "exec", Self.prefix + "p-" + pod] + command, timeout: timeout)
    }

    private func ping(_ pod: String, _ address: String) throws -> Bool {
        try exec(pod, ["ping", "-c", "2", "-i", "0.2", "-W", "2", address]).status == 0
    }

    /// What `count` connections from `pod` to `host:port` were answered (pod names), "failed" for each that was not.
    private func connect(_ pod: String, _ host: String, _ port: Int = 80, count: Int) throws -> [String] {
        let result = try exec(pod, ["python3", Self.directory + "/../tool.py", "client", host, "\(port)", "\(count)"], timeout: Double(count) * 3 + 30)
        return result.stdout.split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
    }

    func testPodsReachEachOtherOnTheirNodeAndAcrossNodes() async throws {
        let a1 = Self.addresses["a1"]!, b1 = Self.addresses["b1"]!, b2 = Self.addresses["b2"]!
        XCTAssertTrue(a1.hasPrefix("10.10.1.") && b1.hasPrefix("10.10.2."), "\(Self.addresses)")
        try await eventually(timeout: 30) { try self.ping("a2", a1) && self.ping("a2", b1) }
        XCTAssertTrue(try ping("b2", b1), "same node, n2")
        XCTAssertTrue(try ping("a1", b2), "across nodes, n1 to n2")
        XCTAssertTrue(try ping("a2", "10.10.1.1"), "the pods' gateway")
        // TCP, as iperf3 measures it, on the node and across the VXLAN.
        for (client, server) in [("a2", "a1"), ("a2", "b1")] {
            let daemon = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", Self.prefix + "p-" + server, "iperf3", "-s", "-1", "-p", "5301"])
            defer { daemon.stop() }
            try await Task.sleep(for: .milliseconds(500))
            let run = try exec(client, ["iperf3", "-c", Self.addresses[server]!, "-p", "5301", "-t", "1", "-J"], timeout: 60)
            let end = (try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["end"] as? [String: Any]
            let bits = ((end?["sum_received"] as? [String: Any])?["bits_per_second"] as? Double) ?? 0
            XCTAssertGreaterThan(bits, 1e6, "iperf3 \(client) → \(server): \(run.stdout.suffix(300)) \(run.stderr)")
        }
    }

    func testClusterIPBalancesOverBothNodesAndFollowsItsEndpoints() async throws {
        try await eventually(timeout: 30) { try self.connect("a2", "10.96.0.10", count: 1) != ["failed"] }
        let answers = try connect("a2", "10.96.0.10", count: 40)
        XCTAssertFalse(answers.contains("failed"), "\(answers)")
        XCTAssertGreaterThanOrEqual(answers.filter { $0 == "a1" }.count, 5, "the backend on the client's node: \(answers)")
        XCTAssertGreaterThanOrEqual(answers.filter { $0 == "b1" }.count, 5, "the backend on the other node: \(answers)")
        // From the other node too.
        let fromN2 = try connect("b2", "10.96.0.10", count: 20)
        XCTAssertEqual(Set(fromN2), ["a1", "b1"], "\(fromN2)")

        // The endpoints change while a client loops: every connection is answered, and once the
        // agents have the change, only by the remaining backend.
        let namespace = Self.prefix + "p-a2", tool = Self.directory + "/../tool.py"
        async let loop = onThread {
            try runCommand("/usr/bin/ip", ["netns", "exec", namespace, "python3", tool, "client", "10.96.0.10", "80", "150", "0.05"], timeout: 300)
        }
        try await Task.sleep(for: .seconds(1))
        try Self.service(backends: ["b1"])
        defer { try? Self.service(backends: ["a1", "b1"]) }
        try await eventually(timeout: 30) { try self.connect("a2", "10.96.0.10", count: 10).allSatisfy { $0 == "b1" } }
        let looped = try await loop.stdout.split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
        XCTAssertEqual(looped.count, 150, "the loop ended early: \(looped.suffix(5))")
        XCTAssertEqual(looped.filter { $0 == "failed" }.count, 0, "connections failed while the endpoints changed: \(looped)")
        XCTAssertEqual(looped.last, "b1")
        try Self.service(backends: ["a1", "b1"])
        try await eventually(timeout: 30) { Set(try self.connect("a2", "10.96.0.10", count: 20)) == ["a1", "b1"] }
    }

    /// NodePort from outside the cluster, through either node: both nodes' backends answer, and see
    /// the client as the entry node's NodePort source address (their answers go back through it).
    func testNodePortFromTheUnderlayReachesTheBackendsOfBothNodes() async throws {
        let outside = Self.prefix + "ext", tool = Self.directory + "/../tool.py"
        func answers(_ node: String, count: Int) throws -> [String] {
            let result = try runCommand("/usr/bin/ip", ["netns", "exec", outside, "python3", tool, "client", node, "30080", "\(count)"], timeout: Double(count) * 3 + 30)
            return result.stdout.split(separator: "\n").map(String.init)
        }
        for (node, source) in [("10.214.200.1", "10.19.200.1"), ("10.214.200.2", "10.19.200.2")] {
            try await eventually(timeout: 30) { try answers(node, count: 1).first?.hasPrefix("failed") == false }
            let seen = try answers(node, count: 30)
            XCTAssertEqual(seen.filter { $0.hasPrefix("failed") }, [], "through \(node)")
            XCTAssertEqual(Set(seen.map { $0.split(separator: " ").first.map(String.init) ?? "" }), ["a1", "b1"], "through \(node): \(seen)")
            XCTAssertEqual(Set(seen.map { $0.split(separator: " ").last.map(String.init) ?? "" }), [source], "the client as seen through \(node): \(seen)")
        }
        // The pods' own ClusterIP is the same Service, still there.
        XCTAssertEqual(Set(try connect("a2", "10.96.0.10", count: 20)), ["a1", "b1"])
    }

    func testEgressLeavesWithTheNodeAddress() async throws {
        let server = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", Self.prefix + "ext", "python3", Self.directory + "/../tool.py", "serve", "ext", "9090"])
        defer { server.stop() }
        try await Task.sleep(for: .milliseconds(500))
        var answer = ""
        try await eventually(timeout: 30) {
            answer = (try self.exec("a2", ["python3", Self.directory + "/../tool.py", "client", "10.214.200.100", "9090", "1"])).stdout
            return answer.hasPrefix("ext ")
        }
        XCTAssertEqual(answer.trimmingCharacters(in: .whitespacesAndNewlines), "ext 10.214.200.1", "masqueraded to n1's address")
        let fromN2 = try exec("b2", ["python3", Self.directory + "/../tool.py", "client", "10.214.200.100", "9090", "1"]).stdout
        XCTAssertEqual(fromN2.trimmingCharacters(in: .whitespacesAndNewlines), "ext 10.214.200.2")
    }

    /// pings `count` times 10 ms apart; what ping counted sent and received.
    private static func pingCounts(_ namespace: String, _ address: String, count: Int) throws -> (sent: Int, received: Int) {
        let result = try runCommand("/usr/bin/ip", ["netns", "exec", namespace, "ping", "-c", "\(count)", "-i", "0.01", "-W", "2", address],
                                    timeout: Double(count) * 0.05 + 60)
        guard let line = result.stdout.split(separator: "\n").first(where: { $0.contains("packets transmitted") }) else {
            throw TestFailure("ping printed no summary: \(result.stdout) \(result.stderr)")
        }
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        return (numbers[0], numbers[1])
    }

    /// Waits until the stack's keeper has started component `name` of node 1 again after it was
    /// killed (a new pid, ready).
    private func waitRestarted(_ name: String, after old: Int32) async throws {
        let run = Self.directory + "/n1/run"
        try await eventually(timeout: 60) {
            guard let text = try? String(contentsOfFile: run + "/stack/\(name).pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  pid != old, kill(pid, 0) == 0 else { return false }
            return (try? String(contentsOfFile: run + "/ready/\(name)", encoding: .utf8)) == "\(pid)\n"
        }
    }

    /// kill -9 of node 1's agent and of each component of its stack, under pod traffic across the
    /// nodes both ways: no packet is lost, and the agent started again brings the node in step with
    /// what changed while it was down.
    func testKillingTheAgentAndEachComponentOfANodeLosesNoPacket() async throws {
        let a1 = Self.addresses["a1"]!, b1 = Self.addresses["b1"]!
        try await eventually(timeout: 30) { try self.ping("a2", b1) && self.ping("b2", a1) }
        let there = Self.prefix + "p-a2", back = Self.prefix + "p-b2"
        async let outbound = onThread { try Self.pingCounts(there, b1, count: 4000) }
        async let inbound = onThread { try Self.pingCounts(back, a1, count: 4000) }
        try await Task.sleep(for: .seconds(1))

        // The agent: killed, the endpoints change while it is down, started again.
        let agent = Int32((try String(contentsOfFile: Self.directory + "/n1/agent.pid", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertGreaterThan(agent, 0)
        kill(agent, SIGKILL)
        try Self.service(backends: ["a1"])
        defer { try? Self.service(backends: ["a1", "b1"]) }
        try await Task.sleep(for: .seconds(1))
        _ = try Self.cluster(["agent", Self.directory, "1"])
        XCTAssertEqual(Set(try connect("a2", "10.96.0.10", count: 10)), ["a1"], "the restarted agent applied the change it missed")

        for name in ["pcn-api", "cube-host@lbrp", "cube-host@router", "cube-host@nat", "pcn-core"] {
            let text = try String(contentsOfFile: Self.directory + "/n1/run/stack/\(name).pid", encoding: .utf8)
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            XCTAssertGreaterThan(pid, 0, name)
            kill(pid, SIGKILL)
            try await waitRestarted(name, after: pid)
            try await Task.sleep(for: .seconds(1))
        }
        let (sentOut, receivedOut) = try await outbound
        let (sentIn, receivedIn) = try await inbound
        XCTAssertEqual(receivedOut, sentOut, "a2 → b1: \(sentOut - receivedOut) of \(sentOut) lost")
        XCTAssertEqual(receivedIn, sentIn, "b2 → a1: \(sentIn - receivedIn) of \(sentIn) lost")
        XCTAssertEqual(sentOut, 4000)
        try Self.service(backends: ["a1", "b1"])
        try await eventually(timeout: 30) { Set(try self.connect("a2", "10.96.0.10", count: 20)) == ["a1", "b1"] }
    }

    func testANetworkPolicyLetsOnlyTheSelectedClientsIn() async throws {
        let a1 = Self.addresses["a1"]!, b1 = Self.addresses["b1"]!
        try await eventually(timeout: 30) { try self.connect("b2", a1, 8080, count: 1) == ["a1"] }
        let policy = Self.directory + "/cluster/policy.yaml"
        try """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: web-from-clients, namespace: default}
            spec:
              podSelector: {matchLabels: {app: web}}
              policyTypes: [Ingress]
              ingress:
              - from: [{podSelector: {matchLabels: {role: client}}}]
                ports: [{protocol: TCP, port: 8080}]
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        defer { unlink(policy) }
        // b2 (role=other) is kept out of both web pods, on its node and across; a2 (role=client) gets in.
        try await eventually(timeout: 30) { try self.connect("b2", a1, 8080, count: 1) == ["failed"] && self.connect("b2", b1, 8080, count: 1) == ["failed"] }
        XCTAssertEqual(try connect("a2", a1, 8080, count: 3), ["a1", "a1", "a1"])
        XCTAssertEqual(try connect("a2", b1, 8080, count: 3), ["b1", "b1", "b1"])
        XCTAssertEqual(try connect("a2", "10.96.0.10", count: 6).filter { $0 == "failed" }, [], "through the ClusterIP too")
        XCTAssertFalse(try ping("b2", a1), "ICMP is not in the policy's ports")
        // Without the policy, everyone gets in again.
        unlink(policy)
        try await eventually(timeout: 30) { try self.connect("b2", a1, 8080, count: 1) == ["a1"] && self.connect("b2", b1, 8080, count: 1) == ["b1"] }
    }
}

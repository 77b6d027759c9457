@testable import pcn_k8s_agent
import Foundation
import Logging
import TestSupport
import XCTest

/// The Kubernetes API client: list + watch decoding and resume on the API's answers
/// (Tests/Fixtures/k8s), first as pure state, then over HTTP against a small server that plays them.
final class KubernetesSourceTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/k8s")

    private func fixture(_ name: String) throws -> Data { try Data(contentsOf: Self.fixtures.appendingPathComponent(name)) }
    private func lines(_ name: String) throws -> [Data] {
        try fixture(name).split(separator: 0x0a).map { Data($0) }
    }

    func testListThenWatchThenTooOldThenListAgain() throws {
        var state = ClusterState()
        var watch = ResourceWatch(kind: "Node", path: "/api/v1/nodes")
        XCTAssertEqual(watch.watchPath, "/api/v1/nodes?watch=1&allowWatchBookmarks=true")
        try watch.applyList(try fixture("nodes-list.json"), to: &state)
        XCTAssertEqual(Set(state.nodes.keys), ["n1"])
        XCTAssertEqual(watch.resourceVersion, "1000")
        XCTAssertEqual(watch.watchPath, "/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=1000")
        var versions: [String?] = []
        for line in try lines("nodes-watch-1.jsonl") {
            XCTAssertEqual(try watch.applyEvent(line, to: &state), .applied)
            versions.append(watch.resourceVersion)
        }
        XCTAssertEqual(versions, ["1001", "1002", "1005", "1006", "1007"], "a bookmark moves the version on")
        XCTAssertEqual(Set(state.nodes.keys), ["n1", "n2"], "n3 was added and deleted")
        XCTAssertEqual(state.nodes["n1"]?.metadata.labels?["role"], "edge")
        XCTAssertEqual(state.nodes["n2"]?.podCIDR, "10.10.2.0/24")
        // The resumed watch: the server no longer has 1007.
        XCTAssertEqual(try watch.applyEvent(try lines("nodes-watch-2.jsonl")[0], to: &state), .relist)
        XCTAssertNil(watch.resourceVersion)
        try watch.applyList(try fixture("nodes-list-2.json"), to: &state)
        XCTAssertEqual(Set(state.nodes.keys), ["n2"], "a list replaces the kind's objects: n1 is gone")
        XCTAssertEqual(watch.resourceVersion, "1300")
        // Other kinds are left alone by a node list.
        var slices = ResourceWatch(kind: "EndpointSlice", path: "/apis/discovery.k8s.io/v1/endpointslices")
        try slices.applyList(try fixture("endpointslices-list.json"), to: &state)
        try watch.applyList(try fixture("nodes-list-2.json"), to: &state)
        XCTAssertEqual(state.endpointSlices["default/web-7xk2p"]?.serviceName, "web")
        XCTAssertEqual(state.endpointSlices["default/web-7xk2p"]?.endpoints?.count, 2)
        // Errors name the path.
        XCTAssertThrowsError(try watch.applyEvent(Data(#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd is down"}}"#.utf8), to: &state)) {
            XCTAssertTrue("\($0)".contains("/api/v1/nodes: the API server answered 500: etcd is down"), "\($0)")
        }
        XCTAssertThrowsError(try watch.applyEvent(Data("not json".utf8), to: &state))
        XCTAssertThrowsError(try watch.applyList(Data(#"{"kind":"Status","code":403,"message":"forbidden"}"#.utf8), to: &state)) {
            XCTAssertTrue("\($0)".contains("403: forbidden"), "\($0)")
        }
    }

    func testInClusterSettings() throws {
        let account = NSTemporaryDirectory() + "pcn-sa-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: account, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: account) }
        try "secret-token\n".write(toFile: account + "/token", atomically: true, encoding: .utf8)
        try "CA".write(toFile: account + "/ca.crt", atomically: true, encoding: .utf8)
        let settings = try KubernetesSource.Settings.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
                                                               accountDirectory: account)
        XCTAssertEqual(settings.server, "https://10.96.0.1:443")
        XCTAssertEqual(settings.token, "secret-token")
        XCTAssertEqual(settings.caFile, account + "/ca.crt")
        XCTAssertThrowsError(try KubernetesSource.Settings.inCluster(environment: [:], accountDirectory: account)) {
            XCTAssertTrue("\($0)".contains("KUBERNETES_SERVICE_HOST"))
        }
    }

    /// A server that plays the fixtures: the node list, a watch that ends, the resumed watch answered
    /// "too old", the list again, then a watch that stays open; empty lists for the other kinds.
    private static let server = #"""
        import http.server, json, sys, threading, time
        fixtures, log, portfile = sys.argv[1], sys.argv[2], sys.argv[3]
        lists = 0
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args): pass
            def do_GET(self):
                global lists
                with open(log, "a") as f: f.write(self.path + " " + self.headers.get("Authorization", "") + "\n")
                watching = "watch=1" in self.path
                if self.path.startswith("/api/v1/nodes"):
                    if not watching:
                        lists += 1
                        body = open(fixtures + ("/nodes-list.json" if lists == 1 else "/nodes-list-2.json"), "rb").read()
                        return self.answer(body)
                    if "resourceVersion=1000" in self.path: return self.stream(open(fixtures + "/nodes-watch-1.jsonl", "rb").read(), 0)
                    if "resourceVersion=1007" in self.path: return self.stream(open(fixtures + "/nodes-watch-2.jsonl", "rb").read(), 0)
                    return self.stream(b"", 2)
                if watching: return self.stream(b"", 2)
                kind = self.path.split("?")[0].rstrip("/").split("/")[-1]
                self.answer(json.dumps({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}).encode())
            def answer(self, body):
                self.send_response(200); self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def stream(self, body, hold):
                self.send_response(200); self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
                for line in body.splitlines(keepends=True):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line)); self.wfile.flush(); time.sleep(0.05)
                time.sleep(hold)
                self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        with open(portfile + ".tmp", "w") as f: f.write(str(server.server_address[1]))
        import os; os.rename(portfile + ".tmp", portfile)
        server.serve_forever()
        """#

    func testTheClientResumesAndListsAgainOverHTTP() async throws {
        let scratch = NSTemporaryDirectory() + "pcn-api-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Self.server.write(toFile: scratch + "/server.py", atomically: true, encoding: .utf8)
        // Spawned with signals unblocked (BackgroundCommand), so that stop() ends it.
        let server = try BackgroundCommand("/usr/bin/python3", [scratch + "/server.py", Self.fixtures.path, scratch + "/requests", scratch + "/port"])
        defer { server.stop() }
        var port = 0
        for _ in 0..<100 where port == 0 {
            port = Int((try? String(contentsOfFile: scratch + "/port", encoding: .utf8)) ?? "") ?? 0
            if port == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard port > 0 else { return XCTFail("the fake API server did not start") }

        let source = KubernetesSource(settings: .init(server: "http://127.0.0.1:\(port)", token: "t0k3n", caFile: nil), logger: Logger(label: "test"))
        XCTAssertThrowsError(try source.read(), "nothing listed yet") { XCTAssertTrue("\($0)".contains("not listed yet")) }
        source.start()
        let deadline = Date().addingTimeInterval(30)
        var nodes: [String: Node] = [:]
        while Date() < deadline {
            nodes = (try? source.read().nodes) ?? [:]
            if Set(nodes.keys) == ["n2"], nodes["n2"]?.metadata.resourceVersion == "1250" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(Set(nodes.keys), ["n2"], "after the relist only n2 is left")
        XCTAssertEqual(nodes["n2"]?.metadata.resourceVersion, "1250")
        let requests = ((try? String(contentsOfFile: scratch + "/requests", encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("/api/v1/nodes") }
        XCTAssertEqual(requests.prefix(5).map { String($0.split(separator: " ").first ?? "") }, [
            "/api/v1/nodes",
            "/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=1000&timeoutSeconds=300",
            "/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=1007&timeoutSeconds=300",
            "/api/v1/nodes",
            "/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=1300&timeoutSeconds=300",
        ])
        XCTAssertTrue(requests.allSatisfy { $0.hasSuffix("Bearer t0k3n") }, "every request carries the token")
        // Stopped, its watches end with their streams (2 s here): no thread outlives the test.
        source.stop()
        let stopDeadline = Date().addingTimeInterval(20)
        while !source.isStopped && Date() < stopDeadline { try await Task.sleep(for: .milliseconds(100)) }
        XCTAssertTrue(source.isStopped, "the watches did not stop")
    }
}

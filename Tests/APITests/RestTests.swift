import Foundation
import IPC
import TestSupport
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// pcn-api's service trees against a real pcn-core and a stand-in cube-host serving the testfwd
/// model (Tests/Fixtures/testfwd.yang).
final class RestTests: XCTestCase {
    var directory = ""
    var bpffsRoot = ""
    var core: Child?
    var api: Child?
    var service: Child?
    var bus: BusClient?
    var base = ""
    var port = 0
    var apiArguments: [String] = []

    override func setUp() async throws {
        directory = makeTemporaryDirectory()
        bpffsRoot = "/sys/fs/bpf/pcntest-api-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let common = ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state", "--log-dir", directory + "/log",
                      "--bpffs-root", bpffsRoot, "--log-level", "warning"]
        core = try Child("pcn-core", common + ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path, "--service-dir", repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf").path])
        port = freePort()
        base = "http://127.0.0.1:\(port)/polycube/v1"
        apiArguments = common + ["--api-addr", "127.0.0.1:\(port)"]
        try startAPI()
        service = try Child("pcn-bus-peer", ["--socket", directory + "/run/bus.sock", "--name", "cube-host/testfwd", "--mode", "service",
                                             "--service", "testfwd", "--yang", repositoryRoot.appendingPathComponent("Tests/Fixtures/testfwd.yang").path])
        try service!.waitForLine(timeout: 30) { $0 == "MODEL REGISTERED" }
        let client = BusClient(socketPath: directory + "/run/bus.sock", name: "tester", logger: quietLogger)
        client.start()
        _ = await client.waitUntilRegistered(timeout: .seconds(10))
        bus = client
    }

    private func startAPI() throws {
        let marker = directory + "/run/ready/pcn-api"
        unlink(marker)
        api = try Child("pcn-api", apiArguments)
        let deadline = Date().addingTimeInterval(30)
        while (try? String(contentsOfFile: marker, encoding: .utf8)) != "\(api!.pid)\n" {
            guard Date() < deadline else { throw TestFailure("pcn-api did not become ready") }
            usleep(20_000)
        }
    }

    override func tearDown() {
        bus?.stop()
        for child in [service, api, core] { child?.killAndWait(SIGTERM) }
        _ = try? runCommand("/bin/rm", ["-rf", bpffsRoot])
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: String? = nil, contentType: String = "application/json",
              headers: [String: String] = [:]) async throws -> RestClient.Answer {
        try await RestClient(port: port).call(method, path, body, contentType: contentType, headers: headers)
    }

    func coreCubes() async throws -> [[String: Any]] {
        let answer = try await bus!.request("core", method: "cube.list", timeout: .seconds(10))
        return try JSONSerialization.jsonObject(with: Data(answer.payload)) as! [[String: Any]]
    }


    static let t1 = "/testfwd:testfwd[name='t1']"
    static let t2 = "/testfwd:testfwd[name='t2']"

    func testGoodRequestsCreateChangeReadAndDelete() async throws {
        var answer = try await call("POST", "/testfwd/t1", #"{"type":"tc","mtu":"9000","ports":[{"name":"p1"},{"name":"p2"}]}"#)
        XCTAssertEqual(answer.status, 201, "\(answer)")
        let etag = try XCTUnwrap(answer.headers["etag"])
        answer = try await call("GET", "/testfwd/t1")
        XCTAssertEqual(answer.status, 200)
        let cube = try XCTUnwrap(answer.json as? [String: Any])
        XCTAssertEqual(cube["type"] as? String, "TC")
        XCTAssertEqual(cube["mtu"] as? Int, 9000)
        XCTAssertEqual(cube["mode"] as? String, "FORWARD", "defaults are filled in")
        XCTAssertEqual(cube["loglevel"] as? String, "INFO")
        XCTAssertEqual(cube["enabled"] as? Bool, true)
        // State: from the cube-host (its maps) and from pcn-core (ports' status, the service).
        XCTAssertEqual(cube["hits"] as? String, "42")
        XCTAssertEqual(cube["service-name"] as? String, "testfwd")
        XCTAssertEqual((cube["ports"] as? [[String: Any]])?.first?["status"] as? String, "DOWN")
        XCTAssertEqual(answer.headers["etag"], etag)
        XCTAssertNotNil(answer.headers["last-modified"])
        // The datapath has the cube and its ports; the cube-host got the whole configuration.
        let inCore = try await coreCubes().first { $0["name"] as? String == "t1" }
        XCTAssertEqual((inCore?["ports"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["p1", "p2"])
        try service!.waitForLine { $0.hasPrefix("APPLY t1 ") && $0.contains(#""mtu":9000"#) }

        let value1 = try await call("PATCH", "/testfwd/t1", #"{"mtu":1400,"loglevel":"debug"}"#, headers: ["If-Match": etag]).status
        XCTAssertEqual(value1, 204)
        let value2 = try await call("GET", "/testfwd/t1/mtu").json as? Int
        XCTAssertEqual(value2, 1400)
        let value3 = try await coreCubes().first { $0["name"] as? String == "t1" }?["loglevel"] as? String
        XCTAssertEqual(value3, "DEBUG")
        let value4 = try await call("PATCH", "/testfwd/t1/mtu", "1300").status
        XCTAssertEqual(value4, 204, "a bare value")
        let value5 = try await call("PATCH", "/testfwd/t1/mtu", #"{"mtu":1200}"#).status
        XCTAssertEqual(value5, 204, "an RFC 8040 body")
        let value6 = try await call("GET", "/testfwd/t1/mtu").json as? Int
        XCTAssertEqual(value6, 1200)
        let value7 = try await call("PUT", "/testfwd/t1/limits", #"{"rate":10}"#).status
        XCTAssertEqual(value7, 201)
        let value8 = try await call("PATCH", "/testfwd/t1/limits", #"{"burst":5}"#).status
        XCTAssertEqual(value8, 204)
        let value9 = (try await call("GET", "/testfwd/t1/limits").json as? [String: Any])?.filter { $0.key != "_links" } as? [String: Int]
        XCTAssertEqual(value9, ["rate": 10, "burst": 5])
        let value10 = try await call("POST", "/testfwd/t1/rules", #"{"id":1,"priority":3}"#).status
        XCTAssertEqual(value10, 201)
        let rule = try await call("GET", "/testfwd/t1/rules/1").json as? [String: Any]
        XCTAssertEqual(rule?["action"] as? String, "PASS")
        let value11 = try await call("DELETE", "/testfwd/t1/rules/1").status
        XCTAssertEqual(value11, 204)
        let value12 = try await call("GET", "/testfwd/t1/rules/1").status
        XCTAssertEqual(value12, 404)
        // Ports: one removed, one added, through the cube's list.
        let value13 = try await call("DELETE", "/testfwd/t1/ports/p2").status
        XCTAssertEqual(value13, 204)
        let value14 = try await call("POST", "/testfwd/t1/ports/p3", "{}").status
        XCTAssertEqual(value14, 201)
        let ports = try await coreCubes().first { $0["name"] as? String == "t1" }?["ports"] as? [[String: Any]]
        XCTAssertEqual(ports?.compactMap { $0["name"] as? String }, ["p1", "p3"])
        // /<cube>/... is the cube's service's tree.
        let value15 = try await call("GET", "/t1/mtu").json as? Int
        XCTAssertEqual(value15, 1200)
        let services = try await call("GET", "/services").json as? [[String: Any]]
        XCTAssertEqual(services?.first?["name"] as? String, "testfwd")

        let value16 = try await call("DELETE", "/testfwd/t1").status
        XCTAssertEqual(value16, 204)
        let value17 = try await coreCubes().count
        XCTAssertEqual(value17, 0)
        let value18 = try await call("GET", "/testfwd").json as? [String]
        XCTAssertEqual(value18, [])
    }

    func testBadRequestsAreAllRefusedWithStatusTagAndPath() async throws {
        let value19 = try await call("POST", "/testfwd/t1", #"{"ports":[{"name":"p1"}]}"#).status
        XCTAssertEqual(value19, 201)
        let t1 = Self.t1, t2 = Self.t2
        let json = "application/json"
        let matrix: [(method: String, path: String, body: String?, type: String, status: Int, tag: String, errorPath: String?)] = [
            ("POST", "/testfwd/t1", "{}", json, 409, "data-exists", t1),
            ("POST", "/testfwd/t2", #"{"mtu":20}"#, json, 400, "invalid-value", t2 + "/mtu"),
            ("POST", "/testfwd/t2", #"{"mtu":9001}"#, json, 400, "invalid-value", t2 + "/mtu"),
            ("POST", "/testfwd/t2", #"{"mtu":"abc"}"#, json, 400, "invalid-value", t2 + "/mtu"),
            ("POST", "/testfwd/t2", #"{"label":"ABC"}"#, json, 400, "invalid-value", t2 + "/label"),
            ("POST", "/testfwd/t2", #"{"label":"abcdefghij"}"#, json, 400, "invalid-value", t2 + "/label"),
            ("POST", "/testfwd/t2", #"{"address":"10.0.1.300/24"}"#, json, 400, "invalid-value", t2 + "/address"),
            ("POST", "/testfwd/t2", #"{"address":"10.0.1.1"}"#, json, 400, "invalid-value", t2 + "/address"),
            ("POST", "/testfwd/t2", #"{"mode":"sideways"}"#, json, 400, "invalid-value", t2 + "/mode"),
            ("POST", "/testfwd/t2", #"{"type":"XDP_FAST"}"#, json, 400, "invalid-value", t2 + "/type"),
            ("POST", "/testfwd/t2", #"{"bogus":1}"#, json, 400, "unknown-element", t2 + "/bogus"),
            ("POST", "/testfwd/t2", #"{"hits":5}"#, json, 400, "invalid-value", t2 + "/hits"),
            ("POST", "/testfwd/t2", #"{"uuid":"x"}"#, json, 400, "invalid-value", t2 + "/uuid"),
            ("POST", "/testfwd/t2", #"{"rules":[{"id":1}]}"#, json, 400, "missing-element", t2 + "/rules[id='1']/priority"),
            ("POST", "/testfwd/t2", #"{"rules":[{"priority":1}]}"#, json, 400, "missing-element", t2 + "/rules[id='']"),
            ("POST", "/testfwd/t2", #"{"rules":[{"id":1,"priority":1},{"id":1,"priority":2}]}"#, json, 400, "data-exists", t2 + "/rules[id='1']"),
            ("POST", "/testfwd/t2", #"{"rules":[{"id":1,"priority":1},{"id":2,"priority":2},{"id":3,"priority":3},{"id":4,"priority":4}]}"#, json, 400, "operation-failed", t2 + "/rules"),
            ("POST", "/testfwd/t2", #"{"rules":[{"id":1,"priority":5},{"id":2,"priority":5}]}"#, json, 400, "invalid-value", nil),
            ("POST", "/testfwd/t2", #"{"low":5,"high":3}"#, json, 400, "invalid-value", t2 + "/low"),
            ("POST", "/testfwd/t2", #"{"default-port":"p9"}"#, json, 400, "invalid-value", t2 + "/default-port"),
            ("POST", "/testfwd/t2", #"{"tags":["a","b","c","d","e"]}"#, json, 400, "operation-failed", t2 + "/tags"),
            ("POST", "/testfwd/t2", #"{"tags":["abcdefghijkl"]}"#, json, 400, "invalid-value", t2 + "/tags"),
            ("POST", "/testfwd/t2", #"{"tags":"a"}"#, json, 400, "invalid-value", t2 + "/tags"),
            ("POST", "/testfwd/t2", #"{"limits":{"rate":0}}"#, json, 400, "invalid-value", t2 + "/limits/rate"),
            ("POST", "/testfwd/t2", #"{"limits":{"bogus":1}}"#, json, 400, "unknown-element", t2 + "/limits/bogus"),
            ("POST", "/testfwd/t2", #"{"limits":5}"#, json, 400, "invalid-value", t2 + "/limits"),
            ("POST", "/testfwd/t2", #"{"enabled":"maybe"}"#, json, 400, "invalid-value", t2 + "/enabled"),
            ("POST", "/testfwd/t2", #"{"counter64":"-1"}"#, json, 400, "invalid-value", t2 + "/counter64"),
            ("POST", "/testfwd/t2", #"{"name":"other"}"#, json, 400, "invalid-value", t2 + "/name"),
            ("POST", "/testfwd/bad%21name", "{}", json, 400, "invalid-value", "/testfwd:testfwd[name='bad!name']/name"),
            ("POST", "/testfwd/t2", #"{"ports":[{"name":"p1","status":"UP"}]}"#, json, 400, "invalid-value", t2 + "/ports[name='p1']/status"),
            ("POST", "/testfwd/t2", #"{"ports":[{"name":"p1","peer":"nosuchdev0"}]}"#, json, 400, "invalid-value", t2 + "/ports[name='p1']/peer"),
            ("PATCH", "/testfwd/t1", #"{"type":"XDP_SKB"}"#, json, 400, "invalid-value", t1 + "/type"),
            ("PATCH", "/testfwd/t9", #"{"mtu":100}"#, json, 404, "data-missing", "/testfwd:testfwd[name='t9']"),
            ("PATCH", "/testfwd/t1/hits", "1", json, 405, "operation-not-supported", t1 + "/hits"),
            ("DELETE", "/testfwd/t1/label", nil, json, 404, "data-missing", t1 + "/label"),
            ("GET", "/testfwd/t9", nil, json, 404, "data-missing", "/testfwd:testfwd[name='t9']"),
            ("GET", "/testfwd/t1/nosuch", nil, json, 404, "invalid-value", "/polycube/v1/testfwd/t1/nosuch"),
            ("GET", "/nosuchservice/x", nil, json, 404, "invalid-value", nil),
            ("POST", "/testfwd/t1/ports/p2", "{}", "text/plain", 415, "invalid-value", nil),
            ("POST", "/testfwd/t2", "{not json", json, 400, "malformed-message", nil),
            ("PUT", "/testfwd/t1/ports", "{}", json, 405, "operation-not-supported", t1 + "/ports"),
            ("POST", "/testfwd/t1/rules", #"{"priority":1}"#, json, 400, "missing-element", t1 + "/rules"),
            ("POST", "/testfwd/t1/ports/p1/name/x", "{}", json, 404, "invalid-value", nil),
            ("DELETE", "/testfwd", nil, json, 405, "operation-not-supported", "/testfwd:testfwd"),
            ("PATCH", "/testfwd/t1", #"{"refuse":true}"#, json, 409, "operation-failed", t1),
        ]
        XCTAssertGreaterThanOrEqual(matrix.count, 40)
        let before = try await call("GET", "/testfwd").json as? [[String: Any]]
        let etag = try await call("GET", "/testfwd").headers["etag"]
        for row in matrix {
            let answer = try await call(row.method, row.path, row.body, contentType: row.type)
            let what = "\(row.method) \(row.path) \(row.body ?? "")"
            XCTAssertEqual(answer.status, row.status, "\(what): \(answer.json ?? "")")
            XCTAssertEqual(answer.errors.first?["error-tag"], row.tag, "\(what): \(answer.json ?? "")")
            XCTAssertEqual(answer.errors.first?["error-type"], "application", what)
            XCTAssertFalse(answer.errors.first?["error-message"]?.isEmpty ?? true, what)
            if let errorPath = row.errorPath {
                XCTAssertEqual(answer.errors.first?["error-path"], errorPath, "\(what): \(answer.json ?? "")")
            }
        }
        // All the errors of one request come back at once.
        let many = try await call("POST", "/testfwd/t2", #"{"mtu":20,"label":"ABC","bogus":1,"mode":"x"}"#)
        XCTAssertEqual(many.errors.count, 4, "\(many.json ?? "")")
        // A stale If-Match is refused.
        let stale = try await call("PATCH", "/testfwd/t1", #"{"mtu":100}"#, headers: ["If-Match": "\"999\""])
        XCTAssertEqual(stale.status, 412)
        // Nothing of the above changed anything: configuration, ETag, datapath.
        let after = try await call("GET", "/testfwd")
        XCTAssertEqual(after.headers["etag"], etag)
        XCTAssertEqual((after.json as? [[String: Any]]).map { NSArray(array: $0) }, before.map { NSArray(array: $0) })
        let value20 = try await coreCubes().compactMap { $0["name"] as? String }
        XCTAssertEqual(value20, ["t1"])
    }

    /// With pcn-core gone, what needs the datapath answers 503 resource-denied (one mapping for every
    /// pcn-core call); the stored configuration is still readable, and nothing half-written is stored.
    /// curl's view of one request: status, headers (lower-case names) and body.
    private func raw(_ method: String, _ path: String, _ extra: [String] = []) throws -> (status: Int, headers: [String: String], body: String) {
        let result = try runCommand("/usr/bin/curl", ["-s", "-i", "--max-time", "10", "-X", method] + extra + ["http://127.0.0.1:\(port)" + path])
        let parts = result.stdout.components(separatedBy: "\r\n\r\n")
        let head = parts.first?.components(separatedBy: "\r\n") ?? []
        let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    func testEveryMethodAndPathGetsItsStatusAndABody() async throws {
        try await call("POST", "/testfwd/t1", #"{"ports":[{"name":"p1"}]}"#)
        let get = try raw("GET", "/polycube/v1/testfwd/t1")
        XCTAssertEqual(get.status, 200)
        // HEAD: GET's status and length, no body (curl is told not to wait for one).
        let head = try raw("HEAD", "/polycube/v1/testfwd/t1", ["-I"])
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["content-length"], "\(get.body.utf8.count)", "\(head)")
        XCTAssertEqual(head.body, "")
        // OPTIONS: the path's methods.
        let options = try raw("OPTIONS", "/polycube/v1/netdevs")
        XCTAssertEqual(options.status, 204)
        XCTAssertEqual(options.headers["allow"], "GET, HEAD, OPTIONS")
        XCTAssertEqual(try raw("OPTIONS", "/polycube/v1/testfwd/t1").headers["allow"], "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
        XCTAssertEqual(try raw("OPTIONS", "/polycube/v1/topology/lo").headers["allow"], "GET, HEAD, OPTIONS")
        // A method the path has not: 405 with Allow and a RESTCONF body; CONNECT ends too.
        for (method, path) in [("DELETE", "/polycube/v1/netdevs"), ("PUT", "/polycube/v1/cubes"), ("POST", "/polycube/v1/schema/testfwd"),
                               ("CONNECT", "/polycube/v1/testfwd/t1")] {
            let refused = try raw(method, path)
            XCTAssertEqual(refused.status, 405, "\(method) \(path): \(refused)")
            XCTAssertNotNil(refused.headers["allow"], "\(method) \(path)")
            // (curl reads no body after a CONNECT's refusal.)
            if method != "CONNECT" {
                XCTAssertTrue(refused.body.contains(#""error-tag":"operation-not-supported""#), "\(method) \(path): \(refused.body)")
            }
        }
        // A key leaf is its entry's name: not changed, not deleted (found by RestFuzzTests).
        let renamed = try await call("PUT", "/testfwd/t1/ports/p1/name", #""p2""#)
        XCTAssertEqual(renamed.status, 400, "\(renamed)")
        let same = try await call("PUT", "/testfwd/t1/ports/p1/name", #""p1""#)
        XCTAssertEqual(same.status, 204, "the same value is no change: \(same)")
        let unkeyed = try await call("DELETE", "/testfwd/t1/ports/p1/name")
        XCTAssertEqual(unkeyed.status, 400, "\(unkeyed)")
        let ports = try await call("GET", "/testfwd/t1/ports")
        XCTAssertEqual((ports.json as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["p1"], "\(ports)")
        // State below an entry that is not there: 404, not "try again".
        let missingState = try await call("GET", "/testfwd/t1/ports/nosuch/status")
        XCTAssertEqual(missingState.status, 404, "\(missingState)")
        // Nothing there: 404 with a body.
        for path in ["/nowhere", "/polycube/v2/x", "/polycube/v1/schema/nosuch"] {
            let missing = try raw("GET", path)
            XCTAssertEqual(missing.status, 404, path)
            XCTAssertTrue(missing.body.contains("ietf-restconf:errors"), "\(path): \(missing.body)")
        }
    }

    func testABodyOverTheLimitIs413AndBadValuesAreQuotedShort() async throws {
        let body = try makeTemporaryDirectory() + "/big.json"
        let huge = #"{"name":"t9","label":""# + String(repeating: "A", count: 20 << 20) + #""}"#
        try huge.write(toFile: body, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: (body as NSString).deletingLastPathComponent) }
        let tooLarge = try raw("POST", "/polycube/v1/testfwd/t9", ["-H", "Content-Type: application/json", "--data-binary", "@" + body])
        XCTAssertEqual(tooLarge.status, 413, tooLarge.body)
        XCTAssertTrue(tooLarge.body.contains("--max-body-size"), tooLarge.body)
        // A bad value of 100,000 characters comes back cut, with its length.
        let bad = try await call("POST", "/testfwd/t9", #"{"label":""# + String(repeating: "A", count: 100_000) + #""}"#)
        XCTAssertEqual(bad.status, 400)
        let message = bad.errors.first?["error-message"] ?? ""
        XCTAssertLessThan(message.count, 300, message)
        XCTAssertTrue(message.contains("(100000 characters)"), message)
        XCTAssertEqual(bad.errors.first?["error-path"], "/testfwd:testfwd[name='t9']/label")
    }

    func testAFullStateDiskIs507AndTheDatastoreStaysAsItWas() async throws {
        // pcn-api again, its state on a 2 MB tmpfs.
        api?.killAndWait(SIGTERM)
        let small = directory + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        XCTAssertEqual(try runCommand("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", small]).status, 0)
        defer { _ = try? runCommand("/usr/bin/umount", ["-l", small]) }
        apiArguments += ["--state-dir", small]
        try startAPI()
        try await eventually(timeout: 30) { (try? await self.call("GET", "/testfwd"))?.status == 200 }
        let before = (try? String(contentsOfFile: small + "/datastore.json", encoding: .utf8)) ?? ""
        let journal = (try? String(contentsOfFile: small + "/datastore.json.journal", encoding: .utf8)) ?? ""
        // Fill the disk (to the last block: a file with room left in its last block could still grow).
        _ = try runCommand("/usr/bin/dd", ["if=/dev/zero", "of=\(small)/filler", "bs=4k", "count=1000"])
        let full = try await call("POST", "/testfwd/t1", #"{"mtu":1400,"ports":[{"name":"p1"}]}"#)
        XCTAssertEqual(full.status, 507, "\(full)")
        XCTAssertEqual(full.errors.first?["error-tag"], "resource-denied")
        // Nothing changed: not the datastore, not pcn-core, no temporary file.
        let missing = try await call("GET", "/testfwd/t1")
        XCTAssertEqual(missing.status, 404, "\(missing)")
        let inCore = try await coreCubes()
        XCTAssertFalse(inCore.contains { $0["name"] as? String == "t1" }, "\(inCore)")
        XCTAssertEqual((try? String(contentsOfFile: small + "/datastore.json", encoding: .utf8)) ?? "", before)
        XCTAssertEqual((try? String(contentsOfFile: small + "/datastore.json.journal", encoding: .utf8)) ?? "", journal, "no torn line left")
        XCTAssertFalse(FileManager.default.fileExists(atPath: small + "/datastore.json.tmp"))
        // Space again: the same write goes through.
        try FileManager.default.removeItem(atPath: small + "/filler")
        let retried = try await call("POST", "/testfwd/t1", #"{"mtu":1400,"ports":[{"name":"p1"}]}"#)
        XCTAssertEqual(retried.status, 201, "\(retried)")
        let stored = try await call("GET", "/testfwd/t1/mtu")
        XCTAssertEqual(stored.json as? Int, 1400)
    }

    func testWithoutPcnCoreDatapathCallsAre503AndNothingChanges() async throws {
        let created = try await call("POST", "/testfwd/t1", #"{"ports":[{"name":"p1"}]}"#)
        XCTAssertEqual(created.status, 201)
        let before = try await call("GET", "/testfwd/t1")
        core?.killAndWait(SIGTERM)
        for (method, path, body) in [("POST", "/testfwd/t2", "{}"), ("PATCH", "/testfwd/t1", #"{"mtu":1400}"#),
                                     ("GET", "/cubes", ""), ("GET", "/topology", ""), ("GET", "/metrics", ""),
                                     ("POST", "/attach", #"{"cube":"t1","port":"lo"}"#)] {
            let answer = try await call(method, path, body.isEmpty ? nil : body)
            XCTAssertEqual(answer.status, 503, "\(method) \(path): \(answer)")
            XCTAssertEqual(answer.errors.first?["error-tag"], "resource-denied", "\(method) \(path): \(answer)")
            XCTAssertTrue(answer.errors.first?["error-message"]?.hasPrefix("pcn-core is not reachable") ?? false, "\(answer)")
        }
        let after = try await call("GET", "/testfwd/t1")
        XCTAssertEqual(after.status, 200)
        XCTAssertEqual((after.json as? [String: Any])?["mtu"] as? Int, (before.json as? [String: Any])?["mtu"] as? Int)
        let t2 = try await call("GET", "/testfwd/t2")
        XCTAssertEqual(t2.status, 404, "a refused create was stored")
    }

    func testARefusalByTheCubeHostRollsBackTheDatapath() async throws {
        let refused = try await call("POST", "/testfwd/t3", #"{"refuse":true,"ports":[{"name":"p1"}]}"#)
        XCTAssertEqual(refused.status, 409)
        XCTAssertTrue(refused.errors.first?["error-message"]?.contains("refuses refuse=true") == true, "\(refused.json ?? "")")
        let value21 = try await coreCubes().count
        XCTAssertEqual(value21, 0, "the cube created in pcn-core was not removed")
        let value22 = try await call("GET", "/testfwd/t3").status
        XCTAssertEqual(value22, 404)

        let value23 = try await call("POST", "/testfwd/t4", #"{"ports":[{"name":"p1"}]}"#).status
        XCTAssertEqual(value23, 201)
        let change = try await call("PATCH", "/testfwd/t4", #"{"refuse":true,"loglevel":"TRACE","ports":[{"name":"p2"}]}"#)
        XCTAssertEqual(change.status, 409)
        let t4 = try await coreCubes().first { $0["name"] as? String == "t4" }
        XCTAssertEqual(t4?["loglevel"] as? String, "INFO", "the log level was not rolled back")
        XCTAssertEqual((t4?["ports"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["p1"], "the added port was not rolled back")
        let value24 = try await call("GET", "/testfwd/t4/loglevel").json as? String
        XCTAssertEqual(value24, "INFO")
    }

    func testTheDatastoreSurvivesARestartOfPcnAPIAndIsReplayed() async throws {
        let value25 = try await call("POST", "/testfwd/t5", #"{"mtu":1234,"ports":[{"name":"p1"}]}"#).status
        XCTAssertEqual(value25, 201)
        api?.killAndWait(SIGKILL)
        // On disk when answered: in the journal (the file is rewritten when the journal grows).
        let stored = try String(contentsOfFile: directory + "/state/datastore.json.journal", encoding: .utf8)
        XCTAssertTrue(stored.contains(#""mtu":1234"#), stored)
        // pcn-core restarts empty (as after a reboot): pcn-api replays the cube when it comes back.
        bus?.stop()
        core?.killAndWait(SIGKILL)
        _ = try runCommand("/bin/rm", ["-rf", bpffsRoot, directory + "/state/datapath.json"])
        core = try Child("pcn-core", ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state", "--bpffs-root", bpffsRoot,
                                      "--log-level", "warning", "--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path, "--service-dir", repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf").path])
        try startAPI()
        let client = BusClient(socketPath: directory + "/run/bus.sock", name: "tester", logger: quietLogger)
        client.start()
        _ = await client.waitUntilRegistered(timeout: .seconds(10))
        bus = client
        try await eventually(timeout: 30) { (try? await self.call("GET", "/testfwd/t5/mtu"))?.json as? Int == 1234 }
        try await eventually(timeout: 30) { (try? await self.coreCubes())?.first?["name"] as? String == "t5" }

        // A corrupt datastore: pcn-api refuses to start, names the file, keeps it.
        api?.killAndWait(SIGTERM)
        try "{ nope".write(toFile: directory + "/state/datastore.json", atomically: true, encoding: .utf8)
        let result = try runCommand(productsDirectory.appendingPathComponent("pcn-api").path, apiArguments)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("datastore \(directory)/state/datastore.json is corrupt"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: directory + "/state/datastore.json", encoding: .utf8), "{ nope")
        api = nil
    }

    func testConnectAttachAndTopology() async throws {
        for cube in ["t1", "t2"] {
            let created = try await call("POST", "/testfwd/\(cube)", #"{"ports":[{"name":"p1"}]}"#)
            XCTAssertEqual(created.status, 201)
        }
        // HATEOAS as Polycube's REST, and the base leaves: service-name, uuid (cube and ports).
        let t1 = try await call("GET", "/testfwd/t1").json as? [String: Any]
        let links = t1?["_links"] as? [[String: String]] ?? []
        XCTAssertEqual(links.first, ["rel": "self", "href": "/polycube/v1/testfwd/t1/"])
        XCTAssertTrue(links.contains(["rel": "ports", "href": "/polycube/v1/testfwd/t1/ports/"]), "\(links)")
        XCTAssertEqual(t1?["service-name"] as? String, "testfwd")
        let uuid = /[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/
        XCTAssertNotNil((t1?["uuid"] as? String)?.wholeMatch(of: uuid), "\(t1 ?? [:])")
        let port = (t1?["ports"] as? [[String: Any]])?.first
        XCTAssertNotNil((port?["uuid"] as? String)?.wholeMatch(of: uuid), "\(port ?? [:])")
        XCTAssertNotEqual(port?["uuid"] as? String, t1?["uuid"] as? String)
        let t2 = try await call("GET", "/testfwd/t2").json as? [String: Any]
        XCTAssertNotEqual(t2?["uuid"] as? String, t1?["uuid"] as? String)
        let entry = try await call("GET", "/testfwd/t1/ports/p1").json as? [String: Any]
        XCTAssertEqual((entry?["_links"] as? [[String: String]])?.first?["href"], "/polycube/v1/testfwd/t1/ports/p1/")
        XCTAssertEqual(entry?["uuid"] as? String, port?["uuid"] as? String, "the same port, the same uuid")

        var answer = try await call("POST", "/connect", #"{"peer1":"t1:p1","peer2":"t2:p1"}"#)
        XCTAssertEqual(answer.status, 204, "\(answer.json ?? "")")
        let otherEnd = try await call("GET", "/testfwd/t2/ports/p1/peer")
        XCTAssertEqual(otherEnd.json as? String, "t1:p1", "the other end's peer follows")
        var cubes = try await coreCubes()
        XCTAssertEqual((cubes.first { $0["name"] as? String == "t2" }?["ports"] as? [[String: Any]])?.first?["peer"] as? String, "t1:p1")
        answer = try await call("POST", "/disconnect", #"{"peer1":"t2:p1"}"#)
        XCTAssertEqual(answer.status, 204, "\(answer.json ?? "")")
        let cleared = try await call("GET", "/testfwd/t1/ports/p1/peer")
        XCTAssertEqual(cleared.status, 404, "t1's end was not cleared")
        answer = try await call("POST", "/connect", #"{"peer1":"t1:p1","peer2":"nosuchdev0"}"#)
        XCTAssertEqual(answer.status, 400)
        XCTAssertEqual(answer.errors.first?["error-path"], Self.t1 + "/ports[name='p1']/peer")

        // A transparent service, attached to a port, seen in the topology, stored, detached.
        let tracer = try Child("pcn-bus-peer", ["--socket", directory + "/run/bus.sock", "--name", "cube-host/testtrace", "--mode", "service",
                                                "--service", "testtrace", "--yang", repositoryRoot.appendingPathComponent("Tests/Fixtures/testtrace.yang").path])
        defer { tracer.killAndWait(SIGTERM) }
        try tracer.waitForLine(timeout: 30) { $0 == "MODEL REGISTERED" }
        let x1Created = try await call("POST", "/testtrace/x1", "{}")
        XCTAssertEqual(x1Created.status, 201)
        answer = try await call("POST", "/attach", #"{"cube":"x1","port":"t1:p1","position":"first"}"#)
        XCTAssertEqual(answer.status, 204, "\(answer.json ?? "")")
        answer = try await call("POST", "/attach", #"{"cube":"x1","port":"t2:p1"}"#)
        XCTAssertEqual(answer.status, 409)
        XCTAssertTrue(answer.errors.first?["error-message"]?.contains("already attached") == true, "\(answer.json ?? "")")
        let topology = try await call("GET", "/topology").json as? [String: Any]
        let x1 = (topology?["cubes"] as? [[String: Any]])?.first { $0["name"] as? String == "x1" }
        XCTAssertEqual(x1?["parent"] as? String, "t1:p1")
        let stored = try String(contentsOfFile: directory + "/state/datastore.json", encoding: .utf8)
        XCTAssertTrue(stored.contains(#""to":"t1:p1""#), stored)
        // Polycube's `detach CUBE PORT`: only from where it is attached.
        let elsewhere = try await call("POST", "/detach", #"{"cube":"x1","port":"t2:p1"}"#)
        XCTAssertEqual(elsewhere.status, 409)
        XCTAssertEqual(elsewhere.errors.first?["error-message"], "'x1' is attached to t1:p1, not to t2:p1")
        let parent = try await coreCubes().first { $0["name"] as? String == "x1" }?["parent"] as? String
        XCTAssertEqual(parent, "t1:p1", "a refused detach changes nothing")
        let detached = try await call("POST", "/detach", #"{"cube":"x1","port":"t1:p1"}"#)
        XCTAssertEqual(detached.status, 204)
        let again = try await call("POST", "/detach", #"{"cube":"x1","port":"t1:p1"}"#)
        XCTAssertEqual(again.status, 409)
        XCTAssertEqual(again.errors.first?["error-message"], "'x1' is not attached (asked to detach it from t1:p1)")
        // A netdev's chains: nothing attached to lo, so its packets go to the stack.
        let lo = try await call("GET", "/topology/lo").json as? [String: Any]
        XCTAssertEqual(lo?["ingress"] as? [String], ["stack"])
        XCTAssertEqual(lo?["egress"] as? [String], ["stack"])
        let missing = try await call("GET", "/topology/nosuchdev0")
        XCTAssertEqual(missing.status, 404)
        cubes = try await coreCubes()
        XCTAssertNil(cubes.first { $0["name"] as? String == "x1" }?["parent"] as? String)
        let netdevs = try await call("GET", "/netdevs").json as? [[String: Any]]
        XCTAssertTrue(netdevs?.contains { $0["name"] as? String == "lo" } == true)
    }

    /// pcnctl as a person runs it; `input` is given on its standard input.
    func pcnctl(_ arguments: [String], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let url = String(base.dropLast("/polycube/v1".count))
        guard let input else { return try runCommand(productsDirectory.appendingPathComponent("pcnctl").path, ["--url", url] + arguments) }
        let file = directory + "/stdin.txt"
        try input.write(toFile: file, atomically: true, encoding: .utf8)
        return try runCommand("/bin/bash", ["-c", "exec \"$0\" --url \"$1\" \"${@:2}\" < \"$FILE\"", productsDirectory.appendingPathComponent("pcnctl").path, url] + arguments,
                              environment: ["FILE": file])
    }

    func testPcnctlEndToEnd() throws {
        var result = try pcnctl(["testfwd", "add", "t1", "type=tc", "mtu=9000", "label=abc"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try pcnctl(["t1", "ports", "add", "p1"])
        XCTAssertEqual(result.status, 0, "a cube's name stands for its service: \(result.stderr)")
        result = try pcnctl(["t1", "set", "mtu=1400", "limits.rate=10"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try pcnctl(["t1", "show", "-json"])
        let shown = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(shown?["mtu"] as? Int, 1400)
        XCTAssertEqual((shown?["limits"] as? [String: Any])?["rate"] as? Int, 10)
        XCTAssertEqual(shown?["label"] as? String, "abc")
        XCTAssertTrue(try pcnctl(["t1", "show", "-yaml"]).stdout.contains("mtu: 1400"))
        XCTAssertTrue(try pcnctl(["t1", "show", "-brief"]).stdout.contains("ports: 1 entries"))

        // Errors for people, exit 1.
        result = try pcnctl(["t1", "set", "label=ABC", "mtu=20"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("pcnctl: t1 label: 'ABC' is not a valid string"), result.stderr)
        XCTAssertTrue(result.stderr.contains("t1 mtu: '20' is not a valid uint16"), result.stderr)
        result = try pcnctl(["t1", "ports", "p1", "set", "peer=nosuchdev0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("t1 ports p1 peer: netdev 'nosuchdev0' does not exist"), result.stderr)
        result = try pcnctl(["t1", "set"])
        XCTAssertEqual(result.status, 64, result.stderr)

        // A YAML body on standard input.
        result = try pcnctl(["t1", "set"], input: "mtu: 1500\nmode: drop\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        // polycubectl's text layout: a leaf bare, a cube as `key: value` lines and tables.
        XCTAssertEqual(try pcnctl(["t1", "mode", "show"]).stdout, "DROP\n")
        result = try pcnctl(["t1", "show"])
        XCTAssertTrue(result.stdout.hasPrefix("name: t1\n"), result.stdout)
        XCTAssertTrue(result.stdout.contains("\nports:\n name  uuid"), result.stdout)
        XCTAssertFalse(result.stdout.contains("_links"), result.stdout)
        XCTAssertTrue(result.stdout.contains("limits:\n rate: 10\n"), result.stdout)
        // An empty list prints nothing, exit 0; a missing entry is still an error.
        result = try pcnctl(["t1", "rules", "show"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(try pcnctl(["t1", "rules", "9", "show"]).status, 1)
        XCTAssertEqual(try pcnctl(["testfwd", "nosuch", "rules", "show"]).status, 1, "no such cube is not an empty list")
        // `?`: what can follow, exit 0 while pcn-api answers, 69 when it does not.
        result = try pcnctl(["?"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.split(separator: "\n").contains("testfwd"), result.stdout)
        result = try pcnctl(["t1", "?"])
        XCTAssertTrue(result.stdout.split(separator: "\n").contains("mtu"), result.stdout)
        result = try runCommand(productsDirectory.appendingPathComponent("pcnctl").path, ["--url", "http://127.0.0.1:1", "?"])
        XCTAssertEqual(result.status, 69, result.stderr)

        // Help from the model, completion.
        result = try pcnctl(["testfwd", "help"])
        XCTAssertTrue(result.stdout.contains("mtu") && result.stdout.contains("Largest frame."), result.stdout)
        XCTAssertTrue(result.stdout.contains("type") && result.stdout.contains("set at creation"), result.stdout)
        // A member below the service, with or without a cube's name before it.
        for words in [["testfwd", "rules", "help"], ["testfwd", "t1", "rules", "help"], ["t1", "rules", "help"]] {
            result = try pcnctl(words)
            XCTAssertTrue(result.stdout.hasPrefix("rules (list)") && result.stdout.contains("priority"), "\(words): \(result.stdout)")
        }
        XCTAssertTrue(try pcnctl(["completion", "bash"]).stdout.contains("complete -F _pcnctl pcnctl"))
        let candidates = try pcnctl(["__complete"]).stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(candidates.contains("testfwd") && candidates.contains("t1") && candidates.contains("connect"), "\(candidates)")
        let below = try pcnctl(["__complete", "t1"]).stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(below.contains("ports") && below.contains("mtu"), "\(below)")

        // Generic commands.
        XCTAssertEqual(try pcnctl(["testfwd", "add", "t2"]).status, 0)
        XCTAssertEqual(try pcnctl(["t2", "ports", "add", "p1"]).status, 0)
        result = try pcnctl(["connect", "t1:p1", "t2:p1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(try pcnctl(["t2", "ports", "p1", "peer", "show"]).stdout.contains("t1:p1"))
        XCTAssertEqual(try pcnctl(["disconnect", "t1:p1"]).status, 0)
        XCTAssertEqual(try pcnctl(["t1", "del"]).status, 0)
        XCTAssertEqual(try pcnctl(["t1", "show"]).status, 1)
    }

    func testMetricsAreOpenMetrics() async throws {
        let created = try await call("POST", "/testfwd/t1", #"{"ports":[{"name":"p1"},{"name":"p2"}]}"#)
        XCTAssertEqual(created.status, 201)
        var request = URLRequest(url: URL(string: base + "/metrics")!)
        request.httpMethod = "GET"
        // As a Prometheus server asks.
        request.setValue("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", forHTTPHeaderField: "Accept")
        let (data, response) = try await URLSession.shared.data(for: request)
        XCTAssertTrue(((response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Type") ?? "").hasPrefix("application/openmetrics-text"))
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.last, "# EOF")
        XCTAssertTrue(lines.contains("# TYPE pcn_port_rx_packets counter"))
        XCTAssertTrue(lines.contains(#"pcn_port_tx_bytes_total{cube="t1",service="testfwd",port="p2"} 0"#), "\(lines)")
        XCTAssertTrue(lines.contains(#"pcn_cube_drops_total{cube="t1",service="testfwd",reason="missed-tail-call"} 0"#), "\(lines)")
        XCTAssertTrue(lines.contains(#"pcn_cube_slow_path_queue_depth{cube="t1",service="testfwd"} 0"#), "\(lines)")
        // The model's own: `hits` (state, from the cube-host: 42) as a counter, `rules` as its number of entries.
        XCTAssertTrue(lines.contains("# TYPE testfwd_hits counter"), "\(lines)")
        XCTAssertTrue(lines.contains("# HELP testfwd_hits Packets the test cube saw."), "\(lines)")
        XCTAssertTrue(lines.contains(#"testfwd_hits_total{cube="t1",service="testfwd"} 42"#), "\(lines)")
        XCTAssertTrue(lines.contains(#"testfwd_rules{cube="t1",service="testfwd"} 0"#), "\(lines)")
        for rule in 1...2 {
            let added = try await call("POST", "/testfwd/t1/rules/\(rule)", #"{"priority":\#(rule)}"#)
            XCTAssertEqual(added.status, 201, "\(added)")
        }
        let again = String(decoding: try await URLSession.shared.data(for: request).0, as: UTF8.self)
        XCTAssertTrue(again.contains(#"testfwd_rules{cube="t1",service="testfwd"} 2"#), again)
        XCTAssertTrue(again.contains("# HELP testfwd_rules Entries of list testfwd:rules"), "without help-metric nor description: \(again)")

        // Without that Accept (curl, promtool): Prometheus text 0.0.4, counters named by their samples.
        let (plainData, plainResponse) = try await URLSession.shared.data(from: URL(string: base + "/metrics")!)
        XCTAssertEqual((plainResponse as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        let plain = String(decoding: plainData, as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertFalse(plain.contains("# EOF"))
        XCTAssertTrue(plain.contains("# TYPE pcn_port_rx_packets_total counter"), "\(plain)")
        XCTAssertTrue(plain.contains("# HELP testfwd_hits_total Packets the test cube saw."), "\(plain)")
        XCTAssertTrue(plain.contains("# TYPE pcn_cube_slow_path_queue_depth gauge"), "\(plain)")
        XCTAssertTrue(plain.contains(#"testfwd_hits_total{cube="t1",service="testfwd"} 42"#), "\(plain)")
        // Every sample line belongs to the family its TYPE line names, as the text format requires.
        var family = ""
        for line in plain {
            if line.hasPrefix("# TYPE ") { family = String(line.split(separator: " ")[2]); continue }
            if line.hasPrefix("#") { continue }
            XCTAssertEqual(String(line.prefix { $0 != "{" && $0 != " " }), family, line)
        }
    }

    /// A model whose metric declarations are wrong is refused at registration, with every problem named.
    func testBadMetricDeclarationsRefuseTheModel() async throws {
        let model = #"""
            module badmetrics {
              yang-version 1.1;
              namespace "urn:test:badmetrics";
              prefix bm;
              import polycube-base { prefix pb; }
              list badmetrics {
                key name;
                uses pb:standard-base;
                leaf label { type string; config false; pb:name-metric "badmetrics_label"; }
                leaf hits { type uint64; config false; pb:name-metric "9hits"; }
                leaf seen { type uint64; config false; pb:name-metric "badmetrics_seen"; pb:type-metric histogram; }
                leaf size { type uint32; pb:name-metric "badmetrics_size"; }
                leaf lost { type uint32; config false; pb:type-metric counter; }
                leaf drops { type uint32; config false; pb:name-metric "testfwd_hits"; }
                leaf own { type uint32; config false; pb:name-metric "pcn_cube_rx_packets"; }
                list items { key id; leaf id { type uint8; } pb:name-metric "badmetrics_items"; pb:type-metric counter; }
              }
            }
            """#
        let payload = Array(try JSONSerialization.data(withJSONObject: ["service": "badmetrics", "yang": model]))
        // A model comes from its service's own cube-host.
        let host = BusClient(socketPath: directory + "/run/bus.sock", name: "cube-host/badmetrics", logger: quietLogger)
        host.start()
        defer { host.stop() }
        _ = await host.waitUntilRegistered(timeout: .seconds(10))
        do {
            _ = try await bus!.request("api", method: "service.register", payload: payload, timeout: .seconds(10))
            XCTFail("a model was registered by a client that is not its cube-host")
        } catch let error as BusError {
            XCTAssertEqual(error.code, .forbidden, "\(error)")
        }
        do {
            _ = try await host.request("api", method: "service.register", payload: payload, timeout: .seconds(10))
            XCTFail("a model with wrong metrics was registered")
        } catch let error as BusError {
            for expected in ["badmetrics:label carries name-metric but is not a numeric config-false leaf or a list",
                             "name-metric '9hits' of badmetrics:hits is not an OpenMetrics name",
                             "type-metric 'histogram' of badmetrics:seen is not counter or gauge",
                             "badmetrics:size carries name-metric but is not a numeric config-false leaf",
                             "badmetrics:lost has type-metric or help-metric but no name-metric",
                             "name-metric 'testfwd_hits' is declared more than once: badmetrics:drops, testfwd:hits",
                             "name-metric 'pcn_cube_rx_packets' of badmetrics:own: names starting with pcn_ are pcn-api's own",
                             "badmetrics:items is a list: its number of entries is a gauge, not a counter"] {
                XCTAssertTrue(error.message.contains(expected), "missing '\(expected)' in: \(error.message)")
            }
        }
        let tree = try await call("GET", "/badmetrics")
        XCTAssertEqual(tree.status, 404, "the refused model's tree exists")
    }

    /// Writes acknowledged before pcn-api is killed in the middle of a burst are all in the datastore.
    func testKilledDuringABurstTheDatastoreHasEveryAcknowledgedWrite() async throws {
        let created = try await call("POST", "/testfwd/t1", "{}")
        XCTAssertEqual(created.status, 201)
        let base = self.base
        let burst = Task.detached { () -> [Int] in
            var acknowledged: [Int] = []
            for i in 0..<400 {
                var request = URLRequest(url: URL(string: base + "/testfwd/t1/items")!)
                request.httpMethod = "POST"
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = Data(#"{"id":\#(i),"note":"write \#(i)"}"#.utf8)
                request.timeoutInterval = 5
                guard let (data, response) = try? await URLSession.shared.data(for: request),
                      (response as? HTTPURLResponse)?.statusCode == 201 else { break }
                _ = data
                acknowledged.append(i)
            }
            return acknowledged
        }
        try await Task.sleep(for: .milliseconds(300))
        api?.killAndWait(SIGKILL)
        let acknowledged = await burst.value
        XCTAssertGreaterThan(acknowledged.count, 10, "the burst stopped before the kill")
        XCTAssertLessThan(acknowledged.count, 400, "the burst ended before the kill: nothing was tested")
        try startAPI()
        try await eventually(timeout: 30) { (try? await self.call("GET", "/testfwd/t1"))?.status == 200 }
        let items = try await call("GET", "/testfwd/t1/items").json as? [[String: Any]] ?? []
        let stored = Set(items.compactMap { $0["id"] as? Int })
        XCTAssertTrue(Set(acknowledged).isSubset(of: stored), "acknowledged writes missing: \(Set(acknowledged).subtracting(stored).sorted())")
        // At most the one in flight when pcn-api died may be stored without its answer.
        XCTAssertLessThanOrEqual(stored.count, acknowledged.count + 1)
    }

    func testActionsAreCheckedCalledAndTheirResultStored() async throws {
        let created = try await call("POST", "/testfwd/t1", "{}")
        XCTAssertEqual(created.status, 201)
        var answer = try await call("POST", "/testfwd/t1/reset", #"{"what":"hits"}"#)
        XCTAssertEqual(answer.status, 200, "\(answer.json ?? "")")
        XCTAssertEqual(answer.json as? [String: String], ["done": "HITS"], "the input was typed from the model")
        answer = try await call("POST", "/testfwd/t1/reset", #"{"testfwd:input":{}}"#)
        XCTAssertEqual(answer.json as? [String: String], ["done": "ALL"], "the default of the input")
        let tags = try await call("GET", "/testfwd/t1/tags").json as? [String]
        XCTAssertEqual(tags, ["reset-HITS", "reset-ALL"], "the action's result was not stored")
        answer = try await call("POST", "/testfwd/t1/reset", #"{"what":"bogus"}"#)
        XCTAssertEqual(answer.status, 400)
        XCTAssertEqual(answer.errors.first?["error-path"], Self.t1 + "/reset/what")
        answer = try await call("POST", "/testfwd/t1/reset", #"{"nope":1}"#)
        XCTAssertEqual(answer.errors.first?["error-tag"], "unknown-element")
        answer = try await call("PATCH", "/testfwd/t1/reset", "{}")
        XCTAssertEqual(answer.status, 405)
        answer = try await call("POST", "/testfwd/t9/reset", "{}")
        XCTAssertEqual(answer.status, 404)
    }

    /// The whole stack stopped and started again, as after a reboot (bpffs root, runtime directory and
    /// pcn-core's registry gone; the datastore kept): the topology comes back and packets flow again.
    func testAFullStopAndStartRebuildsTheTopologyAndTrafficFlows() async throws {
        let network = TestNetwork()
        defer { network.tearDown() }
        let (a, veth1) = try network.host("a", address: "10.200.40.1/24")
        let (_, veth2) = try network.host("b", address: "10.200.40.2/24")
        let created = try await call("POST", "/testfwd/w1", #"{"ports":[{"name":"p0","peer":"\#(veth1)"},{"name":"p1","peer":"\#(veth2)"}]}"#)
        XCTAssertEqual(created.status, 201, "\(created.json ?? "")")
        XCTAssertTrue(try network.ping(from: a, to: "10.200.40.2"))

        bus?.stop()
        for child in [service, api, core] { child?.killAndWait(SIGTERM) }
        _ = try runCommand("/bin/rm", ["-rf", bpffsRoot, directory + "/run", directory + "/state/datapath.json"])
        XCTAssertFalse(try network.ping(from: a, to: "10.200.40.2", count: 1), "the datapath should be gone with the bpffs root")

        core = try Child("pcn-core", ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state", "--bpffs-root", bpffsRoot,
                                      "--log-level", "warning", "--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path, "--service-dir", repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf").path])
        try startAPI()
        service = try Child("pcn-bus-peer", ["--socket", directory + "/run/bus.sock", "--name", "cube-host/testfwd", "--mode", "service",
                                             "--service", "testfwd", "--yang", repositoryRoot.appendingPathComponent("Tests/Fixtures/testfwd.yang").path])
        try service!.waitForLine(timeout: 30) { $0 == "MODEL REGISTERED" }
        try await eventually(timeout: 30) { (try? network.ping(from: a, to: "10.200.40.2", count: 1)) == true }
        XCTAssertTrue(try network.ping(from: a, to: "10.200.40.2"))
        let peer = try await call("GET", "/testfwd/w1/ports/p1/peer")
        XCTAssertEqual(peer.json as? String, veth2)
    }
}

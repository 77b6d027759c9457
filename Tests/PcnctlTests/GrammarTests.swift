@testable import pcnctl
import XCTest

/// polycubectl's grammar turned into REST calls, in-process (no server).
final class GrammarTests: XCTestCase {
    private func request(_ line: String, stdin: Any? = nil) throws -> CommandLineRequest {
        try CommandLineRequest(words: line.split(separator: " ").map(String.init), stdin: { stdin })
    }

    private func body(_ request: CommandLineRequest) -> NSDictionary? { (request.body as? [String: Any]).map { $0 as NSDictionary } }

    func testVerbsPathsAndValues() throws {
        var r = try request("router add r1 type=TC")
        XCTAssertEqual([r.method] + r.path, ["POST", "router", "r1"])
        XCTAssertEqual(body(r), ["type": "TC"])
        r = try request("r1 ports add p1 ip=10.0.1.254/24 peer=veth1")
        XCTAssertEqual([r.method] + r.path, ["POST", "r1", "ports", "p1"])
        XCTAssertEqual(body(r), ["ip": "10.0.1.254/24", "peer": "veth1"])
        r = try request("r1 ports p1 set peer=veth2")
        XCTAssertEqual([r.method] + r.path, ["PATCH", "r1", "ports", "p1"])
        r = try request("r1 show")
        XCTAssertEqual([r.method] + r.path, ["GET", "r1"])
        r = try request("r1 ports del p1")
        XCTAssertEqual([r.method] + r.path, ["DELETE", "r1", "ports", "p1"])
        // Nested members with dots; a value with '=' in it stays whole.
        r = try request("br1 set fdb.aging-time=20")
        XCTAssertEqual(body(r), ["fdb": ["aging-time": "20"]])
        // Without a verb: a GET (or an action, which the client finds out from the model).
        r = try request("br1 fdb flush")
        XCTAssertFalse(r.explicitVerb)
        XCTAssertEqual([r.method] + r.path, ["GET", "br1", "fdb", "flush"])
    }

    func testGenericCommands() throws {
        var r = try request("connect r1:p1 r2:p1")
        XCTAssertEqual([r.method] + r.path, ["POST", "connect"])
        XCTAssertEqual(body(r), ["peer1": "r1:p1", "peer2": "r2:p1"])
        r = try request("attach fw1 r1:p1 position=first")
        XCTAssertEqual(body(r), ["cube": "fw1", "port": "r1:p1", "position": "first"])
        r = try request("detach fw1")
        XCTAssertEqual(body(r), ["cube": "fw1"])
        r = try request("disconnect r1:p1")
        XCTAssertEqual(body(r), ["peer1": "r1:p1"])
    }

    func testAStandardInputBodyAndUsageErrors() throws {
        let r = try request("router add r1", stdin: ["ports": [["name": "p1"]]])
        XCTAssertEqual(body(r), ["ports": [["name": "p1"]]])
        for (line, words) in [("r1 set", "needs at least one key=value"), ("connect r1:p1", "usage: pcnctl connect"),
                              ("attach fw1", "usage: pcnctl attach"), ("r1 set a=1 b", "unexpected 'b' after the verb")] {
            XCTAssertThrowsError(try request(line), line) { error in
                let failure = error as? CommandFailure
                XCTAssertEqual(failure?.code, 64, line)
                XCTAssertTrue(failure?.message.contains(words) == true, "\(line): \(failure?.message ?? "?")")
            }
        }
    }
}

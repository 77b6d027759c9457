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
        r = try request("detach fw1 r1:p1")
        XCTAssertEqual(body(r), ["cube": "fw1", "port": "r1:p1"])
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

    /// polycubectl's text layout, exactly, for a router with two ports (one with secondary
    /// addresses), routes and an ARP table, members in the model's order.
    func testTextLayoutOfARouter() throws {
        let json = #"""
        {"arp-table":[{"address":"10.0.1.1","interface":"p1","mac":"82:8e:ee:a1:dd:b7","type":"DYNAMIC"},
                      {"address":"10.0.2.1","interface":"p2","mac":"56:e3:a2:8e:8a:a9","type":"STATIC"}],
         "loglevel":"INFO","name":"r1","service-name":"router","type":"TC","shadow":false,
         "ports":[{"ip":"10.0.1.254/24","mac":"02:2e:3f:22:e2:a1","name":"p1","peer":"veth1","status":"UP",
                   "secondaryip":[{"ip":"10.1.0.1/30"},{"ip":"10.1.0.5/30"}]},
                  {"ip":"10.0.2.254/24","mac":"02:7b:3d:22:e2:a1","name":"to_veth2","peer":"veth2","status":"UP"}],
         "route":[{"interface":"p1","network":"10.0.1.0/24","nexthop":"local","pathcost":0},
                  {"interface":"p2","network":"0.0.0.0/0","nexthop":"10.0.2.1","pathcost":5}]}
        """#
        let model: [[String]: [String]] = [
            []: ["name", "uuid", "type", "loglevel", "service-name", "shadow", "ports", "route", "arp-table"],
            ["ports"]: ["name", "uuid", "status", "peer", "ip", "secondaryip", "mac"],
            ["ports", "secondaryip"]: ["ip"],
            ["route"]: ["network", "nexthop", "interface", "pathcost"],
            ["arp-table"]: ["address", "mac", "interface"],
        ]
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8))
        XCTAssertEqual(TextLayout(order: { model[$0] ?? [] }).render(value), """
            name: r1
            type: TC
            loglevel: INFO
            service-name: router
            shadow: false

            ports:
             name      status  peer   ip             ip (secondaryip)  mac
             p1        UP      veth1  10.0.1.254/24  10.1.0.1/30       02:2e:3f:22:e2:a1
                                                     10.1.0.5/30
             to_veth2  UP      veth2  10.0.2.254/24                    02:7b:3d:22:e2:a1

            route:
             network      nexthop   interface  pathcost
             10.0.1.0/24  local     p1         0
             0.0.0.0/0    10.0.2.1  p2         5

            arp-table:
             address   mac                interface  type
             10.0.1.1  82:8e:ee:a1:dd:b7  p1         DYNAMIC
             10.0.2.1  56:e3:a2:8e:8a:a9  p2         STATIC
            """)
        // polycubectl's -hide: members and columns by their dotted path.
        let hiding = TextLayout(order: { model[$0] ?? [] }, hidden: ["ports", "arp-table", "route.pathcost", "type"]).render(value)
        XCTAssertEqual(hiding, """
            name: r1
            loglevel: INFO
            service-name: router
            shadow: false

            route:
             network      nexthop   interface
             10.0.1.0/24  local     p1
             0.0.0.0/0    10.0.2.1  p2
            """)
        let nested = TextLayout(order: { model[$0] ?? [] }, hidden: ["ports.secondaryip.ip", "ports.mac", "route", "arp-table"]).render(value)
        XCTAssertTrue(nested.hasSuffix("ports:\n name      status  peer   ip\n p1        UP      veth1  10.0.1.254/24\n to_veth2  UP      veth2  10.0.2.254/24"), nested)
        // A list shown alone is its table; a leaf its bare value; a leaf-list one value a line.
        let ports = try JSONSerialization.jsonObject(with: Data(#"[{"name":"p1","peer":"veth1"},{"name":"p2"}]"#.utf8))
        XCTAssertEqual(TextLayout(order: { _ in ["name", "peer"] }).render(ports), "name  peer\np1    veth1\np2")
        XCTAssertEqual(TextLayout(order: { _ in [] }).render("veth1"), "veth1")
        XCTAssertEqual(TextLayout(order: { _ in [] }).render(["a", "b"]), "a\nb")
    }

    /// polycubectl's POLYCUBECTL_URL names the REST base; PCN_API_URL and --url come first.
    func testPolycubectlURLVariable() throws {
        let none = ["HOME": "/nonexistent"]
        var settings = try ClientSettings(url: nil, cacert: nil, tokenFile: nil, environment: none.merging(["POLYCUBECTL_URL": "http://localhost:9000/polycube/v1/"]) { $1 })
        XCTAssertEqual(settings.url, "http://localhost:9000")
        settings = try ClientSettings(url: nil, cacert: nil, tokenFile: nil, environment: none.merging(["POLYCUBECTL_URL": "http://a:1/polycube/v1/", "PCN_API_URL": "http://b:2"]) { $1 })
        XCTAssertEqual(settings.url, "http://b:2")
        settings = try ClientSettings(url: "http://c:3", cacert: nil, tokenFile: nil, environment: none.merging(["POLYCUBECTL_URL": "http://a:1"]) { $1 })
        XCTAssertEqual(settings.url, "http://c:3")
    }
}

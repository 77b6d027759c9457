import Foundation
@testable import pcn_api
import TestSupport
import XCTest
import YangKit

/// Data paths a service names (its dependents) resolved against the model and removed from a cube.
final class ConfigTreeTests: XCTestCase {
    func testEntriesNamedByDataPathsAreRemoved() throws {
        let context = try YangContext(searchDirectory: repositoryRoot.appendingPathComponent("yang").path)
        _ = try context.loadModule(named: "router")
        let top = try XCTUnwrap(context.schema(module: "router").first { $0.name == "router" })
        let cube: [String: Any] = [
            "name": "r1",
            "ports": [["name": "p1", "ip": "10.1.1.254/24", "secondaryip": [["ip": "10.1.0.1/30"], ["ip": "10.1.0.5/30"]]]],
            "route": [["network": "0.0.0.0/0", "nexthop": "10.1.0.2"], ["network": "10.9.0.0/16", "nexthop": "10.1.1.1"]],
        ]
        // Key values may hold '/' and ']' inside their quotes.
        XCTAssertEqual(ConfigTree.steps(ofDataPath: "route[network='0.0.0.0/0'][nexthop='10.1.0.2']", under: top),
                       [.member("route"), .entry(["network": "0.0.0.0/0", "nexthop": "10.1.0.2"])])
        XCTAssertEqual(ConfigTree.steps(ofDataPath: "ports[name='p1']/secondaryip[ip='10.1.0.5/30']", under: top),
                       [.member("ports"), .entry(["name": "p1"]), .member("secondaryip"), .entry(["ip": "10.1.0.5/30"])])
        let left = try ConfigTree.removing(["route[network='0.0.0.0/0'][nexthop='10.1.0.2']", "ports[name='p1']/secondaryip[ip='10.1.0.5/30']"],
                                           from: cube, top: top, path: "/router:router[name='r1']")
        XCTAssertEqual((left["route"] as? [[String: Any]])?.compactMap { $0["network"] as? String }, ["10.9.0.0/16"])
        let port = (left["ports"] as? [[String: Any]])?.first
        XCTAssertEqual((port?["secondaryip"] as? [[String: Any]])?.compactMap { $0["ip"] as? String }, ["10.1.0.1/30"])
        XCTAssertEqual(port?["ip"] as? String, "10.1.1.254/24", "the rest is untouched")
    }

    func testPathsTheModelDoesNotHaveAreRefused() throws {
        let context = try YangContext(searchDirectory: repositoryRoot.appendingPathComponent("yang").path)
        _ = try context.loadModule(named: "router")
        let top = try XCTUnwrap(context.schema(module: "router").first { $0.name == "router" })
        XCTAssertNil(ConfigTree.steps(ofDataPath: "route[network='0.0.0.0/0']", under: top), "a key is missing")
        XCTAssertNil(ConfigTree.steps(ofDataPath: "routes[network='0.0.0.0/0'][nexthop='1.1.1.1']", under: top), "no such member")
        XCTAssertNil(ConfigTree.steps(ofDataPath: "route[network='0.0.0.0/0][nexthop='1.1.1.1']", under: top), "an unclosed quote")
        XCTAssertThrowsError(try ConfigTree.removing(["ports"], from: ["name": "r1"], top: top, path: "/router:router[name='r1']")) {
            XCTAssertTrue("\($0)".contains("no list entry"), "\($0)")
        }
    }
}

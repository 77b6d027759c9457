import Foundation
import IPC
@testable import pcn_api
import PCNProtocol
import TestSupport
import XCTest
import YangKit

/// The write path's phases in-process: a hub on a private socket, pcn-api's Applier as the `api`
/// client, and stand-ins for pcn-core and the cube-host that record what they are asked and answer
/// as told. No kernel, no other process.
final class WritePhaseTests: XCTestCase {
    /// The calls the stand-ins received, in order, as "endpoint method".
    actor Calls {
        var log: [String] = []
        func add(_ entry: String) { log.append(entry) }
        func take() -> [String] { defer { log = [] }; return log }
    }

    func testPhasesRunInOrderAndARefusalChangesNothing() async throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hub = BusHub(socketPath: directory + "/bus.sock", logger: quietLogger)
        try hub.start()
        defer { hub.stop() }
        let core = hub.localEndpoint(name: BusName.core), host = hub.localEndpoint(name: BusName.cubeHost("testfwd"))
        let calls = Calls()
        // pcn-core: configure answers the cube it describes (a port named "bad" is refused at its peer).
        let coreTask = Task {
            for await message in core.messages where message.kind == .request {
                await calls.add("core \(message.method)")
                if let request = try? message.request(CubeConfigure.self) {
                    if let bad = request.ports?.first(where: { $0.peer == "nosuchdev" }) {
                        core.fail(message, BusError(code: .failed, message: "netdev 'nosuchdev' does not exist", path: "ports[name='\(bad.name)']/peer"))
                        continue
                    }
                    let ports = (request.ports ?? []).enumerated().map { CubeDescription.Port(name: $0.element.name, index: $0.offset, peer: $0.element.peer, tcubes: []) }
                    core.reply(to: message, try! .answer(CubeConfigure.self, CubeDescription(
                        name: request.name, service: request.service, type: request.type, transparent: request.transparent, node: 1,
                        parent: nil, loglevel: request.loglevel, ports: ports)))
                } else {
                    core.reply(to: message, try! .json(Done()))
                }
            }
        }
        // The cube-host: refuses `refuse: true` at the check, fails an apply of mtu 666.
        let hostTask = Task {
            var checked: [String: Any]?
            for await message in host.messages where message.kind == .request {
                await calls.add("host \(message.method)")
                if let check = try? CubeCheck(message: message), message.method == Method.cubeCheck.rawValue {
                    if check.config?["refuse"] as? Bool == true {
                        host.fail(message, BusError(code: .badRequest, message: "refused", path: "/testfwd:testfwd[name='t1']/refuse"))
                        continue
                    }
                    checked = check.config
                } else if let apply = try? CubeApply(message: message), apply.checked, checked?["mtu"] as? Int == 666 {
                    host.fail(message, BusError(code: .failed, message: "the tables refused it"))
                    continue
                }
                host.reply(to: message, BusReply(payload: Array("{}".utf8)))
            }
        }
        defer { coreTask.cancel(); hostTask.cancel() }
        let api = BusClient(socketPath: directory + "/bus.sock", name: BusName.api, logger: quietLogger)
        api.start()
        defer { api.stop() }
        let registered = await api.waitUntilRegistered(timeout: .seconds(10))
        XCTAssertTrue(registered)

        let context = try YangContext(searchDirectory: repositoryRoot.appendingPathComponent("yang").path)
        _ = try context.loadModule(named: "polycube-base")
        _ = try context.addModule(yang: try String(contentsOf: repositoryRoot.appendingPathComponent("Tests/Fixtures/testfwd.yang"), encoding: .utf8))
        let top = try XCTUnwrap(context.schema(module: "testfwd").first { $0.name == "testfwd" })
        let applier = Applier(core: CoreClient(bus: api), logger: quietLogger)
        func apply(_ old: [String: Any]?, _ new: [String: Any]?) async throws {
            try await applier.apply(service: "testfwd", endpoint: BusName.cubeHost("testfwd"), top: top, old: old, new: new, replaying: false)
        }
        let created: [String: Any] = ["name": "t1", "ports": [["name": "p1", "peer": ""]], "mtu": 1500]

        // A new cube: (b) check, (c) one configure, (d) apply.
        try await apply(nil, created)
        var log = await calls.take()
        XCTAssertEqual(log, ["host cube.check", "core cube.configure", "host cube.apply"])

        // A change the datapath does not see: no pcn-core call at all.
        var changed = created
        changed["mtu"] = 1400
        try await apply(created, changed)
        log = await calls.take()
        XCTAssertEqual(log, ["host cube.check", "host cube.apply"])

        // The service refuses at (b): nothing reaches pcn-core, nothing is applied.
        var refused = created
        refused["refuse"] = true
        await XCTAssertThrowsErrorAsync(try await apply(created, refused)) { error in
            XCTAssertEqual((error as? RestFailure)?.status, 400)
            XCTAssertEqual((error as? RestFailure)?.errors.first?.path, "/testfwd:testfwd[name='t1']/refuse")
        }
        log = await calls.take()
        XCTAssertEqual(log, ["host cube.check"])

        // pcn-core refuses at (c): 400 with the port's path, the cube-host applies nothing.
        var badPeer = created
        badPeer["ports"] = [["name": "p1", "peer": "nosuchdev"]]
        await XCTAssertThrowsErrorAsync(try await apply(created, badPeer)) { error in
            XCTAssertEqual((error as? RestFailure)?.status, 400)
            XCTAssertEqual((error as? RestFailure)?.errors.first?.path, "/testfwd:testfwd[name='t1']/ports[name='p1']/peer")
        }
        log = await calls.take()
        XCTAssertEqual(log, ["host cube.check", "core cube.configure"])

        // The cube-host fails at (d): the datapath part is undone (the old one configured again).
        var failing = created
        failing["mtu"] = 666
        failing["ports"] = [["name": "p1", "peer": ""], ["name": "p2", "peer": ""]]
        await XCTAssertThrowsErrorAsync(try await apply(created, failing)) { error in
            XCTAssertEqual((error as? RestFailure)?.status, 409)
        }
        log = await calls.take()
        XCTAssertEqual(log, ["host cube.check", "core cube.configure", "host cube.apply", "core cube.configure"])

        // A delete: checked, destroyed in one pcn-core change, then the cube-host lets go.
        try await apply(created, nil)
        log = await calls.take()
        XCTAssertEqual(log, ["host cube.check", "core cube.destroy", "host cube.apply"])
    }
}

/// XCTAssertThrowsError for async expressions.
func XCTAssertThrowsErrorAsync(_ expression: @autoclosure () async throws -> Void, _ check: (Error) -> Void,
                               file: StaticString = #filePath, line: UInt = #line) async {
    do {
        try await expression()
        XCTFail("no error was thrown", file: file, line: line)
    } catch {
        check(error)
    }
}

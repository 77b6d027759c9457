import Foundation
import IPC
import PCNDatapathABI
import PCNProtocol
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The contract's caller rules and proven names, against a real pcn-core: a client that is not the
/// cube's service or pcn-api gets `forbidden` and changes nothing; a name is not taken from a live
/// holder; a process of another user cannot take a daemon's name.
final class BusCallerRulesTests: CoreTestCase {
    private func connect(_ name: String) async -> BusClient {
        let client = BusClient(socketPath: directory + "/run/bus.sock", name: name, logger: quietLogger)
        client.start()
        _ = await client.waitUntilRegistered(timeout: .seconds(10))
        return client
    }

    func testWrongCallersAreForbiddenAndTheOwnerIsUnaffected() async throws {
        try await core("cube.create", ["name": "c1", "service": "testfwd"])
        try await core("port.add", ["cube": "c1", "port": "p0"])
        let frame = ArraySlice([UInt8](repeating: 0xff, count: 12) + [0x08, 0x06] + [UInt8](repeating: 0, count: 28))
        let calls: [(String, [UInt8])] = [
            ("cube.tables", Array(#"{"name":"c1"}"#.utf8)),
            ("log.ring", Array("{}".utf8)),
            ("packet-in.subscribe", Array(#"{"cube":"c1"}"#.utf8)),
            ("packet-out", Self.packetOut(cube: "c1", port: "p0", direction: PCN_DIRECTION_EGRESS, md: (0, 0, 0), frame: frame)),
            ("cube.set-loglevel", Array(#"{"name":"c1","level":"DEBUG"}"#.utf8)),
            ("cube.reload", Array(##"{"name":"c1","index":0,"code":"#include \"/etc/shadow\"\n"}"##.utf8)),
            ("cube.destroy", Array(#"{"name":"c1"}"#.utf8)),
            ("port.set-peer", Array(#"{"cube":"c1","port":"p0","peer":"lo"}"#.utf8)),
            ("shadow.configure", Array(#"{"cube":"c1","interfaces":[]}"#.utf8)),
        ]
        for caller in ["probe-x", "cube-host/router"] {
            let client = await connect(caller)
            defer { client.stop() }
            for (method, payload) in calls {
                do {
                    _ = try await client.request("core", method: method, payload: payload, timeout: .seconds(10))
                    XCTFail("\(caller) was allowed \(method)")
                } catch let error as BusError {
                    XCTAssertEqual(error.code, .forbidden, "\(caller) \(method): \(error)")
                    XCTAssertFalse(error.message.contains("root:"), "\(error)")
                }
            }
            // Reads are anyone's.
            _ = try await client.request("core", method: "cube.list", timeout: .seconds(10))
        }
        // Nothing changed, and the owner still gets the tables.
        let cubes = try await cubeList()
        XCTAssertEqual(cubes.first { $0["name"] as? String == "c1" }?["loglevel"] as? String, "INFO")
        let owner = await owner("testfwd")
        let tables = try await owner.request("core", method: "cube.tables", payload: Array(#"{"name":"c1"}"#.utf8), timeout: .seconds(10))
        XCTAssertEqual(tables.fds.count, 2)
    }

    func testANameIsNotTakenFromALiveHolderNorByAnotherUser() async throws {
        let holder = await owner("testfwd")
        XCTAssertTrue(holder.isRegistered)
        // A second process asking for the same name is refused while the first lives.
        let intruder = try Child("pcn-bus-peer", ["--socket", directory + "/run/bus.sock", "--name", "cube-host/testfwd"])
        defer { intruder.killAndWait() }
        try await Task.sleep(for: .milliseconds(1500))
        XCTAssertFalse(intruder.output.contains { $0.hasPrefix("REGISTERED") }, "\(intruder.output)")
        XCTAssertTrue(holder.isRegistered, "the holder was pushed out")
        _ = try await holder.request("core", method: "cube.list", timeout: .seconds(5))

        // A process of another user (nobody) may take a name of its own, not a daemon's.
        for path in [directory, directory + "/run"] { chmod(path, 0o755) }
        chmod(directory + "/run/bus.sock", 0o777)
        let peer = productsDirectory.appendingPathComponent("pcn-bus-peer").path
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", peer, "--socket", directory + "/run/bus.sock", "--name"]
        let plain = try BackgroundCommand("/usr/bin/setpriv", asNobody + ["nobody-probe"])
        defer { plain.stop() }
        let daemon = try BackgroundCommand("/usr/bin/setpriv", asNobody + ["api-impostor"])
        defer { daemon.stop() }
        let impostor = try BackgroundCommand("/usr/bin/setpriv", asNobody + ["logd"])
        defer { impostor.stop() }
        try await eventually(timeout: 10) { (try? await self.hubNames())?.contains("nobody-probe") == true }
        try await Task.sleep(for: .seconds(1))
        let names = try await hubNames()
        XCTAssertTrue(names.contains("api-impostor"), "an ordinary name is anyone's: \(names)")
        XCTAssertFalse(names.contains("logd"), "a daemon's name was taken by uid 65534: \(names)")
    }

    /// The names the hub has registered now.
    private func hubNames() async throws -> [String] {
        let answer = try await bus!.request(HubMethod.hubName, method: HubMethod.stats, timeout: .seconds(5))
        let stats = try JSONDecoder().decode(HubStats.self, from: Data(answer.payload))
        return stats.endpoints.map(\.name)
    }
}

import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The units in units/, rendered by scripts/install into a private directory.
struct RenderedUnits {
    let prefix: String
    let apiPort: Int

    var unitDirectory: String { prefix + "/units" }

    /// `apiHost`: the address pcn-api.socket listens on (off loopback, install adds TLS and a token).
    init(apiHost: String = "127.0.0.1") throws {
        // Not under /tmp: the units' PrivateTmp would hide it from them.
        prefix = "/opt/pcntest-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        apiPort = freePort()
        let installed = try runCommand(repositoryRoot.appendingPathComponent("scripts/install").path,
                                       ["--no-enable", "--no-user", "--prefix", prefix, "--unit-dir", prefix + "/units",
                                        "--sysconfdir", prefix + "/etc", "--api-addr", "\(apiHost):\(apiPort)", "--bin", productsDirectory.path])
        guard installed.status == 0 else { throw TestFailure("scripts/install: \(installed.stderr)") }
        // A bpffs root of its own: its injection veth's name derives from it.
        let environment = prefix + "/etc/pcn.env"
        let text = (try String(contentsOfFile: environment, encoding: .utf8)) + "PCN_BPFFS_ROOT=/sys/fs/bpf/pcn-\(getpid())\n"
        try text.write(toFile: environment, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(atPath: prefix) }
}

/// `systemd-analyze verify` on every unit: any output is a failure (it exits 0 on warnings).
final class UnitLintTests: XCTestCase {
    func testEveryUnitVerifiesWithoutAWarning() throws {
        let units = try RenderedUnits()
        defer { units.remove() }
        let directory = units.unitDirectory
        // A template is verified through an instance.
        try FileManager.default.createSymbolicLink(atPath: directory + "/cube-host@router.service", withDestinationPath: "cube-host@.service")
        let files = ["pcn-core.service", "pcn-api.socket", "pcn-api.service", "pcn-logd.service", "cube-host@router.service", "pcn.target"]
        let result = try runCommand("/usr/bin/systemd-analyze", ["verify"] + files.map { directory + "/" + $0 },
                                    environment: ["SYSTEMD_UNIT_PATH": directory + ":"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout + result.stderr, "", "systemd-analyze verify warned")
        // pcn.target wants a cube-host for every service cube-host hosts (derived at install).
        let services = try runCommand(productsDirectory.appendingPathComponent("cube-host").path, ["--list-services"]).stdout
            .split(separator: "\n").map(String.init)
        XCTAssertGreaterThanOrEqual(services.count, 6)
        let target = try String(contentsOfFile: directory + "/pcn.target", encoding: .utf8)
        for service in services { XCTAssertTrue(target.contains("cube-host@\(service).service"), "pcn.target lacks \(service): \(target)") }
        // The rules the units must keep: cube-hosts never bound to pcn-core, watchdogs, notify.
        let cubeHost = try String(contentsOfFile: directory + "/cube-host@.service", encoding: .utf8)
        for forbidden in ["Requires=pcn-core", "BindsTo=pcn-core", "PartOf=pcn-core"] {
            XCTAssertFalse(cubeHost.contains(forbidden), forbidden)
        }
        for file in ["pcn-core.service", "pcn-api.service", "pcn-logd.service", "cube-host@.service"] {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            for required in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict"] {
                XCTAssertTrue(text.contains(required), "\(file) lacks \(required)")
            }
            XCTAssertEqual(text.contains("User=pcn"), file != "pcn-core.service", "\(file): only pcn-core runs as root")
        }
    }
}

/// pcn.target under a real systemd 252 (Tests/Support/systemd/sandbox), started before each test
/// with every service registered.
class SandboxedSystemdTestCase: XCTestCase {
    /// Where pcn-api.socket listens.
    class var apiHost: String { "127.0.0.1" }

    var units: RenderedUnits?
    var systemd: Int32 = 0
    var sandboxName = ""
    var network = TestNetwork()
    var rest = RestClient(port: 0)
    let sandbox = repositoryRoot.appendingPathComponent("Tests/Support/systemd/sandbox").path

    /// Between rendering the units and starting systemd.
    func prepare(_ units: RenderedUnits) throws {}

    /// True once pcn-api answers with every service registered.
    func allServicesRegistered() async -> Bool {
        ((try? await rest.call("GET", "/services"))?.json as? [Any])?.count == catalogServices.count
    }

    override func setUp() async throws {
        let rendered = try RenderedUnits(apiHost: Self.apiHost)
        units = rendered
        try prepare(rendered)
        rest = RestClient(port: rendered.apiPort)
        sandboxName = "pcntest-sd-\(getpid())"
        let started = try runCommand(sandbox, ["start", sandboxName, rendered.unitDirectory, "pcn.target"], timeout: 60)
        guard started.status == 0, let pid = Int32(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("the systemd sandbox did not start: \(started.stderr)")
        }
        systemd = pid
        try await eventually(timeout: 90) { await self.allServicesRegistered() }
    }

    override func tearDown() {
        if systemd > 0 {
            if (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0 {
                print((try? systemctl(["status", "--no-pager", "-n", "20", "pcn-core", "pcn-api", "cube-host@router"]).stdout) ?? "")
            }
            _ = try? runCommand(sandbox, ["stop", sandboxName, "\(systemd)"], timeout: 60)
        }
        network.tearDown()
        units?.remove()
    }

    @discardableResult
    func systemctl(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("/usr/bin/nsenter", ["-t", "\(systemd)", "-m", "-p", "systemctl"] + arguments, timeout: 60)
    }

    /// Runs a command inside the sandbox's mount namespace (its /run, /sys/fs/bpf).
    func inSandbox(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("/usr/bin/nsenter", ["-t", "\(systemd)", "-m", "-p"] + arguments, timeout: 60)
    }

    /// The unit's main PID as the sandbox's PID namespace numbers it (not a PID of this namespace).
    func mainPID(_ unit: String) throws -> Int32 {
        Int32(try systemctl(["show", "-p", "MainPID", "--value", unit]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    func isActive(_ unit: String) throws -> Bool {
        try systemctl(["is-active", unit]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "active"
    }

    @discardableResult
    func must(_ method: String, _ path: String, _ body: String? = nil) async throws -> Any? {
        let answer = try await rest.call(method, path, body)
        guard (200..<300).contains(answer.status) else { throw TestFailure("\(method) \(path) \(body ?? ""): \(answer)") }
        return answer.json
    }

    func json(_ value: Any?) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value ?? NSNull(), options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    /// Learned state and configuration that must survive every restart.
    func snapshot() async throws -> String {
        // Neighbours as learned (their age is a clock, not state).
        let arp = ((try await must("GET", "/router/r1/arp-table") as? [[String: Any]]) ?? []).map { $0.filter { $0.key != "age" } }
        let fdb = ((try await must("GET", "/simplebridge/b1/fdb/entry") as? [[String: Any]]) ?? []).map { "\($0["address"] ?? "") \($0["port"] ?? "")" }.sorted()
        let blacklist = ((try await must("GET", "/ddosmitigator/d1/blacklist-src") as? [[String: Any]]) ?? []).compactMap { $0["ip"] as? String }
        return try json(arp) + " " + fdb.joined(separator: ",") + " " + blacklist.joined(separator: ",")
    }

}

/// A topology over REST, traffic through it, every component restarted and killed, then the whole
/// set stopped and started again.
final class SystemdTests: SandboxedSystemdTestCase {
    struct Row {
        var component: String
        var restarts: Int
        var kills: Int
        var sent: Int
        var received: Int
        var tcpStatus: Int32
        var tcpBytes: Int
        var restFailures: Int
        var restCalls: Int
    }

    func testRestartAndKillEveryComponentUnderTrafficThenStopAndStartTheTarget() async throws {
        // h1 — r1 (d1 on r1:p2) — h2 ; h3 — b1 — h4
        let h1 = try network.host("h1", address: "10.81.1.1/24", gateway: "10.81.1.254")
        let h2 = try network.host("h2", address: "10.81.2.1/24", gateway: "10.81.2.254")
        let h3 = try network.host("h3", address: "10.81.3.1/24"), h4 = try network.host("h4", address: "10.81.3.2/24")
        try await must("POST", "/router/r1", #"{"ports":[{"name":"p1","ip":"10.81.1.254/24","peer":"\#(h1.interface)"},{"name":"p2","ip":"10.81.2.254/24","peer":"\#(h2.interface)"}]}"#)
        try await must("POST", "/ddosmitigator/d1")
        try await must("POST", "/attach", #"{"cube":"d1","port":"r1:p2"}"#)
        try await must("POST", "/ddosmitigator/d1/blacklist-src", #"{"ip":"10.81.9.9"}"#)
        try await must("POST", "/simplebridge/b1", #"{"ports":[{"name":"p1","peer":"\#(h3.interface)"},{"name":"p2","peer":"\#(h4.interface)"}]}"#)
        XCTAssertTrue(try network.ping(from: h1.namespace, to: "10.81.2.1"))
        XCTAssertTrue(try network.ping(from: h3.namespace, to: "10.81.3.2"))
        let before = try await snapshot()

        var table: [Row] = []
        let network = self.network
        for component in ["cube-host@router", "cube-host@simplebridge", "pcn-api", "pcn-logd", "pcn-core"] {
            let unit = component + ".service"
            // Each flow on a thread of its own (they block), ending with the time it ended.
            let ping = Task { try await onThread { (try network.pingCounts(from: h1.namespace, to: "10.81.2.1", count: 3000, interval: "0.01"), Date()) } }
            let bridged = Task { try await onThread { try network.pingCounts(from: h3.namespace, to: "10.81.3.2", count: 3000, interval: "0.01") } }
            let flow = Task { try await onThread { () throws -> (Int32, Int, Date) in
                let result = try network.iperf3(from: h1.namespace, to: h2.namespace, address: "10.81.2.1", seconds: 30)
                return (result.status, ((result.end?["sum_received"] as? [String: Any])?["bytes"] as? Int) ?? 0, Date())
            } }
            // REST calls while the component restarts, each on a new connection as pcnctl makes them:
            // they must all succeed (during pcn-api's restarts they wait in the socket's backlog). Not
            // during the kills: a request in flight when the process is killed is lost with it.
            let rest = self.rest
            let stopREST = Task.detached { () async -> (Int, Int, [String]) in
                var calls = 0, failures = 0, reasons: [String] = []
                while !Task.isCancelled {
                    calls += 1
                    do {
                        let answer = try await rest.call("GET", "/router/r1/ports", headers: ["Connection": "close"])
                        if answer.status != 200 {
                            failures += 1
                            reasons.append("\(Date()): \(answer)")
                        }
                    } catch is CancellationError {
                        calls -= 1
                    } catch {
                        if !Task.isCancelled {
                            failures += 1
                            reasons.append("\(Date()): \(error)")
                        } else {
                            calls -= 1
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(100))
                }
                return (calls, failures, reasons)
            }
            try await Task.sleep(for: .seconds(1))
            let started = Date()
            for _ in 0..<10 {
                XCTAssertEqual(try systemctl(["restart", unit]).status, 0, "systemctl restart \(unit)")
                try await eventually(timeout: 30) { try self.isActive(unit) }
            }
            stopREST.cancel()
            let (calls, failures, reasons) = await stopREST.value
            for _ in 0..<5 {
                let pid = try mainPID(unit)  // in the sandbox's PID namespace: killed through systemctl
                XCTAssertGreaterThan(pid, 0)
                XCTAssertEqual(try systemctl(["kill", "--kill-who=main", "--signal=SIGKILL", unit]).status, 0)
                try await eventually(timeout: 30) { try self.mainPID(unit) != pid && self.isActive(unit) }
            }
            let finished = Date()
            let ((sent, received), pingEnded) = try await ping.value
            let (bridgedSent, bridgedReceived) = try await bridged.value
            let (tcpStatus, tcpBytes, flowEnded) = try await flow.value
            XCTAssertLessThan(finished, min(pingEnded, flowEnded),
                              "\(component): the restarts (\(Int(finished.timeIntervalSince(started))) s) outlasted the traffic: raise its duration")
            // A call waits while pcn-core is away (pcn-api rides out its restart), across back-to-back
            // restarts too: fewer calls are made in its turn.
            XCTAssertGreaterThan(calls, component == "pcn-core" ? 4 : 10, "\(component): too few REST calls were made")
            table.append(Row(component: component, restarts: 10, kills: 5, sent: sent + bridgedSent, received: received + bridgedReceived,
                             tcpStatus: tcpStatus, tcpBytes: tcpBytes, restFailures: failures, restCalls: calls))
            XCTAssertEqual(received, sent, "\(component): routed pings lost")
            XCTAssertEqual(bridgedReceived, bridgedSent, "\(component): bridged pings lost")
            XCTAssertEqual(tcpStatus, 0, "\(component): the TCP flow failed")
            XCTAssertGreaterThan(tcpBytes, 1_000_000, "\(component): the TCP flow moved \(tcpBytes) bytes")
            XCTAssertEqual(failures, 0, "\(component): \(failures) of \(calls) REST calls failed: \(reasons.prefix(3))")
            for other in ["pcn-core", "pcn-api", "pcn-logd", "cube-host@router", "cube-host@simplebridge", "cube-host@ddosmitigator"] {
                XCTAssertTrue(try isActive(other + ".service"), "\(other) is not active after \(component)'s restarts")
            }
            let after = try await snapshot()
            XCTAssertEqual(after, before, "\(component): configuration or learned state changed")
        }
        print("component | restarts | kills | sent | received | lost | TCP status | TCP bytes | REST calls (failed)")
        for row in table {
            print("\(row.component) | \(row.restarts) | \(row.kills) | \(row.sent) | \(row.received) | \(row.sent - row.received) | \(row.tcpStatus) | \(row.tcpBytes) | \(row.restCalls) (\(row.restFailures))")
        }

        // A simulated reboot: everything stopped, pins and runtime directory wiped, started again.
        XCTAssertEqual(try systemctl(["stop", "pcn.target"]).status, 0)
        // The target's own job ends at once; the units it takes down stop after it.
        try await eventually(timeout: 60) {
            try ["pcn-core.service", "pcn-api.service", "pcn-api.socket", "pcn-logd.service", "cube-host@router.service"].allSatisfy {
                try self.systemctl(["is-active", $0]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "inactive"
            }
        }
        let bpffsRoot = "/sys/fs/bpf/pcn-\(getpid())"
        XCTAssertEqual(try inSandbox(["/bin/rm", "-rf", bpffsRoot, "/run/pcn"]).status, 0)
        XCTAssertEqual(try systemctl(["start", "pcn.target"]).status, 0)
        try await eventually(timeout: 90) {
            ((try? await self.rest.call("GET", "/router/r1/ports"))?.status == 200) && (try? self.network.ping(from: h1.namespace, to: "10.81.2.1", count: 1)) == true
        }
        XCTAssertTrue(try network.ping(from: h1.namespace, to: "10.81.2.1"))
        XCTAssertTrue(try network.ping(from: h3.namespace, to: "10.81.3.2"))
        let blacklist = ((try await must("GET", "/ddosmitigator/d1/blacklist-src") as? [[String: Any]]) ?? []).compactMap { $0["ip"] as? String }
        XCTAssertEqual(blacklist, ["10.81.9.9"])
        let chain = try await must("GET", "/router/r1/ports/p2/tcubes") as? [String]
        XCTAssertEqual(chain, ["d1"], "the transparent cube came back on its port")
    }
}

import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// scripts/pcn-stack: two isolated stacks side by side, supervision, status and stop.
final class StackTests: XCTestCase {
    struct Stack {
        let directory: String
        let bpffsRoot: String
        let port: Int

        var options: [String] {
            ["--runtime-dir", directory + "/run", "--bpffs-root", bpffsRoot, "--state-dir", directory + "/state",
             "--config-dir", directory + "/etc", "--log-dir", directory + "/log",
             "--api-addr", "127.0.0.1:\(port)", "--bin", productsDirectory.path]
        }

        func run(_ command: String) throws -> (status: Int32, stdout: String, stderr: String) {
            try runCommand(repositoryRoot.appendingPathComponent("scripts/pcn-stack").path, [command] + options)
        }

        /// NAME -> (pid, state) from `status`.
        func status() throws -> (Int32, [String: (pid: Int32?, state: String)]) {
            let result = try run("status")
            var table: [String: (pid: Int32?, state: String)] = [:]
            for line in result.stdout.split(separator: "\n") {
                let fields = line.split(separator: " ")
                XCTAssertEqual(fields.count, 3, "status line '\(line)' is not NAME PID STATE")
                guard fields.count == 3 else { continue }
                table[String(fields[0])] = (Int32(fields[1]), String(fields[2]))
            }
            return (result.status, table)
        }
    }

    private var stacks: [Stack] = []

    override func tearDown() {
        for stack in stacks {
            _ = try? stack.run("stop")
            try? FileManager.default.removeItem(atPath: stack.directory)
            _ = try? runCommand("/bin/rm", ["-rf", stack.bpffsRoot])
        }
    }

    private func makeStack() -> Stack {
        let stack = Stack(directory: makeTemporaryDirectory(),
                          bpffsRoot: "/sys/fs/bpf/pcntest-stack-\(getpid())-\(stacks.count)", port: freePort())
        stacks.append(stack)
        return stack
    }

    func testTwoStacksSideBySideWithRestartAndStop() throws {
        let first = makeStack(), second = makeStack()
        for stack in [first, second] {
            let started = try stack.run("start")
            XCTAssertEqual(started.status, 0, started.stderr)
        }
        let (status, table) = try first.status()
        XCTAssertEqual(status, 0)
        XCTAssertEqual(Set(table.keys), Set(["pcn-core", "pcn-logd", "pcn-api"] + Self.services.map { "cube-host/\($0)" }))
        XCTAssertTrue(table.values.allSatisfy { $0.state == "ready" && $0.pid != nil }, "\(table)")
        let (_, otherTable) = try second.status()
        XCTAssertTrue(Set(table.values.compactMap(\.pid)).isDisjoint(with: otherTable.values.compactMap(\.pid)))

        // A component killed with -9 comes back under a new pid, as Restart=on-failure would.
        let oldCore = table["pcn-core"]!.pid!
        kill(oldCore, SIGKILL)
        try eventuallySync {
            let (code, now) = try first.status()
            return code == 0 && now["pcn-core"]?.pid != oldCore && now["pcn-core"]?.state == "ready"
        }
        // The other stack did not notice.
        let (_, untouched) = try second.status()
        XCTAssertEqual(untouched["pcn-core"]?.pid, otherTable["pcn-core"]?.pid)

        let stopped = try first.run("stop")
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let (afterCode, after) = try first.status()
        XCTAssertNotEqual(afterCode, 0, "status must fail when components are down")
        XCTAssertTrue(after.values.allSatisfy { $0.state == "down" }, "\(after)")
        for pid in table.values.compactMap(\.pid) where pid != oldCore {
            XCTAssertNotEqual(kill(pid, 0), 0, "pid \(pid) still alive after stop")
        }
        let (secondCode, _) = try second.status()
        XCTAssertEqual(secondCode, 0, "stopping one stack touched the other")
    }

    static var services: [String] { catalogServices }

    /// The README's demo topology on a stack started by pcn-stack: traffic crosses both routers and
    /// the ddosmitigator drops the blacklisted source, as the live counters show.
    func testDemoTopologyCarriesTrafficAndShowsCounters() throws {
        let stack = makeStack()
        let started = try stack.run("start")
        XCTAssertEqual(started.status, 0, started.stderr)
        let script = repositoryRoot.appendingPathComponent("scripts/demo-topology").path
        let prefix = "pt\(String(UInt32.random(in: 0...0xFFFF), radix: 16))d"
        let environment = ["PCN_API_URL": "http://127.0.0.1:\(stack.port)", "PCN_BIN_DIR": productsDirectory.path,
                           "PCN_RUNTIME_DIR": stack.directory + "/run", "PCN_DEMO_PREFIX": prefix]
        defer { _ = try? runCommand(script, ["stop"], environment: environment) }
        let demo = try runCommand(script, ["start", "3"], environment: environment, timeout: 120)
        XCTAssertEqual(demo.status, 0, demo.stdout + demo.stderr)
        XCTAssertTrue(demo.stdout.contains("demo topology up"), demo.stdout)
        // The last screen: r2 forwarded the pings from h1 and h2, d1 dropped the blacklisted ones.
        let screens = demo.stdout.components(separatedBy: "live counters")
        let last = screens.last ?? ""
        let r2 = last.split(separator: "\n").first { $0.hasPrefix("r2 ") }?.split(separator: " ").compactMap { Int($0) } ?? []
        XCTAssertGreaterThan(r2.count >= 2 ? r2[1] : 0, 5, last)
        XCTAssertTrue(last.range(of: #""drop-pkts":"[1-9][0-9]*","ip":"10.210.1.66""#, options: .regularExpression) != nil, last)
        let stopped = try runCommand(script, ["stop"], environment: environment)
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let namespaces = try runCommand("/usr/bin/ip", ["netns", "list"]).stdout
        XCTAssertFalse(namespaces.contains(prefix), namespaces)
    }

    /// Processes carrying the stack's mark (supervisor, keepers, components).
    private func processes(of stack: Stack) -> [Int32] {
        let mark = Array("PCN_STACK=\(stack.directory)/run".utf8)
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environ.split(separator: 0).contains { Array($0) == mark }
        }
    }

    func testStartIsAllOrNothing() throws {
        let stack = makeStack()
        // Someone else has the API port: pcn-api cannot start, and nothing of the stack stays.
        let squatter = try BackgroundCommand("/usr/bin/nc", ["-l", "127.0.0.1", "\(stack.port)"])
        defer { squatter.stop() }
        Thread.sleep(forTimeInterval: 0.3)
        let started = Date()
        let result = try stack.run("start")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("pcn-api cannot start"), result.stderr)
        XCTAssertTrue(result.stderr.contains("Address already in use"), result.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "it gave up without waiting for the 60 s deadline")
        XCTAssertEqual(processes(of: stack), [])
    }

    func testStopFindsTheStackWithoutItsRuntimeDirectory() throws {
        let stack = makeStack()
        XCTAssertEqual(try stack.run("start").status, 0)
        XCTAssertGreaterThan(processes(of: stack).count, 3)
        _ = try runCommand("/bin/rm", ["-rf", stack.directory + "/run"])
        let stopped = try stack.run("stop")
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(processes(of: stack), [], stopped.stdout)
        // And it starts again.
        XCTAssertEqual(try stack.run("start").status, 0)
    }

    func testStartRefusesASecondStackOnTheSameRuntimeDir() throws {
        let stack = makeStack()
        XCTAssertEqual(try stack.run("start").status, 0)
        let again = try stack.run("start")
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already runs"), again.stderr)
        let bad = try runCommand(repositoryRoot.appendingPathComponent("scripts/pcn-stack").path, ["start", "--bogus", "x"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown option '--bogus'"), bad.stderr)
    }
}

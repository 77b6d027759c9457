import CShims
import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Each daemon as a user or systemd meets it: flags, paths, readiness, SIGTERM.
final class DaemonTests: XCTestCase {
    var directory = ""
    var bpffsRoot = ""

    override func setUp() {
        directory = makeTemporaryDirectory()
        bpffsRoot = "/sys/fs/bpf/pcntest-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
        _ = try? runCommand("/bin/rm", ["-rf", bpffsRoot])
    }

    var isolatedEnvironment: [String: String] {
        ["PCN_RUNTIME_DIR": directory + "/run", "PCN_BPFFS_ROOT": bpffsRoot, "PCN_STATE_DIR": directory + "/state",
         "PCN_CONFIG_DIR": directory + "/etc", "PCN_LOG_DIR": directory + "/log", "PCN_API_ADDR": "127.0.0.1:\(freePort())"]
    }

    private func binary(_ name: String) -> String { productsDirectory.appendingPathComponent(name).path }

    func testBadFlagIsOneLineAndExit64() throws {
        for daemon in ["pcn-core", "pcn-api", "pcn-logd", "cube-host"] {
            let result = try runCommand(binary(daemon), ["--list-services", "--no-such-flag"].suffix(daemon == "cube-host" ? 2 : 1),
                                        environment: isolatedEnvironment)
            XCTAssertEqual(result.status, 64, daemon)
            let lines = result.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(daemon): \(result.stderr)")
            XCTAssertTrue(lines.first?.hasPrefix("\(daemon): ") == true && result.stderr.contains("--no-such-flag"), result.stderr)
        }
        let level = try runCommand(binary("pcn-logd"), ["--log-level", "loud"], environment: isolatedEnvironment)
        XCTAssertEqual(level.status, 64)
        XCTAssertTrue(level.stderr.contains("log level 'loud'"), level.stderr)
    }

    func testUnusablePathsAreOneLineAndExit1() throws {
        let cases: [(String, [String], String)] = [
            ("pcn-core", ["--runtime-dir", "/proc/pcn-nope"], "runtime directory /proc/pcn-nope"),
            ("pcn-core", ["--bpffs-root", directory + "/not-bpffs"], "is not on a bpf filesystem"),
            ("pcn-logd", ["--log-dir", "/proc/version/x"], "log directory /proc/version/x"),
            ("pcn-api", ["--state-dir", "/proc/pcn-nope"], "state directory /proc/pcn-nope"),
            ("pcn-api", ["--api-addr", "0.0.0.0:9000"], "only loopback"),
            ("pcn-api", ["--api-addr", "localhost:99999"], "is not HOST:PORT"),
            ("cube-host", ["--service", "no-such-service"], "unknown service 'no-such-service'"),
        ]
        for (daemon, arguments, expected) in cases {
            let result = try runCommand(binary(daemon), arguments, environment: isolatedEnvironment)
            XCTAssertNotEqual(result.status, 0, "\(daemon) \(arguments)")
            let lines = result.stderr.split(separator: "\n").filter { !$0.contains("] [") }
            XCTAssertEqual(lines.count, 1, "\(daemon) \(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(daemon) \(arguments): \(result.stderr)")
        }
    }

    func testNotifiesSystemdReadyWatchdogAndStopping() throws {
        let notifyPath = directory + "/notify.sock"
        let fd = pcn_dgram_bind(notifyPath)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var environment = isolatedEnvironment
        environment["NOTIFY_SOCKET"] = notifyPath
        environment["WATCHDOG_USEC"] = "200000"
        // pcn-logd needs nobody else: it must become ready with no hub running.
        let logd = try Child("pcn-logd", [], environment: environment)
        var messages: [String] = []
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
        }
        while messages.filter({ $0.contains("WATCHDOG=1") }).count < 3, let message = receive() {
            messages.append(message)
        }
        XCTAssertTrue(messages.first?.contains("READY=1") == true, "\(messages)")
        XCTAssertTrue(messages.first?.contains("MAINPID=\(logd.pid)") == true, "\(messages)")
        XCTAssertEqual(messages.filter { $0.contains("WATCHDOG=1") }.count, 3, "\(messages)")
        let marker = directory + "/run/ready/pcn-logd"
        XCTAssertEqual(try String(contentsOfFile: marker, encoding: .utf8), "\(logd.pid)\n")

        logd.killAndWait(SIGTERM)
        XCTAssertEqual(logd.process.terminationStatus, 0)
        while let message = receive(), !message.contains("STOPPING=1") { messages.append(message) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "ready marker left behind")
    }

    /// SIGTERM at a daemon's first moment is a clean exit 0, not death by the signal with half-made
    /// sockets and pins, nor a signal lost. Deterministic: the daemon starts with SIGTERM blocked and
    /// already pending (as a parent's thread may pass on), so it arrives the instant the daemon takes it.
    func testSigtermWhileStartingIsACleanExit() throws {
        for (daemon, arguments) in [("pcn-core", []), ("pcn-api", []), ("pcn-logd", []), ("cube-host", ["--service", "router"])] {
            let child = try BackgroundCommand(binary(daemon), arguments, environment: isolatedEnvironment, blocked: [SIGTERM])
            defer { child.stop() }
            kill(child.pid, SIGTERM)
            guard let status = child.waitForExit(timeout: 30) else {
                XCTFail("\(daemon) ignored a SIGTERM that came while it started")
                continue
            }
            XCTAssertTrue(status & 0x7f == 0 && (status >> 8) & 0xff == 0, "\(daemon): wait status \(status), not a clean exit")
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/run/ready/" + daemon), "\(daemon): ready marker left behind")
        }
    }

    func testNoDaemonNeedsAnotherToStart() throws {
        let environment = isolatedEnvironment
        let api = try Child("pcn-api", [], environment: environment)
        let logd = try Child("pcn-logd", [], environment: environment)
        try waitForMarker("pcn-api", pid: api.pid)
        try waitForMarker("pcn-logd", pid: logd.pid)
        let url = "http://" + environment["PCN_API_ADDR"]!
        // With no hub the API still answers, and says what is missing.
        let down = try runCommand(binary("pcnctl"), ["--url", url, "bus"])
        XCTAssertEqual(down.status, 1)
        XCTAssertTrue(down.stderr.contains("the bus hub (pcn-core) is not reachable"), down.stderr)

        let core = try Child("pcn-core", [], environment: environment)
        try waitForMarker("pcn-core", pid: core.pid)
        try eventuallySync {
            let up = try runCommand(binary("pcnctl"), ["--url", url, "bus", "-json"])
            return up.status == 0 && up.stdout.contains("\"api\"") && up.stdout.contains("\"logd\"")
        }
        for child in [api, logd, core] {
            child.killAndWait(SIGTERM)
            XCTAssertEqual(child.process.terminationStatus, 0)
        }
    }

    func testPcnctlLogsFiltersAndFollows() throws {
        let environment = isolatedEnvironment
        try FileManager.default.createDirectory(atPath: directory + "/log", withIntermediateDirectories: true)
        let file = directory + "/log/pcn.log"
        try """
            [router] [r1] [INFO] route added
            [router] [r2] [DEBUG] arp request for 10.0.0.1
            [pcn-core] [-] [WARN] netdev 'veth9' is gone
            [2026-12-02 10:00:00.123] [router] [r1] [ERR] no route to 10.9.9.9

            """.write(toFile: file, atomically: true, encoding: .utf8)
        let api = try Child("pcn-api", [], environment: environment)
        defer { api.killAndWait(SIGTERM) }
        try waitForMarker("pcn-api", pid: api.pid)
        let url = "http://" + environment["PCN_API_ADDR"]!
        func logs(_ arguments: [String]) throws -> (Int32, [String], String) {
            let result = try runCommand(binary("pcnctl"), ["--url", url, "logs"] + arguments)
            return (result.status, result.stdout.split(separator: "\n").map(String.init), result.stderr)
        }
        XCTAssertEqual(try logs([]).1.count, 4)
        XCTAssertEqual(try logs(["r1"]).1, ["[router] [r1] [INFO] route added", "[2026-12-02 10:00:00.123] [router] [r1] [ERR] no route to 10.9.9.9"])
        XCTAssertEqual(try logs(["--level", "warn"]).1, ["[pcn-core] [-] [WARN] netdev 'veth9' is gone", "[2026-12-02 10:00:00.123] [router] [r1] [ERR] no route to 10.9.9.9"])
        XCTAssertEqual(try logs(["r1", "--level", "err", "--tail", "5"]).1, ["[2026-12-02 10:00:00.123] [router] [r1] [ERR] no route to 10.9.9.9"])
        let bad = try logs(["--level", "loud"])
        XCTAssertEqual(bad.0, 1)
        XCTAssertTrue(bad.2.contains("level 'loud' is not one of TRACE"), bad.2)

        // --follow prints what is appended, as it comes.
        let output = directory + "/follow.out"
        FileManager.default.createFile(atPath: output, contents: nil)
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: binary("pcnctl"))
        follower.arguments = ["--url", url, "logs", "r2", "--follow", "--tail", "0"]
        follower.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        try follower.run()
        defer { follower.terminate(); follower.waitUntilExit() }
        usleep(500_000)
        let append = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        try append.seekToEnd()
        try append.write(contentsOf: Data("[router] [r1] [INFO] not this one\n[router] [r2] [INFO] arp reply from 10.0.0.1\n".utf8))
        try append.close()
        try eventuallySync(timeout: 15) {
            (try? String(contentsOfFile: output, encoding: .utf8)) == "[router] [r2] [INFO] arp reply from 10.0.0.1\n"
        }
    }

    private func waitForMarker(_ name: String, pid: Int32) throws {
        let path = directory + "/run/ready/" + name
        try eventuallySync { (try? String(contentsOfFile: path, encoding: .utf8)) == "\(pid)\n" }
    }
}

func eventuallySync(timeout: TimeInterval = 20, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(50_000)
    }
    throw TestFailure("condition not met within \(timeout)s")
}


import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A whole process set for one test: pcn-core, pcn-logd, pcn-api and a cube-host per service, in a
/// private runtime, state, log directory and bpffs root; namespaces from `network`.
class ServiceStackTestCase: XCTestCase {
    var directory = ""
    var bpffsRoot = ""
    var rest = RestClient(port: 0)
    var network = TestNetwork()
    private var children: [String: Child] = [:]
    /// Children of stacks stopped by `stopStack`, kept until the test ends.
    private var stopped: [Child] = []
    private var common: [String] = []

    static var services: [String] { catalogServices }

    /// False for a test that starts (and restarts) the stack itself with `startStack`.
    class var startsStackInSetUp: Bool { true }

    override func setUp() async throws {
        directory = makeTemporaryDirectory()
        bpffsRoot = "/sys/fs/bpf/pcntest-svc-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        network = TestNetwork()
        common = ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state", "--log-dir", directory + "/log",
                  "--bpffs-root", bpffsRoot, "--log-level", "info"]
        rest = RestClient(port: freePort())
        if Self.startsStackInSetUp { try await startStack() }
    }

    /// Starts the components in `order` (pcn-core, pcn-logd, pcn-api and `cube-host/<service>`
    /// names), each waited for until ready, then waits for the services' models in pcn-api.
    func startStack(order: [String]? = nil, services: [String] = ServiceStackTestCase.services) async throws {
        let order = order ?? ["pcn-core", "pcn-logd", "pcn-api"] + services.map { "cube-host/\($0)" }
        for component in order {
            switch component {
            case "pcn-core": try start("pcn-core", ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path])
            case "pcn-logd": try start("pcn-logd", [])
            case "pcn-api": try start("pcn-api", ["--api-addr", "127.0.0.1:\(rest.port)", "--yang-dir", repositoryRoot.appendingPathComponent("yang").path])
            default: try startCubeHost(String(component.dropFirst("cube-host/".count)))
            }
        }
        try await eventually(timeout: 60) {
            let answer = try? await self.rest.call("GET", "/services")
            return (answer?.json as? [Any])?.count == services.count
        }
    }

    /// Stops every component (SIGTERM) and forgets the stack's state and pinned datapath: the next
    /// `startStack` is a fresh start.
    func stopStack() {
        for child in children.values { child.killAndWait(SIGTERM) }
        stopped += children.values
        children.removeAll()
        _ = try? runCommand("/bin/rm", ["-rf", bpffsRoot, directory + "/state", directory + "/run"])
    }

    override func tearDown() {
        if (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0 {
            print("--- the last lines of \(directory)/log/pcn.log:\n" + logLines.suffix(40).joined(separator: "\n"))
        }
        for child in children.values { child.killAndWait(SIGTERM) }
        children.removeAll()
        network.tearDown()
        _ = try? runCommand("/bin/rm", ["-rf", bpffsRoot])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts a component and waits for its ready marker.
    func start(_ executable: String, _ arguments: [String], component: String? = nil) throws {
        let name = component ?? executable
        let marker = directory + "/run/ready/" + name.replacingOccurrences(of: "/", with: "@")
        unlink(marker)
        let child = try Child(executable, common + arguments)
        children[name] = child
        let deadline = Date().addingTimeInterval(60)
        while (try? String(contentsOfFile: marker, encoding: .utf8)) != "\(child.pid)\n" {
            guard Date() < deadline else { throw TestFailure("\(name) did not become ready") }
            usleep(20_000)
        }
    }

    func startCubeHost(_ service: String) throws {
        try start("cube-host", ["--service", service, "--yang-dir", repositoryRoot.appendingPathComponent("yang").path], component: "cube-host/\(service)")
    }

    /// Sends `signal` to a running component (SIGSTOP / SIGCONT to freeze and thaw it).
    func signal(_ component: String, _ signal: Int32) {
        if let pid = children[component]?.pid { kill(pid, signal) }
    }

    func kill9(_ component: String) {
        children.removeValue(forKey: component)?.killAndWait(SIGKILL)
    }

    /// A request that must succeed (2xx).
    @discardableResult
    func must(_ method: String, _ path: String, _ body: String? = nil, file: StaticString = #filePath, line: UInt = #line) async throws -> Any? {
        let answer = try await rest.call(method, path, body)
        guard (200..<300).contains(answer.status) else {
            XCTFail("\(method) \(path) \(body ?? ""): \(answer)", file: file, line: line)
            throw TestFailure("\(method) \(path) failed")
        }
        return answer.json
    }

    /// The datapath log file pcn-logd writes.
    var logLines: [String] {
        ((try? String(contentsOfFile: directory + "/log/pcn.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Hosts `<prefix>h<i>` with 10.<subnet>.<i>.1/24 behind gateway .254, one per network.
    func routedHosts(_ count: Int, subnet: Int) throws -> [(namespace: String, interface: String, address: String)] {
        try (1...count).map { index in
            let host = try network.host("h\(index)", address: "10.\(subnet).\(index).1/24", gateway: "10.\(subnet).\(index).254")
            return (host.namespace, host.interface, "10.\(subnet).\(index).1")
        }
    }

    /// A router's neighbours as learned, without their age (a clock, not state).
    func learnedNeighbours(_ router: String) async throws -> [[String: Any]] {
        ((try await must("GET", "/router/\(router)/arp-table") as? [[String: Any]]) ?? []).map { $0.filter { $0.key != "age" } }
    }

    /// Lines tcpdump printed for what `interface` (in `namespace`) saw of `filter` while `body` ran.
    func captured(in namespace: String, _ interface: String, filter: String = "ip", verbose: Bool = false, _ body: () throws -> Void) throws -> [String] {
        let file = makeTemporaryDirectory() + "/capture.pcap"
        defer { try? FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent) }
        let dump = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", namespace, "tcpdump", "-n", "-U", "--immediate-mode", "-i", interface, "-w", file, filter])
        // tcpdump is ready once it created its file.
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: file) { usleep(20_000) }
        usleep(200_000)
        do {
            try body()
        } catch {
            dump.stop()
            throw error
        }
        usleep(300_000)
        dump.stop()
        return try runCommand("/usr/bin/tcpdump", ["-n"] + (verbose ? ["-v"] : []) + ["-r", file]).stdout.split(separator: "\n").map(String.init)
    }

    /// True when a TCP connection from `from` (nil: the root namespace) to `address:port` is accepted
    /// by `nc -l` in `listenIn` (nil: the root namespace), listening on `listenAddress:listenPort`
    /// (by default the address and port connected to).
    func tcpConnects(from: String?, to address: String, port: Int, listenIn: String? = nil,
                     listenAddress: String? = nil, listenPort: Int? = nil) throws -> Bool {
        let listen = ["nc", "-l", listenAddress ?? address, "\(listenPort ?? port)"]
        let server = try listenIn.map { try BackgroundCommand("/usr/bin/ip", ["netns", "exec", $0] + listen) }
            ?? BackgroundCommand("/usr/bin/nc", Array(listen.dropFirst()))
        defer { server.stop() }
        Thread.sleep(forTimeInterval: 0.3)
        let client = ["nc", "-z", "-w", "2", address, "\(port)"]
        let result = try from.map { try network.exec($0, client, timeout: 10) } ?? runCommand("/usr/bin/nc", Array(client.dropFirst()), timeout: 10)
        return result.status == 0
    }

    /// A router joining `hosts` (port `p<i>` with 10.<subnet>.<i>.254/24, peer the host's veth).
    func router(_ name: String, type: String, hosts: [(namespace: String, interface: String, address: String)], subnet: Int) async throws {
        let ports = hosts.enumerated().map { index, host in
            #"{"name":"p\#(index + 1)","ip":"10.\#(subnet).\#(index + 1).254/24","peer":"\#(host.interface)"}"#
        }
        try await must("POST", "/router/\(name)", #"{"type":"\#(type)","ports":[\#(ports.joined(separator: ","))]}"#)
    }
}

import Foundation
import TestSupport
import XCTest

/// A real container runtime calls pcn-cni, as kubelet → containerd → CNI does: containerd (Debian's)
/// with `ctr run --cni` and a busybox root file system (no image can be pulled here). ctr reads the
/// first network configuration of /etc/cni/net.d and the plugins of /opt/cni/bin: the test adds its
/// own configuration (named to come first) and the plugins that are missing there, and removes
/// exactly those.
final class ContainerdTests: ServiceStackTestCase {
    override class var startsStackInSetUp: Bool { false }
    private var containerd: BackgroundCommand?
    private var made: [String] = []
    private var scratch = "", socket = "", lbrp = ""

    override func setUp() async throws {
        try await super.setUp()
        for tool in ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/usr/bin/busybox"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw XCTSkip("\(tool) is not installed (scripts/install-deps installs containerd, runc and busybox-static)")
        }
        scratch = makeTemporaryDirectory()
        socket = scratch + "/containerd.sock"
        try """
            version = 2
            root = "\(scratch)/root"
            state = "\(scratch)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(socket)"
            """.write(toFile: scratch + "/config.toml", atomically: true, encoding: .utf8)
        containerd = try BackgroundCommand("/usr/bin/containerd", ["--config", scratch + "/config.toml"])
        do {
            try await eventually(timeout: 20) { try self.ctr(["version"]).status == 0 }
        } catch {
            let answer = (try? ctr(["version"]).stderr) ?? ""
            throw XCTSkip("containerd does not start here: \(answer)")
        }
        try await startStack(services: ["lbrp", "router"])
        lbrp = network.prefix + "ilb"
        try await must("POST", "/router/\(network.prefix)r", #"{"type":"TC","ports":[{"name":"to_pods","ip":"10.94.1.254/24"}]}"#)
        try await must("POST", "/lbrp/\(lbrp)", #"{"type":"TC","port_mode":"MULTI","ports":[{"name":"backend","type":"BACKEND","peer":"\#(network.prefix)r:to_pods"}]}"#)

        // What ctr reads: our configuration first in /etc/cni/net.d, the plugins in /opt/cni/bin.
        let conf = "/etc/cni/net.d/00-\(network.prefix).conflist"
        for directory in ["/etc/cni", "/etc/cni/net.d", "/opt/cni", "/opt/cni/bin"] where !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            made.append(directory)
        }
        try #"""
            {"cniVersion": "1.0.0", "name": "pcnctr", "plugins": [{"type": "pcn-cni", "api": "http://127.0.0.1:\#(rest.port)", "lbrp": "\#(lbrp)",
             "dataDir": "\#(scratch)/cni", "ipam": {"type": "host-local", "subnet": "10.94.1.0/24", "gateway": "10.94.1.254", "dataDir": "\#(scratch)/ipam"}}]}
            """#.write(toFile: conf, atomically: true, encoding: .utf8)
        made.append(conf)
        for (name, target) in [("pcn-cni", productsDirectory.appendingPathComponent("pcn-cni").path),
                               ("host-local", "/usr/lib/cni/host-local"), ("loopback", "/usr/lib/cni/loopback")] {
            let path = "/opt/cni/bin/" + name
            guard !FileManager.default.fileExists(atPath: path) else { continue }
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
            made.append(path)
        }
        // A busybox root file system.
        let rootfs = scratch + "/rootfs"
        for directory in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            try FileManager.default.createDirectory(atPath: rootfs + "/" + directory, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: "/usr/bin/busybox", toPath: rootfs + "/bin/busybox")
        for applet in ["sh", "ping", "sleep", "ip", "cat"] {
            try FileManager.default.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
    }

    override func tearDown() {
        for id in ["\(network.prefix)c1", "\(network.prefix)c2"] {
            _ = try? ctr(["task", "kill", "-s", "SIGKILL", id])
        }
        runs.forEach { $0.stop() }
        containerd?.stop()
        for path in made.reversed() { unlink(path) == 0 || rmdir(path) == 0 ? () : () }
        super.tearDown()
        if !scratch.isEmpty { _ = try? runCommand("/bin/rm", ["-rf", scratch]) }
    }

    private var runs: [BackgroundCommand] = []

    @discardableResult
    private func ctr(_ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("/usr/bin/ctr", ["--address", socket] + arguments, timeout: timeout)
    }

    /// The addresses pcn-cni gave the containers: the lbrp's FRONTEND ports.
    private func frontends() async throws -> [String] {
        let ports = (try await rest.call("GET", "/lbrp/\(lbrp)/ports").json as? [[String: Any]]) ?? []
        return ports.filter { $0["type"] as? String == "FRONTEND" }.compactMap { $0["ip"] as? String }
    }

    func testContainersGetTheirNetworkFromPcnCni() async throws {
        // `ctr run --cni` in the foreground: it runs CNI ADD before the task starts and DEL after it ends.
        for id in ["c1", "c2"] {
            runs.append(try BackgroundCommand("/usr/bin/ctr", ["--address", socket, "run", "--rm", "--cni", "--rootfs", scratch + "/rootfs",
                                                               network.prefix + id, "/bin/sleep", "300"]))
        }
        try await eventually(timeout: 60) { try await self.frontends().count == 2 }
        let addresses = try await frontends().sorted()
        XCTAssertEqual(Set(addresses).count, 2)
        XCTAssertTrue(addresses.allSatisfy { $0.hasPrefix("10.94.1.") }, "\(addresses)")
        try await eventually(timeout: 30) {
            try self.ctr(["task", "exec", "--exec-id", "p\(UUID().uuidString.prefix(6))", self.network.prefix + "c1", "/bin/ping", "-c", "1", "-W", "1", addresses[1]]).status == 0
                || self.ctr(["task", "exec", "--exec-id", "q\(UUID().uuidString.prefix(6))", self.network.prefix + "c1", "/bin/ping", "-c", "1", "-W", "1", addresses[0]]).status == 0
        }
        let shown = try ctr(["task", "exec", "--exec-id", "a1", network.prefix + "c2", "/bin/ip", "-4", "addr", "show", "eth0"])
        XCTAssertTrue(addresses.contains { shown.stdout.contains($0 + "/32") }, "the container's eth0: \(shown.stdout) \(shown.stderr)")
        for (from, to) in [("c1", 1), ("c2", 0), ("c1", 0), ("c2", 1)] {
            let ping = try ctr(["task", "exec", "--exec-id", "x\(from)\(to)", network.prefix + from, "/bin/ping", "-c", "2", "-W", "2", addresses[to]])
            XCTAssertEqual(ping.status, 0, "\(from) → \(addresses[to]): \(ping.stdout) \(ping.stderr)")
        }
        // A ClusterIP (an lbrp service for ICMP: the echo goes to its backend, which answers as the VIP).
        try await must("PUT", "/lbrp/\(lbrp)/service/10.96.0.50/0/ICMP",
                       #"{"vip":"10.96.0.50","vport":0,"proto":"ICMP","backend":[{"ip":"\#(addresses[1])","port":1}]}"#)
        let vip = try ctr(["task", "exec", "--exec-id", "vip", network.prefix + "c1", "/bin/ping", "-c", "2", "-W", "2", "10.96.0.50"])
        XCTAssertEqual(vip.status, 0, "c1 → the ClusterIP: \(vip.stdout) \(vip.stderr)")
        XCTAssertEqual(((try? FileManager.default.contentsOfDirectory(atPath: scratch + "/ipam/pcnctr")) ?? []).filter { $0.hasPrefix("10.") }.count, 2)

        // The containers end: ctr runs DEL; their addresses (host-local's leases) and ports are freed.
        for id in ["c1", "c2"] { try ctr(["task", "kill", "-s", "SIGKILL", network.prefix + id]) }
        try await eventually(timeout: 60) { try await self.frontends().isEmpty }
        try await eventually(timeout: 30) {
            ((try? FileManager.default.contentsOfDirectory(atPath: self.scratch + "/ipam/pcnctr")) ?? []).filter { $0.hasPrefix("10.") }.isEmpty
        }
        XCTAssertEqual(((try? FileManager.default.contentsOfDirectory(atPath: scratch + "/cni/pcnctr")) ?? []).filter { $0.hasSuffix(".json") }, [])
    }
}

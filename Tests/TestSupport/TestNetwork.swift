import Foundation

/// Network namespaces and veth pairs for one test, all named with a unique prefix and removed by
/// `tearDown()` (call it from a `defer` or `tearDown`, so it runs when the test fails too).
public final class TestNetwork: @unchecked Sendable {
    public let prefix: String
    private var namespaces: [String] = []
    private var links: [String] = []

    public init() {
        // Fixed width: no test's prefix starts another's, so removing what starts with ours is safe.
        prefix = String(format: "pt%05x", UInt32.random(in: 0...0xFFFFF))
    }

    /// Creates namespace `<prefix><name>` with a veth pair: `<prefix><name>` stays in the root
    /// namespace (up, no address), `<prefix><name>n` moves into the namespace with `address` (CIDR).
    /// Returns (namespace, root-side interface).
    @discardableResult
    public func host(_ name: String, address: String, gateway: String? = nil) throws -> (namespace: String, interface: String) {
        let namespace = prefix + name
        let outside = prefix + name
        let inside = prefix + name + "n"
        try ip(["netns", "add", namespace])
        namespaces.append(namespace)
        try ip(["link", "add", outside, "type", "veth", "peer", "name", inside])
        links.append(outside)
        try ip(["link", "set", inside, "netns", namespace])
        try ip(["-n", namespace, "link", "set", "lo", "up"])
        try ip(["-n", namespace, "addr", "add", address, "dev", inside])
        try ip(["-n", namespace, "link", "set", inside, "up"])
        try ip(["link", "set", outside, "up"])
        if let gateway { try ip(["-n", namespace, "route", "add", "default", "via", gateway]) }
        return (namespace, outside)
    }

    /// Creates namespace `<prefix><name>` with only its loopback (up): a pod's before a CNI plugin
    /// plumbs it. Returns its path.
    public func emptyNamespace(_ name: String) throws -> String {
        try ip(["netns", "add", prefix + name])
        namespaces.append(prefix + name)
        try ip(["-n", prefix + name, "link", "set", "lo", "up"])
        return "/var/run/netns/" + prefix + name
    }

    /// Namespaces and root-namespace links a test made itself, removed with the rest.
    public func adopt(namespace: String) { namespaces.append(namespace) }
    public func adopt(link: String) { links.append(link) }

    /// Runs a command inside a namespace; returns its status and output.
    public func exec(_ namespace: String, _ command: [String], timeout: TimeInterval = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("/usr/bin/ip", ["netns", "exec", namespace] + command, timeout: timeout)
    }

    /// True if `count` pings from `namespace` to `address` all get an answer. The namespace's neighbour
    /// cache is flushed first: an earlier failed resolution would otherwise hold the address
    /// unreachable for a while, whatever the path does now.
    public func ping(from namespace: String, to address: String, count: Int = 3) throws -> Bool {
        _ = try runCommand("/usr/bin/ip", ["-n", namespace, "neigh", "flush", "all"])
        let result = try exec(namespace, ["ping", "-c", "\(count)", "-i", "0.2", "-W", "2", address])
        return result.status == 0
    }

    /// Pings `count` times `interval` seconds apart; returns what ping counted sent and received.
    public func pingCounts(from namespace: String, to address: String, count: Int, interval: String = "0.01") throws -> (sent: Int, received: Int) {
        let result = try exec(namespace, ["ping", "-c", "\(count)", "-i", interval, "-W", "2", address], timeout: Double(count) * 0.2 + 60)
        guard let line = result.stdout.split(separator: "\n").first(where: { $0.contains("packets transmitted") }) else {
            throw TestFailure("ping printed no summary: \(result.stdout) \(result.stderr)")
        }
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        return (numbers[0], numbers[1])
    }

    /// An iperf3 flow from `client` to a server started in `server` on `address`: iperf3's exit
    /// status and its JSON `end` summary (nil if it printed none).
    public func iperf3(from client: String, to server: String, address: String, seconds: Int = 2, udp: Bool = false) throws -> (status: Int32, end: [String: Any]?, output: String) {
        let daemon = try BackgroundCommand("/usr/bin/ip", ["netns", "exec", server, "iperf3", "-s", "-1", "-B", address])
        defer { daemon.stop() }
        // Start the client once the server listens (iperf3 -J reports a refused connection with status 0).
        for _ in 0..<100 {
            if try exec(server, ["ss", "-ltnH", "sport", "=", ":5201"]).stdout.contains("5201") { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        var arguments = ["iperf3", "-c", address, "-t", "\(seconds)", "-J"]
        if udp { arguments += ["-u", "-b", "20M", "-l", "1200"] }
        let result = try exec(client, arguments, timeout: Double(seconds) + 60)
        let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return (result.status, json?["end"] as? [String: Any], result.stdout + result.stderr)
    }

    public func tearDown() {
        // A cube named with the prefix and created with `shadow` has a namespace `pcn-<cube>` (its twin
        // veths with it) that outlives a stack stopped without deleting the cube.
        let shadows = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix("pcn-" + prefix) }
        for namespace in namespaces + shadows { _ = try? runCommand("/usr/bin/ip", ["netns", "del", namespace]) }
        for link in links { _ = try? runCommand("/usr/bin/ip", ["link", "del", link]) }
        namespaces.removeAll()
        links.removeAll()
    }

    private func ip(_ arguments: [String]) throws {
        let result = try runCommand("/usr/bin/ip", arguments)
        guard result.status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")): \(result.stderr)") }
    }

    deinit { tearDown() }
}

// What the benchmarks share: running commands, the daemons they start, medians.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a command (found on PATH); throws if it fails.
public func shell(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw BenchError("\(arguments.joined(separator: " ")) failed") }
}

/// Runs a command and returns its standard output; throws with its error output if it fails.
@discardableResult
public func run(_ arguments: [String], input: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe(), errors = Pipe(), stdin = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    stdin.fileHandleForWriting.closeFile()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let error = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError("\(arguments.joined(separator: " ")) failed: \(String(decoding: error, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}

public func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

public func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The repository (benchmarks read its bpf/ and Tests/Fixtures/).
public func repositoryRoot(_ file: String = #filePath) -> URL {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// The daemons a benchmark starts: the release binaries next to it, on private paths under a
/// scratch directory, stopped in reverse order (and the scratch and bpffs root removed) by `stop()`.
public final class BenchStack {
    public let scratch: String
    public let bpffsRoot: String
    public private(set) var children: [Process] = []
    private let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()

    public init(name: String) throws {
        var template = Array("/tmp/pcnbench\(name).XXXXXX".utf8CString)
        scratch = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        bpffsRoot = "/sys/fs/bpf/pcnbench\(name)-\(getpid())"
        for directory in ["run", "state", "log"] {
            try FileManager.default.createDirectory(atPath: "\(scratch)/\(directory)", withIntermediateDirectories: true)
        }
    }

    /// The path flags every daemon takes.
    public var pathFlags: [String] {
        ["--runtime-dir", scratch + "/run", "--state-dir", scratch + "/state", "--log-dir", scratch + "/log",
         "--bpffs-root", bpffsRoot, "--log-level", "warning"]
    }

    public var busSocket: String { scratch + "/run/bus.sock" }

    public func spawn(_ name: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = binaries.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: process.executableURL!.path) else {
            throw BenchError("\(process.executableURL!.path) is missing: build every product first (swift build -c release)")
        }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        children.append(process)
    }

    /// pcn-core, pcn-api on `apiPort` and one cube-host per service, with `repository`'s bpf/ and yang/.
    public func startDaemons(apiPort: Int, services: [String], repository: URL) throws {
        let yang = repository.appendingPathComponent("yang").path
        try spawn("pcn-core", pathFlags + ["--bpf-dir", repository.appendingPathComponent("bpf").path])
        try spawn("pcn-api", pathFlags + ["--api-addr", "127.0.0.1:\(apiPort)", "--yang-dir", yang])
        for service in services { try spawn("cube-host", pathFlags + ["--service", service, "--yang-dir", yang]) }
    }

    public func stop() {
        for child in children.reversed() where child.isRunning {
            child.terminate()
            child.waitUntilExit()
        }
        children.removeAll()
        try? shell(["rm", "-rf", bpffsRoot, scratch])
    }
}

/// Namespace `name` with a veth pair: `name` stays in the root namespace (up), `<name>n` moves inside
/// with `address` (CIDR), up with lo; a default route through `gateway` when given.
public func namespaceHost(_ name: String, address: String, gateway: String? = nil) throws {
    try run(["ip", "netns", "add", name])
    try run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "n"])
    try run(["ip", "link", "set", name + "n", "netns", name])
    try run(["ip", "link", "set", name, "up"])
    try run(["ip", "-n", name, "addr", "add", address, "dev", name + "n"])
    try run(["ip", "-n", name, "link", "set", name + "n", "up"])
    try run(["ip", "-n", name, "link", "set", "lo", "up"])
    if let gateway { try run(["ip", "-n", name, "route", "add", "default", "via", gateway]) }
}

/// pcn-api's REST API as a benchmark drives it: a call that must succeed, and waiting for it to come up.
public final class BenchREST: @unchecked Sendable {
    private let base: String
    private let session = URLSession(configuration: .ephemeral)

    public init(port: Int) { base = "http://127.0.0.1:\(port)/polycube/v1" }

    /// The answer's body; throws on a status outside 2xx.
    @discardableResult
    public func call(_ method: String, _ path: String, _ body: String = "") async throws -> String {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.timeoutInterval = 300
        let (data, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw BenchError("\(method) \(path): \(status) \(String(decoding: data, as: UTF8.self).prefix(300))") }
        return String(decoding: data, as: UTF8.self)
    }

    /// Retries `path` until it succeeds (the daemons starting), for at most a minute.
    public func waitFor(_ method: String, _ path: String, _ body: String = "") async throws {
        let deadline = Date().addingTimeInterval(60)
        while (try? await call(method, path, body)) == nil {
            guard Date() < deadline else { throw BenchError("\(method) \(path) did not succeed within a minute") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// One iperf3 run from namespace `client` to a server started in `server` on `address`: for UDP
/// (64-byte datagrams at full speed) received packets per second, for TCP received bits per second.
public func iperf3(from client: String, to server: String, address: String, port: Int = 5201, tcp: Bool, seconds: String) throws -> Double {
    let daemon = Process()
    daemon.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    daemon.arguments = ["ip", "netns", "exec", server, "iperf3", "-s", "-1", "-B", address, "-p", "\(port)"]
    daemon.standardOutput = FileHandle.nullDevice
    daemon.standardError = FileHandle.nullDevice
    try daemon.run()
    defer { if daemon.isRunning { daemon.terminate() }; daemon.waitUntilExit() }
    usleep(300_000)
    let text = try run(["ip", "netns", "exec", client, "iperf3", "-c", address, "-p", "\(port)", "-t", seconds, "-J"] + (tcp ? [] : ["-u", "-b", "0", "-l", "64"]))
    guard let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], let end = json["end"] as? [String: Any] else {
        throw BenchError("iperf3 printed no summary: \(text.prefix(400))")
    }
    if tcp {
        guard let received = end["sum_received"] as? [String: Any], let bits = received["bits_per_second"] as? Double else {
            throw BenchError("iperf3 printed no TCP summary: \(text.prefix(400))")
        }
        return bits
    }
    func number(_ value: Any?) -> Double? { value as? Double ?? (value as? Int).map(Double.init) }
    guard let sum = end["sum"] as? [String: Any], let packets = number(sum["packets"]), let elapsed = number(sum["seconds"]) else {
        throw BenchError("iperf3 printed no summary: \(text.prefix(400))")
    }
    return (packets - (number(sum["lost_packets"]) ?? 0)) / elapsed
}

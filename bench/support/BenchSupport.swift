// What the benchmarks share: running commands, the daemons they start, medians.
import Foundation
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

    public func stop() {
        for child in children.reversed() where child.isRunning {
            child.terminate()
            child.waitUntilExit()
        }
        children.removeAll()
        try? shell(["rm", "-rf", bpffsRoot, scratch])
    }
}

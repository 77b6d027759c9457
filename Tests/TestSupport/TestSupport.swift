import Foundation
import Logging
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Where SwiftPM put the executables this test bundle was built with.
public let productsDirectory: URL = {
    let candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent(),
                      Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL]
    for dir in candidates where FileManager.default.fileExists(atPath: dir.appendingPathComponent("pcn-core").path) {
        return dir
    }
    fatalError("cannot find the built executables near \(candidates)")
}()

/// Every service the built cube-host offers (`cube-host --list-services`): what a full stack runs.
public let catalogServices: [String] = {
    let listed = try? runCommand(productsDirectory.appendingPathComponent("cube-host").path, ["--list-services"])
    return (listed?.stdout ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
}()

/// A private directory with a short path (Unix socket paths are limited to 107 bytes).
public func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/pcntest.XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

/// A child process whose stdout lines the test can wait for.
public final class Child: @unchecked Sendable {
    public let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []
    private var partial = ""
    private let pipe = Pipe()

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = productsDirectory.appendingPathComponent(executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.partial += String(decoding: data, as: UTF8.self)
            while let newline = self.partial.firstIndex(of: "\n") {
                self.lines.append(String(self.partial[..<newline]))
                self.partial = String(self.partial[self.partial.index(after: newline)...])
            }
            self.lock.unlock()
        }
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var output: [String] { lock.lock(); defer { lock.unlock() }; return lines }

    /// Waits until some stdout line satisfies `match`; returns it.
    @discardableResult
    public func waitForLine(timeout: TimeInterval = 10, _ match: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = output.first(where: match) { return line }
            usleep(5_000)
        }
        throw TestFailure("no matching line from \(process.executableURL!.lastPathComponent) within \(timeout)s; got \(output)")
    }

    public func signal(_ number: Int32) { kill(pid, number) }

    public func killAndWait(_ number: Int32 = SIGKILL) {
        if process.isRunning { kill(pid, number) }
        process.waitUntilExit()
        // The reader must be gone before this object can be: Foundation may still run it otherwise.
        pipe.fileHandleForReading.readabilityHandler = nil
    }

    deinit { killAndWait() }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` until true or the timeout passes.
public func eventually(timeout: TimeInterval = 10, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestFailure("condition not met within \(timeout)s")
}

/// Log records kept in memory so a test can assert what the hub said.
public final class LogCapture: @unchecked Sendable {
    public init() {}
    private let lock = NSLock()
    private var records: [String] = []

    public func append(_ line: String) { lock.lock(); records.append(line); lock.unlock() }
    public var lines: [String] { lock.lock(); defer { lock.unlock() }; return records }

    public func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in CapturingHandler(capture: self) }
    }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.append("\(event.level): \(event.message)")
        }
    }
}

public let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// Resident memory of a process in KiB.
public func residentKiB(pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
    return -1
}

/// The checkout this test bundle was built from (for scripts/).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs a command to completion (stdin: `input`, else /dev/null) and returns its exit status, stdout
/// and stderr. Output goes through files, not pipes, so a daemon the command leaves running cannot
/// hold the call open.
@discardableResult
public func runCommand(_ path: String, _ arguments: [String], environment: [String: String] = [:],
                       input: String? = nil, timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
    let scratch = makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    for name in ["out", "err"] {
        guard FileManager.default.createFile(atPath: "\(scratch)/\(name)", contents: nil) else {
            throw TestFailure("cannot create \(scratch)/\(name)")
        }
    }
    guard FileManager.default.createFile(atPath: scratch + "/in", contents: Data((input ?? "").utf8)) else {
        throw TestFailure("cannot create \(scratch)/in")
    }
    // posix_spawn, not Foundation's Process: Process.run() was seen to crash (a bad pointer in its
    // argument copy) while another child was being reaped on its monitor thread.
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, input == nil ? "/dev/null" : scratch + "/in", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, scratch + "/out", O_WRONLY | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, scratch + "/err", O_WRONLY | O_TRUNC, 0o644)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard spawned == 0 else { throw TestFailure("cannot run \(path): \(String(cString: strerror(spawned)))") }
    let deadline = Date().addingTimeInterval(timeout)
    var waitStatus: Int32 = 0
    while true {
        let reaped = waitpid(pid, &waitStatus, WNOHANG)
        if reaped == pid { break }
        if reaped < 0 && errno != EINTR { throw TestFailure("waiting for \(path): \(String(cString: strerror(errno)))") }
        if Date() > deadline {
            kill(pid, SIGTERM)
            _ = waitpid(pid, &waitStatus, 0)
            throw TestFailure("\(path) \(arguments) did not finish within \(timeout)s")
        }
        usleep(5_000)
    }
    // Exit code, or the signal that ended it (as Foundation's terminationStatus reports it).
    let status = waitStatus & 0x7f == 0 ? (waitStatus >> 8) & 0xff : waitStatus & 0x7f
    let out = (try? String(contentsOfFile: scratch + "/out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: scratch + "/err", encoding: .utf8)) ?? ""
    return (status, out, err)
}

/// A TCP port that nothing listens on right now (bind to port 0, read it back).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A command left running in the background (spawned like runCommand, output discarded); `stop()`
/// ends it if it is still running and reaps it.
public final class BackgroundCommand: @unchecked Sendable {
    public let pid: pid_t

    /// `blocked`: signals the child starts with blocked (default none), as a parent's thread might pass on.
    public init(_ path: String, _ arguments: [String], environment: [String: String] = [:], blocked: [Int32] = []) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        // The test process's threads may block SIGTERM (the children would inherit that mask, and a
        // listener would outlive stop()): the child starts with only `blocked` blocked, defaults restored.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t(), all = sigset_t()
        sigemptyset(&mask)
        for signal in blocked { sigaddset(&mask, signal) }
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw TestFailure("cannot run \(path): \(String(cString: strerror(spawned)))") }
        self.pid = pid
    }

    /// Its wait status once it exits within `timeout`, else nil (it is left running).
    public func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        repeat {
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    /// Ends it (SIGTERM, then SIGKILL after a second) and reaps it.
    public func stop() {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == 0 else { return }
        kill(pid, SIGTERM)
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
    }
}

/// Runs blocking work (a command, a ping run) on a thread of its own, so that it does not hold one of
/// the few threads of Swift's cooperative pool that other tasks of the test need meanwhile.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}

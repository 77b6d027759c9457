import CShims
import DaemonKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where lines go: the log file always, journald when it runs (with the fields SERVICE, CUBE and
/// LEVEL), standard output in the foreground.
final class LogSinks: @unchecked Sendable {
    let file: LogFile
    private let stdout: Bool
    private let journal: Bool
    private let lock = NSLock()

    init(file: LogFile, stdout: Bool, journal: Bool) {
        self.file = file
        self.stdout = stdout
        self.journal = journal
    }

    func write(_ line: ControlLogLine) {
        write(service: line.component, cube: line.cube ?? "-", level: line.level, message: line.message)
    }

    /// The file's lines are Polycube's: `[YYYY-MM-DD HH:MM:SS.mmm] [service] [cube] [LEVEL] message`
    /// (local time), so scripts that cut its fields by spaces keep working.
    func write(service: String, cube: String, level: String, message: String) {
        let text = "[\(service)] [\(cube)] [\(level)] \(message)"
        lock.withLock {
            file.write("[\(Self.timestamp())] " + text)
            if stdout { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
        }
        if journal { _ = pcn_journal_send(message, Self.priority(level), service, cube, level) }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var local = tm()
        localtime_r(&seconds, &local)
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &local)
        let date = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return date + String(format: ".%03d", Int(now.tv_nsec / 1_000_000))
    }

    /// syslog priority of a level name.
    static func priority(_ level: String) -> Int32 {
        switch level {
        case "CRITICAL": 2
        case "ERR": 3
        case "WARN": 4
        case "INFO": 6
        default: 7
        }
    }
}

/// The log file, reopened on SIGHUP so that logrotate can move it away.
final class LogFile: @unchecked Sendable {
    let path: String
    private var fd: Int32
    private let lock = NSLock()

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw DaemonError("cannot open log file \(path): \(String(cString: strerror(errno)))") }
    }

    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        lock.withLock { _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    }

    func reopen() throws {
        let fresh = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fresh >= 0 else { throw DaemonError("cannot reopen log file \(path): \(String(cString: strerror(errno)))") }
        lock.withLock {
            close(fd)
            fd = fresh
        }
    }

    deinit { close(fd) }
}

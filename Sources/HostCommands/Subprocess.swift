import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to its end: what it wrote on stdout and stderr and how it exited. posix_spawn and
/// waitpid rather than Foundation's Process, whose wait costs ~50 ms a child on Linux (a run loop
/// polls for the exit): pcn-cni's ADD and the node agent run several `ip` commands each.
public enum Subprocess {
    public struct Outcome: Sendable {
        public var status: Int32
        public var stdout: Data
        public var stderr: String
        public var output: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// The program could not be started.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                    environment: [String: String]? = nil) throws -> Outcome {
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        guard pipe(&input) == 0, pipe(&output) == 0, pipe(&errors) == 0 else {
            throw Failure(description: "cannot make pipes to run \(executable): \(String(cString: strerror(errno)))")
        }
        // Close-on-exec: the child gets only its dup2'd copies (callers run one child at a time).
        for fd in input + output + errors { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let environmentList = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp = environmentList.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        for fd in [input[0], output[1], errors[1]] { close(fd) }
        guard spawned == 0 else {
            for fd in [input[1], output[0], errors[0]] { close(fd) }
            throw Failure(description: "cannot run \(executable): \(String(cString: strerror(spawned)))")
        }
        var pending = [UInt8](stdin ?? Data())
        var writeFD: Int32 = input[1]
        if pending.isEmpty { close(writeFD); writeFD = -1 }
        var readFDs = [output[0], errors[0]]
        var collected: [[UInt8]] = [[], []]
        var buffer = [UInt8](repeating: 0, count: 65536)
        // One loop feeds stdin and drains both outputs, so no pipe can fill and block the child.
        while writeFD >= 0 || readFDs.contains(where: { $0 >= 0 }) {
            var fds = readFDs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0))
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<2 where readFDs[index] >= 0 && fds[index].revents != 0 {
                let count = read(readFDs[index], &buffer, buffer.count)
                if count > 0 {
                    collected[index] += buffer[0..<count]
                } else if count == 0 || errno != EINTR {
                    close(readFDs[index])
                    readFDs[index] = -1
                }
            }
            if writeFD >= 0 && fds[2].revents != 0 {
                let count = pending.withUnsafeBytes { write(writeFD, $0.baseAddress, $0.count) }
                if count > 0 { pending.removeFirst(count) }
                if pending.isEmpty || (count < 0 && errno != EINTR && errno != EAGAIN) {
                    close(writeFD)
                    writeFD = -1
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, which Swift does not import as macros.
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: exitStatus, stdout: Data(collected[0]),
                       stderr: String(decoding: collected[1], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

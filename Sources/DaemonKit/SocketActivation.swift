import CShims
import CSystemd
import Foundation
import Logging
import ServiceLifecycle

/// systemd socket activation: the listening sockets systemd passed (LISTEN_FDS), from fd 3 on.
public enum SocketActivation {
    public static func listeningSockets() -> [Int32] {
        let count = sd_listen_fds(0)
        guard count > 0 else { return [] }
        return (0..<count).map { SD_LISTEN_FDS_START + $0 }
    }

    /// The IPv4 address a listening socket is bound to, as `HOST:PORT`.
    public static func localAddress(of fd: Int32) -> (host: String, port: Int)? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        var raw = address.sin_addr
        guard inet_ntop(AF_INET, &raw, &text, socklen_t(text.count)) != nil else { return nil }
        return (String(cString: text), Int(UInt16(bigEndian: address.sin_port)))
    }
}

/// Serves connections accepted on a socket systemd holds (so they wait in its backlog while we
/// restart) by relaying each one to `target`, a Unix socket our HTTP server listens on. Two services
/// for the process's ServiceGroup, which shuts services down in reverse order:
/// `[..., relay.drainer, httpServer, relay.acceptor]` stops accepting first (what arrives then waits
/// for the next instance), then lets the HTTP server finish its requests and close idle keep-alive
/// connections, then waits for the relayed bytes to reach the clients.
public struct ActivatedSocketRelay {
    public let acceptor: any Service
    public let drainer: any Service

    public init(listener: Int32, target: String, logger: Logger) {
        let state = RelayState()
        acceptor = Acceptor(listener: listener, target: target, logger: logger, state: state)
        drainer = Drainer(state: state)
    }

    struct Acceptor: Service {
        let listener: Int32
        let target: String
        let logger: Logger
        let state: RelayState

        func run() async throws {
            let thread = Thread { [listener, target, logger, state] in
                ActivatedSocketRelay.acceptLoop(listener: listener, target: target, stop: state, logger: logger)
                state.acceptLoopEnded()
            }
            thread.name = "activation-relay"
            thread.start()
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
            }
            state.set()
            // Requests already accepted get their answers before the HTTP server starts closing
            // connections (it closes idle keep-alive ones at once): wait for the accept loop, then up
            // to a second for the open connections.
            for _ in 0..<20 where !state.drained { try? await Task.sleep(for: .milliseconds(50)) }
        }
    }

    struct Drainer: Service {
        let state: RelayState

        func run() async throws {
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(200)) }
            }
            state.set()
            for _ in 0..<200 where !state.drained { try? await Task.sleep(for: .milliseconds(50)) }
        }
    }

    /// Shared by the accept loop and the connections it relays.
    final class RelayState: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        private var looping = true
        private var connections = 0
        func set() { lock.withLock { stopped = true } }
        var isSet: Bool { lock.withLock { stopped } }
        func acceptLoopEnded() { lock.withLock { looping = false } }
        func opened() { lock.withLock { connections += 1 } }
        func closed() { lock.withLock { connections -= 1 } }
        var drained: Bool { lock.withLock { !looping && connections == 0 } }
    }

    private static func acceptLoop(listener: Int32, target: String, stop: RelayState, logger: Logger) {
        var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        while !stop.isSet {
            guard poll(&poller, 1, 50) > 0, !stop.isSet else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            // The HTTP server may still be starting: the connection waits (up to 10 s) rather than fails.
            var upstream: Int32 = -1
            for _ in 0..<500 {
                upstream = pcn_stream_connect(target)
                if upstream >= 0 { break }
                usleep(20_000)
            }
            guard upstream >= 0 else {
                logger.error("cannot reach the HTTP server at \(target): \(String(cString: strerror(errno)))")
                close(client)
                continue
            }
            stop.opened()
            let done = DispatchGroup()
            for (from, to) in [(client, upstream), (upstream, client)] {
                done.enter()
                Thread.detachNewThread {
                    copy(from: from, to: to)
                    done.leave()
                }
            }
            done.notify(queue: .global()) {
                close(client)
                close(upstream)
                stop.closed()
            }
        }
    }

    /// Copies until either side ends, then ends both (the other direction's thread wakes up): the
    /// server closing means the exchange is over, and so does the client going away.
    private static func copy(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        outer: while true {
            let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, count - sent) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { break outer }
                sent += written
            }
        }
        shutdown(to, Int32(SHUT_RDWR))
        shutdown(from, Int32(SHUT_RDWR))
    }
}

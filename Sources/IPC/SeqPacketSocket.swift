import CShims
#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor received over the bus. It is closed when the last reference goes away unless
/// ownership was moved out with `take()`.
public final class PassedFD: @unchecked Sendable {
    private var fd: Int32
    private let lock = PosixLock()

    public init(owning fd: Int32) { self.fd = fd }

    /// The descriptor, still owned by this object (valid while it lives).
    public var rawValue: Int32 { lock.withLock { fd } }

    /// Moves ownership to the caller: this object will no longer close it.
    public func take() -> Int32 {
        lock.withLock {
            let out = fd
            fd = -1
            return out
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
    }
}

/// A system call failure with the call's name and errno text.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// One end of a SOCK_SEQPACKET Unix socket: whole datagrams in, whole datagrams out, fds alongside.
public struct SeqPacketSocket: Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public static func listen(path: String, backlog: Int32 = 128) throws -> SeqPacketSocket {
        let fd = pcn_seqpacket_listen(path, backlog)
        if fd == -2 { throw SystemError("bind \(path) (path longer than sun_path)", errno: ENAMETOOLONG) }
        if fd < 0 { throw SystemError("listen on \(path)") }
        return SeqPacketSocket(fd: fd)
    }

    public static func connect(path: String) throws -> SeqPacketSocket {
        let fd = pcn_seqpacket_connect(path)
        if fd == -2 { throw SystemError("connect \(path) (path longer than sun_path)", errno: ENAMETOOLONG) }
        if fd < 0 { throw SystemError("connect \(path)") }
        return SeqPacketSocket(fd: fd)
    }

    public static func pair() throws -> (SeqPacketSocket, SeqPacketSocket) {
        var sv: [Int32] = [0, 0]
        guard pcn_seqpacket_pair(&sv) == 0 else { throw SystemError("socketpair") }
        return (SeqPacketSocket(fd: sv[0]), SeqPacketSocket(fd: sv[1]))
    }

    public func setNonBlocking() {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Bounds how long a blocking send may wait for room in the peer's buffer.
    public func setSendTimeout(milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func setBufferSizes(bytes: Int32) {
        var size = bytes
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    public enum SendResult: Equatable { case sent, wouldBlock }

    /// Sends one datagram. `.wouldBlock` only when the socket is non-blocking (or the send timed out).
    public func send(_ bytes: [UInt8], fds: [Int32] = []) throws -> SendResult {
        while true {
            let n = bytes.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer { f in
                    pcn_send_frame(fd, raw.baseAddress, raw.count, f.baseAddress, Int32(f.count), 0)
                }
            }
            if n >= 0 { return .sent }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
            throw SystemError("sendmsg", errno: err)
        }
    }

    public enum ReceiveResult {
        case datagram(count: Int, fds: [PassedFD], truncated: Bool)
        case closed
        case wouldBlock
    }

    /// Receives one datagram into `buffer`. A datagram bigger than the buffer comes back `truncated`.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, dontWait: Bool = false) throws -> ReceiveResult {
        var fds = [Int32](repeating: -1, count: Int(PCN_MAX_FRAME_FDS))
        var nfds: Int32 = 0
        var truncated: Int32 = 0
        while true {
            let n = fds.withUnsafeMutableBufferPointer { f in
                pcn_recv_frame(fd, buffer.baseAddress, buffer.count, f.baseAddress, &nfds, &truncated,
                               dontWait ? Int32(MSG_DONTWAIT) : 0)
            }
            if n > 0 || (n == 0 && nfds > 0) {
                let owned = fds.prefix(Int(nfds)).map { PassedFD(owning: $0) }
                return .datagram(count: n, fds: owned, truncated: truncated != 0)
            }
            if n == 0 { return .closed }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
            if err == ECONNRESET || err == ENOTCONN || err == EPIPE { return .closed }
            throw SystemError("recvmsg", errno: err)
        }
    }

    public func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    public func close() { _ = Glibc.close(fd) }

    /// The connected peer's pid and uid (SO_PEERCRED): who it is, for the name policy and the logs.
    public var peerCredentials: (pid: Int32, uid: UInt32)? {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        return pcn_peer_credentials(fd, &pid, &uid) == 0 ? (pid, uid) : nil
    }
}

/// A pthread mutex: usable from threads that are not Swift tasks, and cheap.
public final class PosixLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

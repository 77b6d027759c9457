import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A daemon's connection to the bus: connects to the hub's socket, registers under `name`, and keeps
/// doing so across hub restarts (reconnect with exponential backoff, then re-register). Requests made
/// while disconnected wait for the connection within their own timeout.
public final class BusClient: BusEndpoint, @unchecked Sendable {
    public struct Backoff: Sendable {
        public var initial: Duration = .milliseconds(20)
        public var maximum: Duration = .seconds(1)
        public init() {}
    }

    public let name: String
    public let socketPath: String
    public let messages: AsyncStream<BusMessage>
    public let pending = PendingRequests()
    /// Yields each time the client (re-)registers: the place to re-announce state to the hub.
    public let registrations: AsyncStream<Int>

    private let messageSink: AsyncStream<BusMessage>.Continuation
    private let registrationSink: AsyncStream<Int>.Continuation
    private let backoff: Backoff
    private let logger: Logger
    private let lock = PosixLock()
    private let sendLock = PosixLock()
    private var socket: SeqPacketSocket?
    private var stopping = false
    private var registrationCount = 0
    private var droppedIncomingCount: UInt64 = 0
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    public init(socketPath: String, name: String, backoff: Backoff = Backoff(), queueLimit: Int = 4096, logger: Logger) {
        self.socketPath = socketPath
        self.name = name
        self.backoff = backoff
        self.logger = logger
        (messages, messageSink) = AsyncStream.makeStream(of: BusMessage.self, bufferingPolicy: .bufferingOldest(queueLimit))
        (registrations, registrationSink) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var isRegistered: Bool { lock.withLock { socket != nil } }

    /// Requests and events that arrived while `messages` was full (requests were answered `queue-full`).
    public var droppedIncoming: UInt64 { lock.withLock { droppedIncomingCount } }

    /// Starts the connection thread. Returns at once: the hub need not be up.
    public func start() {
        precondition(Frame.isValidName(name), "bus name '\(name)' is not valid")
        let thread = Thread { [self] in
            connectionLoop()
            finished.signal()
        }
        thread.name = "bus-client"
        self.thread = thread
        thread.start()
    }

    /// Disconnects, fails what is in flight, and ends `messages`.
    public func stop() {
        let current = lock.withLock { () -> SeqPacketSocket? in
            stopping = true
            return socket
        }
        current?.shutdown()
        if thread != nil {
            finished.wait()
            thread = nil
        }
        messageSink.finish()
        registrationSink.finish()
    }

    public func connected(within timeout: Duration) async -> Bool {
        await waitUntilRegistered(timeout: timeout)
    }

    /// Waits until registered with the hub, up to `timeout`. True if registered. A stopped client or
    /// a cancelled caller stops waiting at once (a cancelled sleep returns at once: waiting on would spin).
    public func waitUntilRegistered(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !isRegistered {
            if ContinuousClock.now >= deadline || Task.isCancelled || lock.withLock({ stopping }) { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    public func send(_ frame: Frame, fds: [Int32]) throws(BusError) {
        let bytes: [UInt8]
        do {
            bytes = try frame.encode()
        } catch {
            throw BusError(code: .invalidMessage, message: "\(frame.method) to \(frame.destination): \(error)")
        }
        guard let socket = lock.withLock({ socket }) else {
            throw BusError(code: .disconnected, message: "not connected to the bus hub at \(socketPath)")
        }
        do {
            let result = try sendLock.withLock { try socket.send(bytes, fds: fds) }
            if result == .wouldBlock {
                throw BusError(code: .queueFull, message: "the bus hub is not reading (send timed out)")
            }
        } catch let error as BusError {
            throw error
        } catch {
            throw BusError(code: .disconnected, message: "send to the bus hub failed: \(error)")
        }
    }

    // MARK: - Connection thread

    private func connectionLoop() {
        var delay = backoff.initial
        var warned = false
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameHeader.maxFrameSize, alignment: 8)
        defer { buffer.deallocate() }
        while !lock.withLock({ stopping }) {
            let connected: SeqPacketSocket
            do {
                connected = try register(buffer: buffer)
            } catch {
                if !warned {
                    logger.info("bus hub not reachable yet, retrying with backoff: \(error)")
                    warned = true
                }
                sleep(for: delay)
                delay = min(delay * 2, backoff.maximum)
                continue
            }
            delay = backoff.initial
            warned = false
            let count = lock.withLock { () -> Int? in
                if stopping { return nil }
                socket = connected
                registrationCount += 1
                return registrationCount
            }
            guard let count else {
                connected.close()
                break
            }
            logger.info("registered on the bus", metadata: ["name": "\(name)", "registration": "\(count)"])
            registrationSink.yield(count)
            readLoop(connected, buffer: buffer)
            lock.withLock { socket = nil }
            connected.close()
            pending.failAll(BusError(code: .disconnected, message: "connection to the bus hub lost"))
            if !lock.withLock({ stopping }) { logger.warning("lost the bus hub connection; reconnecting") }
        }
    }

    private func register(buffer: UnsafeMutableRawBufferPointer) throws -> SeqPacketSocket {
        let socket = try SeqPacketSocket.connect(path: socketPath)
        socket.setSendTimeout(milliseconds: 2000)
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        do {
            let hello = try Frame(kind: .register, id: 0, destination: HubMethod.hubName, payload: Array(name.utf8)).encode()
            _ = try socket.send(hello)
            while true {
                guard case .datagram(let count, _, _) = try socket.receive(into: buffer) else {
                    throw BusError(code: .disconnected, message: "hub closed the connection during registration")
                }
                let frame = try Frame.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                if frame.kind == .reply && frame.method == "register" { break }
            }
        } catch {
            socket.close()
            throw error
        }
        tv = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    private func readLoop(_ socket: SeqPacketSocket, buffer: UnsafeMutableRawBufferPointer) {
        while true {
            let result: SeqPacketSocket.ReceiveResult
            do {
                result = try socket.receive(into: buffer)
            } catch {
                logger.warning("bus receive failed: \(error)")
                return
            }
            guard case .datagram(let count, let fds, let truncated) = result else { return }
            if truncated {
                logger.error("bus hub sent an oversized frame; reconnecting")
                return
            }
            let frame: Frame
            do {
                frame = try Frame.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            } catch {
                logger.error("bus hub sent a malformed frame (\(error)); reconnecting")
                return
            }
            let message = BusMessage(kind: frame.kind, id: frame.id, source: frame.source, method: frame.method,
                                     payload: frame.payload, fds: fds)
            switch frame.kind {
            case .reply, .error:
                pending.complete(message)
            case .request, .event:
                if case .dropped = messageSink.yield(message) {
                    let total = lock.withLock { () -> UInt64 in
                        droppedIncomingCount += 1
                        return droppedIncomingCount
                    }
                    if total == 1 || total.isMultiple(of: 1000) {
                        logger.warning("incoming queue full: \(total) messages dropped so far")
                    }
                    fail(message, BusError(code: .queueFull, message: "'\(name)' is overloaded; '\(frame.method)' dropped"))
                }
            case .register:
                logger.error("bus hub sent a register frame; ignoring")
            }
        }
    }

    private func sleep(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
    }
}

import Foundation
import Logging
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Bounds that keep the hub's memory flat whatever its clients do.
public struct HubLimits: Sendable {
    /// Frames queued towards one endpoint that is not reading. Beyond it frames are dropped and counted.
    public var maxQueuedFrames = 1024
    /// Bytes queued towards one endpoint.
    public var maxQueuedBytes = 8 * 1024 * 1024
    /// Room kept beyond the limits for small error notices, so a stalled sender still learns of drops.
    public var errorAllowance = 1024
    /// Frames read from one connection before the others get a turn.
    public var readBatch = 64

    public init() {}
}

/// The bus hub: accepts connections on a SOCK_SEQPACKET socket, registers them by name, routes frames
/// by destination name, and hosts in-process endpoints for its own daemon. One thread runs the whole
/// hub (poll loop); other threads talk to it only through `submit`.
public final class BusHub: @unchecked Sendable {
    public let socketPath: String
    private let limits: HubLimits
    private let namePolicy: BusNamePolicy
    private let logger: Logger

    private var listener: SeqPacketSocket?
    private var wakePipe: (read: Int32, write: Int32) = (-1, -1)
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)

    // Shared with other threads.
    private let inboxLock = PosixLock()
    private var inbox: [(connection: Int, frame: Frame, fds: [PassedFD])] = []
    private var newLocals: [(endpoint: LocalEndpoint, registered: DispatchSemaphore)] = []
    private var stopRequested = false
    /// The names registered now: the hub thread's own table, published under a lock so any thread
    /// reads it directly (no rebuilding it from notices, which miss what came before the reader).
    private let namesLock = PosixLock()
    private var registeredNames: Set<String> = []

    // Owned by the hub thread.
    private var connections: [Int: Connection] = [:]
    private var byName: [String: Int] = [:]
    private var nextConnectionID = 1
    private var counters = Counters()
    private var statsSnapshot: HubStats
    private var lastPublished = ContinuousClock.now - .seconds(1)
    private var statsStale = false
    private let statsLock = PosixLock()
    private let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameHeader.maxFrameSize, alignment: 8)

    private struct Counters {
        var badFrameDisconnects: UInt64 = 0
        var noRoute: UInt64 = 0
        var undeliverableErrors: UInt64 = 0
        var dropped: UInt64 = 0
    }

    public init(socketPath: String, limits: HubLimits = HubLimits(), namePolicy: BusNamePolicy = BusNamePolicy(), logger: Logger) {
        self.socketPath = socketPath
        self.limits = limits
        self.namePolicy = namePolicy
        self.logger = logger
        self.statsSnapshot = HubStats(endpoints: [], badFrameDisconnects: 0, noRoute: 0, undeliverableErrors: 0, dropped: 0)
    }

    deinit { receiveBuffer.deallocate() }

    /// Binds the socket (replacing a stale one left by a killed hub) and starts the hub thread.
    public func start() throws {
        var st = stat()
        if lstat(socketPath, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw SystemError("bind \(socketPath) (exists and is not a socket)", errno: EEXIST)
            }
            unlink(socketPath)
        }
        let socket = try SeqPacketSocket.listen(path: socketPath)
        socket.setNonBlocking()
        // Owner and the runtime directory's group (the unprivileged `pcn` group under systemd) may connect.
        chmod(socketPath, 0o660)
        var directory = stat()
        if stat((socketPath as NSString).deletingLastPathComponent, &directory) == 0 {
            _ = chown(socketPath, uid_t.max, directory.st_gid)
        }
        listener = socket
        var fds: [Int32] = [0, 0]
        guard pcn_wake_pipe(&fds) == 0 else { throw SystemError("pipe2") }
        wakePipe = (fds[0], fds[1])
        let thread = Thread { [self] in
            runLoop()
            stopped.signal()
        }
        thread.name = "bus-hub"
        self.thread = thread
        thread.start()
        logger.info("bus hub listening", metadata: ["socket": "\(socketPath)"])
    }

    /// Stops the hub thread, closes every connection and removes the socket path.
    public func stop() {
        guard thread != nil else { return }
        inboxLock.withLock { stopRequested = true }
        wake()
        stopped.wait()
        thread = nil
    }

    /// An endpoint that lives inside this process, registered under `name` like any socket client.
    /// Once the hub runs, it is registered when this returns: every later registration is announced to it.
    public func localEndpoint(name: String, queueLimit: Int = 4096) -> LocalEndpoint {
        let endpoint = LocalEndpoint(name: name, hub: self, queueLimit: queueLimit)
        let registered = DispatchSemaphore(value: 0)
        inboxLock.withLock { newLocals.append((endpoint, registered)) }
        wake()
        if thread != nil { registered.wait() }
        return endpoint
    }

    /// True while an endpoint is registered under `name`.
    public func isRegistered(_ name: String) -> Bool { namesLock.withLock { registeredNames.contains(name) } }

    /// The counters as of at most 20 ms ago (the hub thread refreshes them while it works; ask the
    /// `hub` endpoint's `stats` method over the bus for an exact, ordered answer).
    public var stats: HubStats { statsLock.withLock { statsSnapshot } }

    // MARK: - Entry points for other threads

    func submit(from endpoint: LocalEndpoint, frame: Frame, fds: [Int32]) {
        let owned = fds.map { PassedFD(owning: dup($0)) }
        inboxLock.withLock { inbox.append((endpoint.connectionID, frame, owned)) }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    // MARK: - The loop

    private func runLoop() {
        var pollSet: [pollfd] = []
        var order: [Int] = []
        while true {
            pollSet.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0))
            pollSet.append(pollfd(fd: listener!.fd, events: Int16(POLLIN), revents: 0))
            for (id, connection) in connections {
                guard case .socket(let socket) = connection.transport else { continue }
                var events = Int16(POLLIN)
                if connection.hasQueued { events |= Int16(POLLOUT) }
                pollSet.append(pollfd(fd: socket.fd, events: events, revents: 0))
                order.append(id)
            }
            // While the published counters lag behind, wake up in time to refresh them.
            let ready = poll(&pollSet, nfds_t(pollSet.count), statsStale ? 20 : -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.critical("bus hub poll failed: \(SystemError("poll"))")
                break
            }
            if pollSet[0].revents != 0 {
                if drainInbox() { break }
            }
            if pollSet[1].revents & Int16(POLLIN) != 0 { acceptAll() }
            for (index, id) in order.enumerated() {
                let revents = pollSet[index + 2].revents
                guard revents != 0, let connection = connections[id] else { continue }
                if revents & Int16(POLLOUT) != 0 { flush(connection) }
                if revents & Int16(POLLIN) != 0 {
                    readBatch(connection)
                } else if revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                    close(connection, reason: nil)
                }
            }
            publishStats()
        }
        for connection in Array(connections.values) { close(connection, reason: nil, notify: false) }
        listener?.close()
        unlink(socketPath)
        Glibc.close(wakePipe.read)
        Glibc.close(wakePipe.write)
        logger.info("bus hub stopped")
    }

    /// Returns true when the hub must stop.
    private func drainInbox() -> Bool {
        var sink = [UInt8](repeating: 0, count: 256)
        while read(wakePipe.read, &sink, sink.count) > 0 {}
        let (work, locals, stop) = inboxLock.withLock { () -> ([(connection: Int, frame: Frame, fds: [PassedFD])], [(endpoint: LocalEndpoint, registered: DispatchSemaphore)], Bool) in
            defer {
                inbox.removeAll()
                newLocals.removeAll()
            }
            return (inbox, newLocals, stopRequested)
        }
        if stop {
            for local in locals { local.registered.signal() }
            return true
        }
        for (endpoint, registered) in locals {
            let connection = Connection(id: nextConnectionID, transport: .local(endpoint))
            nextConnectionID += 1
            endpoint.connectionID = connection.id
            connections[connection.id] = connection
            register(connection, name: endpoint.name)
            registered.signal()
        }
        for item in work {
            guard let connection = connections[item.connection] else { continue }
            route(item.frame, fds: item.fds, from: connection)
        }
        return false
    }

    private func acceptAll() {
        while true {
            let fd = accept(listener!.fd, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK {
                    logger.warning("bus hub accept failed: \(SystemError("accept"))")
                }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let socket = SeqPacketSocket(fd: fd)
            socket.setNonBlocking()
            let connection = Connection(id: nextConnectionID, transport: .socket(socket))
            if let credentials = socket.peerCredentials {
                connection.pid = credentials.pid
                connection.peer = BusPeer(pid: credentials.pid, uid: credentials.uid, unit: BusPeer.unit(ofPID: credentials.pid))
            }
            nextConnectionID += 1
            connections[connection.id] = connection
        }
    }

    private func readBatch(_ connection: Connection) {
        guard case .socket(let socket) = connection.transport else { return }
        for _ in 0..<limits.readBatch {
            let result: SeqPacketSocket.ReceiveResult
            do {
                result = try socket.receive(into: receiveBuffer, dontWait: true)
            } catch {
                close(connection, reason: "\(error)")
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .closed:
                close(connection, reason: nil)
                return
            case .datagram(let count, let fds, let truncated):
                if truncated {
                    counters.badFrameDisconnects += 1
                    close(connection, reason: "\(FrameError.oversized(limit: FrameHeader.maxFrameSize)) (or more than \(PCN_MAX_FRAME_FDS) fds)")
                    return
                }
                let frame: Frame
                do {
                    frame = try Frame.decode(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<count]))
                } catch {
                    counters.badFrameDisconnects += 1
                    close(connection, reason: error.description)
                    return
                }
                route(frame, fds: fds, from: connection)
                if connections[connection.id] == nil { return }
            }
        }
    }

    // MARK: - Routing

    private func route(_ incoming: Frame, fds: [PassedFD], from connection: Connection) {
        guard let sender = connection.name else {
            if incoming.kind == .register {
                let name = String(decoding: incoming.payload, as: UTF8.self)
                guard Frame.isValidName(name), name != HubMethod.hubName, name != HubMethod.broadcast else {
                    counters.badFrameDisconnects += 1
                    close(connection, reason: "register with an invalid name '\(name)'")
                    return
                }
                // A name is proven by who the peer is (SO_PEERCRED, its unit), and not taken from a live holder.
                if let peer = connection.peer,
                   let refusal = namePolicy.refusal(name: name, peer: peer, holder: byName[name].flatMap { connections[$0]?.peer }) {
                    close(connection, reason: "registration refused: \(refusal)")
                    return
                }
                register(connection, name: name)
                enqueue(Frame(kind: .reply, id: incoming.id, source: HubMethod.hubName, destination: name,
                              method: "register", payload: incoming.payload), fds: [], to: connection, isNotice: true)
            } else {
                counters.badFrameDisconnects += 1
                close(connection, reason: "sent a \(incoming.kind) frame before registering")
            }
            return
        }
        var frame = incoming
        frame.source = sender
        switch frame.kind {
        case .register:
            counters.badFrameDisconnects += 1
            close(connection, reason: "registered twice")
        case .request, .event:
            if frame.destination == HubMethod.hubName {
                answerHubRequest(frame, from: connection)
            } else if frame.kind == .event && frame.destination == HubMethod.broadcast {
                for other in connections.values where other.id != connection.id && other.name != nil {
                    var copy = frame
                    copy.destination = other.name!
                    deliver(copy, fds: fds, to: other, sender: connection)
                }
            } else if let target = byName[frame.destination].flatMap({ connections[$0] }) {
                deliver(frame, fds: fds, to: target, sender: connection)
            } else {
                counters.noRoute += 1
                notifyError(frame, BusError(code: .noRoute, message: "no endpoint is registered as '\(frame.destination)'"), to: connection)
            }
        case .reply, .error:
            guard let target = byName[frame.destination].flatMap({ connections[$0] }) else {
                logger.debug("answer from \(sender) to \(frame.destination) dropped: requester is gone")
                return
            }
            connection.inFlight.remove(InFlight(requester: target.id, id: frame.id))
            enqueue(frame, fds: fds, to: target, isNotice: false)
        }
    }

    /// Queues a request or event for `target`; a drop is counted and answered to the sender.
    private func deliver(_ frame: Frame, fds: [PassedFD], to target: Connection, sender: Connection) {
        if enqueue(frame, fds: fds, to: target, isNotice: false) {
            if frame.kind == .request { target.inFlight.insert(InFlight(requester: sender.id, id: frame.id)) }
        } else if target.broken != nil {
            notifyError(frame, BusError(code: .disconnected, message: "'\(frame.destination)' disconnected"), to: sender)
        } else {
            notifyError(frame, BusError(code: .queueFull,
                message: "'\(frame.destination)' is not keeping up: its queue of \(limits.maxQueuedFrames) frames is full; '\(frame.method)' dropped"),
                to: sender)
        }
    }

    private func notifyError(_ frame: Frame, _ error: BusError, to connection: Connection) {
        guard let name = connection.name else { return }
        let notice = Frame(kind: .error, id: frame.id, source: HubMethod.hubName, destination: name,
                           method: frame.method, payload: error.encoded)
        if !enqueue(notice, fds: [], to: connection, isNotice: true) { counters.undeliverableErrors += 1 }
    }

    /// Sends now if the socket has room, else queues within the limits. False when dropped (counted)
    /// or when the socket is broken (`broken` set; the connection is closed after this batch).
    @discardableResult
    private func enqueue(_ frame: Frame, fds: [PassedFD], to target: Connection, isNotice: Bool) -> Bool {
        guard let bytes = try? frame.encode() else { return false }
        switch target.transport {
        case .local(let endpoint):
            if endpoint.deliver(frame, fds: fds) {
                target.delivered += 1
                return true
            }
            target.dropped += 1
            counters.dropped += 1
            return false
        case .socket(let socket):
            if target.broken != nil { return false }
            if !target.hasQueued {
                do {
                    if try socket.send(bytes, fds: fds.map(\.rawValue)) == .sent {
                        target.delivered += 1
                        return true
                    }
                } catch {
                    target.broken = "\(error)"
                    return false
                }
            }
            let allowance = isNotice ? limits.errorAllowance : 0
            if target.queuedFrames >= limits.maxQueuedFrames + allowance
                || target.queuedBytes + bytes.count > limits.maxQueuedBytes + allowance * 256 {
                if !isNotice {
                    target.dropped += 1
                    counters.dropped += 1
                }
                return false
            }
            target.push(OutFrame(bytes: bytes, fds: fds))
            return true
        }
    }

    private func flush(_ connection: Connection) {
        guard case .socket(let socket) = connection.transport else { return }
        while let next = connection.peek() {
            do {
                guard try socket.send(next.bytes, fds: next.fds.map(\.rawValue)) == .sent else { return }
            } catch {
                close(connection, reason: "\(error)")
                return
            }
            connection.pop()
            connection.delivered += 1
        }
    }

    private func register(_ connection: Connection, name: String) {
        if let previous = byName[name].flatMap({ connections[$0] }), previous.id != connection.id {
            logger.warning("bus endpoint '\(name)' re-registered by pid \(connection.pid.map(String.init) ?? "?"); closing the previous connection")
            close(previous, reason: "superseded by a new registration of '\(name)'")
        }
        connection.name = name
        byName[name] = connection.id
        namesLock.withLock { _ = registeredNames.insert(name) }
        logger.info("bus endpoint registered", metadata: ["name": "\(name)", "pid": "\(connection.pid.map(String.init) ?? "local")"])
        broadcastNotice(HubMethod.registered, name: name, except: connection.id)
    }

    private func broadcastNotice(_ method: String, name: String, except: Int) {
        guard let body = try? JSONEncoder().encode(HubNotice(name: name)) else { return }
        for other in connections.values where other.id != except {
            guard let otherName = other.name else { continue }
            let notice = Frame(kind: .event, id: 0, source: HubMethod.hubName, destination: otherName,
                               method: method, payload: Array(body))
            if !enqueue(notice, fds: [], to: other, isNotice: true) { counters.undeliverableErrors += 1 }
        }
    }

    private func close(_ connection: Connection, reason: String?, notify: Bool = true) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        let label = connection.name ?? "unregistered"
        let pid = connection.pid.map(String.init) ?? "?"
        if let reason {
            logger.warning("bus hub closed connection #\(connection.id) (\(label), pid \(pid)): \(reason)")
        } else {
            logger.info("bus endpoint disconnected", metadata: ["name": "\(label)", "pid": "\(pid)"])
        }
        if case .socket(let socket) = connection.transport { socket.close() }
        connection.discardQueue()
        guard let name = connection.name, byName[name] == connection.id else { return }
        byName.removeValue(forKey: name)
        namesLock.withLock { _ = registeredNames.remove(name) }
        guard notify else { return }
        for waiting in connection.inFlight {
            guard let requester = connections[waiting.requester], let requesterName = requester.name else { continue }
            let error = BusError(code: .disconnected, message: "'\(name)' disconnected before answering")
            let notice = Frame(kind: .error, id: waiting.id, source: HubMethod.hubName, destination: requesterName,
                               method: "", payload: error.encoded)
            if !enqueue(notice, fds: [], to: requester, isNotice: true) { counters.undeliverableErrors += 1 }
        }
        broadcastNotice(HubMethod.unregistered, name: name, except: connection.id)
    }

    private func answerHubRequest(_ frame: Frame, from connection: Connection) {
        guard frame.kind == .request else { return }
        let reply: Frame
        if frame.method == HubMethod.stats, let body = try? JSONEncoder().encode(currentStats()) {
            reply = Frame(kind: .reply, id: frame.id, source: HubMethod.hubName, destination: frame.source,
                          method: frame.method, payload: Array(body))
        } else {
            reply = Frame(kind: .error, id: frame.id, source: HubMethod.hubName, destination: frame.source,
                          method: frame.method,
                          payload: BusError(code: .unknownMethod, message: "the hub offers '\(HubMethod.stats)' only, not '\(frame.method)'").encoded)
        }
        enqueue(reply, fds: [], to: connection, isNotice: true)
    }

    private func currentStats() -> HubStats {
        let endpoints = connections.values.compactMap { c -> HubStats.Endpoint? in
            guard let name = c.name else { return nil }
            return HubStats.Endpoint(name: name, pid: c.pid, delivered: c.delivered, dropped: c.dropped,
                                     queued: c.queuedFrames, queuedBytes: c.queuedBytes)
        }.sorted { $0.name < $1.name }
        return HubStats(endpoints: endpoints, badFrameDisconnects: counters.badFrameDisconnects,
                        noRoute: counters.noRoute, undeliverableErrors: counters.undeliverableErrors,
                        dropped: counters.dropped)
    }

    private func publishStats() {
        for connection in Array(connections.values) {
            if let broken = connection.broken { close(connection, reason: broken) }
        }
        // Building the snapshot costs more than routing a frame: refresh it at most every 20 ms.
        let now = ContinuousClock.now
        guard now - lastPublished >= .milliseconds(20) else {
            statsStale = true
            return
        }
        lastPublished = now
        statsStale = false
        let snapshot = currentStats()
        statsLock.withLock { statsSnapshot = snapshot }
    }
}


private struct InFlight: Hashable {
    var requester: Int
    var id: UInt64
}

private struct OutFrame {
    var bytes: [UInt8]
    var fds: [PassedFD]
}

/// One registered or connecting participant, as the hub thread sees it.
private final class Connection {
    enum Transport {
        case socket(SeqPacketSocket)
        case local(LocalEndpoint)
    }

    let id: Int
    let transport: Transport
    var name: String?
    var pid: Int32?
    /// Who the kernel says the peer is (nil for an endpoint inside the hub's process).
    var peer: BusPeer?
    var delivered: UInt64 = 0
    var dropped: UInt64 = 0
    var broken: String?
    /// Requests delivered to this endpoint and not answered yet: answered with `disconnected` if it goes.
    var inFlight = Set<InFlight>()
    private var queue: [OutFrame] = []
    private var head = 0
    private(set) var queuedBytes = 0

    init(id: Int, transport: Transport) {
        self.id = id
        self.transport = transport
    }

    var hasQueued: Bool { head < queue.count }
    var queuedFrames: Int { queue.count - head }

    func push(_ frame: OutFrame) {
        queue.append(frame)
        queuedBytes += frame.bytes.count
    }

    func peek() -> OutFrame? { hasQueued ? queue[head] : nil }

    func pop() {
        queuedBytes -= queue[head].bytes.count
        queue[head] = OutFrame(bytes: [], fds: [])
        head += 1
        if head == queue.count || head > 256 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }

    func discardQueue() {
        queue.removeAll()
        head = 0
        queuedBytes = 0
    }
}

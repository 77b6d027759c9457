import Foundation

/// What every participant of the bus can do: the in-process endpoints of the hub and the socket
/// clients of the other daemons offer the same calls.
public protocol BusEndpoint: AnyObject, Sendable {
    var name: String { get }
    /// Requests and events addressed to this endpoint, in arrival order. Answer each request with
    /// `reply` or `fail`; a request left unanswered times out at its sender.
    var messages: AsyncStream<BusMessage> { get }
    /// Hands one frame to the transport. Throws when it cannot be sent at all (never blocks waiting
    /// for a connection: `request` waits for that with `connected(within:)`).
    func send(_ frame: Frame, fds: [Int32]) throws(BusError)
    var pending: PendingRequests { get }
    /// True once the endpoint can send, waiting (without blocking a thread) up to `timeout`.
    func connected(within timeout: Duration) async -> Bool
}

extension BusEndpoint {
    /// Sends a request and waits for its reply. Throws `BusError` (`noRoute`, `queueFull`, `timeout`,
    /// `disconnected`, or the receiver's own failure).
    /// `connectWithin`: how long to wait for the hub when not connected (default: `timeout`), so a
    /// caller that answers people can fail soon while the hub is down but ride out its restart.
    public func request(_ destination: String, method: String, payload: [UInt8] = [], fds: [Int32] = [],
                        timeout: Duration = .seconds(5), connectWithin: Duration? = nil) async throws -> BusMessage {
        guard await connected(within: connectWithin ?? timeout) else {
            throw BusError(code: .disconnected, message: "'\(method)' to \(destination): not connected to the bus hub within \(connectWithin ?? timeout)")
        }
        let id = pending.nextID()
        let packed = try LargeBody.pack(payload, fds: fds)
        defer { if let owned = packed.owned { close(owned) } }
        let frame = Frame(kind: .request, id: id, destination: destination, method: method, payload: packed.payload)
        return try await pending.wait(id: id, timeout: timeout, what: "'\(method)' to \(destination)") {
            try self.send(frame, fds: packed.fds)
        }
    }

    /// Request with JSON bodies both ways.
    public func request<Body: Encodable, Answer: Decodable>(
        _ destination: String, method: String, body: Body, fds: [Int32] = [],
        expecting: Answer.Type, timeout: Duration = .seconds(5)
    ) async throws -> Answer {
        let payload = try Array(JSONEncoder().encode(body))
        return try await request(destination, method: method, payload: payload, fds: fds, timeout: timeout)
            .decode(Answer.self)
    }

    /// A one-way message. If it cannot be delivered the hub answers with an `error` frame carrying the
    /// event's id, which `undeliveredEvents` counts.
    @discardableResult
    public func event(_ destination: String, method: String, payload: [UInt8] = [], fds: [Int32] = []) throws(BusError) -> UInt64 {
        let id = pending.nextID()
        let packed = try LargeBody.pack(payload, fds: fds)
        defer { if let owned = packed.owned { close(owned) } }
        try send(Frame(kind: .event, id: id, destination: destination, method: method, payload: packed.payload), fds: packed.fds)
        return id
    }

    public func reply(to message: BusMessage, _ reply: BusReply = BusReply()) {
        guard message.kind == .request else { return }
        do {
            let packed = try LargeBody.pack(reply.payload, fds: reply.fds)
            defer { if let owned = packed.owned { close(owned) } }
            let frame = Frame(kind: .reply, id: message.id, destination: message.source, method: message.method,
                              payload: packed.payload)
            try send(frame, fds: packed.fds)
        } catch {
            // The requester will see its own timeout or disconnect; nothing else to tell it.
        }
    }

    public func fail(_ message: BusMessage, _ error: BusError) {
        guard message.kind == .request else { return }
        let frame = Frame(kind: .error, id: message.id, destination: message.source, method: message.method,
                          payload: error.encoded)
        try? send(frame, fds: [])
    }

    /// Events of ours that the hub reported undeliverable (no route, full queue), by error code.
    public var undeliveredEvents: [BusError.Code: UInt64] { pending.undelivered }
}

/// The table of requests in flight and their deadlines; shared by every endpoint kind. One sweeper
/// thread per table expires overdue requests, so a request costs no timer of its own.
public final class PendingRequests: @unchecked Sendable {
    private struct Entry {
        var continuation: CheckedContinuation<BusMessage, Error>
        var deadline: ContinuousClock.Instant
        var what: String
        var timeout: Duration
    }

    private let condition = NSCondition()
    private var entries: [UInt64: Entry] = [:]
    private var lastID: UInt64 = 0
    private var undeliveredCounts: [BusError.Code: UInt64] = [:]
    /// The deadline the sweeper sleeps towards; a new request wakes it only if it is due earlier.
    private var sweeperTarget: ContinuousClock.Instant?
    private var sweeperStarted = false

    public init() {}

    func nextID() -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        lastID &+= 1
        return lastID
    }

    var undelivered: [BusError.Code: UInt64] {
        condition.lock()
        defer { condition.unlock() }
        return undeliveredCounts
    }

    func wait(id: UInt64, timeout: Duration, what: String, send: @escaping () throws -> Void) async throws -> BusMessage {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BusMessage, Error>) in
            let deadline = ContinuousClock.now + timeout
            condition.lock()
            entries[id] = Entry(continuation: continuation, deadline: deadline, what: what, timeout: timeout)
            if !sweeperStarted {
                sweeperStarted = true
                let thread = Thread { [weak self] in self?.sweep() }
                thread.name = "bus-deadlines"
                thread.start()
            }
            if sweeperTarget.map({ deadline < $0 }) ?? true { condition.signal() }
            condition.unlock()
            do {
                try send()
            } catch {
                finish(id, .failure(error))
            }
        }
    }

    /// Delivers a reply or error frame. Returns false if nothing waited for it (late or unknown).
    @discardableResult
    func complete(_ message: BusMessage) -> Bool {
        if message.kind == .error {
            let error = BusError.decodeBody(message.payload)
            if finish(message.id, .failure(error)) { return true }
            condition.lock()
            undeliveredCounts[error.code, default: 0] += 1
            condition.unlock()
            return false
        }
        return finish(message.id, .success(message))
    }

    @discardableResult
    private func finish(_ id: UInt64, _ result: Result<BusMessage, Error>) -> Bool {
        condition.lock()
        let entry = entries.removeValue(forKey: id)
        condition.unlock()
        guard let entry else { return false }
        entry.continuation.resume(with: result)
        return true
    }

    /// Fails every request in flight (the connection is gone).
    func failAll(_ error: BusError) {
        condition.lock()
        let all = Array(entries.values)
        entries.removeAll()
        condition.unlock()
        for entry in all { entry.continuation.resume(throwing: error) }
    }

    private func sweep() {
        condition.lock()
        while true {
            guard let earliest = entries.values.lazy.map(\.deadline).min() else {
                sweeperTarget = nil
                condition.wait()
                continue
            }
            let now = ContinuousClock.now
            if earliest > now {
                sweeperTarget = earliest
                let (seconds, attoseconds) = (earliest - now).components
                condition.wait(until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18))
                continue
            }
            let expired = entries.filter { $0.value.deadline <= now }
            for id in expired.keys { entries.removeValue(forKey: id) }
            condition.unlock()
            for entry in expired.values {
                entry.continuation.resume(throwing: BusError(code: .timeout, message: "\(entry.what): no answer within \(entry.timeout)"))
            }
            condition.lock()
        }
    }
}

/// An endpoint hosted inside the hub's own process (pcn-core's `core`). Frames to it are delivered
/// straight into `messages`; its sends go through the hub thread like a socket client's.
public final class LocalEndpoint: BusEndpoint, @unchecked Sendable {
    public let name: String
    public let messages: AsyncStream<BusMessage>
    public let pending = PendingRequests()
    private let continuation: AsyncStream<BusMessage>.Continuation
    private unowned let hub: BusHub
    /// Assigned by the hub thread before any frame is routed to or from this endpoint.
    var connectionID = 0

    init(name: String, hub: BusHub, queueLimit: Int) {
        self.name = name
        self.hub = hub
        (messages, continuation) = AsyncStream.makeStream(of: BusMessage.self, bufferingPolicy: .bufferingOldest(queueLimit))
    }

    public func send(_ frame: Frame, fds: [Int32]) throws(BusError) {
        guard frame.payload.count <= FrameHeader.maxPayload, Frame.isValidName(frame.destination) else {
            throw BusError(code: .invalidMessage, message: "frame to '\(frame.destination)' is malformed or larger than \(FrameHeader.maxPayload) bytes")
        }
        hub.submit(from: self, frame: frame, fds: fds)
    }

    /// Always connected: it lives in the hub's process.
    public func connected(within timeout: Duration) async -> Bool { true }

    /// Called on the hub thread. False when the endpoint's queue is full.
    func deliver(_ frame: Frame, fds: [PassedFD]) -> Bool {
        let message = BusMessage(kind: frame.kind, id: frame.id, source: frame.source, method: frame.method,
                                 payload: frame.payload, fds: fds)
        switch frame.kind {
        case .reply, .error:
            pending.complete(message)
            return true
        default:
            if case .enqueued = continuation.yield(message) { return true }
            return false
        }
    }

    func finish() { continuation.finish() }
}

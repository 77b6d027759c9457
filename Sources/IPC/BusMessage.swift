import Foundation

/// A message delivered to an endpoint: a request (answer it with `reply`/`fail`), an event, or a hub
/// notice. `fds` are owned by the message: take them with `PassedFD.take()` to keep them.
public struct BusMessage: Sendable {
    public let kind: FrameKind
    public let id: UInt64
    public let source: String
    public let method: String
    public let payload: [UInt8]
    public let fds: [PassedFD]

    public init(kind: FrameKind, id: UInt64, source: String, method: String, payload: [UInt8], fds: [PassedFD]) {
        self.kind = kind
        self.id = id
        self.source = source
        self.method = method
        self.payload = payload
        self.fds = fds
    }

    /// The body: the payload, or the content of the memfd a large body came in (LargeBody).
    public var body: [UInt8] { LargeBody.unpack(payload, fds: fds) }

    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw BusError(code: .badRequest, message: "'\(method)' from \(source): body is not a valid \(T.self): \(error)")
        }
    }
}

/// A reply body: bytes plus fds to pass along with it.
public struct BusReply: Sendable {
    public var payload: [UInt8]
    public var fds: [Int32]

    public init(payload: [UInt8] = [], fds: [Int32] = []) {
        self.payload = payload
        self.fds = fds
    }

    public static func json<T: Encodable>(_ value: T, fds: [Int32] = []) throws -> BusReply {
        BusReply(payload: Array(try JSONEncoder().encode(value)), fds: fds)
    }
}

/// Why a bus operation failed. Travels as the JSON body of an `error` frame.
public struct BusError: Error, Codable, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Codable, Sendable {
        /// No endpoint is registered under the destination name.
        case noRoute = "no-route"
        /// The destination's bounded queue is full: this message was dropped and counted.
        case queueFull = "queue-full"
        /// The destination went away before answering.
        case disconnected
        /// No answer within the caller's deadline.
        case timeout
        /// The receiver could not make sense of the request.
        case badRequest = "bad-request"
        /// The receiver understood the request and refused or failed it.
        case failed
        /// The method is not offered by the receiver.
        case unknownMethod = "unknown-method"
        /// The message could not be encoded (too large, bad name).
        case invalidMessage = "invalid-message"
        /// The endpoint is shutting down.
        case closed
        /// The receiver cannot rebuild a configuration from the part of it sent (a cube-host that
        /// lost the configuration it was cut against): send the whole one.
        case needsWhole = "needs-whole"
        /// The caller may not call this method (the contract's caller rule), or not on this cube.
        case forbidden
    }

    public let code: Code
    public let message: String
    /// The data path (YANG instance path) a refused configuration is about, when there is one.
    public let path: String?

    public init(code: Code, message: String, path: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }

    public var description: String { "\(code.rawValue): \(message)" }

    var encoded: [UInt8] { (try? Array(JSONEncoder().encode(self))) ?? Array(message.utf8) }

    static func decodeBody(_ payload: [UInt8]) -> BusError {
        (try? JSONDecoder().decode(BusError.self, from: Data(payload)))
            ?? BusError(code: .failed, message: String(decoding: payload, as: UTF8.self))
    }
}

/// What the hub says about itself, answered to `hub` / `stats`.
public struct HubStats: Codable, Sendable, Equatable {
    public struct Endpoint: Codable, Sendable, Equatable {
        public var name: String
        public var pid: Int32?
        public var delivered: UInt64
        public var dropped: UInt64
        public var queued: Int
        public var queuedBytes: Int
    }

    public var endpoints: [Endpoint]
    /// Connections closed because they sent something that is not a frame.
    public var badFrameDisconnects: UInt64
    /// Requests and events answered with `no-route`.
    public var noRoute: UInt64
    /// Error notices that could not be queued to their (itself stalled) recipient.
    public var undeliverableErrors: UInt64
    /// Total frames dropped because a destination queue was full.
    public var dropped: UInt64
}

/// Broadcast by the hub (method `hub.registered` / `hub.unregistered`) to every endpoint.
public struct HubNotice: Codable, Sendable, Equatable {
    public var name: String
}

public enum HubMethod {
    public static let stats = "stats"
    public static let registered = "hub.registered"
    public static let unregistered = "hub.unregistered"
    /// The hub answers requests addressed to this name itself.
    public static let hubName = "hub"
    /// An event sent to this destination goes to every registered endpoint but the sender.
    public static let broadcast = "*"
}

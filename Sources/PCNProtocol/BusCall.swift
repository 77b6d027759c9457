import Foundation
import IPC

/// The bus endpoints every component knows by name.
public enum BusName {
    public static let core = "core"
    public static let api = "api"
    public static let logd = "logd"
    /// The cube-host of a service: `cube-host/router`.
    public static func cubeHost(_ service: String) -> String { "cube-host/\(service)" }
    public static let cubeHostPrefix = "cube-host/"
}

/// One bus method: the request body is the conforming struct itself (JSON), the answer `Answer`.
/// Caller and receiver use the same type, so a renamed field breaks the build, not a test run.
public protocol BusCall: Codable, Sendable {
    associatedtype Answer: Codable & Sendable
    static var method: Method { get }
}

/// A call pcn-core answers.
public protocol CoreCall: BusCall {}
/// A call pcn-api answers.
public protocol APICall: BusCall {}

/// "done": the answer of calls that return nothing else.
public struct Done: Codable, Sendable, Equatable {
    public var ok = true
    public init() {}
}

/// A call without a body.
public protocol EmptyCall: BusCall {}
extension EmptyCall {
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode([String: String]())
    }
}

extension BusCall {
    /// The request body as sent on the bus.
    public func body() throws -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(self))
        } catch {
            throw BusError(code: .invalidMessage, message: "'\(Self.method.rawValue)': cannot encode the request: \(error)")
        }
    }
}

extension BusMessage {
    /// The typed request this message carries (the receiver's side of `BusCall`).
    public func request<C: BusCall>(_ call: C.Type) throws -> C { try decode(C.self) }

    /// The method, when it is one of the contract's.
    public var contractMethod: Method? { Method(rawValue: method) }
}

extension BusReply {
    /// The answer of `call`, typed by it.
    public static func answer<C: BusCall>(_ call: C.Type, _ value: C.Answer, fds: [Int32] = []) throws -> BusReply {
        try .json(value, fds: fds)
    }
}

/// A typed client of one endpoint: `core.call(CubeList())` sends `cube.list` to pcn-core and
/// decodes its answer. Only the calls that endpoint answers can be made through it.
public struct CoreBus: Sendable {
    public let bus: any BusEndpoint
    /// How long a call waits for the hub when not connected (nil: its whole timeout).
    public let connectWithin: Duration?

    public init(_ bus: any BusEndpoint, connectWithin: Duration? = nil) {
        self.bus = bus
        self.connectWithin = connectWithin
    }

    nonisolated(nonsending) public func call<C: CoreCall>(_ call: C, timeout: Duration = .seconds(30)) async throws -> C.Answer {
        try await message(call, timeout: timeout).decode(C.Answer.self)
    }

    /// The whole answer (for calls whose answer carries fds).
    nonisolated(nonsending) public func message<C: CoreCall>(_ call: C, timeout: Duration = .seconds(30)) async throws -> BusMessage {
        try await bus.request(BusName.core, method: C.method.rawValue, payload: try call.body(), timeout: timeout,
                              connectWithin: connectWithin)
    }

    /// `packet-out`: a binary body (`struct pcn_packet_out_request` then the frame).
    public func packetOut(_ request: PacketOut, timeout: Duration = .seconds(5)) async throws {
        _ = try await bus.request(BusName.core, method: Method.packetOut.rawValue, payload: request.encoded(), timeout: timeout,
                                  connectWithin: connectWithin)
    }
}

public struct APIBus: Sendable {
    public let bus: any BusEndpoint
    public init(_ bus: any BusEndpoint) { self.bus = bus }

    public func call<C: APICall>(_ call: C, timeout: Duration = .seconds(30)) async throws -> C.Answer {
        try await bus.request(BusName.api, method: C.method.rawValue, payload: try call.body(), timeout: timeout)
            .decode(C.Answer.self)
    }
}

/// pcn-api's client of a service's cube-host. Configurations are JSON trees, sent with JSONText.
public struct CubeHostBus: Sendable {
    public let bus: any BusEndpoint
    public let endpoint: String
    /// How long a call waits for the hub when not connected (nil: its whole timeout).
    public let connectWithin: Duration?

    public init(_ bus: any BusEndpoint, endpoint: String, connectWithin: Duration? = nil) {
        self.bus = bus
        self.endpoint = endpoint
        self.connectWithin = connectWithin
    }

    nonisolated(nonsending) public func call<C: CubeHostCall>(_ call: C, timeout: Duration = .seconds(30)) async throws -> C.Answer {
        let answer = try await bus.request(endpoint, method: C.method.rawValue, payload: try call.body(), timeout: timeout,
                                           connectWithin: connectWithin)
        return try C.Answer(body: answer.body, method: C.method)
    }
}

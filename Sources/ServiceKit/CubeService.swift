import Foundation

/// What a service is, besides its YANG model (`yang/<name>.yang`) and its datapath
/// (`bpf/services/<name>/<name>.c`): the Swift that turns configuration into table entries,
/// answers reads of state, runs actions and handles the packets its datapath sends up.
///
/// The host calls a service from one task at a time, so a service keeps its state in plain
/// properties. Every method is synchronous: table operations are system calls, and packets a
/// service sends (`Cube.send`) leave when the call returns.
public protocol CubeService: AnyObject, SendableMetatype {
    /// The service's name: its YANG module, its datapath folder, its cube-host instance.
    static var name: String { get }
    init()

    /// The configuration nodes the service acts on, each with its handler, in the order they run.
    static var bindings: [ConfigBinding<Self>] { get }

    /// Refuses a configuration the model cannot express as wrong (overlapping addresses, ...)
    /// before anything is applied: throw `ServiceFailure.invalid(path:_:)`.
    func validate(_ change: Change) throws

    /// State (config false) read from the tables, merged over the cube's configuration on reads.
    func state(of cube: Cube) throws -> [String: Any]

    /// A YANG action of the model (`path` is where it was called, e.g. ["fdb"]).
    func action(_ name: String, path: [String], input: [String: Any], on cube: Cube) throws -> ActionResult

    /// A packet the datapath sent to the slow path (`pcn_pkt_controller`).
    func packetIn(_ packet: PacketIn, on cube: Cube) throws

    /// Called about once a second for each cube (aging, retries, rates).
    func tick(_ cube: Cube)

    /// The cube was deleted (its tables are gone with it).
    func removed(_ cube: Cube)
}

extension CubeService {
    public func validate(_ change: Change) throws {}
    public func state(of cube: Cube) throws -> [String: Any] { [:] }
    public func action(_ name: String, path: [String], input: [String: Any], on cube: Cube) throws -> ActionResult {
        throw ServiceFailure.refused("\(Self.name) has no action '\(name)'")
    }
    public func packetIn(_ packet: PacketIn, on cube: Cube) throws {
        cube.logger.info("packet-in on port \(packet.port) (reason \(packet.reason), \(packet.length) bytes) not handled")
    }
    public func tick(_ cube: Cube) {}
    public func removed(_ cube: Cube) {}
}

/// A handler for part of a cube's configuration: it runs when any of `paths` (slash-separated,
/// relative to the cube, e.g. "fdb/aging-time" or "ports") changed, and whenever the whole
/// configuration is applied anew (cube created, cube-host restarted). Handlers make the tables match
/// the configuration, so running one twice changes nothing.
public struct ConfigBinding<Service: CubeService> {
    public let paths: [String]
    public let apply: (Service) -> (Change) throws -> Void

    public static func on(_ paths: String..., apply: @escaping (Service) -> (Change) throws -> Void) -> ConfigBinding {
        ConfigBinding(paths: paths, apply: apply)
    }
}

/// What an action returns: its output and, when it changed the configuration (an entry appended),
/// the cube's new configuration, which pcn-api validates and persists.
public struct ActionResult {
    public var output: [String: Any]
    public var config: [String: Any]?

    public init(output: [String: Any] = [:], config: [String: Any]? = nil) {
        self.output = output
        self.config = config
    }
}

/// Why a service refused a change or a request.
public enum ServiceFailure: Error, CustomStringConvertible {
    /// The configuration is wrong; `path` is the data node (relative to the cube, e.g.
    /// "ports[name='p2']/ip") to name in the error.
    case invalid(path: String, String)
    /// The request cannot be carried out.
    case refused(String)

    public var description: String {
        switch self {
        case .invalid(let path, let message): "\(path): \(message)"
        case .refused(let message): message
        }
    }
}

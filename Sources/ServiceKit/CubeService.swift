import Foundation
import PCNProtocol

/// What a service is, besides its YANG model (`yang/<name>.yang`) and its datapath
/// (`bpf/services/<name>/<name>.c`): the Swift that turns configuration into table entries,
/// answers reads of state, runs actions and handles the packets its datapath sends up.
///
/// The host calls a service from one task at a time, so a service keeps its state in plain
/// properties. Every method is synchronous: table operations are system calls, and packets a
/// service sends (`Cube.send`) leave when the call returns.
public protocol CubeService: AnyObject, SendableMetatype {
    /// A cube's configuration as the service reads it: decoded once per change from the tree pcn-api
    /// validated (YANG names as coding keys, defaults filled in by libyang).
    associatedtype Config: Decodable

    /// The service's name: its YANG module, its datapath folder, its cube-host instance.
    static var name: String { get }
    init()

    /// The configuration nodes the service acts on, each with its handler, in the order they run.
    static var bindings: [ConfigBinding<Self>] { get }

    /// Refuses a configuration the model cannot express as wrong (overlapping addresses, ...)
    /// before anything is applied: throw `ServiceFailure.invalid(path:_:)`.
    func validate(_ change: Change<Config>) throws

    /// Entries (data paths relative to the cube, e.g. `route[network='0.0.0.0/0'][nexthop='10.1.0.2']`)
    /// that were valid before the change and that it takes the reason to be from, such as the routes
    /// through an address being removed: the write removes them as well (as Polycube does) instead of
    /// being refused. Asked before `validate`; the write is then checked again without them.
    func dependents(of change: Change<Config>) -> [String]

    /// State (config false) read from the tables, merged over the cube's configuration on reads.
    func state(of cube: Cube<Config>) throws -> [String: Any]

    /// A YANG action of the model (`path` is where it was called, e.g. ["fdb"]).
    func action(_ name: String, path: [String], input: [String: Any], on cube: Cube<Config>) throws -> ActionResult

    /// The next chunk of the byte stream the node at `path` names (polycube-base's `stream`), from
    /// `cursor` (nil: from now on), at most `limit` bytes and `maxRecords` records of data.
    func stream(_ path: [String], from cursor: UInt64?, limit: Int, maxRecords: Int, on cube: Cube<Config>) throws -> StreamChunk

    /// A packet the datapath sent to the slow path (`pcn_pkt_controller`).
    func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws

    /// Called about once a second for each cube (aging, retries, rates).
    func tick(_ cube: Cube<Config>)

    /// The cube was deleted (its tables are gone with it).
    func removed(_ cube: Cube<Config>)

    /// True: the host learns where each transparent cube is attached and the address there
    /// (`Cube.attachment`, checked about once a second) and calls `attachmentChanged` when it changes.
    static var followsAttachment: Bool { get }
    func attachmentChanged(_ cube: Cube<Config>) throws
}

extension CubeService {
    public func validate(_ change: Change<Config>) throws {}
    public func dependents(of change: Change<Config>) -> [String] { [] }
    public func state(of cube: Cube<Config>) throws -> [String: Any] { [:] }
    public func action(_ name: String, path: [String], input: [String: Any], on cube: Cube<Config>) throws -> ActionResult {
        throw ServiceFailure.refused("\(Self.name) has no action '\(name)'")
    }
    public func stream(_ path: [String], from cursor: UInt64?, limit: Int, maxRecords: Int, on cube: Cube<Config>) throws -> StreamChunk {
        throw ServiceFailure.refused("\(Self.name) serves no stream at '\(path.joined(separator: "/"))'")
    }
    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        cube.logger.info("packet-in on port \(packet.port) (reason \(packet.reason), \(packet.length) bytes) not handled")
    }
    public func tick(_ cube: Cube<Config>) {}
    public func removed(_ cube: Cube<Config>) {}
    public static var followsAttachment: Bool { false }
    public func attachmentChanged(_ cube: Cube<Config>) throws {}
}

/// A handler for part of a cube's configuration: it runs when any of the members it names changed
/// (compared as typed values), and whenever the whole configuration is applied anew (cube created,
/// cube-host restarted). Handlers make the tables match the configuration, so running one twice
/// changes nothing.
public struct ConfigBinding<Service: CubeService> {
    let changed: (Change<Service.Config>) -> Bool
    public let apply: (Service) -> (Change<Service.Config>) throws -> Void

    public static func on<A: Equatable>(_ a: KeyPath<Service.Config, A>,
                                        apply: @escaping (Service) -> (Change<Service.Config>) throws -> Void) -> ConfigBinding {
        ConfigBinding(changed: { $0.changed(a) }, apply: apply)
    }

    public static func on<A: Equatable, B: Equatable>(_ a: KeyPath<Service.Config, A>, _ b: KeyPath<Service.Config, B>,
                                                      apply: @escaping (Service) -> (Change<Service.Config>) throws -> Void) -> ConfigBinding {
        ConfigBinding(changed: { $0.changed(a) || $0.changed(b) }, apply: apply)
    }

    public static func on<A: Equatable, B: Equatable, C: Equatable>(_ a: KeyPath<Service.Config, A>, _ b: KeyPath<Service.Config, B>,
                                                                    _ c: KeyPath<Service.Config, C>,
                                                                    apply: @escaping (Service) -> (Change<Service.Config>) throws -> Void) -> ConfigBinding {
        ConfigBinding(changed: { $0.changed(a) || $0.changed(b) || $0.changed(c) }, apply: apply)
    }
}

/// The write an action asks for (PCNProtocol's, named here for services).
public typealias ActionWrite = PCNProtocol.ActionWrite

/// What an action returns: its output and, when it changes the configuration (an entry appended),
/// the one write that does so; pcn-api carries it out through the write path (validated, checked
/// and applied by this service like any write, persisted), and answers the output once it is done.
public struct ActionResult {
    public var output: [String: Any]
    public var write: ActionWrite?

    public init(output: [String: Any] = [:], write: ActionWrite? = nil) {
        self.output = output
        self.write = write
    }
}

/// A chunk of a stream: `header` is what a reader writes once before any data (pcap's file header),
/// `data` whole records, `next` the cursor to continue from, `dropped` the records that turned over
/// before this reader got them.
public struct StreamChunk {
    public var header: [UInt8]
    public var data: [UInt8]
    public var records: Int
    public var next: UInt64
    public var dropped: UInt64

    public init(header: [UInt8], data: [UInt8], records: Int, next: UInt64, dropped: UInt64) {
        self.header = header
        self.data = data
        self.records = records
        self.next = next
        self.dropped = dropped
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

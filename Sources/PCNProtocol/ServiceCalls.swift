import Foundation
import IPC
import JSONText

/// A cube-host registers its service's model with pcn-api (on every connection, and whenever
/// pcn-api comes back).
public struct ServiceRegister: APICall {
    public typealias Answer = Done
    public static let method = Method.serviceRegister
    public var service: String
    public var yang: String
    public init(service: String, yang: String) {
        self.service = service
        self.yang = yang
    }
}

/// A cube-host asks where one of its transparent cubes is attached (committed attachments) and
/// the IPv4 address there: a netdev's first one, or the `ip` leaf of the cube port (a NAT's
/// masquerade takes it, as Polycube's took its router port's).
public struct CubeAttachment: APICall {
    public static let method = Method.cubeAttachment
    public var cube: String
    public init(cube: String) { self.cube = cube }

    public struct Answer: Codable, Sendable, Equatable {
        /// A netdev or `cube:port`; nil when not attached.
        public var parent: String?
        /// Dotted IPv4, without a prefix length; nil when the parent has none.
        public var address: String?
        public init(parent: String?, address: String?) {
            self.parent = parent
            self.address = address
        }
    }
}

// MARK: - Cube-host calls

/// A call a cube-host answers. Configurations are the JSON trees pcn-api validated (libyang's
/// normalized JSON), so bodies are written with JSONText rather than Codable.
public protocol CubeHostCall {
    associatedtype Answer: CubeHostAnswer
    static var method: Method { get }
    var object: [String: Any] { get }
    init(object: [String: Any]) throws
}

public protocol CubeHostAnswer {
    init(object: [String: Any]) throws
    var object: [String: Any] { get }
}

extension CubeHostCall {
    public func body() throws -> [UInt8] { Array(try JSONText.data(object)) }

    /// The receiver's side: the request in `message`.
    public init(message: BusMessage) throws {
        let tree: Any
        do {
            tree = try JSONSerialization.jsonObject(with: Data(message.body))
        } catch {
            throw BusError(code: .badRequest, message: "'\(message.method)' from \(message.source): the body is not JSON")
        }
        guard let object = tree as? [String: Any] else {
            throw BusError(code: .badRequest, message: "'\(message.method)' from \(message.source): the body is not a JSON object")
        }
        try self.init(object: object)
    }
}

extension CubeHostAnswer {
    public init(body: [UInt8], method: Method) throws {
        let object = body.isEmpty ? [:] : (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        guard let object else {
            throw BusError(code: .badRequest, message: "the answer to '\(method.rawValue)' is not a JSON object")
        }
        try self.init(object: object)
    }

    public func reply() throws -> BusReply { BusReply(payload: Array(try JSONText.data(object))) }
}

/// An answer of JSON members (state, an action's output).
public struct JSONObjectAnswer: CubeHostAnswer {
    public var object: [String: Any]
    public init(object: [String: Any]) { self.object = object }
}

private func required<T>(_ object: [String: Any], _ name: String, _ method: Method) throws -> T {
    guard let value = object[name] as? T else {
        throw BusError(code: .badRequest, message: "\(method.rawValue): '\(name)' is missing or of the wrong type")
    }
    return value
}

/// Phase (b) of a write: the service checks the candidate configuration of a cube (nil: the cube
/// is to be deleted) and answers, or refuses with `bad-request` and the data path. Nothing changes.
/// With `cuts`, `config` is a `ConfigEdit`'s base: the candidate is the configuration last applied
/// with those lists edited (a cube-host that cannot rebuild it answers `needs-whole`).
/// A check's answer: empty when the configuration is accepted. `dependents` lists entries (paths
/// relative to the cube) that it is accepted only without: the write removes them and checks again.
public struct CubeCheckAnswer: CubeHostAnswer {
    public var dependents: [String]
    public init(dependents: [String] = []) { self.dependents = dependents }
    public init(object: [String: Any]) throws {
        let value = object["dependents"] ?? [String]()
        guard let dependents = value as? [String] else {
            throw BusError(code: .badRequest, message: "\(Method.cubeCheck.rawValue): 'dependents' is not a list of paths")
        }
        self.dependents = dependents
    }
    public var object: [String: Any] { dependents.isEmpty ? [:] : ["dependents": dependents] }
}

public struct CubeCheck: CubeHostCall {
    public typealias Answer = CubeCheckAnswer
    public static let method = Method.cubeCheck
    public var cube: String
    public var config: [String: Any]?
    public var cuts: [ConfigCut]

    public init(cube: String, config: [String: Any]?, cuts: [ConfigCut] = []) {
        self.cube = cube
        self.config = config
        self.cuts = cuts
    }

    public var object: [String: Any] {
        var object: [String: Any] = ["cube": cube, "config": config ?? NSNull()]
        if !cuts.isEmpty { object["cuts"] = cuts.map(\.object) }
        return object
    }

    public init(object: [String: Any]) throws {
        cube = try required(object, "cube", Self.method)
        config = object["config"] as? [String: Any]
        do {
            cuts = try (object["cuts"] as? [Any] ?? []).map { try ConfigCut(object: $0) }
        } catch {
            throw BusError(code: .badRequest, message: "\(Self.method.rawValue): \(error)")
        }
    }

    /// The edit it carries, when it has cuts.
    public var edit: ConfigEdit? { cuts.isEmpty ? nil : config.map { ConfigEdit(base: $0, cuts: cuts) } }
}

/// Phase (d): the cube-host applies a configuration pcn-core's datapath now has (`datapath`:
/// its node and port indices, so no `cube.list` round trip). `checked`: the configuration is the
/// one the last `cube.check` of this cube carried (it is not sent twice). `replay`: apply `config`,
/// all of it anew (a restart), not only what differs from what was applied last. Neither, and no
/// config: the cube is gone.
public struct CubeApply: CubeHostCall {
    public typealias Answer = JSONObjectAnswer
    public static let method = Method.cubeApply
    public var cube: String
    public var config: [String: Any]?
    public var checked: Bool
    public var replay: Bool
    public var datapath: CubeDescription?

    public init(cube: String, config: [String: Any]?, checked: Bool = false, replay: Bool, datapath: CubeDescription?) {
        self.cube = cube
        self.config = config
        self.checked = checked
        self.replay = replay
        self.datapath = datapath
    }

    public var object: [String: Any] {
        var object: [String: Any] = ["cube": cube, "config": config ?? NSNull(), "checked": checked, "replay": replay]
        if let datapath, let data = try? JSONEncoder().encode(datapath), let tree = try? JSONSerialization.jsonObject(with: data) {
            object["datapath"] = tree
        }
        return object
    }

    public init(object: [String: Any]) throws {
        cube = try required(object, "cube", Self.method)
        config = object["config"] as? [String: Any]
        checked = object["checked"] as? Bool ?? false
        replay = object["replay"] as? Bool ?? true
        if let tree = object["datapath"], !(tree is NSNull) {
            do {
                datapath = try JSONDecoder().decode(CubeDescription.self, from: try JSONSerialization.data(withJSONObject: tree))
            } catch {
                throw BusError(code: .badRequest, message: "cube.apply: 'datapath' is not a cube description: \(error)")
            }
        }
    }
}

/// The state (config false) of a cube, read from its tables.
public struct CubeStateQuery: CubeHostCall {
    public typealias Answer = JSONObjectAnswer
    public static let method = Method.cubeState
    public var cube: String
    public init(cube: String) { self.cube = cube }
    public var object: [String: Any] { ["cube": cube] }
    public init(object: [String: Any]) throws { cube = try required(object, "cube", Self.method) }
}

/// The next chunk of the byte stream a node of a cube names (polycube-base's `stream`): `path` the
/// node's segments below the cube, `from` the cursor an earlier chunk returned (nil: from now on).
/// The answer: `header` (base64; what a reader writes once, before any data), `data` (base64, at
/// most `limit` bytes), `next` (the cursor to continue from), `records` in `data` and `dropped`
/// (records that turned over before this reader got them).
public struct CubeStreamRead: CubeHostCall {
    public typealias Answer = JSONObjectAnswer
    public static let method = Method.cubeStream
    public var cube: String
    public var path: [String]
    public var from: UInt64?
    public var limit: Int
    /// At most this many records (nil: as many as `limit` allows).
    public var maxRecords: Int?

    public init(cube: String, path: [String], from: UInt64?, limit: Int, maxRecords: Int? = nil) {
        self.cube = cube
        self.path = path
        self.from = from
        self.limit = limit
        self.maxRecords = maxRecords
    }

    public var object: [String: Any] {
        var out: [String: Any] = ["cube": cube, "path": path, "limit": limit]
        if let from { out["from"] = "\(from)" }
        if let maxRecords { out["max-records"] = maxRecords }
        return out
    }

    public init(object: [String: Any]) throws {
        cube = try required(object, "cube", Self.method)
        path = object["path"] as? [String] ?? []
        from = (object["from"] as? String).flatMap { UInt64($0) }
        limit = (object["limit"] as? NSNumber)?.intValue ?? 65536
        maxRecords = (object["max-records"] as? NSNumber)?.intValue
    }
}

/// A YANG action on a cube: `path` is where it was called (["chain", "INGRESS"]). The answer has
/// `output` and, when the action changes the configuration (a rule appended), `write`: the one
/// write (`ActionWrite`) that does it, which pcn-api carries out through the write path.
public struct CubeAction: CubeHostCall {
    public typealias Answer = JSONObjectAnswer
    public static let method = Method.cubeAction
    public var cube: String
    public var path: [String]
    public var action: String
    public var input: [String: Any]

    public init(cube: String, path: [String], action: String, input: [String: Any]) {
        self.cube = cube
        self.path = path
        self.action = action
        self.input = input
    }

    public var object: [String: Any] { ["cube": cube, "path": path, "action": action, "input": input] }

    public init(object: [String: Any]) throws {
        cube = try required(object, "cube", Self.method)
        action = try required(object, "action", Self.method)
        path = object["path"] as? [String] ?? []
        input = object["input"] as? [String: Any] ?? [:]
    }
}

/// The write an action asks for: a REST write below the cube (`path`: the segments after the cube,
/// ["chain", "INGRESS", "rule"]). One write, so the action is all or nothing.
public struct ActionWrite {
    public enum Method: String, Sendable { case post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE" }
    public var method: Method
    public var path: [String]
    public var body: [String: Any]?

    public init(_ method: Method, _ path: [String], body: [String: Any]? = nil) {
        self.method = method
        self.path = path
        self.body = body
    }

    public var object: [String: Any] { ["method": method.rawValue, "path": path, "body": body ?? NSNull()] }

    public init(object: Any) throws {
        guard let object = object as? [String: Any], let name = object["method"] as? String, let method = Method(rawValue: name),
              let path = object["path"] as? [String] else {
            throw BusError(code: .badRequest, message: "an action's write needs 'method' (POST, PUT, PATCH, DELETE) and 'path'")
        }
        self.method = method
        self.path = path
        body = object["body"] as? [String: Any]
    }
}

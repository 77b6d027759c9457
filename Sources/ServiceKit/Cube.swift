import BPFKit
import Foundation
import Logging
import IPC
import JSONText
import PCNProtocol

/// A port of a cube: its name and the index the datapath uses.
public struct CubePort: Equatable, Sendable {
    public let name: String
    public let index: Int
    /// A netdev name or `cube:port`, empty when unconnected.
    public let peer: String
}

/// Which way a packet goes at a port.
public enum PacketDirection: UInt32, Sendable {
    /// As if the frame arrived on the port (transparent cubes: on in the ingress direction).
    case ingress = 0
    /// Out of the port, to its peer (transparent cubes: on in the egress direction).
    case egress = 1
}

/// One cube of the service, as its control plane sees it: its configuration (typed, as the
/// service declares it), its ports (names and the indices the datapath uses), its tables and a way
/// to send packets.
public final class Cube<Config> {
    struct Outgoing {
        var port: String
        var direction: PacketDirection
        var metadata: (UInt32, UInt32, UInt32)
        var frame: [UInt8]
    }

    public let name: String
    public let logger: Logger
    /// The configuration last applied.
    public internal(set) var config: Config?
    public internal(set) var ports: [CubePort] = []
    public internal(set) var transparent = false
    /// A transparent cube's attachment and the address there, for services that follow it
    /// (`CubeService.followsAttachment`); nil until first learned.
    public internal(set) var attachment: CubeAttachment.Answer?
    /// The cube's identity in the datapath (packet-in records carry it).
    var node: UInt32 = 0
    var tables: [String: BPFMap] = [:]
    var outbox: [Outgoing] = []
    /// The datapath code a binding asked for, and what this host last had pcn-core run (nil: nothing yet).
    var wantedCode: DatapathCode?
    var loadedCode: DatapathCode?
    /// A shadow cube's namespace (`pcn-<cube>`, its port twins named as the ports); nil without shadow=true.
    public internal(set) var shadowNamespace: String?
    /// What the twins should carry, by port, and what pcn-core was last told.
    var wantedShadow: [String: ShadowConfigure.Interface] = [:]
    var appliedShadow: [String: ShadowConfigure.Interface] = [:]

    /// In a shadow cube, what the twin of `port` carries in the namespace: its MAC and exactly these
    /// addresses (`10.0.1.254/24`), so Linux tools there speak as the port. A binding sets it; the
    /// host has pcn-core apply what changed after the bindings ran. Ignored without a shadow.
    public func shadow(port: String, mac: String?, addresses: [String]) {
        wantedShadow[port] = ShadowConfigure.Interface(name: port, mac: mac, addresses: addresses)
    }

    /// Code for the cube's program instead of the service's source (C with a `handle_rx`, as a
    /// µCube MASTER; `#include "..."` finds the service's own files, so generated code can define
    /// what the service's source leaves open and include it). nil: the service's source. A binding
    /// sets it; the host has pcn-core compile, verify and swap it in after the bindings ran, once, and
    /// a compile or verifier error refuses the write as an error of the node at `path` (the running
    /// program stays).
    public func load(code: String?, blaming path: String) {
        wantedCode = DatapathCode(code: code, path: path)
    }

    init(name: String, service: String) {
        self.name = name
        var logger = Logger(label: "pcn.\(service)")
        logger[metadataKey: "cube"] = "\(name)"
        self.logger = logger
    }

    var layouts: [String: (key: TableLayout?, value: TableLayout?)] = [:]

    /// A table's key and value types from its BTF (nil where it has none).
    public func layout(of table: String) -> (key: TableLayout?, value: TableLayout?) {
        layouts[table] ?? (nil, nil)
    }

    /// A table of the cube's datapath, by the name its C source gives it.
    public func table(_ name: String) throws -> BPFMap {
        guard let table = tables[name] else {
            throw ServiceFailure.refused("cube '\(self.name)' has no table '\(name)' (it has \(tables.keys.sorted().joined(separator: ", ")))")
        }
        return table
    }

    public func port(named name: String) -> CubePort? { ports.first { $0.name == name } }
    public func port(index: Int) -> CubePort? { ports.first { $0.index == index } }

    /// Sends `frame` out of `port` (or into the cube through it, for `.ingress`). Transparent cubes
    /// give no port: the frame goes on in `direction`. Sent when the current call returns.
    public func send(_ frame: [UInt8], port: String = "", direction: PacketDirection = .egress,
                     metadata: (UInt32, UInt32, UInt32) = (0, 0, 0)) {
        outbox.append(Outgoing(port: port, direction: direction, metadata: metadata, frame: frame))
    }
}

struct DatapathCode: Equatable {
    var code: String?
    var path: String
    static func == (lhs: DatapathCode, rhs: DatapathCode) -> Bool { lhs.code == rhs.code }
}

/// A change of one cube's configuration, handed to the service's checks and bindings: the new
/// configuration and the one before, both typed.
public struct Change<Config> {
    public let cube: Cube<Config>
    public let config: Config
    /// The configuration before; nil when the whole configuration is applied anew (created, or
    /// replayed to a restarted cube-host: the tables may already hold it).
    public let previous: Config?

    /// True if the value at `path` differs from before (always true when applied anew).
    public func changed<Value: Equatable>(_ path: KeyPath<Config, Value>) -> Bool {
        guard let previous else { return true }
        return config[keyPath: path] != previous[keyPath: path]
    }
}

/// The members every standard cube's configuration has (polycube-base's standard-base), for a
/// service's `Config` to include: `name`, `type`, `loglevel`; its ports are the service's own type.
public enum CubeType: String, Decodable, Equatable, Sendable {
    case tc = "TC", xdpSKB = "XDP_SKB", xdpDRV = "XDP_DRV"
}

/// A list keyed by `Element.key`, decoded from a JSON array of entries: entries by key, in the
/// configuration's order. Missing in the configuration: empty.
///
/// A write that changes a few entries of a large list sends only those (a `ConfigCut`): the list is
/// then the one applied before with them written and removed, and comparing it with that one or
/// asking for the `difference` costs what changed, not the size of the list.
public struct KeyedList<Element: Decodable & Equatable & Keyed>: Decodable, Equatable, Sequence {
    public private(set) var entries: [Element]
    private var positions: [Element.Key: Int]
    /// This value's identity: copies share it, a decode or an edit makes a new one.
    private var revision = Revision()
    /// When made by editing another list: which one, and what the edit wrote and removed.
    private var edit: Edit?

    private final class Revision: @unchecked Sendable {}
    private struct Edit {
        let base: Revision
        let written: [Element]
        let removed: [Element]
    }

    public init(_ entries: [Element] = []) {
        self.entries = entries
        positions = Dictionary(entries.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let given = container.decodeNil() ? [] : try container.decode([Element].self)
        let decoding = decoder.userInfo[ConfigDecoding.key] as? ConfigDecoding
        let path = ConfigDecoding.text(decoder.codingPath)
        if let decoding, let cut = decoding.cut(at: path) {
            let previous: KeyedList
            if let known = cut.previousPathText.flatMap(decoding.previous) as? KeyedList {
                previous = known
            } else if cut.previousPath == nil {
                previous = KeyedList()
            } else {
                throw BusError(code: .needsWhole, message: "the list at '\(path)' was not applied here before")
            }
            let removed = try cut.removed.isEmpty ? [] : JSONDecoder().decode([Element].self, from: JSONText.data(cut.removed))
            self = previous.editing(writing: given, removing: removed)
        } else {
            self.init(given)
        }
        decoding?.record(self, at: path)
    }

    /// This list with `written` put in (in place, or appended) and `removed` taken out.
    private func editing(writing written: [Element], removing removed: [Element]) -> KeyedList {
        guard !written.isEmpty || !removed.isEmpty else { return self }
        var result = self
        let gone = Set(removed.map(\.key))
        if !gone.isEmpty {
            result.entries.removeAll { gone.contains($0.key) }
            result.positions = Dictionary(result.entries.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { first, _ in first })
        }
        for entry in written {
            if let index = result.positions[entry.key] {
                result.entries[index] = entry
            } else {
                result.positions[entry.key] = result.entries.count
                result.entries.append(entry)
            }
        }
        result.revision = Revision()
        result.edit = Edit(base: revision, written: written, removed: removed)
        return result
    }

    public subscript(key: Element.Key) -> Element? { positions[key].map { entries[$0] } }
    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    public static func == (lhs: KeyedList, rhs: KeyedList) -> Bool {
        if lhs.revision === rhs.revision { return true }
        if let edit = lhs.edit, edit.base === rhs.revision { return edit.removed.isEmpty && edit.written.allSatisfy { rhs[$0.key] == $0 } }
        if let edit = rhs.edit, edit.base === lhs.revision { return edit.removed.isEmpty && edit.written.allSatisfy { lhs[$0.key] == $0 } }
        return lhs.entries == rhs.entries
    }

    /// What `self` has that `before` had not, what it lost, and entries whose content changed.
    public func difference(from before: KeyedList?) -> (added: [Element], removed: [Element], changed: [Element]) {
        if let before, let edit, edit.base === before.revision {
            return (edit.written.filter { before[$0.key] == nil }, edit.removed,
                    edit.written.filter { entry in before[entry.key].map { $0 != entry } ?? false })
        }
        if let before, before.revision === revision { return ([], [], []) }
        let old = before?.positions ?? [:]
        return (entries.filter { old[$0.key] == nil },
                (before?.entries ?? []).filter { positions[$0.key] == nil },
                entries.filter { entry in before?[entry.key].map { $0 != entry } ?? false })
    }
}

/// A list entry's key (one leaf, or several as a struct).
public protocol Keyed {
    associatedtype Key: Hashable
    var key: Key { get }
}

extension KeyedList {
    public init() { self.init([]) }
}

extension KeyedDecodingContainer {
    /// A list that may be absent (no entries): RFC 7951 leaves empty lists out. Decoded even then,
    /// so a write that removed its last entries edits it too.
    public func decode<Element>(_ type: KeyedList<Element>.Type, forKey key: Key) throws -> KeyedList<Element> {
        try KeyedList(from: superDecoder(forKey: key))
    }
}

/// What decoding a cube's configuration needs when a write sent only part of its lists: the cuts
/// by path, the lists of the configuration applied before; and what this decoding made.
final class ConfigDecoding: @unchecked Sendable {
    static let key = CodingUserInfoKey(rawValue: "pcn.config-decoding")!

    private let cuts: [String: ConfigCut]
    private let before: [String: Any]
    private(set) var lists: [String: Any] = [:]
    private(set) var consumed = Set<String>()

    init(cuts: [ConfigCut], previous: [String: Any]) {
        self.cuts = Dictionary(cuts.map { ($0.pathText, $0) }, uniquingKeysWith: { first, _ in first })
        before = previous
    }

    func cut(at path: String) -> ConfigCut? {
        guard let cut = cuts[path] else { return nil }
        consumed.insert(path)
        return cut
    }

    func previous(at path: String) -> Any? { before[path] }
    func record(_ list: Any, at path: String) { lists[path] = list }

    /// Cuts no list of the configuration took (it declares that list some other way).
    var unconsumed: [String] { cuts.keys.filter { !consumed.contains($0) }.sorted() }

    static func text(_ path: [CodingKey]) -> String {
        path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: "/")
    }
}

/// A port of a standard cube as polycube-base defines it: its name and peer (services that add
/// leaves to their ports declare their own port type).
public struct StandardPort: Decodable, Equatable, Keyed, Sendable {
    public var name: String
    public var peer: String?
    public var key: String { name }
}

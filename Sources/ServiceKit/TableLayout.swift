import Foundation

/// The shape of a table's key or value, from its BTF (pcn-core describes it in `cube.tables`): what
/// turns raw bytes into JSON (structs as objects, arrays as arrays, integers as numbers, enums by name)
/// and finds the numeric leaves an OpenMetrics export needs.
public indirect enum TableLayout: Equatable, Sendable {
    case integer(size: Int, signed: Bool)
    case array(count: Int, element: TableLayout)
    case composite(size: Int, union: Bool, members: [Member])
    case enumeration(size: Int, values: [String: Int64])
    case bytes(size: Int)

    public struct Member: Equatable, Sendable {
        public var name: String
        /// Bytes from the start; bits when `bits` > 0 (a bitfield of that width).
        public var offset: Int
        public var bits: Int
        public var layout: TableLayout
    }

    /// Parses pcn_map_btf_types' JSON; nil when it is not that shape.
    public init?(json text: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { return nil }
        self.init(object: object)
    }

    init?(object: Any) {
        guard let node = object as? [String: Any], let kind = node["kind"] as? String else { return nil }
        let size = (node["size"] as? NSNumber)?.intValue ?? 0
        switch kind {
        case "int":
            self = .integer(size: size, signed: node["signed"] as? Bool ?? false)
        case "array":
            guard let element = node["element"].flatMap(TableLayout.init(object:)) else { return nil }
            self = .array(count: (node["count"] as? NSNumber)?.intValue ?? 0, element: element)
        case "struct", "union":
            var members: [Member] = []
            for member in node["members"] as? [[String: Any]] ?? [] {
                guard let layout = member["type"].flatMap(TableLayout.init(object:)) else { return nil }
                members.append(Member(name: member["name"] as? String ?? "", offset: (member["offset"] as? NSNumber)?.intValue ?? 0,
                                      bits: (member["bits"] as? NSNumber)?.intValue ?? 0, layout: layout))
            }
            self = .composite(size: size, union: kind == "union", members: members)
        case "enum":
            var values: [String: Int64] = [:]
            for value in node["values"] as? [[String: Any]] ?? [] {
                if let name = value["name"] as? String { values[name] = (value["value"] as? NSNumber)?.int64Value ?? 0 }
            }
            self = .enumeration(size: size, values: values)
        default:
            self = .bytes(size: size)
        }
    }

    public var size: Int {
        switch self {
        case .integer(let size, _), .composite(let size, _, _), .enumeration(let size, _), .bytes(let size): size
        case .array(let count, let element): count * element.size
        }
    }

    private static func integer(_ bytes: UnsafeRawBufferPointer, at offset: Int, size: Int, signed: Bool) -> Int64 {
        var value: UInt64 = 0
        for index in 0..<min(size, 8) where offset + index < bytes.count {
            value |= UInt64(bytes[offset + index]) << (8 * UInt64(index))
        }
        if signed && size < 8 && size > 0 && value & (1 << (UInt64(size) * 8 - 1)) != 0 {
            value |= ~0 << (UInt64(size) * 8)
        }
        return Int64(bitPattern: value)
    }

    /// The value `bytes` (from `offset`) hold, as JSON: NSNumber, String (an enum's name), arrays, objects.
    public func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> Any {
        switch self {
        case .integer(let size, let signed):
            let value = Self.integer(bytes, at: offset, size: size, signed: signed)
            return signed ? NSNumber(value: value) : NSNumber(value: UInt64(bitPattern: value))
        case .enumeration(let size, let values):
            let value = Self.integer(bytes, at: offset, size: size, signed: false)
            return values.first { $0.value == value }?.key ?? NSNumber(value: value)
        case .array(let count, let element):
            return (0..<count).map { element.decode(bytes, at: offset + $0 * element.size) }
        case .composite(_, _, let members):
            var object: [String: Any] = [:]
            for (index, member) in members.enumerated() {
                let name = member.name.isEmpty ? "\(index)" : member.name
                if member.bits > 0 {
                    let word = UInt64(bitPattern: Self.integer(bytes, at: offset + member.offset / 8, size: 8, signed: false))
                    object[name] = NSNumber(value: (word >> UInt64(member.offset % 8)) & ((1 << UInt64(member.bits)) - 1))
                } else {
                    object[name] = member.layout.decode(bytes, at: offset + member.offset)
                }
            }
            return object
        case .bytes(let size):
            return (0..<size).map { NSNumber(value: offset + $0 < bytes.count ? bytes[offset + $0] : 0) }
        }
    }

    /// Adds `other` (the same layout, another CPU's copy) into `sum`, leaf by leaf: numbers add,
    /// anything else keeps the first.
    public static func add(_ sum: Any, _ other: Any) -> Any {
        switch (sum, other) {
        case (let a as NSNumber, let b as NSNumber):
            return a.int64Value < 0 || b.int64Value < 0 ? NSNumber(value: a.int64Value &+ b.int64Value) : NSNumber(value: a.uint64Value &+ b.uint64Value)
        case (let a as [Any], let b as [Any]) where a.count == b.count:
            return zip(a, b).map { add($0, $1) }
        case (let a as [String: Any], let b as [String: Any]):
            return a.merging(b) { add($0, $1) }
        default:
            return sum
        }
    }

    /// Every numeric leaf of a decoded value with its path (member names; array indices as numbers).
    public static func numericLeaves(_ value: Any, path: [String] = []) -> [(path: [String], value: NSNumber)] {
        switch value {
        case let number as NSNumber: return [(path, number)]
        case let array as [Any]: return array.enumerated().flatMap { numericLeaves($0.element, path: path + ["\($0.offset)"]) }
        case let object as [String: Any]: return object.keys.sorted().flatMap { numericLeaves(object[$0]!, path: path + [$0]) }
        default: return []
        }
    }
}

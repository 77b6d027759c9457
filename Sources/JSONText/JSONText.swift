import Foundation

/// JSON text of the trees JSONSerialization reads (`[String: Any]`, `[Any]`, `String`, `NSNumber`,
/// `NSNull`, and Swift's `Int`, `Double`, `Bool`), with sorted keys and unescaped slashes.
/// JSONSerialization on Linux bridges every dictionary and array to NSDictionary/NSArray first,
/// which made it most of the cost of a write on a large cube; this writes the tree as it is.
public enum JSONText {
    public struct UnsupportedValue: Error, CustomStringConvertible {
        public let description: String
    }

    public static func data(_ value: Any) throws -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try write(value, to: &out)
        return Data(out)
    }

    public static func string(_ value: Any) throws -> String {
        var out: [UInt8] = []
        try write(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func write(_ value: Any, to out: inout [UInt8]) throws {
        switch value {
        case let text as String:
            writeString(text, to: &out)
        case let object as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (index, member) in object.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                try write(member.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                try write(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case is NSNull:
            out.append(contentsOf: "null".utf8)
        case let number as NSNumber:  // Swift's Int, Double and Bool too
            if isBoolean(number) {
                out.append(contentsOf: (number.boolValue ? "true" : "false").utf8)
            } else {
                let double = number.doubleValue
                guard double.isFinite else { throw UnsupportedValue(description: "\(number) is not a JSON number") }
                out.append(contentsOf: number.stringValue.utf8)
            }
        default:
            throw UnsupportedValue(description: "a \(type(of: value)) cannot be written as JSON")
        }
    }

    /// True if two trees hold the same JSON (a boolean is not the number 1 or 0).
    public static func equal(_ a: Any, _ b: Any) -> Bool {
        switch (a, b) {
        case let (x as String, y as String):
            return x == y
        case let (x as [String: Any], y as [String: Any]):
            guard x.count == y.count else { return false }
            for (key, value) in x {
                guard let other = y[key], equal(value, other) else { return false }
            }
            return true
        case let (x as [Any], y as [Any]):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (is NSNull, is NSNull):
            return true
        case let (x as NSNumber, y as NSNumber):
            return isBoolean(x) == isBoolean(y) && x == y
        default:
            return false
        }
    }

    /// A JSON scalar as YANG text (`5`, `true`, `a`; null is empty): how list keys are compared.
    public static func text(_ value: Any) -> String {
        // A Swift Int (what JSONText trees are built with) without bridging it to NSNumber.
        if type(of: value) == Int.self, let number = value as? Int { return String(number) }
        switch value {
        case let string as String: return string
        case let number as NSNumber:
            if isBoolean(number) { return number.boolValue ? "true" : "false" }
            return number.stringValue
        case is NSNull: return ""
        default: return "\(value)"
        }
    }

    /// JSONSerialization reads true/false as NSNumbers of type char ("c"); a Swift Bool bridges the same.
    public static func isBoolean(_ number: NSNumber) -> Bool {
        number.objCType.pointee == CChar(UInt8(ascii: "c"))
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xf)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

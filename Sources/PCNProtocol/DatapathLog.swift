import Foundation
import PCNDatapathABI

/// A cube's datapath log level: its pcn_log statements below it are removed at load time.
public enum DatapathLogLevel: String, Codable, Sendable, CaseIterable {
    case trace = "TRACE", debug = "DEBUG", info = "INFO", warn = "WARN", err = "ERR", critical = "CRITICAL", off = "OFF"

    /// Case-insensitive; WARNING and ERROR are accepted too.
    public init?(parsing text: String) {
        switch text.uppercased() {
        case "WARNING": self = .warn
        case "ERROR": self = .err
        default:
            guard let level = DatapathLogLevel(rawValue: text.uppercased()) else { return nil }
            self = level
        }
    }

    /// The value of enum pcn_log_level.
    public var value: UInt32 { UInt32(Self.allCases.firstIndex(of: self)!) }

    public init?(value: UInt32) {
        guard value < Self.allCases.count else { return nil }
        self = Self.allCases[Int(value)]
    }
}

/// Turns a pcn_log record into its message: printf's integer conversions (`%d %i %u %x %X %o %c`,
/// flags `-0+ #`, width, precision, length modifiers ignored since every argument is a 64-bit
/// slot) and `%%`, plus `%I` (IPv4 in network order), `%M` (a MAC from pcn_mac()) and `%P` (a port in
/// network order). A conversion without an argument, or an unknown one, is written as it stands
/// followed by `?`, so a bad format is visible rather than silently wrong.
public enum DatapathLogFormat {
    public static func render(_ format: String, _ arguments: [UInt64]) -> String {
        var output = ""
        var next = 0
        var characters = Array(format.unicodeScalars)[...]
        while let c = characters.popFirst() {
            guard c == "%" else { output.unicodeScalars.append(c); continue }
            var spec = "%"
            var flags = "", width = "", precision: String?
            while let f = characters.first, "-0+ #".unicodeScalars.contains(f) { flags.unicodeScalars.append(f); characters.removeFirst() }
            while let d = characters.first, d.properties.numericType != nil, d.isASCII { width.unicodeScalars.append(d); characters.removeFirst() }
            if characters.first == "." {
                characters.removeFirst()
                var digits = ""
                while let d = characters.first, d.properties.numericType != nil, d.isASCII { digits.unicodeScalars.append(d); characters.removeFirst() }
                precision = digits
            }
            while let l = characters.first, "hlqjzt".unicodeScalars.contains(l) { characters.removeFirst() }
            spec += flags + width + (precision.map { "." + $0 } ?? "")
            guard let conversion = characters.popFirst() else { output += spec + "?"; break }
            if conversion == "%" { output += "%"; continue }
            guard "diuxXocIMP".unicodeScalars.contains(conversion) else { output += spec + String(conversion) + "?"; continue }
            guard next < arguments.count else { output += spec + String(conversion) + "?"; continue }
            let value = arguments[next]
            next += 1
            let text: String
            switch conversion {
            case "I":
                text = (0..<4).map { "\((value >> (8 * $0)) & 0xff)" }.joined(separator: ".")
            case "M":
                text = (0..<6).map { String(format: "%02x", (value >> (8 * UInt64($0))) & 0xff) }.joined(separator: ":")
            case "P":
                let port = UInt16(truncatingIfNeeded: value)
                text = "\(port.byteSwapped)"
            case "c":
                text = String(UnicodeScalar(UInt8(truncatingIfNeeded: value)))
            default:
                text = formatInteger(value, conversion: Character(conversion), flags: flags, precision: precision)
            }
            output += pad(text, flags: flags, width: Int(width) ?? 0, numeric: "diuxXo".unicodeScalars.contains(conversion))
        }
        return output
    }

    private static func formatInteger(_ value: UInt64, conversion: Character, flags: String, precision: String?) -> String {
        var digits: String
        var sign = ""
        switch conversion {
        case "d", "i":
            let signed = Int64(bitPattern: value)
            digits = String(signed.magnitude)
            if signed < 0 { sign = "-" } else if flags.contains("+") { sign = "+" } else if flags.contains(" ") { sign = " " }
        case "x": digits = String(value, radix: 16); if flags.contains("#") && value != 0 { sign = "0x" }
        case "X": digits = String(value, radix: 16).uppercased(); if flags.contains("#") && value != 0 { sign = "0X" }
        case "o": digits = String(value, radix: 8); if flags.contains("#") { sign = "0" }
        default: digits = String(value)
        }
        if let precision, let count = Int(precision.isEmpty ? "0" : precision), digits.count < count {
            digits = String(repeating: "0", count: count - digits.count) + digits
        }
        return sign + digits
    }

    private static func pad(_ text: String, flags: String, width: Int, numeric: Bool) -> String {
        guard text.count < width else { return text }
        let fill = width - text.count
        if flags.contains("-") { return text + String(repeating: " ", count: fill) }
        if flags.contains("0"), numeric {
            // Zeros go after the sign or radix prefix.
            let prefixLength = text.hasPrefix("0x") || text.hasPrefix("0X") ? 2 : (text.first.map { "+- ".contains($0) } == true ? 1 : 0)
            return String(text.prefix(prefixLength)) + String(repeating: "0", count: fill) + String(text.dropFirst(prefixLength))
        }
        return String(repeating: " ", count: fill) + text
    }

    /// The level's name as log lines show it.
    public static func levelName(_ level: UInt8) -> String {
        DatapathLogLevel(value: UInt32(level))?.rawValue ?? "LEVEL\(level)"
    }
}

/// A pcn_log record as read from the ring.
public struct DatapathLogRecord: Sendable {
    public var cubeID: UInt32
    public var source: UInt32
    public var format: UInt16
    public var level: UInt8
    public var arguments: [UInt64]

    /// Nil if `bytes` is not a whole record.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= MemoryLayout<pcn_log_record>.size else { return nil }
        let record = bytes.loadUnaligned(as: pcn_log_record.self)
        cubeID = record.cube_id
        source = record.source
        format = record.format
        level = record.level
        let all = [record.args.0, record.args.1, record.args.2, record.args.3]
        arguments = Array(all.prefix(min(Int(record.arg_count), all.count)))
    }
}

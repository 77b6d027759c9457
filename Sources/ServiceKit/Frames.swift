import Foundation

/// Addresses and frames for control planes that parse or build packets.

/// An IPv4 address, `value` in host order.
public struct IPv4Address: Hashable, Comparable, CustomStringConvertible, Sendable {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Parses dotted quad text ("10.0.1.254").
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    /// The address as the datapath stores it (`__be32`: network order in memory).
    public init(networkOrder: UInt32) { value = UInt32(bigEndian: networkOrder) }
    public var networkOrder: UInt32 { value.bigEndian }
    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    public var description: String { bytes.map { "\($0)" }.joined(separator: ".") }
    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
}

/// An address with its prefix length ("10.0.1.254/24").
public struct IPv4Prefix: Hashable, CustomStringConvertible, Sendable {
    public var address: IPv4Address
    public var length: Int

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let address = IPv4Address(parts[0]), let length = Int(parts[1]), (0...32).contains(length) else { return nil }
        self.address = address
        self.length = length
    }

    public init(address: IPv4Address, length: Int) {
        self.address = address
        self.length = length
    }

    public var mask: UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }
    public var network: IPv4Address { IPv4Address(address.value & mask) }
    public func contains(_ other: IPv4Address) -> Bool { other.value & mask == network.value }
    /// True if the two networks share an address.
    public func overlaps(_ other: IPv4Prefix) -> Bool {
        let shorter = min(length, other.length)
        let mask = shorter == 0 ? 0 : UInt32.max << (32 - shorter)
        return address.value & mask == other.address.value & mask
    }

    public var description: String { "\(address)/\(length)" }
}

/// A MAC address.
public struct MACAddress: Hashable, CustomStringConvertible, Sendable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = Array(bytes.prefix(6)) }

    /// Parses "aa:bb:cc:dd:ee:ff" (or with '-').
    public init?(_ text: some StringProtocol) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    public static let broadcast = MACAddress(bytes: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    public static let zero = MACAddress(bytes: [0, 0, 0, 0, 0, 0])

    /// A locally administered unicast address derived from `seed` (stable across restarts).
    public static func derived(from seed: String) -> MACAddress {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in seed.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return MACAddress(bytes: [0x02] + (0..<5).map { UInt8(truncatingIfNeeded: hash >> ($0 * 8)) })
    }

    /// Tuple form for C structs (`__u8 mac[6]`).
    public var tuple: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) { (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]) }
    public init(tuple t: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) { bytes = [t.0, t.1, t.2, t.3, t.4, t.5] }

    public var description: String { bytes.map { String(format: "%02x", $0) }.joined(separator: ":") }
}

/// Building frames byte by byte.
public enum Frame {
    public static let etherIPv4: UInt16 = 0x0800
    public static let etherARP: UInt16 = 0x0806

    public static func ethernet(to destination: MACAddress, from source: MACAddress, type: UInt16) -> [UInt8] {
        destination.bytes + source.bytes + [UInt8(type >> 8), UInt8(type & 0xff)]
    }

    /// An ARP request asking who has `target`.
    /// An ARP request, broadcast unless sent `to` the neighbour itself (a probe of a known one).
    public static func arpRequest(from mac: MACAddress, ip: IPv4Address, asking target: IPv4Address, to destination: MACAddress = .broadcast) -> [UInt8] {
        ethernet(to: destination, from: mac, type: etherARP)
            + [0, 1, 0x08, 0, 6, 4, 0, 1] + mac.bytes + ip.bytes + MACAddress.zero.bytes + target.bytes
    }

    /// The Internet checksum of `bytes`.
    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.endIndex { sum += UInt32(bytes[index]) << 8 }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// An IPv4 packet (no options) carrying `payload`.
    public static func ipv4(from source: IPv4Address, to destination: IPv4Address, protocol proto: UInt8, ttl: UInt8 = 64, payload: [UInt8]) -> [UInt8] {
        let total = 20 + payload.count
        var header: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, ttl, proto, 0, 0]
            + source.bytes + destination.bytes
        let sum = checksum(header[...])
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xff)
        return header + payload
    }

    /// An ICMP message (`type`, `code`, 4 bytes of rest-of-header, then `body`) with its checksum.
    public static func icmp(type: UInt8, code: UInt8, rest: [UInt8] = [0, 0, 0, 0], body: [UInt8]) -> [UInt8] {
        var message = [type, code, 0, 0] + rest + body
        let sum = checksum(message[...])
        message[2] = UInt8(sum >> 8)
        message[3] = UInt8(sum & 0xff)
        return message
    }
}

/// Reading the headers of a captured frame.
public struct ParsedFrame {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var destinationMAC: MACAddress? { bytes.count >= 14 ? MACAddress(bytes: Array(bytes[0..<6])) : nil }
    public var sourceMAC: MACAddress? { bytes.count >= 14 ? MACAddress(bytes: Array(bytes[6..<12])) : nil }
    public var etherType: UInt16? { bytes.count >= 14 ? UInt16(bytes[12]) << 8 | UInt16(bytes[13]) : nil }
    /// The IPv4 header's length, if the frame carries IPv4.
    public var ipv4HeaderLength: Int? {
        guard etherType == Frame.etherIPv4, bytes.count >= 34, bytes[14] >> 4 == 4 else { return nil }
        return Int(bytes[14] & 0x0f) * 4
    }
    public var ipv4Source: IPv4Address? { ipv4HeaderLength == nil ? nil : IPv4Address(bytes[26..<30].reduce(0) { $0 << 8 | UInt32($1) }) }
    public var ipv4Destination: IPv4Address? { ipv4HeaderLength == nil ? nil : IPv4Address(bytes[30..<34].reduce(0) { $0 << 8 | UInt32($1) }) }
}

// Configuration leaves are decoded from their YANG text (libyang checked the patterns already).

/// A value decoded from its text form, refused with a message naming it when the text is not one.
protocol DecodableFromText: Decodable {
    init?(_ text: String)
}

extension DecodableFromText {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not a valid \(Self.self)"))
        }
        self = value
    }
}

extension IPv4Address: DecodableFromText {
    init?(_ text: String) { self.init(text[...]) }
}
extension IPv4Prefix: DecodableFromText {
    init?(_ text: String) { self.init(text[...]) }
}
extension MACAddress: DecodableFromText {
    init?(_ text: String) { self.init(text[...]) }
}

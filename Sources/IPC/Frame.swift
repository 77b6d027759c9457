/// The bus's wire format: one SOCK_SEQPACKET datagram per frame.
///
///     0  u8   version (FrameHeader.version)
///     1  u8   kind (FrameKind)
///     2  u8   source name length        (set by the hub; senders leave it empty)
///     3  u8   destination name length
///     4  u8   method length
///     5  u8   flags (reserved, must be 0)
///     6  u16  reserved, must be 0
///     8  u32  payload length
///     12 u64  id (request id; replies and errors carry the id of what they answer)
///     20 source, destination, method (UTF-8), payload (bytes)
///
/// All integers are little-endian. File descriptors travel beside the frame as SCM_RIGHTS.
public enum FrameHeader {
    public static let version: UInt8 = 1
    public static let size = 20
    public static let maxNameLength = 64
    public static let maxMethodLength = 64
    /// Largest payload of one frame. Bigger bodies must be split by the caller.
    public static let maxPayload = 128 * 1024
    public static let maxFrameSize = size + 2 * maxNameLength + maxMethodLength + maxPayload
}

public enum FrameKind: UInt8, Sendable, CustomStringConvertible {
    /// Client -> hub: register under the name in `source`-less payload (UTF-8 name).
    case register = 1
    case request = 2
    case reply = 3
    /// A failed request or an undeliverable event; payload is a JSON `BusErrorBody`.
    case error = 4
    case event = 5

    public var description: String {
        switch self {
        case .register: "register"
        case .request: "request"
        case .reply: "reply"
        case .error: "error"
        case .event: "event"
        }
    }
}

public struct Frame: Sendable, Equatable {
    public var kind: FrameKind
    public var id: UInt64
    public var source: String
    public var destination: String
    public var method: String
    public var payload: [UInt8]

    public init(kind: FrameKind, id: UInt64, source: String = "", destination: String,
                method: String = "", payload: [UInt8] = []) {
        self.kind = kind
        self.id = id
        self.source = source
        self.destination = destination
        self.method = method
        self.payload = payload
    }
}

/// Why a datagram is not a frame. Each case names what was wrong so the hub can log it.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    case truncatedHeader(received: Int)
    case wrongVersion(UInt8)
    case unknownKind(UInt8)
    case reservedBitsSet
    case nameTooLong(field: String, length: Int)
    case lengthMismatch(declared: Int, received: Int)
    case oversized(limit: Int)
    case invalidName(field: String)

    public var description: String {
        switch self {
        case .truncatedHeader(let n):
            "truncated frame: \(n) bytes, shorter than the \(FrameHeader.size)-byte header"
        case .wrongVersion(let v): "unsupported frame version \(v) (this bus speaks \(FrameHeader.version))"
        case .unknownKind(let k): "unknown frame kind \(k)"
        case .reservedBitsSet: "reserved header bits are set"
        case .nameTooLong(let field, let n): "\(field) is \(n) bytes, longer than \(FrameHeader.maxNameLength)"
        case .lengthMismatch(let declared, let received):
            "frame declares \(declared) bytes but the datagram has \(received)"
        case .oversized(let limit): "frame larger than the \(limit)-byte limit"
        case .invalidName(let field): "\(field) is not a valid bus name (UTF-8 letters, digits, - _ . / : @)"
        }
    }
}

extension Frame {
    /// Names are short printable identifiers such as `api`, `cube-host/router`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= FrameHeader.maxNameLength && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2D || c == 0x5F || c == 0x2E || c == 0x2F || c == 0x3A || c == 0x40 || c == 0x2A
        }
    }

    public var encodedSize: Int {
        FrameHeader.size + source.utf8.count + destination.utf8.count + method.utf8.count + payload.count
    }

    /// Encodes into a fresh buffer. Precondition-free: oversized fields are reported, not trapped.
    public func encode() throws(FrameError) -> [UInt8] {
        let src = Array(source.utf8), dst = Array(destination.utf8), mth = Array(method.utf8)
        if src.count > FrameHeader.maxNameLength { throw .nameTooLong(field: "source", length: src.count) }
        if dst.count > FrameHeader.maxNameLength { throw .nameTooLong(field: "destination", length: dst.count) }
        if mth.count > FrameHeader.maxMethodLength { throw .nameTooLong(field: "method", length: mth.count) }
        if payload.count > FrameHeader.maxPayload { throw .oversized(limit: FrameHeader.maxFrameSize) }
        var out = [UInt8]()
        out.reserveCapacity(encodedSize)
        out.append(FrameHeader.version)
        out.append(kind.rawValue)
        out.append(UInt8(src.count))
        out.append(UInt8(dst.count))
        out.append(UInt8(mth.count))
        out.append(0)
        out.append(0)
        out.append(0)
        appendLittleEndian(UInt32(payload.count), to: &out)
        appendLittleEndian(id, to: &out)
        out += src
        out += dst
        out += mth
        out += payload
        return out
    }

    /// Decodes one datagram. Every malformed input is a `FrameError`, never a trap.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FrameError) -> Frame {
        guard bytes.count >= FrameHeader.size else { throw .truncatedHeader(received: bytes.count) }
        guard bytes[0] == FrameHeader.version else { throw .wrongVersion(bytes[0]) }
        guard let kind = FrameKind(rawValue: bytes[1]) else { throw .unknownKind(bytes[1]) }
        let srcLen = Int(bytes[2]), dstLen = Int(bytes[3]), mthLen = Int(bytes[4])
        guard bytes[5] == 0, bytes[6] == 0, bytes[7] == 0 else { throw .reservedBitsSet }
        if srcLen > FrameHeader.maxNameLength { throw .nameTooLong(field: "source", length: srcLen) }
        if dstLen > FrameHeader.maxNameLength { throw .nameTooLong(field: "destination", length: dstLen) }
        if mthLen > FrameHeader.maxMethodLength { throw .nameTooLong(field: "method", length: mthLen) }
        let payloadLen = Int(readLittleEndian(UInt32.self, bytes, at: 8))
        if payloadLen > FrameHeader.maxPayload { throw .oversized(limit: FrameHeader.maxFrameSize) }
        let declared = FrameHeader.size + srcLen + dstLen + mthLen + payloadLen
        guard declared == bytes.count else { throw .lengthMismatch(declared: declared, received: bytes.count) }
        let id = readLittleEndian(UInt64.self, bytes, at: 12)
        var at = FrameHeader.size
        func text(_ n: Int, _ field: String) throws(FrameError) -> String {
            defer { at += n }
            if n == 0 { return "" }
            let slice = UnsafeRawBufferPointer(rebasing: bytes[at..<at + n])
            guard let s = String(validating: slice, as: UTF8.self), isValidName(s) else {
                throw .invalidName(field: field)
            }
            return s
        }
        let source = try text(srcLen, "source")
        let destination = try text(dstLen, "destination")
        let method = try text(mthLen, "method")
        let payload = Array(UnsafeRawBufferPointer(rebasing: bytes[at..<at + payloadLen]))
        return Frame(kind: kind, id: id, source: source, destination: destination, method: method, payload: payload)
    }

    public static func decode(_ bytes: [UInt8]) throws(FrameError) -> Frame {
        do {
            return try bytes.withUnsafeBytes { raw in try decode(raw) }
        } catch let error as FrameError {
            throw error
        } catch {
            fatalError("unreachable: decode throws only FrameError")
        }
    }
}

@inline(__always)
private func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    var v = value.littleEndian
    withUnsafeBytes(of: &v) { out += $0 }
}

@inline(__always)
private func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> T {
    var v: T = 0
    withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + MemoryLayout<T>.size])) }
    return T(littleEndian: v)
}

import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Bodies larger than one frame (128 KiB) travel in a memfd passed with the frame, whose payload is
/// then a short marker. Requests, replies and events pack them on the way out; `BusMessage.body`
/// (and `decode`) read either form, so a large configuration crosses the bus like a small one.
public enum LargeBody {
    static let marker: [UInt8] = Array("\u{0}pcn-memfd-body\u{0}".utf8)

    /// The payload and fds to send for `bytes`; fds returned here are the caller's to close after the send.
    static func pack(_ bytes: [UInt8], fds: [Int32]) throws(BusError) -> (payload: [UInt8], fds: [Int32], owned: Int32?) {
        guard bytes.count > FrameHeader.maxPayload else { return (bytes, fds, nil) }
        let fd = pcn_memfd("pcn-bus-body")
        guard fd >= 0 else { throw BusError(code: .failed, message: "memfd for a \(bytes.count)-byte body: \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            guard n > 0 else {
                close(fd)
                throw BusError(code: .failed, message: "writing a \(bytes.count)-byte body: \(String(cString: strerror(errno)))")
            }
            written += n
        }
        return (marker, fds + [fd], fd)
    }

    /// The body of a payload: the payload itself, or what the memfd (the last fd) holds.
    static func unpack(_ payload: [UInt8], fds: [PassedFD]) -> [UInt8] {
        guard payload == marker, let fd = fds.last?.rawValue, fd >= 0 else { return payload }
        var size = stat()
        guard fstat(fd, &size) == 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(size.st_size))
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return read == bytes.count ? bytes : []
    }
}

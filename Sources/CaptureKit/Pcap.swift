import CPcap
import Foundation

/// A pcap file (nanosecond timestamps, Ethernet) written through libpcap's dump functions, so
/// `tcpdump -r` and `tshark -r` read exactly what libpcap writes.
public final class PcapDumpFile {
    public let path: String
    private var handle: OpaquePointer?
    private var dumper: OpaquePointer?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Opens `path` (truncated), or with `append` continues a pcap file already there (libpcap checks
    /// that its link type and precision match; a missing file is created).
    public init(path: String, snaplen: UInt32, append: Bool) throws(Failure) {
        self.path = path
        guard let handle = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, Int32(clamping: snaplen), UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            throw Failure(description: "libpcap could not open a dead handle")
        }
        self.handle = handle
        let dumper = append ? pcap_dump_open_append(handle, path) : pcap_dump_open(handle, path)
        guard let dumper else {
            let message = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            self.handle = nil
            throw Failure(description: "cannot write \(path): \(message)")
        }
        self.dumper = dumper
    }

    /// One packet: `length` its size on the wire, `bytes` what was kept of it.
    public func write(timestampNanoseconds: UInt64, length: UInt32, bytes: UnsafeRawBufferPointer) {
        guard let dumper else { return }
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(timestampNanoseconds / 1_000_000_000)
        header.ts.tv_usec = Int(timestampNanoseconds % 1_000_000_000)  // nanoseconds: the handle's precision
        header.caplen = UInt32(bytes.count)
        header.len = length
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
    }

    public func flush() {
        if let dumper { pcap_dump_flush(dumper) }
    }

    public func close() {
        if let dumper { pcap_dump_close(dumper) }
        if let handle { pcap_close(handle) }
        dumper = nil
        handle = nil
    }

    deinit { close() }
}

/// The same format as bytes, for streams (`pcnctl CUBE capture | tcpdump -r -`): the file header once,
/// then records. Host byte order with the nanosecond magic, as libpcap writes it.
public enum PcapFormat {
    public static let contentType = "application/vnd.tcpdump.pcap"

    public static func fileHeader(snaplen: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        append(UInt32(0xa1b2_3c4d), to: &out)  // nanosecond timestamps
        append(UInt16(2), to: &out)
        append(UInt16(4), to: &out)
        append(UInt32(0), to: &out)  // thiszone
        append(UInt32(0), to: &out)  // sigfigs
        append(snaplen, to: &out)
        append(UInt32(DLT_EN10MB), to: &out)
        return out
    }

    public static func appendRecord(timestampNanoseconds: UInt64, length: UInt32, bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        append(UInt32(truncatingIfNeeded: timestampNanoseconds / 1_000_000_000), to: &out)
        append(UInt32(timestampNanoseconds % 1_000_000_000), to: &out)
        append(UInt32(bytes.count), to: &out)
        append(length, to: &out)
        out.append(contentsOf: bytes)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value) { out.append(contentsOf: $0) }
    }
}

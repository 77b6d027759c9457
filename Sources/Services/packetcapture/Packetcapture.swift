import BPFKit
import CaptureKit
import Foundation
import ServiceABI
import ServiceKit

/// packetcapture: a tcpdump filter compiled by libpcap to classic BPF, turned into C and loaded as
/// the cube's code, so only matching packets leave the kernel; they arrive through the cube's own
/// ring and go to a pcap file (libpcap's dump functions) and to a buffer of recent packets that
/// streams read (`GET .../capture` as pcap, `pcnctl CUBE capture`).
public final class Packetcapture: CubeService {
    public static let name = "packetcapture"
    public init() {}

    public struct Config: Decodable {
        enum Direction: String, Decodable { case INGRESS, EGRESS, BIDIRECTIONAL, OFF }
        var capture: Direction
        var filter: String?
        var snaplen: UInt32
        var dump: String?
        var networkmode: Bool
    }

    public static var bindings: [ConfigBinding<Packetcapture>] {
        [
            .on(\.filter, apply: Packetcapture.program),
            .on(\.capture, \.snaplen, apply: Packetcapture.directions),
            .on(\.capture, \.dump, \.networkmode, apply: Packetcapture.output),
        ]
    }

    private var sessions: [String: CaptureSession] = [:]

    public func validate(_ change: Change<Config>) throws {
        _ = try Self.code(for: change.config.filter)
    }

    /// The cube's program for a filter: the generated filter function, then the service's source.
    /// No filter: the service's source, which matches nothing.
    static func code(for filter: String?) throws -> String? {
        guard let filter else { return nil }
        let compiled: ClassicFilter
        do {
            compiled = try ClassicFilter(filter.trimmingCharacters(in: .whitespaces) == "all" ? "" : filter)
        } catch {
            throw ServiceFailure.invalid(path: "filter", "'\(filter)' is not a valid filter: \(error.message)")
        }
        do {
            return """
                /* packetcapture: the cube's filter, generated from libpcap's classic BPF (\(compiled.instructions.count) instructions). */
                #include <pcn/cube.h>
                #include <bpf/bpf_endian.h>
                #define PACKETCAPTURE_FILTER 1
                \(try FilterCode.function(named: "packetcapture_filter", for: compiled.instructions))
                #include "packetcapture.c"

                """
        } catch {
            throw ServiceFailure.invalid(path: "filter", "'\(filter)' compiles to classic BPF this datapath cannot run: \(error)")
        }
    }

    func program(_ change: Change<Config>) throws {
        change.cube.load(code: try Self.code(for: change.config.filter), blaming: "filter")
    }

    func directions(_ change: Change<Config>) throws {
        let capture = change.config.capture
        let entry = packetcapture_config(ingress: capture == .INGRESS || capture == .BIDIRECTIONAL ? 1 : 0,
                                         egress: capture == .EGRESS || capture == .BIDIRECTIONAL ? 1 : 0,
                                         snaplen: min(change.config.snaplen, UInt32(PACKETCAPTURE_MAX_BYTES)), reserved: 0)
        let session = try session(of: change.cube)
        session.setSnaplen(entry.snaplen)
        try change.cube.table("packetcapture_config").update(UInt32(0), entry)
    }

    /// The file follows `capture`, `dump` and `networkmode`: opened anew when a capture starts or the
    /// path changes, continued when the configuration is applied anew (a restarted cube-host).
    func output(_ change: Change<Config>) throws {
        let config = change.config
        let session = try session(of: change.cube)
        // The ring is drained once the file is settled: records queued while the cube-host was
        // down go to the file they belong to.
        defer { session.startReading() }
        guard config.capture != .OFF, !config.networkmode else {
            session.closeFile()
            return
        }
        let path = Self.filePath(config.dump, cube: change.cube.name)
        let restarted = change.previous.map { $0.capture == .OFF || $0.networkmode } ?? false
        if session.filePath == path && !restarted { return }
        do {
            try session.openFile(path, append: change.previous == nil)
        } catch {
            throw ServiceFailure.invalid(path: "dump", "\(error)")
        }
    }

    static func filePath(_ dump: String?, cube: String) -> String {
        guard let dump else {
            let directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            return "\(directory)/capture_\(cube).pcap"
        }
        return dump.hasSuffix(".pcap") ? dump : dump + ".pcap"
    }

    private func session(of cube: Cube<Config>) throws -> CaptureSession {
        if let session = sessions[cube.name] { return session }
        let session = try CaptureSession(ring: try cube.table("packetcapture_ring"))
        sessions[cube.name] = session
        return session
    }

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        guard let session = sessions[cube.name] else { return [:] }
        let lost = try cube.table("packetcapture_lost").lookupPerCPU(UInt32(0), as: UInt64.self).reduce(0, +)
        let counters = session.counters()
        return ["stats": ["captured-packets": "\(counters.captured)", "lost-packets": "\(lost)",
                          "stream-dropped-packets": "\(counters.streamDropped)", "file": counters.file ?? ""]]
    }

    public func stream(_ path: [String], from cursor: UInt64?, limit: Int, maxRecords: Int, on cube: Cube<Config>) throws -> StreamChunk {
        guard path == ["capture"] else { throw ServiceFailure.refused("packetcapture streams only 'capture', not '\(path.joined(separator: "/"))'") }
        return try session(of: cube).read(from: cursor, limit: limit, maxRecords: maxRecords)
    }

    public func removed(_ cube: Cube<Config>) {
        sessions.removeValue(forKey: cube.name)?.stop()
    }
}

/// One cube's capture: the thread draining its ring, its pcap file, and the recent packets streams read.
final class CaptureSession: @unchecked Sendable {
    private let lock = NSLock()
    private var reader: RingBufferReader?
    private var file: PcapDumpFile?
    private var snaplen = UInt32(PACKETCAPTURE_MAX_BYTES)
    private var recent = RecordBuffer(maxRecords: 65_536, maxBytes: 32 << 20)
    private var captured: UInt64 = 0
    private var unflushed: UInt64 = 0
    private var streamDropped: UInt64 = 0

    private var reading = false

    init(ring: BPFMap) throws {
        reader = try RingBufferReader(map: ring) { [weak self] bytes in self?.take(bytes) }
    }

    func startReading() {
        guard !reading else { return }
        reading = true
        reader?.start { [weak self] in self?.flush() }
    }

    private static let headerSize = MemoryLayout<packetcapture_record>.size

    /// On the reader's thread: one record of the ring.
    private func take(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.headerSize else { return }
        let header = bytes.loadUnaligned(as: packetcapture_record.self)
        let kept = min(Int(header.captured_len), bytes.count - Self.headerSize)
        let data = UnsafeRawBufferPointer(rebasing: bytes[Self.headerSize..<(Self.headerSize + kept)])
        let timestamp = header.timestamp_ns &+ Self.realtimeOffset()
        var record: [UInt8] = []
        record.reserveCapacity(16 + kept)
        PcapFormat.appendRecord(timestampNanoseconds: timestamp, length: header.packet_len, bytes: data, to: &record)
        lock.withLock {
            unflushed += 1
            file?.write(timestampNanoseconds: timestamp, length: header.packet_len, bytes: data)
            recent.append(record)
        }
    }

    /// CLOCK_REALTIME minus CLOCK_MONOTONIC (the kernel stamps records with bpf_ktime_get_ns).
    private static func realtimeOffset() -> UInt64 {
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        return (UInt64(real.tv_sec) * 1_000_000_000 + UInt64(real.tv_nsec)) &- DatapathClock.nanoseconds
    }

    /// After each batch: the file flushed, then the batch counted, so a count read says what the
    /// file holds.
    private func flush() {
        lock.withLock {
            file?.flush()
            captured += unflushed
            unflushed = 0
        }
    }

    func setSnaplen(_ value: UInt32) {
        lock.withLock { snaplen = value }
    }

    var filePath: String? { lock.withLock { file?.path } }

    func openFile(_ path: String, append: Bool) throws {
        let opened = try PcapDumpFile(path: path, snaplen: lock.withLock { snaplen }, append: append)
        lock.withLock {
            file?.close()
            file = opened
        }
    }

    func closeFile() {
        lock.withLock {
            file?.close()
            file = nil
        }
    }

    func counters() -> (captured: UInt64, streamDropped: UInt64, file: String?) {
        lock.withLock { (captured, streamDropped, file?.path) }
    }

    func read(from cursor: UInt64?, limit: Int, maxRecords: Int) -> StreamChunk {
        lock.withLock {
            let (data, records, next, dropped) = recent.read(from: cursor, limit: limit, maxRecords: maxRecords)
            streamDropped += dropped
            return StreamChunk(header: PcapFormat.fileHeader(snaplen: snaplen), data: data, records: records, next: next, dropped: dropped)
        }
    }

    func stop() {
        reader?.stop()
        reader = nil
        closeFile()
    }
}

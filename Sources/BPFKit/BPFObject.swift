import CBPF
import CLibbpfShims
#if canImport(Glibc)
import Glibc
#endif

/// A compiled BPF object file: opened, given its load-time constants, loaded (verified) once.
/// Programs and maps stay alive while this object lives (or while pinned / referenced elsewhere).
public final class BPFObject: @unchecked Sendable {
    private let object: OpaquePointer
    public let path: String

    /// Opens `path`. Maps declared `LIBBPF_PIN_BY_NAME` are pinned under (or reused from) `pinRoot`.
    public init(path: String, pinRoot: String? = nil) throws(BPFError) {
        var log = [CChar](repeating: 0, count: 8192)
        guard let object = pcn_object_open(path, pinRoot, &log, log.count) else {
            throw BPFError("open BPF object \(path): \(String(cString: log).trimmingCharacters())", errno: Glibc.errno == 0 ? EINVAL : Glibc.errno)
        }
        self.object = object
        self.path = path
    }

    deinit { bpf_object__close(object) }

    /// Sets the initial contents of a data section such as `.rodata.pcn` to the bytes of `value`
    /// (a struct from a shared C header). Must precede `load()`.
    public func setSection<T: BitwiseCopyable>(_ section: String, to value: T) throws(BPFError) {
        var copy = value
        let result = withUnsafeBytes(of: &copy) { raw in
            pcn_object_set_section(object, section, raw.baseAddress, raw.count)
        }
        if result == -ENOENT { throw BPFError("\(path) has no section \(section)", errno: ENOENT) }
        if result == -EINVAL { throw BPFError("\(path): section \(section) is not \(MemoryLayout<T>.size) bytes", errno: EINVAL) }
        try BPFError.check(result, "set section \(section) of \(path)")
    }

    /// The maps that belong to this instance: not data sections, not shared pin-by-name maps.
    public func instanceMapNames() throws(BPFError) -> [String] {
        var buffer = [CChar](repeating: 0, count: 16384)
        let count = pcn_object_instance_maps(object, &buffer, buffer.count)
        try BPFError.check(count, "list the maps of \(path)")
        return buffer.withUnsafeBufferPointer { raw in
            raw.split(separator: 0, omittingEmptySubsequences: true).prefix(Int(count)).map {
                String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
    }

    public enum Reuse { case reused, nothingPinned, incompatible }

    /// Before `load()`: map `name` reuses the one pinned at `pinPath`, if any (so a reloaded or
    /// re-adopted program keeps its tables and counters), unless the pinned one has another layout
    /// than the object declares (`incompatible`: the object will create its own).
    @discardableResult
    public func reuseMap(_ name: String, pinnedAt pinPath: String) throws(BPFError) -> Reuse {
        let result = pcn_object_reuse_map(object, name, pinPath)
        try BPFError.check(result, "reuse map '\(name)' pinned at \(pinPath)")
        return result == 1 ? .reused : result == 2 ? .incompatible : .nothingPinned
    }

    /// After `load()`: pins map `name` at `pinPath` unless a map is pinned there already.
    public func pinMap(_ name: String, at pinPath: String) throws(BPFError) {
        try BPFError.check(pcn_object_pin_map(object, name, pinPath), "pin map '\(name)' at \(pinPath)")
    }

    /// The initial contents of a data section, empty if the object has none.
    public func sectionData(_ section: String) -> [UInt8] {
        var size = 0
        guard let data = pcn_object_section_data(object, section, &size), size > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: size))
    }

    /// Loads and verifies every program. A verifier rejection carries the verifier's log.
    public func load() throws(BPFLoadError) {
        var log = [CChar](repeating: 0, count: 1 << 20)
        let result = pcn_object_load(object, &log, log.count)
        if result < 0 {
            throw BPFLoadError(path: path, errno: -result, log: String(cString: log))
        }
    }

    /// The fd of a loaded program (owned by this object).
    public func programFD(_ name: String) throws(BPFError) -> Int32 {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            throw BPFError("\(path) has no program '\(name)'", errno: ENOENT)
        }
        let fd = bpf_program__fd(program)
        try BPFError.check(fd, "program '\(name)' of \(path) is not loaded")
        return fd
    }

    /// A loaded map, as an independent fd (dup'ed: it outlives this object).
    public func map(_ name: String) throws(BPFError) -> BPFMap {
        guard let map = bpf_object__find_map_by_name(object, name) else {
            throw BPFError("\(path) has no map '\(name)'", errno: ENOENT)
        }
        let fd = bpf_map__fd(map)
        try BPFError.check(fd, "map '\(name)' of \(path) is not loaded")
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        try BPFError.check(copy, "dup map '\(name)'")
        return try BPFMap(adopting: copy)
    }

    /// Pins a loaded program at `path` (bpffs).
    public func pinProgram(_ name: String, at pinPath: String) throws(BPFError) {
        let fd = try programFD(name)
        unlink(pinPath)
        try BPFError.check(bpf_obj_pin(fd, pinPath), "pin program '\(name)' at \(pinPath)")
    }
}

extension BPFObject {
    /// Opens a pinned program; the caller owns the returned fd.
    public static func openPinnedProgram(_ path: String) throws(BPFError) -> Int32 {
        let fd = bpf_obj_get(path)
        try BPFError.check(fd, "open pinned program \(path)")
        return fd
    }
}

/// A load that failed: libbpf's message and, for a verifier rejection, the verifier's log.
public struct BPFLoadError: Error, CustomStringConvertible {
    public let path: String
    public let errno: Int32
    public let log: String

    /// The verifier's (or libbpf's) last lines: where and why it refused.
    public var summary: String {
        let lines = log.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        return lines.suffix(12).joined(separator: "\n")
    }

    public var description: String { "load \(path): \(String(cString: strerror(errno)))\n\(summary)" }
}

/// TC (clsact, direct-action) attachment of programs to a netdev.
public enum TrafficControl {
    public enum Direction: Sendable { case ingress, egress }

    /// Attaches (or atomically replaces) the filter `handle`/`priority` at `direction` of `ifindex`.
    public static func attach(ifindex: Int32, direction: Direction, programFD: Int32, handle: UInt32 = 1, priority: UInt32 = 1) throws(BPFError) {
        let result = pcn_tc_attach(ifindex, direction == .egress ? 1 : 0, programFD, handle, priority)
        try BPFError.check(result, "attach TC \(direction) program on ifindex \(ifindex)")
    }

    /// Removes the filter; absent is not an error.
    public static func detach(ifindex: Int32, direction: Direction, handle: UInt32 = 1, priority: UInt32 = 1) throws(BPFError) {
        let result = pcn_tc_detach(ifindex, direction == .egress ? 1 : 0, handle, priority)
        if result == -ENOENT || result == -ENODEV || result == -EINVAL { return }
        try BPFError.check(result, "detach TC \(direction) program on ifindex \(ifindex)")
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// XDP attachment of programs to a netdev (netlink: the program stays attached when the loader
/// exits, and attaching again replaces it atomically).
public enum XDPAttachment {
    public enum Mode: Sendable {
        /// XDP_SKB: after the skb is built; works on every netdev.
        case generic
        /// XDP_DRV: in the driver, before any skb (veth supports it).
        case driver

        var flags: UInt32 { self == .generic ? 1 << 1 : 1 << 2 } // XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE
    }

    public static func attach(ifindex: Int32, programFD: Int32, mode: Mode) throws(BPFError) {
        try BPFError.check(bpf_xdp_attach(ifindex, programFD, mode.flags, nil), "attach XDP (\(mode)) program on ifindex \(ifindex)")
    }

    /// Removes the program attached in `mode`; none attached is not an error.
    public static func detach(ifindex: Int32, mode: Mode) throws(BPFError) {
        let result = bpf_xdp_detach(ifindex, mode.flags, nil)
        if result == -ENOENT || result == -ENODEV { return }
        try BPFError.check(result, "detach XDP (\(mode)) program on ifindex \(ifindex)")
    }
}

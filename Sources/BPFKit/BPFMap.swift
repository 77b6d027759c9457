import CBPF
import CLibbpfShims
#if canImport(Glibc)
import Glibc
#endif

/// A failed libbpf or bpf(2) operation: what was attempted, on what, and the kernel's answer.
public struct BPFError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// libbpf returns -errno; bpf(2) wrappers return -1 and set errno.
    static func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(BPFError) {
        if result < 0 { throw BPFError(operation(), errno: result == -1 ? Glibc.errno : -result) }
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// An owned BPF map file descriptor with typed access. The fd is closed when the object goes away;
/// the map itself lives on while pinned or referenced by a program.
public final class BPFMap: @unchecked Sendable {
    public let fd: Int32
    public let name: String
    public let type: bpf_map_type
    public let keySize: Int
    public let valueSize: Int
    public let maxEntries: Int
    public let id: UInt32

    /// Creates a new map.
    public static func create(type: bpf_map_type, name: String, keySize: Int, valueSize: Int, maxEntries: Int) throws(BPFError) -> BPFMap {
        let fd = bpf_map_create(type, name, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), nil)
        try BPFError.check(fd, "create map '\(name)'")
        return try BPFMap(adopting: fd)
    }

    /// Opens a pinned map.
    public static func openPinned(_ path: String) throws(BPFError) -> BPFMap {
        let fd = bpf_obj_get(path)
        try BPFError.check(fd, "open pinned map \(path)")
        return try BPFMap(adopting: fd)
    }

    /// Takes ownership of `fd` (for example one passed over the bus) after checking it is a map.
    public init(adopting fd: Int32) throws(BPFError) {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        let result = bpf_obj_get_info_by_fd(fd, &info, &length)
        if result < 0 {
            close(fd)
            throw BPFError("read map info of fd \(fd) (not a BPF map?)", errno: result == -1 ? Glibc.errno : -result)
        }
        self.fd = fd
        self.type = bpf_map_type(rawValue: info.type)
        self.keySize = Int(info.key_size)
        self.valueSize = Int(info.value_size)
        self.maxEntries = Int(info.max_entries)
        self.id = info.id
        self.name = withUnsafeBytes(of: info.name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    deinit { close(fd) }

    public func pin(at path: String) throws(BPFError) {
        try BPFError.check(bpf_obj_pin(fd, path), "pin map '\(name)' at \(path)")
    }

    /// True for maps that hold one value per CPU under each key.
    public var isPerCPU: Bool {
        [BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE].contains(type)
    }

    /// The bytes one update or lookup carries: the value, or for a per-CPU map every CPU's value
    /// padded to 8 bytes.
    var valueBytes: Int { isPerCPU ? ((valueSize + 7) & ~7) * Self.possibleCPUs : valueSize }

    /// Updates one entry. Keys and values must be exactly the map's sizes (per-CPU maps: every CPU's value).
    public func update(key: [UInt8], value: [UInt8], flags: UInt64 = UInt64(BPF_ANY)) throws(BPFError) {
        guard key.count == keySize, value.count == valueBytes else {
            throw BPFError("update map '\(name)': key \(key.count)/\(keySize) or value \(value.count)/\(valueBytes) bytes", errno: EINVAL)
        }
        let result = key.withUnsafeBytes { k in value.withUnsafeBytes { v in bpf_map_update_elem(fd, k.baseAddress, v.baseAddress, flags) } }
        try BPFError.check(result, "update map '\(name)'")
    }

    /// The value under `key`, or nil if absent.
    public func lookup(key: [UInt8]) throws(BPFError) -> [UInt8]? {
        guard key.count == keySize else {
            throw BPFError("lookup in map '\(name)': key is \(key.count) bytes, map wants \(keySize)", errno: EINVAL)
        }
        var value = [UInt8](repeating: 0, count: valueSize)
        let result = key.withUnsafeBytes { k in value.withUnsafeMutableBytes { v in bpf_map_lookup_elem(fd, k.baseAddress, v.baseAddress) } }
        if result < 0 {
            let err = result == -1 ? Glibc.errno : -result
            if err == ENOENT { return nil }
            throw BPFError("lookup in map '\(name)'", errno: err)
        }
        return value
    }

    public func delete(key: [UInt8]) throws(BPFError) {
        let result = key.withUnsafeBytes { k in bpf_map_delete_elem(fd, k.baseAddress) }
        try BPFError.check(result, "delete from map '\(name)'")
    }

    /// Typed helpers for plain-old-data keys and values (C structs imported from a shared header).
    public func update<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, _ value: V, flags: UInt64 = UInt64(BPF_ANY)) throws(BPFError) {
        try update(key: bytes(of: key), value: bytes(of: value), flags: flags)
    }

    public func delete<K: BitwiseCopyable>(_ key: K) throws(BPFError) {
        try delete(key: bytes(of: key))
    }

    /// The per-CPU values of `key` in a per-CPU map (the kernel pads each value to 8 bytes).
    public func lookupPerCPU<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, as: V.Type) throws(BPFError) -> [V] {
        let cpus = Int(libbpf_num_possible_cpus())
        let stride = (MemoryLayout<V>.size + 7) & ~7
        var raw = [UInt8](repeating: 0, count: stride * cpus)
        var copy = key
        let result = raw.withUnsafeMutableBytes { v in bpf_map_lookup_elem(fd, &copy, v.baseAddress) }
        try BPFError.check(result, "per-CPU lookup in map '\(name)'")
        return raw.withUnsafeBytes { buffer in
            (0..<cpus).map { buffer.loadUnaligned(fromByteOffset: $0 * stride, as: V.self) }
        }
    }

    /// The value bytes under `key` (nil for a queue or stack: its next element), one array per CPU for
    /// a per-CPU map, else one; `andDelete` takes the entry out in the same call (a queue or stack
    /// pops it). nil when absent or empty.
    public func values(at key: [UInt8]?, andDelete: Bool = false) throws(BPFError) -> [[UInt8]]? {
        let slots = isPerCPU ? Self.possibleCPUs : 1
        let stride = valueBytes / slots
        var raw = [UInt8](repeating: 0, count: max(1, valueBytes))
        let result = raw.withUnsafeMutableBytes { v in
            key.map { key in
                key.withUnsafeBytes { k in andDelete ? bpf_map_lookup_and_delete_elem(fd, k.baseAddress, v.baseAddress) : bpf_map_lookup_elem(fd, k.baseAddress, v.baseAddress) }
            } ?? (andDelete ? bpf_map_lookup_and_delete_elem(fd, nil, v.baseAddress) : bpf_map_lookup_elem(fd, nil, v.baseAddress))
        }
        if result < 0 {
            let err = result == -1 ? Glibc.errno : -result
            if err == ENOENT { return nil }
            throw BPFError("read map '\(name)'", errno: err)
        }
        return (0..<slots).map { Array(raw[($0 * stride)..<($0 * stride + valueSize)]) }
    }

    /// Sets the value under `key` to zeros (every CPU's, for a per-CPU map).
    public func zero(key: [UInt8]) throws(BPFError) {
        try update(key: key, value: [UInt8](repeating: 0, count: valueBytes))
    }

    /// The JSON the kernel's BTF gives for the key and value types (nil: the map has no BTF); see
    /// `pcn_map_btf_types` for the shape.
    public func typeDescriptions() -> (key: String, value: String)? {
        var key = [CChar](repeating: 0, count: 1 << 16), value = [CChar](repeating: 0, count: 1 << 16)
        guard pcn_map_btf_types(fd, &key, key.count, &value, value.count) == 0 else { return nil }
        return (String(cString: key), String(cString: value))
    }

    /// The number of values a per-CPU map holds per key.
    public static var possibleCPUs: Int { Int(libbpf_num_possible_cpus()) }

    /// Sets every CPU's value of `key` in a per-CPU map to `value`.
    public func updatePerCPU<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, _ value: V, flags: UInt64 = UInt64(BPF_ANY)) throws(BPFError) {
        let stride = (MemoryLayout<V>.size + 7) & ~7
        var raw = [UInt8](repeating: 0, count: stride * Self.possibleCPUs)
        raw.withUnsafeMutableBytes { buffer in
            for cpu in 0..<Self.possibleCPUs { buffer.storeBytes(of: value, toByteOffset: cpu * stride, as: V.self) }
        }
        try update(key: bytes(of: key), value: raw, flags: flags)
    }

    /// Every key, in the kernel's order. Entries added or removed meanwhile may be missed or seen.
    public func keys() throws(BPFError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var current: [UInt8]? = nil
        var next = [UInt8](repeating: 0, count: keySize)
        while true {
            let status = next.withUnsafeMutableBytes { n in
                if let key = current {
                    return key.withUnsafeBytes { k in bpf_map_get_next_key(fd, k.baseAddress, n.baseAddress) }
                }
                return bpf_map_get_next_key(fd, nil, n.baseAddress)
            }
            if status < 0 {
                let code = status == -1 ? Glibc.errno : -status
                if code == ENOENT { return result }
                throw BPFError("list the keys of map '\(name)'", errno: code)
            }
            result.append(next)
            current = next
        }
    }

    public func keys<K: BitwiseCopyable>(as: K.Type) throws(BPFError) -> [K] {
        guard MemoryLayout<K>.size == keySize else {
            throw BPFError("keys of map '\(name)': \(K.self) is \(MemoryLayout<K>.size) bytes, key is \(keySize)", errno: EINVAL)
        }
        return try keys().map { raw in raw.withUnsafeBytes { $0.loadUnaligned(as: K.self) } }
    }

    public func lookup<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, as: V.Type) throws(BPFError) -> V? {
        guard MemoryLayout<V>.size == valueSize else {
            throw BPFError("lookup in map '\(name)': \(V.self) is \(MemoryLayout<V>.size) bytes, value is \(valueSize)", errno: EINVAL)
        }
        guard let raw = try lookup(key: bytes(of: key)) else { return nil }
        return raw.withUnsafeBytes { $0.loadUnaligned(as: V.self) }
    }
}

@inline(__always)
func bytes<T: BitwiseCopyable>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

import CPcap

/// One instruction of a classic BPF program, as libpcap's `pcap_compile` writes it.
public struct ClassicInstruction: Equatable, Sendable, CustomStringConvertible {
    public var code: UInt16
    public var jt: UInt8
    public var jf: UInt8
    public var k: UInt32

    public init(code: UInt16, jt: UInt8 = 0, jf: UInt8 = 0, k: UInt32 = 0) {
        self.code = code
        self.jt = jt
        self.jf = jf
        self.k = k
    }

    public var description: String { "{ 0x\(String(code, radix: 16)), \(jt), \(jf), 0x\(String(k, radix: 16)) }" }
}

/// A tcpdump (libpcap) filter expression compiled to classic BPF for Ethernet frames.
public struct ClassicFilter: Sendable {
    public let expression: String
    public let snaplen: UInt32
    public let instructions: [ClassicInstruction]

    public struct SyntaxError: Error, CustomStringConvertible {
        /// libpcap's own message (`syntax error`, `unknown host 'x'`, ...).
        public let message: String
        public var description: String { message }
    }

    /// Compiles `expression` (empty: every packet) with libpcap, optimised, for `DLT_EN10MB`. The
    /// program's accepting return value is `snaplen` (how many bytes to keep).
    public init(_ expression: String, snaplen: UInt32 = 262_144) throws(SyntaxError) {
        self.expression = expression
        self.snaplen = snaplen
        guard let handle = pcap_open_dead(DLT_EN10MB, Int32(clamping: snaplen)) else {
            throw SyntaxError(message: "libpcap could not open a dead handle")
        }
        defer { pcap_close(handle) }
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw SyntaxError(message: String(cString: pcap_geterr(handle)))
        }
        defer { pcap_freecode(&program) }
        instructions = (0..<Int(program.bf_len)).map { index in
            let raw = program.bf_insns[index]
            return ClassicInstruction(code: raw.code, jt: raw.jt, jf: raw.jf, k: raw.k)
        }
    }

    /// What libpcap's own interpreter answers for `frame` (its length on the wire `length`):
    /// 0 (no match) or the number of bytes to keep. The reference the generated code is tested against.
    public func evaluate(_ frame: [UInt8], length: Int? = nil) -> UInt32 {
        var raw = instructions.map { bpf_insn(code: $0.code, jt: $0.jt, jf: $0.jf, k: $0.k) }
        return raw.withUnsafeMutableBufferPointer { insns in
            frame.withUnsafeBufferPointer { bytes in
                bpf_filter(insns.baseAddress, bytes.baseAddress, UInt32(length ?? frame.count), UInt32(frame.count))
            }
        }
    }
}

/// Classic BPF turned into datapath C: one `static __always_inline __u32 NAME(struct CTXTYPE *ctx)`
/// that returns what the classic program returns (0: no match, else the bytes to keep), for TC and
/// XDP alike (it reads the packet through `pcn/context.h`). clang then compiles it with the cube, so
/// a filter costs what its instructions cost, with no interpreter: the approach of Cloudflare's
/// xdpcap and Polycube's cbpf2c, written anew.
///
/// Classic BPF's machine: accumulator A, index X, scratch M[16], forward jumps only. A load past the
/// end of the packet ends the program with 0, as in the kernel's and libpcap's interpreters.
/// Absolute loads read the packet directly when the bytes are in its linear part and fall back to
/// `pcn_load_bytes` (TC's non-linear skbs); indexed loads (X + k, the transport header) use it always.
public enum FilterCode {
    public struct Unsupported: Error, CustomStringConvertible {
        public let index: Int
        public let reason: String
        public var description: String { "classic BPF instruction \(index): \(reason)" }
    }

    // Classic BPF's encoding (linux/filter.h, pcap/bpf.h).
    private enum Class: UInt16 { case ld = 0, ldx, st, stx, alu, jmp, ret, misc }
    private static func size(_ code: UInt16) -> Int? { [0x00: 4, 0x08: 2, 0x10: 1][code & 0x18] }

    public static func function(named name: String, for filter: [ClassicInstruction]) throws(Unsupported) -> String {
        guard !filter.isEmpty else { throw Unsupported(index: 0, reason: "the program is empty") }
        var targets = Set<Int>()
        for (index, insn) in filter.enumerated() where Class(rawValue: insn.code & 0x07) == .jmp {
            let next = index + 1
            if insn.code & 0xf0 == 0x00 {
                targets.insert(next + Int(insn.k))
            } else {
                targets.insert(next + Int(insn.jt))
                targets.insert(next + Int(insn.jf))
            }
        }
        if let beyond = targets.first(where: { $0 >= filter.count }) {
            throw Unsupported(index: beyond, reason: "a jump leads past the end of the program")
        }
        let usesScratch = filter.contains { [.st, .stx].contains(Class(rawValue: $0.code & 0x07)) || $0.code & 0xe0 == 0x60 }
        var body: [String] = []
        for (index, insn) in filter.enumerated() {
            if targets.contains(index) { body.append("L\(index):") }
            body.append("    " + (try statement(insn, index: index, count: filter.count)))
        }
        if Class(rawValue: filter.last!.code & 0x07) != .ret && Class(rawValue: filter.last!.code & 0x07) != .jmp {
            throw Unsupported(index: filter.count - 1, reason: "the program does not end with a return")
        }
        return """
            static __always_inline __u32 \(name)(struct CTXTYPE *ctx) {
                __u32 A = 0, X = 0, T = 0;
            \(usesScratch ? "    __u32 M[16] = {};\n" : "")    void *data = pcn_data(ctx), *data_end = pcn_data_end(ctx);
                (void)A; (void)X; (void)T; (void)data; (void)data_end;
            \(body.joined(separator: "\n"))
            }

            """
    }

    private static func load(into register: String, offset: String, size: Int, absolute: Bool) -> String {
        let type = ["", "__u8", "__u16", "", "__u32"][size]
        let swap = size == 4 ? "bpf_ntohl" : size == 2 ? "bpf_ntohs" : ""
        if absolute {
            return "if (data + \(offset) + \(size) <= data_end) \(register) = \(swap)(*(\(type) *)(data + \(offset))); "
                + "else if (\(offset) + \(size) <= pcn_frame_len(ctx) && pcn_load_bytes(ctx, \(offset), &T, \(size)) == 0) \(register) = \(swap)((\(type))T); "
                + "else return 0;"
        }
        return "T = \(offset); if (T > 0xffff || T + \(size) > pcn_frame_len(ctx) || pcn_load_bytes(ctx, T, &T, \(size)) != 0) return 0; "
            + "\(register) = \(swap)((\(type))T);"
    }

    private static func statement(_ insn: ClassicInstruction, index: Int, count: Int) throws(Unsupported) -> String {
        let k = insn.k
        let kText = "0x\(String(k, radix: 16))u"
        let mode = insn.code & 0xe0
        func slot() throws(Unsupported) -> String {
            guard k < 16 else { throw Unsupported(index: index, reason: "scratch slot \(k) is not 0...15") }
            return "M[\(k)]"
        }
        switch Class(rawValue: insn.code & 0x07)! {
        case .ld:
            switch mode {
            case 0x00: return "A = \(kText);"
            case 0x20, 0x40:
                guard let size = size(insn.code) else { throw Unsupported(index: index, reason: "load size 0x\(String(insn.code & 0x18, radix: 16))") }
                if mode == 0x20 {
                    guard k <= 0xffff else { throw Unsupported(index: index, reason: "offset \(Int32(bitPattern: k)) (Linux's ancillary loads are not available here)") }
                    return load(into: "A", offset: "\(k)", size: size, absolute: true)
                }
                return load(into: "A", offset: "X + \(kText)", size: size, absolute: false)
            case 0x60: return "A = \(try slot());"
            case 0x80: return "A = pcn_frame_len(ctx);"
            default: throw Unsupported(index: index, reason: "load mode 0x\(String(mode, radix: 16))")
            }
        case .ldx:
            switch mode {
            case 0x00: return "X = \(kText);"
            case 0x60: return "X = \(try slot());"
            case 0x80: return "X = pcn_frame_len(ctx);"
            case 0xa0:
                guard k <= 0xffff else { throw Unsupported(index: index, reason: "offset \(k)") }
                return load(into: "X", offset: "\(k)", size: 1, absolute: true) + " X = (X & 0xf) << 2;"
            default: throw Unsupported(index: index, reason: "ldx mode 0x\(String(mode, radix: 16))")
            }
        case .st: return "\(try slot()) = A;"
        case .stx: return "\(try slot()) = X;"
        case .alu:
            let operand = insn.code & 0x08 == 0 ? kText : "X"
            switch insn.code & 0xf0 {
            case 0x00: return "A += \(operand);"
            case 0x10: return "A -= \(operand);"
            case 0x20: return "A *= \(operand);"
            case 0x30: return operand == "X" ? "if (X == 0) return 0; A /= X;" : (k == 0 ? "return 0;" : "A /= \(kText);")
            case 0x90: return operand == "X" ? "if (X == 0) return 0; A %= X;" : (k == 0 ? "return 0;" : "A %= \(kText);")
            case 0x40: return "A |= \(operand);"
            case 0x50: return "A &= \(operand);"
            case 0xa0: return "A ^= \(operand);"
            case 0x60: return operand == "X" ? "A = X < 32 ? A << X : 0;" : (k < 32 ? "A <<= \(k);" : "A = 0;")
            case 0x70: return operand == "X" ? "A = X < 32 ? A >> X : 0;" : (k < 32 ? "A >>= \(k);" : "A = 0;")
            case 0x80: return "A = -A;"
            default: throw Unsupported(index: index, reason: "ALU operation 0x\(String(insn.code & 0xf0, radix: 16))")
            }
        case .jmp:
            let next = index + 1
            let operand = insn.code & 0x08 == 0 ? kText : "X"
            let condition: String
            switch insn.code & 0xf0 {
            case 0x00: return "goto L\(next + Int(k));"
            case 0x10: condition = "A == \(operand)"
            case 0x20: condition = "A > \(operand)"
            case 0x30: condition = "A >= \(operand)"
            case 0x40: condition = "A & \(operand)"
            default: throw Unsupported(index: index, reason: "jump 0x\(String(insn.code & 0xf0, radix: 16))")
            }
            return "if (\(condition)) goto L\(next + Int(insn.jt)); goto L\(next + Int(insn.jf));"
        case .ret:
            switch insn.code & 0x18 {
            case 0x00: return "return \(kText);"
            case 0x10: return "return A;"
            case 0x08: return "return X;"
            default: throw Unsupported(index: index, reason: "return 0x\(String(insn.code & 0x18, radix: 16))")
            }
        case .misc:
            switch insn.code & 0xf8 {
            case 0x00: return "X = A;"
            case 0x80: return "A = X;"
            default: throw Unsupported(index: index, reason: "misc 0x\(String(insn.code & 0xf8, radix: 16))")
            }
        }
    }
}

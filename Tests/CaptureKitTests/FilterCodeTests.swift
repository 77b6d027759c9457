import BPFKit
import CaptureKit
import CLibbpfShims
import DatapathKit
import Foundation
import Logging
import XCTest

/// The C generated from libpcap's classic BPF gives, for every filter and frame, what libpcap's own
/// interpreter gives: compiled by clang, verified and run by the kernel (BPF_PROG_TEST_RUN) for TC and
/// XDP, against `bpf_filter` on the same bytes.
final class FilterCodeTests: XCTestCase {
    static let filters = [
        "", "icmp", "icmp and host 10.1.2.3", "tcp port 80", "udp dst port 53", "arp", "ip6", "not icmp",
        "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "len > 100", "greater 1000", "less 80",
        "ether host 02:00:00:00:00:01", "ether broadcast", "vlan 10", "vlan and icmp", "ip[8] < 64", "ip proto 47",
        "ip and (src net 10.0.0.0/8 or dst port 443)", "tcp[2:2] > 1000 and tcp[2:2] < 2000", "portrange 1000-2000",
        "ip[6:2] & 0x1fff != 0", "udp and ip[0] & 0xf > 5", "ether[12:2] = 0x0800 and ip[9] = 1", "ip6 and tcp port 22",
        "net 192.168.0.0/16", "src host 10.1.2.3 and dst host 10.9.9.9", "(tcp or udp) and port 53", "ip[2:2] / 4 > 20",
        "ip[2:2] % 7 = 3", "ip[2:2] * 2 > 1000", "ip[2:2] - 20 > 50", "icmp[icmptype] == icmp-echo",
    ]

    static func frames() -> [(String, [UInt8])] {
        let a: [UInt8] = [2, 0, 0, 0, 0, 1], b: [UInt8] = [2, 0, 0, 0, 0, 2], broadcast = [UInt8](repeating: 0xff, count: 6)
        func ipv4(_ src: [UInt8], _ dst: [UInt8], proto: UInt8, payload: [UInt8], ttl: UInt8 = 64, options: [UInt8] = [], fragment: UInt16 = 0) -> [UInt8] {
            let ihl = UInt8(5 + options.count / 4)
            let total = UInt16(Int(ihl) * 4 + payload.count)
            return [0x40 | ihl, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1, UInt8(fragment >> 8), UInt8(fragment & 0xff), ttl, proto, 0, 0]
                + src + dst + options + payload
        }
        func l4(_ sport: UInt16, _ dport: UInt16, tcpFlags: UInt8? = nil, extra: Int = 0) -> [UInt8] {
            var header: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff)]
            if let tcpFlags { header += [0, 0, 0, 1, 0, 0, 0, 0, 0x50, tcpFlags, 0xff, 0xff, 0, 0, 0, 0] } else { header += [UInt8((8 + extra) >> 8), UInt8((8 + extra) & 0xff), 0, 0] }
            return header + [UInt8](repeating: 0x61, count: extra)
        }
        let icmpEcho: [UInt8] = [8, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0x11, count: 56)
        let h1: [UInt8] = [10, 1, 2, 3], h2: [UInt8] = [10, 9, 9, 9], lan: [UInt8] = [192, 168, 4, 5], far: [UInt8] = [8, 8, 8, 8]
        func eth(_ dst: [UInt8], _ src: [UInt8], _ type: UInt16, _ body: [UInt8]) -> [UInt8] { dst + src + [UInt8(type >> 8), UInt8(type & 0xff)] + body }
        let ipv6tcp: [UInt8] = [0x60, 0, 0, 0, 0, 20, 6, 64] + [UInt8](repeating: 0xfd, count: 16) + [UInt8](repeating: 0xfe, count: 16) + l4(40000, 22, tcpFlags: 0x02)
        return [
            ("icmp echo h1->h2", eth(b, a, 0x0800, ipv4(h1, h2, proto: 1, payload: icmpEcho))),
            ("icmp reply h2->h1", eth(a, b, 0x0800, ipv4(h2, h1, proto: 1, payload: [0, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0x11, count: 56)))),
            ("tcp syn :80", eth(b, a, 0x0800, ipv4(h1, far, proto: 6, payload: l4(40000, 80, tcpFlags: 0x02)))),
            ("tcp ack :443", eth(b, a, 0x0800, ipv4(lan, far, proto: 6, payload: l4(40001, 443, tcpFlags: 0x10)))),
            ("tcp 1500->22", eth(b, a, 0x0800, ipv4(far, lan, proto: 6, payload: l4(1500, 22, tcpFlags: 0x18)))),
            ("udp dns", eth(b, a, 0x0800, ipv4(lan, far, proto: 17, payload: l4(5353, 53, extra: 30)))),
            ("udp with options", eth(b, a, 0x0800, ipv4(h2, h1, proto: 17, payload: l4(53, 1234, extra: 4), options: [1, 1, 1, 0, 0x94, 4, 0, 0]))),
            ("udp big", eth(b, a, 0x0800, ipv4(h1, h2, proto: 17, payload: l4(1999, 2000, extra: 1200), ttl: 3))),
            ("fragment", eth(b, a, 0x0800, ipv4(h1, h2, proto: 17, payload: [UInt8](repeating: 1, count: 40), fragment: 0x00b9))),
            ("gre", eth(b, a, 0x0800, ipv4(h1, far, proto: 47, payload: [0, 0, 0x08, 0, 1, 2, 3, 4]))),
            ("arp broadcast", eth(broadcast, a, 0x0806, [0, 1, 8, 0, 6, 4, 0, 1] + a + h1 + [0, 0, 0, 0, 0, 0] + h2)),
            ("vlan 10 icmp", eth(b, a, 0x8100, [0, 10, 0x08, 0x00] + ipv4(h1, h2, proto: 1, payload: icmpEcho))),
            ("vlan 20 tcp", eth(b, a, 0x8100, [0, 20, 0x08, 0x00] + ipv4(h1, h2, proto: 6, payload: l4(1, 80, tcpFlags: 0x02)))),
            ("ipv6 tcp :22", eth(b, a, 0x86dd, ipv6tcp)),
            // Claims TCP but ends after the IP header: loads past the end give 0, as in libpcap.
            ("truncated tcp", eth(b, a, 0x0800, ipv4(h1, h2, proto: 6, payload: []))),
            ("truncated ip", eth(b, a, 0x0800, [0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6])),
        ]
    }

    func testGeneratedCodeMatchesLibpcapForTCAndXDP() throws {
        guard getuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        guard let clang = BPFCompiler.locateClang() else { throw XCTSkip("no clang on PATH") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("pcn-filter-test-\(getpid())").path
        // The framework's maps are pinned by name: under a root of this test's own, removed after.
        let pins = "/sys/fs/bpf/pcntest-filter-\(getpid())"
        try FileManager.default.createDirectory(atPath: pins, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: cache)
            try? FileManager.default.removeItem(atPath: pins)
        }
        let compiler = BPFCompiler(clang: clang, includeDirectory: root.appendingPathComponent("bpf/include").path, cacheDirectory: cache,
                                   logger: Logger(label: "test"))
        let frames = Self.frames()
        var checked = 0
        for expression in Self.filters {
            let filter = try ClassicFilter(expression, snaplen: 65535)
            let function = try FilterCode.function(named: "filter", for: filter.instructions)
            for hook in ["TC", "XDP"] {
                let source = """
                    #include <pcn/context.h>
                    #include <bpf/bpf_endian.h>
                    \(function)
                    SEC("\(hook == "TC" ? "tc" : "xdp")") int run(struct CTXTYPE *ctx) { return filter(ctx); }
                    char LICENSE[] SEC("license") = "GPL";
                    """
                let object = try BPFObject(path: try compiler.compile(sourceText: source, name: "filter", defines: hook == "XDP" ? ["PCN_XDP"] : []),
                                           pinRoot: pins)
                do {
                    try object.load()
                } catch {
                    XCTFail("'\(expression)' (\(hook)) does not verify: \(error)\n\(function)")
                    continue
                }
                let program = try object.programFD("run")
                for (name, frame) in frames {
                    var retval: UInt32 = 0, duration: UInt32 = 0
                    // The kernel's TC test run refuses an IPv4 frame shorter than an IP header (XDP takes it).
                    guard frame.count >= 34 || hook == "XDP" else { continue }
                    let result = frame.withUnsafeBytes { pcn_prog_test_run(program, $0.baseAddress, UInt32($0.count), 1, &retval, &duration) }
                    XCTAssertEqual(result, 0, "test run of '\(expression)' on \(name)")
                    XCTAssertEqual(retval, filter.evaluate(frame), "'\(expression)' (\(hook)) on \(name): generated code and libpcap disagree")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, Self.filters.count * 2 * 10)
    }

    func testBadFiltersAreLibpcapsErrors() {
        XCTAssertThrowsError(try ClassicFilter("icmp and and")) { error in
            XCTAssertTrue("\(error)".contains("syntax error"), "\(error)")
        }
        XCTAssertThrowsError(try ClassicFilter("tcp port 99999")) { error in
            XCTAssertTrue("\(error)".contains("99999"), "\(error)")
        }
    }

    func testUnsupportedProgramsAreRefusedWithTheInstruction() {
        // A jump past the end, and Linux's ancillary loads (negative offsets), never reach clang.
        XCTAssertThrowsError(try FilterCode.function(named: "f", for: [ClassicInstruction(code: 0x15, jt: 5, jf: 0, k: 1), ClassicInstruction(code: 0x06, k: 0)]))
        XCTAssertThrowsError(try FilterCode.function(named: "f", for: [ClassicInstruction(code: 0x20, k: 0xffff_f000), ClassicInstruction(code: 0x06, k: 0)])) { error in
            XCTAssertTrue("\(error)".contains("instruction 0"), "\(error)")
        }
    }

    func testStreamBufferCountsWhatASlowReaderMissed() {
        // The pcap stream of recent records is bounded; a reader behind it is told how many it lost.
        var buffer = RecordBuffer(maxRecords: 4, maxBytes: 1 << 20)
        for value in 0..<10 { buffer.append([UInt8(value)]) }
        let read = buffer.read(from: 2, limit: 1 << 16)
        XCTAssertEqual(read.dropped, 4)
        XCTAssertEqual(read.data, [6, 7, 8, 9])
        XCTAssertEqual(read.next, 10)
        XCTAssertEqual(buffer.read(from: nil, limit: 1 << 16).data, [])
        XCTAssertEqual(buffer.read(from: 6, limit: 1 << 16, maxRecords: 2).data, [6, 7])
    }
}

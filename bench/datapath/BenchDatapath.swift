// bench/datapath: what the framework costs per packet, measured against a program written without it
// in the same run (BPF_PROG_TEST_RUN, 64-byte frame, repeat 1e6, median of 15 interleaved runs).
//
//   (a) vanilla_tc: swap MACs, bpf_redirect(ifindex) — the kernel's xdp_redirect sample, as TC.
//   (b) the same work as a cube (bench/datapath/bpf/macswap) reached through the framework's full
//       path: the netdev's entry program, a tail call into the cube, handle_rx, the redirect.
//   chains of 1, 2, 4, 8, 16, 32 such cubes: the slope is the cost of one more hop (hop_ns), and
//   the same with cubes that do no work of their own (testfwd): the framework's part (wire_hop_ns).
//
//   (c) vanilla_xdp and (d) the macswap cube as XDP_SKB, reached the same way from the netdev's
//       XDP entry program: the framework's cost at the XDP hook.
//
// Last line: RESULT tc_extra_ns=<b - a> hop_ns=<slope> wire_hop_ns=<slope> xdp_extra_ns=<d - c>
//            tc_vanilla_ns=<a> tc_framework_ns=<b> xdp_vanilla_ns=<c> xdp_framework_ns=<d>
import BenchSupport
import BPFKit
import CLibbpfShims
import DatapathKit
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

let repeatCount = Int32(ProcessInfo.processInfo.environment["BENCH_REPEAT"] ?? "") ?? 1_000_000
let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 15
/// Always starts with 1: the single cube is (b), the figure compared with the vanilla program.
let chainLengths = [1] + (ProcessInfo.processInfo.environment["BENCH_CHAINS"] ?? "2,4,8,16,32").split(separator: ",")
    .compactMap { Int($0) }.filter { $0 > 1 && $0 <= 32 }
let repository = repositoryRoot()
let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }


/// The kernel's average ns per run of `fd` over `frame`, `repeatCount` runs.
func testRun(_ fd: Int32, frame: [UInt8], expecting verdict: Int32 = TC_ACT_REDIRECT) throws -> Double {
    var retval: UInt32 = 0, duration: UInt32 = 0
    let result = frame.withUnsafeBytes { pcn_prog_test_run(fd, $0.baseAddress, UInt32($0.count), repeatCount, &retval, &duration) }
    guard result == 0 else { throw DatapathError("BPF_PROG_TEST_RUN failed: \(String(cString: strerror(-result)))") }
    guard retval == UInt32(verdict) else { throw DatapathError("program returned \(retval), not \(verdict) (redirect): the path is broken") }
    return Double(duration)
}

let TC_ACT_REDIRECT: Int32 = 7
let XDP_REDIRECT: Int32 = 4


/// ns per cube: the least-squares slope of time against chain length (nan with one length).
func leastSquaresSlope(_ points: [(length: Int, ns: Double)]) -> Double {
    let n = Double(points.count)
    let sx = points.reduce(0) { $0 + Double($1.length) }, sy = points.reduce(0) { $0 + $1.ns }
    let sxx = points.reduce(0) { $0 + Double($1.length * $1.length) }, sxy = points.reduce(0) { $0 + Double($1.length) * $1.ns }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx)
}

@main
struct Bench {
    static func main() async throws {
        let tag = String(UInt32.random(in: 0...0xFFFF), radix: 16)
        var template = Array("/tmp/pcnbench.XXXXXX".utf8CString)
        let scratch = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let bpffsRoot = "/sys/fs/bpf/pcnbench-\(getpid())"
        mkdir(bpffsRoot, 0o700)
        var links: [String] = []
        defer {
            for link in links { try? shell(["ip", "link", "del", link]) }
            try? shell(["rm", "-rf", bpffsRoot, scratch])
        }
        // One veth pair per chain: entry and exit. Both ends stay down, so they carry no traffic: the
        // test runs only need their ifindexes (up, the stack's own frames would loop through the chain
        // from one end to the other and load the machine).
        // Chains of two services: macswap (the work of (a) in every cube) and testfwd (a wire that
        // does no work of its own, so its slope is the framework's cost per hop alone).
        let services = ["macswap", "testfwd"]
        var pairs: [String: (entry: String, exit: String)] = [:]
        for service in services {
            for length in chainLengths {
                let a = "pcnb\(tag)\(service.prefix(1))\(length)i", b = "pcnb\(tag)\(service.prefix(1))\(length)o"
                try shell(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
                links.append(a)
                pairs["\(service)\(length)"] = (a, b)
            }
        }

        guard let clang = BPFCompiler.locateClang() else { throw DatapathError("no clang on PATH") }
        let bpf = repository.appendingPathComponent("bpf").path
        let compiler = BPFCompiler(clang: clang, includeDirectory: bpf + "/include", cacheDirectory: scratch + "/cache", logger: quiet)
        let datapath = Datapath(compiler: compiler, bpfDirectory: bpf, bpffsRoot: bpffsRoot, stateDirectory: scratch,
                                extraServiceDirectories: [repository.appendingPathComponent("bench/datapath/bpf").path, repository.appendingPathComponent("Tests/Fixtures/bpf").path], logger: quiet)

        // (a) the vanilla program.
        let vanillaPath = try compiler.compile(file: repository.appendingPathComponent("bench/datapath/bpf/vanilla_tc.c").path, name: "vanilla_tc")
        let vanilla = try BPFObject(path: vanillaPath)
        try vanilla.setSection(".rodata.pcn", to: UInt32(if_nametoindex(pairs["macswap1"]!.exit)))
        try vanilla.load()
        let vanillaFD = try vanilla.programFD("vanilla_tc")

        // (c) and (d): XDP.
        let (xdpEntry, xdpExit) = ("pcnb\(tag)xi", "pcnb\(tag)xo")
        try shell(["ip", "link", "add", xdpEntry, "type", "veth", "peer", "name", xdpExit])
        links.append(xdpEntry)
        let vanillaXDP = try BPFObject(path: try compiler.compile(file: repository.appendingPathComponent("bench/datapath/bpf/vanilla_xdp.c").path, name: "vanilla_xdp"))
        try vanillaXDP.setSection(".rodata.pcn", to: UInt32(if_nametoindex(xdpExit)))
        try vanillaXDP.load()
        let vanillaXDPFD = try vanillaXDP.programFD("vanilla_xdp")
        _ = try await datapath.createCube(name: "x1", service: "macswap", type: "XDP_SKB")
        _ = try await datapath.addPort(cube: "x1", port: "p0")
        _ = try await datapath.addPort(cube: "x1", port: "p1")
        try await datapath.setPeer(cube: "x1", port: "p0", peer: .netdev(xdpEntry))
        try await datapath.setPeer(cube: "x1", port: "p1", peer: .netdev(xdpExit))
        let xdpFrameworkFD = try BPFObject.openPinnedProgram(await datapath.netdevEntryPin(xdpEntry))

        // (b) and the chains.
        var entries: [String: Int32] = [:]
        for service in services {
            for length in chainLengths {
                let key = "\(service)\(length)"
                let (a, b) = pairs[key]!
                let name = { (i: Int) in "\(service.prefix(1))\(length)c\(i)" }
                for i in 1...length {
                    _ = try await datapath.createCube(name: name(i), service: service, type: "TC")
                    _ = try await datapath.addPort(cube: name(i), port: "p0")
                    _ = try await datapath.addPort(cube: name(i), port: "p1")
                    if i > 1 { try await datapath.setPeer(cube: name(i - 1), port: "p1", peer: .cube(name(i), "p0")) }
                }
                try await datapath.setPeer(cube: name(1), port: "p0", peer: .netdev(a))
                try await datapath.setPeer(cube: name(length), port: "p1", peer: .netdev(b))
                entries[key] = try BPFObject.openPinnedProgram(await datapath.netdevEntryPin(a))
            }
        }

        var frame = [UInt8](repeating: 0, count: 64)
        frame.replaceSubrange(0..<14, with: [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00])
        var vanillaRuns: [Double] = [], xdpVanillaRuns: [Double] = [], xdpFrameworkRuns: [Double] = []
        var chainRuns: [String: [Double]] = [:]
        for round in 1...rounds {
            vanillaRuns.append(try testRun(vanillaFD, frame: frame))
            xdpVanillaRuns.append(try testRun(vanillaXDPFD, frame: frame, expecting: XDP_REDIRECT))
            xdpFrameworkRuns.append(try testRun(xdpFrameworkFD, frame: frame, expecting: XDP_REDIRECT))
            for service in services {
                for length in chainLengths {
                    chainRuns["\(service)\(length)", default: []].append(try testRun(entries["\(service)\(length)"]!, frame: frame))
                }
            }
            FileHandle.standardError.write(Data("round \(round)/\(rounds)\n".utf8))
        }
        let a = median(vanillaRuns)
        print("TC, BPF_PROG_TEST_RUN, 64-byte frame, repeat \(repeatCount), median of \(rounds) interleaved runs")
        print(String(format: "  vanilla (a)                %7.1f ns", a))
        var slopes: [String: Double] = [:]
        for service in services {
            let medians = chainLengths.map { (length: $0, ns: median(chainRuns["\(service)\($0)"]!)) }
            for (length, ns) in medians {
                print(String(format: "  %@ chain of %2d      %7.1f ns", service as NSString, length, ns))
            }
            slopes[service] = leastSquaresSlope(medians)
        }
        let b = median(chainRuns["macswap1"]!)
        let c = median(xdpVanillaRuns), d = median(xdpFrameworkRuns)
        print("XDP, the same")
        print(String(format: "  vanilla (c)                %7.1f ns", c))
        print(String(format: "  macswap cube (d)           %7.1f ns", d))
        print(String(format: "RESULT tc_extra_ns=%.1f hop_ns=%.1f wire_hop_ns=%.1f xdp_extra_ns=%.1f tc_vanilla_ns=%.1f tc_framework_ns=%.1f xdp_vanilla_ns=%.1f xdp_framework_ns=%.1f",
                     b - a, slopes["macswap"]!, slopes["testfwd"]!, d - c, a, b, c, d))
    }
}

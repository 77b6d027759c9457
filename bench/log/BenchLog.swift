// bench/log: what a datapath log statement costs, and how fast its records are drained.
//
// It runs the real pcn-core and pcn-logd (release builds next to this executable, so build all
// products: `swift build -c release`) on private paths, with two cubes that do the same work:
//   plain:  testfwd's forwarding, no pcn_log;
//   logged: the same with one pcn_log(ctx, LOG_DEBUG, ...) of three arguments.
// Each is entered through its netdev's entry program with BPF_PROG_TEST_RUN (64-byte frame),
// interleaved rounds, medians:
//   disabled_extra_ns: logged at level INFO (the statement removed at load) minus plain;
//   enabled_extra_ns:  logged at level DEBUG (a record per packet into the ring, drained by pcn-logd)
//                      minus plain, in runs small enough for the ring;
//   drained_lines_s:   lines per second pcn-logd writes while draining a burst of 60,000 records.
// And the two transports, each fed 50,000 48-byte records by one test run and drained by a reader in
// this process: ringbuf_records_s (BPF ring buffer, what pcn_log uses) and perfbuf_records_s (perf
// event array, wakeup per record).
//
// Last line: RESULT disabled_extra_ns=… enabled_extra_ns=… drained_lines_s=… ringbuf_records_s=… perfbuf_records_s=…
import BenchSupport
import BPFKit
import CBPF
import CLibbpfShims
import DatapathKit
import Foundation
import IPC
import Logging
#if canImport(Glibc)
import Glibc
#endif

let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 15
let repository = repositoryRoot()
let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }


/// The kernel's average ns per run.
func testRun(_ fd: Int32, repeat count: Int32) throws -> Double {
    var frame = [UInt8](repeating: 0, count: 64)
    frame.replaceSubrange(0..<14, with: [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00])
    var retval: UInt32 = 0, duration: UInt32 = 0
    let result = frame.withUnsafeBytes { pcn_prog_test_run(fd, $0.baseAddress, UInt32($0.count), count, &retval, &duration) }
    guard result == 0 else { throw BenchError("BPF_PROG_TEST_RUN failed: \(String(cString: strerror(-result)))") }
    return Double(duration)
}


func lineCount(_ path: String) -> Int {
    guard let data = FileManager.default.contents(atPath: path) else { return 0 }
    return data.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
}

/// Counts records a reader callback saw.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int = 1) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}

/// Waits until `counter` reaches `target`; returns the seconds since `start`.
func secondsUntil(_ target: Int, of value: () -> Int, since start: ContinuousClock.Instant, timeout: Duration = .seconds(60)) throws -> Double {
    while value() < target {
        if ContinuousClock.now - start > timeout { throw BenchError("only \(value()) of \(target) records arrived") }
        usleep(200)
    }
    return seconds(ContinuousClock.now - start)
}

/// Records per second through each transport: 50,000 records from one test run, drained by a reader
/// on its own thread (not isolated to the main actor: the readers call back on their threads).
func measureTransports(_ objectPath: String) throws -> (ring: [Double], perf: [Double]) {
let transport = try BPFObject(path: objectPath)
    try transport.load()
    let ringCount = Counter()
    let ringReader = try RingBufferReader(map: try transport.map("bench_ring")) { _ in ringCount.add() }
    ringReader.start()
    defer { ringReader.stop() }
    let perfCount = Counter()
    let perfMap = try transport.map("bench_perf")
    let context = Unmanaged.passRetained(perfCount).toOpaque()
    guard let perf = perf_buffer__new(perfMap.fd, 256, { context, _, _, _ in
        Unmanaged<Counter>.fromOpaque(context!).takeUnretainedValue().add()
    }, nil, context, nil) else { throw BenchError("perf_buffer__new failed: \(String(cString: strerror(errno)))") }
    let perfStop = Counter()
    let perfAddress = UInt(bitPattern: perf)
    let perfThread = Thread {
        let buffer = OpaquePointer(bitPattern: perfAddress)
        while perfStop.value == 0 { _ = perf_buffer__poll(buffer, 100) }
    }
    perfThread.start()
    defer {
        perfStop.add()
        usleep(200_000)
        perf_buffer__free(perf)
    }
    var ringRates: [Double] = [], perfRates: [Double] = []
    let records = 50_000
    for _ in 1...5 {
        var start = ContinuousClock.now
        var target = ringCount.value + records
        _ = try testRun(try transport.programFD("to_ringbuf"), repeat: Int32(records))
        ringRates.append(Double(records) / (try secondsUntil(target, of: { ringCount.value }, since: start)))
        start = ContinuousClock.now
        target = perfCount.value + records
        _ = try testRun(try transport.programFD("to_perf"), repeat: Int32(records))
        perfRates.append(Double(records) / (try secondsUntil(target, of: { perfCount.value }, since: start)))
    }
    return (ringRates, perfRates)
}

@main
struct Bench {
    static func main() async throws {
        let tag = String(UInt32.random(in: 0...0xFFFF), radix: 16)
        let stack = try BenchStack(name: "log")
        var links: [String] = []
        defer {
            stack.stop()
            for link in links { try? shell(["ip", "link", "del", link]) }
        }
        let scratch = stack.scratch, bpffsRoot = stack.bpffsRoot
        let common = stack.pathFlags
        func spawn(_ name: String, _ arguments: [String]) throws { try stack.spawn(name, arguments) }
        try spawn("pcn-core", common + ["--bpf-dir", repository.appendingPathComponent("bpf").path, "--service-dir", repository.appendingPathComponent("Tests/Fixtures/bpf").path])
        let bus = BusClient(socketPath: scratch + "/run/bus.sock", name: "bench", logger: quiet)
        bus.start()
        guard await bus.waitUntilRegistered(timeout: .seconds(20)) else { throw BenchError("pcn-core did not come up") }
        func core(_ method: String, _ body: [String: Any]) async throws {
            _ = try await bus.request("core", method: method, payload: Array(try JSONSerialization.data(withJSONObject: body)), timeout: .seconds(60))
        }

        let forward = "return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);"
        let plain = "#include <pcn/cube.h>\nstatic __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {\n    \(forward)\n}\n"
        let logged = """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
                pcn_log(ctx, LOG_DEBUG, "packet of %u bytes on port %u, mark %x", md->packet_len, md->in_port, md->md[0]);
                \(forward)
            }
            """
        var entries: [String: Int32] = [:]
        for (cube, code) in [("plain", plain), ("logged", logged)] {
            let (a, b) = ("pcnl\(tag)\(cube.prefix(1))i", "pcnl\(tag)\(cube.prefix(1))o")
            try shell(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            links.append(a)
            try await core("cube.create", ["name": cube, "service": "testfwd"])
            for port in ["p0", "p1"] { try await core("port.add", ["cube": cube, "port": port]) }
            try await core("port.set-peer", ["cube": cube, "port": "p0", "peer": a])
            try await core("port.set-peer", ["cube": cube, "port": "p1", "peer": b])
            try await core("cube.reload", ["name": cube, "index": 0, "code": code])
            entries[cube] = try BPFObject.openPinnedProgram("\(bpffsRoot)/netdevs/\(a)/ingress")
        }

        // Disabled: the statement is below the cube's level (INFO).
        var plainRuns: [Double] = [], disabledRuns: [Double] = []
        for _ in 1...rounds {
            plainRuns.append(try testRun(entries["plain"]!, repeat: 1_000_000))
            disabledRuns.append(try testRun(entries["logged"]!, repeat: 1_000_000))
        }
        print("TC, BPF_PROG_TEST_RUN, 64-byte frame, median of \(rounds) interleaved runs")
        print(String(format: "  plain cube                       %6.1f ns", median(plainRuns)))
        print(String(format: "  with pcn_log below its level     %6.1f ns", median(disabledRuns)))

        // Enabled, drained by pcn-logd.
        let logFile = scratch + "/log/pcn.log"
        try spawn("pcn-logd", common + ["--no-stdout"])
        try await core("cube.set-loglevel", ["name": "logged", "level": "DEBUG"])
        let batch: Int32 = 20_000
        var plainSmall: [Double] = [], enabledRuns: [Double] = []
        for _ in 1...rounds {
            let before = lineCount(logFile)
            plainSmall.append(try testRun(entries["plain"]!, repeat: batch))
            enabledRuns.append(try testRun(entries["logged"]!, repeat: batch))
            _ = try secondsUntil(before + Int(batch), of: { lineCount(logFile) }, since: .now)
        }
        print(String(format: "  plain cube (runs of %d)       %6.1f ns", batch, median(plainSmall)))
        print(String(format: "  with pcn_log enabled             %6.1f ns", median(enabledRuns)))
        guard let sample = (try String(contentsOfFile: logFile, encoding: .utf8)).split(separator: "\n").last(where: { $0.contains("packet of") }) else {
            throw BenchError("pcn-logd wrote no datapath line")
        }
        print("  a line: \(sample)")

        // pcn-logd's drain rate.
        var drainRates: [Double] = []
        for _ in 1...3 {
            let before = lineCount(logFile)
            let start = ContinuousClock.now
            _ = try testRun(entries["logged"]!, repeat: 60_000)
            let seconds = try secondsUntil(before + 60_000, of: { lineCount(logFile) }, since: start)
            drainRates.append(60_000 / seconds)
        }
        print(String(format: "  pcn-logd drains %.0f lines/s (median of 3 bursts of 60,000)", median(drainRates)))

        // The transports.
        guard let clang = BPFCompiler.locateClang() else { throw BenchError("no clang on PATH") }
        let compiler = BPFCompiler(clang: clang, includeDirectory: repository.appendingPathComponent("bpf/include").path,
                                   cacheDirectory: scratch + "/cache", logger: quiet)
        let (ringRates, perfRates) = try measureTransports(try compiler.compile(file: repository.appendingPathComponent("bench/log/bpf/transport.c").path, name: "transport"))
        print(String(format: "  transport: ring buffer %.0f records/s, perf buffer %.0f records/s (50,000 records, median of 5)",
                     median(ringRates), median(perfRates)))
        print(String(format: "RESULT disabled_extra_ns=%.1f enabled_extra_ns=%.1f drained_lines_s=%.0f ringbuf_records_s=%.0f perfbuf_records_s=%.0f",
                     median(disabledRuns) - median(plainRuns), median(enabledRuns) - median(plainSmall), median(drainRates),
                     median(ringRates), median(perfRates)))
        bus.stop()
    }
}

import BenchSupport
import BPFKit
import CLibbpfShims
import DatapathKit
import Foundation
import Logging

/// packetcapture's cost and throughput with real frames through veth.
///
/// Path: an XDP live-frames generator (BPF_PROG_TEST_RUN, repeat + batch) redirects 64-byte UDP frames
/// into `<p>g`, they arrive on its peer `<p>i`, a helloworld cube forwards them out of `<p>o` (its peer
/// `<p>x` drops them). The capture cube is attached to the cube's port on `<p>i`.
///
/// * `nomatch_extra_ns`: run time of `<p>i`'s TC entry program (BPF_PROG_TEST_RUN, 7 × 200,000 runs (median), the
///   whole chain tail-called included) with a capture whose filter matches nothing, minus the same
///   path without the capture; alternated 15 times, median of the differences. `live_nomatch_extra_ns`
///   is the same under the generator's traffic (kernel.bpf_stats_enabled), noisier.
/// * `dynmon_extra_ns`: the same for a dynmon cube whose code counts every packet in an array.
/// * `captured_pps`: packets written to the pcap file per second with the filter `all`, against the
///   frames the path carried per second without a capture (`baseline_pps`), same generator.
@main
struct BenchCapture {
    static let prefix = "pcb\(String(UInt16.random(in: 0...0xfff), radix: 16))"

    static func main() async {
        do {
            try await measure()
        } catch {
            FileHandle.standardError.write(Data("bench-capture: \(error)\n".utf8))
            cleanUp()
            exit(1)
        }
        cleanUp()
    }

    static func cleanUp() {
        for link in ["g", "o"] { _ = try? run(["ip", "link", "del", prefix + link]) }
        _ = try? run(["sysctl", "-q", "kernel.bpf_stats_enabled=0"])
    }

    /// The run time and run count of the TC ingress program on `device` (bpftool, stats enabled).
    static func programStats(_ device: String) throws -> (ns: Double, count: Double) {
        let net = try JSONSerialization.jsonObject(with: Data(try run(["bpftool", "net", "show", "dev", device, "-j"]).utf8)) as? [[String: Any]]
        let tc = net?.first?["tc"] as? [[String: Any]] ?? []
        guard let id = tc.first(where: { $0["kind"] as? String == "clsact/ingress" })?["id"] as? Int else {
            throw BenchError("no TC ingress program on \(device): \(tc)")
        }
        let prog = try JSONSerialization.jsonObject(with: Data(try run(["bpftool", "prog", "show", "id", "\(id)", "-j"]).utf8)) as? [String: Any]
        return (Double(prog?["run_time_ns"] as? Int ?? 0), Double(prog?["run_cnt"] as? Int ?? 0))
    }

    /// A generator thread sending until `stop` is set; returns when started.
    final class Generator: @unchecked Sendable {
        let program: Int32
        let frame: [UInt8]
        private let lock = NSLock()
        private var stopping = false
        private let done = DispatchSemaphore(value: 0)

        init(program: Int32, frame: [UInt8]) {
            self.program = program
            self.frame = frame
        }

        func start() {
            let thread = Thread { [self] in
                while !lock.withLock({ stopping }) {
                    let result = frame.withUnsafeBytes { pcn_xdp_live_frames(program, $0.baseAddress, UInt32($0.count), 1 << 18, 64) }
                    if result != 0 { FileHandle.standardError.write(Data("generator: \(result)\n".utf8)); break }
                }
                done.signal()
            }
            thread.start()
        }

        func stop() {
            lock.withLock { stopping = true }
            done.wait()
        }
    }

    static func measure() async throws {
        let repository = repositoryRoot()
        let stack = try BenchStack(name: "capture")
        defer { stack.stop() }
        let apiPort = 19_000 + Int.random(in: 0...999)
        try stack.startDaemons(apiPort: apiPort, services: ["packetcapture", "helloworld", "dynmon"], repository: repository)
        let rest = BenchREST(port: apiPort)
        try await rest.waitFor("GET", "/packetcapture")
        try await rest.waitFor("GET", "/helloworld")
        try await rest.waitFor("GET", "/dynmon")

        let g = prefix + "g", i = prefix + "i", o = prefix + "o", x = prefix + "x"
        try run(["ip", "link", "add", g, "type", "veth", "peer", "name", i])
        try run(["ip", "link", "add", o, "type", "veth", "peer", "name", x])
        for device in [g, i, o, x] { try run(["ip", "link", "set", device, "up"]) }
        // Frames XDP redirects into a veth reach its peer only with GRO on there (MACHINE-NOTES).
        try run(["ethtool", "-K", i, "gro", "on"])
        try await rest.call("POST", "/helloworld/h1", #"{"action":"FORWARD","ports":[{"name":"in","peer":"\#(i)"},{"name":"out","peer":"\#(o)"}]}"#)

        // The generator: an XDP program redirecting every frame to <p>g.
        guard let clang = BPFCompiler.locateClang() else { throw BenchError("no clang on PATH") }
        let compiler = BPFCompiler(clang: clang, includeDirectory: repository.appendingPathComponent("bpf/include").path,
                                   cacheDirectory: stack.scratch + "/cache", logger: Logger(label: "bench"))
        let ifindex = if_nametoindex(g)
        let source = """
            #include <linux/bpf.h>
            #include <bpf/bpf_helpers.h>
            SEC("xdp") int generate(struct xdp_md *ctx) { return bpf_redirect(\(ifindex), 0); }
            char LICENSE[] SEC("license") = "GPL";
            """
        let object = try BPFObject(path: try compiler.compile(sourceText: source, name: "generator"))
        try object.load()
        var frame: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]
        frame += [0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0, 10, 240, 0, 1, 10, 240, 0, 2]
        frame += [0x30, 0x39, 0x00, 0x35, 0, 30, 0, 0] + [UInt8](repeating: 0x61, count: 22)
        let generator = Generator(program: try object.programFD("generate"), frame: frame)

        try await rest.call("POST", "/packetcapture/pc1", #"{"filter":"icmp and host 10.99.99.99","capture":"INGRESS","networkmode":true}"#)
        func attached(_ on: Bool, cube: String = "pc1") async throws {
            try await rest.call("POST", on ? "/attach" : "/detach", on ? #"{"cube":"\#(cube)","port":"h1:in"}"# : #"{"cube":"\#(cube)"}"#)
            // Settle: pcn-core's reconcile and the cube-host's apply are done before anything is timed.
            try await Task.sleep(for: .seconds(1))
        }

        // The same, precisely: BPF_PROG_TEST_RUN of <p>i's entry program (the whole chain, tail calls
        // included) on the generator's frame, 10^6 runs each, with and without the capture, alternated.
        func testRun() throws -> Double {
            let fd = try BPFObject.openPinnedProgram(stack.bpffsRoot + "/netdevs/\(i)/ingress")
            defer { close(fd) }
            var runs: [Double] = []
            for _ in 0..<7 {
                var retval: UInt32 = 0, duration: UInt32 = 0
                let result = frame.withUnsafeBytes { pcn_prog_test_run(fd, $0.baseAddress, UInt32($0.count), 200_000, &retval, &duration) }
                guard result == 0 else { throw BenchError("test run of \(i)'s entry: \(result)") }
                runs.append(Double(duration))
            }
            return median(runs)
        }
        /// 15 alternated pairs (A-B, then B-A) of the path without and with `cube` attached.
        func alternated(_ cube: String) async throws -> (plain: [Double], extra: [Double]) {
            var plain: [Double] = [], extra: [Double] = []
            for rep in 0..<15 {
                var without = 0.0, with = 0.0
                if rep % 2 == 0 {
                    without = try testRun()
                    try await attached(true, cube: cube)
                    with = try testRun()
                } else {
                    with = try testRun()
                    try await attached(false, cube: cube)
                    without = try testRun()
                }
                plain.append(without)
                extra.append(with - without)
            }
            try await attached(false, cube: cube)
            return (plain, extra)
        }
        let (runPlain, runExtra) = try await alternated("pc1")
        print(String(format: "test run: path %.1f ns, a non-matching capture adds %.1f ns (median of 15; each: %@)", median(runPlain), median(runExtra), runExtra.map { String(Int($0)) }.joined(separator: " ")))

        // dynmon counting every packet (one array increment), measured the same way.
        let counter = #"BPF_ARRAY(packets, u64, 1); static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) { u32 zero = 0; u64 *count = bpf_map_lookup_elem(&packets, &zero); if (count) __sync_fetch_and_add(count, 1); return RX_OK; }"#
        let dynmonBody = try JSONSerialization.data(withJSONObject: ["dataplane-config": ["ingress-path": ["code": counter, "metric-configs": [["name": "packets", "map-name": "packets"]]]]])
        try await rest.call("POST", "/dynmon/d1", String(decoding: dynmonBody, as: UTF8.self))
        let dynmonExtra = try await alternated("d1").extra
        print(String(format: "test run: dynmon counting every packet adds %.1f ns (median of 15; each: %@)", median(dynmonExtra), dynmonExtra.map { String(Int($0)) }.joined(separator: " ")))

        try run(["sysctl", "-q", "kernel.bpf_stats_enabled=1"])
        generator.start()
        defer { generator.stop() }
        try await Task.sleep(for: .seconds(1))

        // 1. The cost of an attached capture whose filter matches nothing, under traffic.
        func perPacket() async throws -> (ns: Double, pps: Double) {
            let before = try programStats(i), start = ContinuousClock.now
            try await Task.sleep(for: .seconds(2))
            let after = try programStats(i), elapsed = seconds(ContinuousClock.now - start)
            return ((after.ns - before.ns) / max(1, after.count - before.count), (after.count - before.count) / elapsed)
        }
        var without: [Double] = [], with: [Double] = [], extra: [Double] = [], baselinePPS: [Double] = []
        for rep in 0..<7 {
            // A-B then B-A, so a drift of the machine does not favour either.
            var plain: (ns: Double, pps: Double), captured: (ns: Double, pps: Double)
            if rep % 2 == 0 {
                plain = try await perPacket()
                try await attached(true)
                captured = try await perPacket()
            } else {
                captured = try await perPacket()
                try await attached(false)
                plain = try await perPacket()
            }
            without.append(plain.ns)
            with.append(captured.ns)
            extra.append(captured.ns - plain.ns)
            baselinePPS.append(plain.pps)
            print(String(format: "path %.1f ns/packet, with a non-matching capture %.1f ns (%.0f pps)", plain.ns, captured.ns, plain.pps))
        }

        if without.count % 2 == 1 { try await attached(false) }


        // 2. Everything captured into a file.
        let file = stack.scratch + "/all.pcap"
        try await rest.call("PATCH", "/packetcapture/pc1", #"{"filter":"all","networkmode":false,"dump":"\#(file)","snaplen":128}"#)
        func counters() async throws -> (captured: Double, lost: Double) {
            let stats = try JSONSerialization.jsonObject(with: Data(try await rest.call("GET", "/packetcapture/pc1/stats").utf8)) as? [String: Any]
            return (Double(stats?["captured-packets"] as? String ?? "") ?? 0, Double(stats?["lost-packets"] as? String ?? "") ?? 0)
        }
        try await rest.call("POST", "/attach", #"{"cube":"pc1","port":"h1:in"}"#)
        try await Task.sleep(for: .seconds(1))
        var capturedPPS: [Double] = [], lostPPS: [Double] = []
        for _ in 0..<3 {
            let before = try await counters(), start = ContinuousClock.now
            try await Task.sleep(for: .seconds(3))
            let after = try await counters(), elapsed = seconds(ContinuousClock.now - start)
            capturedPPS.append((after.captured - before.captured) / elapsed)
            lostPPS.append((after.lost - before.lost) / elapsed)
            print(String(format: "captured %.0f pps into %@ (%.0f pps found the ring full)", capturedPPS.last!, file, lostPPS.last!))
        }
        try await rest.call("POST", "/detach", #"{"cube":"pc1"}"#)
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        print("pcap file: \(size / 1_000_000) MB")

        print(String(format: "RESULT captured_pps=%.0f nomatch_extra_ns=%.1f dynmon_extra_ns=%.1f baseline_pps=%.0f path_ns=%.1f live_nomatch_extra_ns=%.1f lost_pps=%.0f",
                     median(capturedPPS), median(runExtra), median(dynmonExtra), median(baselinePPS), median(runPlain), median(extra), median(lostPPS)))
    }
}

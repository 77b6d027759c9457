import Foundation
import IPC
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// pcn_log from real packets to the lines pcn-logd writes.
final class DatapathLogTests: CoreTestCase {
    var logd: Child?

    override func tearDown() {
        logd?.killAndWait(SIGTERM)
        super.tearDown()
    }

    private var logFile: String { directory + "/log/pcn.log" }

    private func startLogd() throws {
        try FileManager.default.createDirectory(atPath: directory + "/log", withIntermediateDirectories: true)
        logd = try Child("pcn-logd", ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state",
                                      "--log-dir", directory + "/log", "--no-stdout", "--log-level", "info"])
    }

    /// The file's lines holding `text`, without the time each starts with (`[YYYY-MM-DD HH:MM:SS.mmm] `).
    private func lines(containing text: String) -> [String] {
        rawLines(containing: text).map { line in
            line.wholeMatch(of: /\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (.*)/).map { String($0.1) } ?? "no time: " + line
        }
    }

    private func rawLines(containing text: String) -> [String] {
        ((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).filter { $0.contains(text) }
    }

    /// The size of the cube's MASTER after the verifier: what `bpftool prog show` reports.
    private func translatedLength(_ cube: String) throws -> Int {
        let result = try runCommand("/usr/sbin/bpftool", ["-j", "prog", "show", "pinned", bpffsRoot + "/cubes/\(cube)/ingress"])
        let info = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(info?["bytes_xlated"] as? Int, result.stdout + result.stderr)
    }

    static let echoLogger = """
        #include <pcn/cube.h>
        static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
            unsigned char *data = pcn_data(ctx);
            if (data + 42 <= (unsigned char *)pcn_data_end(ctx) && data[12] == 0x08 && data[13] == 0 && data[23] == 1 && data[34] == 8) {
                __u32 source, destination;
                __u16 sequence;
                __builtin_memcpy(&source, data + 26, 4);
                __builtin_memcpy(&destination, data + 30, 4);
                __builtin_memcpy(&sequence, data + 40, 2);
                pcn_log(ctx, LOG_INFO, "echo from %M %I to %I seq %P", pcn_mac(data + 6), source, destination, sequence);
                pcn_log(ctx, LOG_INFO, "ttl %u, %d bytes, %s", data[22], md->packet_len);
                pcn_log(ctx, LOG_DEBUG, "debug: %x", data[22]);
            }
            return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
        }
        """

    func testLinesCarryAddressesPortsAndIntegersAndFollowTheLevel() async throws {
        let (a, _, veth2) = try await hostsJoined(subnet: 11, cubes: 1)
        try startLogd()
        try await core("cube.reload", ["name": "c1", "index": "0", "code": Self.echoLogger].json)
        let mac = try network.exec(a, ["cat", "/sys/class/net/\(network.prefix)an/address"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.11.2", count: 3))
        let expected = (1...3).map { "[testfwd] [c1] [INFO] echo from \(mac) 10.200.11.1 to 10.200.11.2 seq \($0)" }
        try await eventually { self.lines(containing: "echo from").count >= 3 && self.lines(containing: "ttl").count >= 3 }
        XCTAssertEqual(lines(containing: "echo from"), expected)
        // Polycube's layout: the local time to the millisecond first, then service, cube, level.
        let today = try runCommand("/usr/bin/date", ["+%Y-%m-%d"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(rawLines(containing: "echo from").allSatisfy { $0.hasPrefix("[\(today) ") }, "\(rawLines(containing: "echo from"))")
        // %s is not a conversion pcn_log has: the line shows it rather than guessing.
        XCTAssertEqual(lines(containing: "ttl"), Array(repeating: "[testfwd] [c1] [INFO] ttl 64, 98 bytes, %s?", count: 3))
        XCTAssertEqual(lines(containing: "debug:"), [], "below the cube's level (INFO)")

        // WARN: both statements are removed from the program, and the lines stop.
        let atInfo = try translatedLength("c1")
        try await core("cube.set-loglevel", ["name": "c1", "level": "warn"])
        let atWarn = try translatedLength("c1")
        XCTAssertLessThan(atWarn, atInfo, "the verifier did not remove the disabled statements")
        XCTAssertTrue(try network.ping(from: a, to: "10.200.11.2", count: 2))
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(lines(containing: "echo from").count, 3)

        // DEBUG: both come back, the debug one too (0x40: the TTL byte, in hex).
        try await core("cube.set-loglevel", ["name": "c1", "level": "DEBUG"])
        XCTAssertGreaterThan(try translatedLength("c1"), atInfo)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.11.2", count: 2))
        try await eventually { self.lines(containing: "debug:").count >= 2 }
        XCTAssertEqual(lines(containing: "debug:").first, "[testfwd] [c1] [DEBUG] debug: 40")
        await expectFailure("cube.set-loglevel", ["name": "c1", "level": "LOUD"], containing: "not one of TRACE")
        let cubes = try await cubeList()
        XCTAssertEqual(cubes.first?["loglevel"] as? String, "DEBUG")

        // The daemons' own lines reach the same file, in the same format (pcn-core runs at WARN here).
        _ = try runCommand("/usr/bin/ip", ["link", "del", veth2])
        try await eventually { !self.lines(containing: "[pcn-core] [-] [WARN] netdev '\(veth2)' is gone").isEmpty }
    }

    func testKilledLogdDuringAFloodDisturbsNothingAndReportsTheLoss() async throws {
        let (a, _, _) = try await hostsJoined(subnet: 12, cubes: 1)
        try startLogd()
        // 32 records per packet: a few seconds of flood overrun the ring while pcn-logd is away.
        try await core("cube.reload", ["name": "c1", "index": "0", "code": """
            #include <pcn/cube.h>
            static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
            #pragma unroll
                for (int i = 0; i < 32; i++)
                    pcn_log(ctx, LOG_INFO, "packet of %u bytes, record %d", md->packet_len, i);
                return pcn_pkt_redirect(ctx, md, md->in_port == 0 ? 1 : 0);
            }
            """].json)
        XCTAssertTrue(try network.ping(from: a, to: "10.200.12.2", count: 1))
        try await eventually { !self.lines(containing: "packet of").isEmpty }
        let flood = Task.detached { [network] in
            try network.exec(a, ["ping", "-f", "-c", "20000", "-W", "1", "10.200.12.2"], timeout: 120)
        }
        try await Task.sleep(for: .milliseconds(300))
        logd?.killAndWait(SIGKILL)
        let result = try await flood.value
        XCTAssertTrue(result.stdout.contains("20000 packets transmitted, 20000 received"), "the flood through the cube lost packets: \(result.stdout)")
        try startLogd()
        try await eventually(timeout: 30) { !self.lines(containing: "datapath log records were lost").isEmpty }
        let report = lines(containing: "datapath log records were lost")
        XCTAssertEqual(report.count, 1, "\(report)")
        XCTAssertTrue(report[0].hasPrefix("[pcn-logd] [-] [WARN] "), report[0])
        // What waited in the ring was written once pcn-logd was back (the loss is reported first, the
        // writing goes on after it).
        try await eventually(timeout: 30) { self.lines(containing: "packet of").count > 10_000 }
        // pcn-core and the datapath went on as if nothing happened.
        XCTAssertTrue(try network.ping(from: a, to: "10.200.12.2", count: 2))
        try await core("ping", [:])
    }
}

import Foundation
import TestSupport
import XCTest

/// packetcapture with real packets: the filter runs in the kernel, what it matches is read back with
/// tcpdump and tshark from the pcap file and from the stream `pcnctl CUBE capture` writes.
final class PacketcaptureTests: ServiceStackTestCase {

    func testCaptureOnANetdevTC() async throws { try await captureOnNetdev(type: "TC", subnet: 233) }
    func testCaptureOnANetdevXDP() async throws { try await captureOnNetdev(type: "XDP_SKB", subnet: 234) }
    /// Native XDP on the veth for INGRESS, TC for EGRESS (what the host sends).
    func testCaptureOnANetdevXDPDRV() async throws { try await captureOnNetdev(type: "XDP_DRV", subnet: 236) }

    private var pcnctl: String { productsDirectory.appendingPathComponent("pcnctl").path }

    /// `tcpdump -r FILE -n -tt` lines (timestamp first), and tshark's frame length / captured length per packet.
    private func read(_ file: String) throws -> (lines: [String], lengths: [String]) {
        let dump = try runCommand("/usr/bin/tcpdump", ["-r", file, "-n", "-tt"])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        return try lengths(file, dump.stdout)
    }

    /// The number of packets in `file`, nil while it cannot be read whole (being written): for `eventually`.
    private func count(_ file: String) -> Int? {
        guard let dump = try? runCommand("/usr/bin/tcpdump", ["-r", file, "-n"]), dump.status == 0 else { return nil }
        return dump.stdout.split(separator: "\n").count
    }

    private func lengths(_ file: String, _ lines: String) throws -> (lines: [String], lengths: [String]) {
        let shark = try runCommand("/usr/bin/tshark", ["-r", file, "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len"])
        XCTAssertEqual(shark.status, 0, shark.stderr)
        return (lines.split(separator: "\n").map(String.init), shark.stdout.split(separator: "\n").map(String.init))
    }

    private func stats(_ cube: String) async throws -> [String: Any] {
        try await must("GET", "/packetcapture/\(cube)/stats") as? [String: Any] ?? [:]
    }

    private func captureOnNetdev(type: String, subnet: Int) async throws {
        let a = try network.host("a", address: "10.\(subnet).0.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.\(subnet).0.2/24", "dev", a.interface])
        let far = "10.\(subnet).0.1", near = "10.\(subnet).0.2"
        // XDP frames carry no pending checksum: the sender finishes its own (MACHINE-NOTES).
        if type == "XDP_DRV" { _ = try network.exec(a.namespace, ["ethtool", "-K", a.interface + "n", "tx", "off"]) }
        let file = directory + "/c1.pcap"
        try await must("POST", "/packetcapture/pc1", #"{"type":"\#(type)"}"#)
        try await must("POST", "/attach", #"{"cube":"pc1","port":"\#(a.interface)"}"#)
        try await must("PATCH", "/packetcapture/pc1", #"{"filter":"icmp and host \#(far)","capture":"BIDIRECTIONAL","dump":"\#(file)"}"#)

        // The stream: pcnctl writes pcap to a pipe that tcpdump reads, for the next 6 packets.
        let command = "\(pcnctl) --url http://127.0.0.1:\(rest.port) pc1 capture count=6 | /usr/bin/tcpdump -r - -n"
        async let streamed = onThread { try runCommand("/bin/sh", ["-c", command], timeout: 60) }
        try await Task.sleep(for: .seconds(1))
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 3))
        // TCP between the same hosts (refused at once): not ICMP, not captured.
        _ = try network.exec(a.namespace, ["nc", "-z", "-w", "1", near, "9"])
        try await eventually(timeout: 10) { (try await self.stats("pc1"))["captured-packets"] as? String == "6" }

        var captured = try read(file)
        XCTAssertEqual(captured.lines.count, 6, captured.lines.joined(separator: "\n"))
        // BIDIRECTIONAL: each request (in) followed by its reply (out), in order, whole frames of 98 bytes.
        for (index, line) in captured.lines.enumerated() {
            XCTAssertTrue(line.contains(index % 2 == 0 ? "\(far) > \(near): ICMP echo request" : "\(near) > \(far): ICMP echo reply"), line)
        }
        XCTAssertEqual(captured.lengths, Array(repeating: "98\t98", count: 6))
        // Wall-clock timestamps (the kernel stamps monotonic time; the control plane converts).
        let stamps = captured.lines.compactMap { Double($0.split(separator: " ").first ?? "") }
        XCTAssertEqual(stamps.count, 6)
        XCTAssertLessThan(abs(stamps[0] - Date().timeIntervalSince1970), 60, "\(stamps)")
        XCTAssertEqual(stamps, stamps.sorted())

        let stream = try await streamed
        XCTAssertEqual(stream.status, 0, stream.stderr)
        let streamLines = stream.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(streamLines.count, 6, "the stream carries the same 6 packets: \(stream.stdout) \(stream.stderr)")
        XCTAssertEqual(streamLines.map { $0.drop { $0 != " " } }, captured.lines.map { $0.drop { $0 != " " } }.map { Substring($0) },
                       "the stream and the file hold the same packets")

        // snaplen truncates what is kept; the length on the wire stays.
        try await must("PATCH", "/packetcapture/pc1", #"{"snaplen":40}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 1))
        try await eventually(timeout: 10) { (try await self.stats("pc1"))["captured-packets"] as? String == "8" }
        captured = try read(file)
        XCTAssertEqual(Array(captured.lengths.suffix(2)), ["98\t40", "98\t40"])

        // A bad filter: 400 with libpcap's message; the running filter stays and goes on capturing.
        let refused = try await rest.call("PATCH", "/packetcapture/pc1", #"{"filter":"icmp and and"}"#)
        XCTAssertEqual(refused.status, 400, refused.text)
        XCTAssertTrue(refused.text.contains("syntax error") && refused.text.contains("filter"), refused.text)
        let kept = try await must("GET", "/packetcapture/pc1/filter") as? String
        XCTAssertEqual(kept, "icmp and host \(far)")
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 1))
        try await eventually(timeout: 10) { (try await self.stats("pc1"))["captured-packets"] as? String == "10" }
        // Unfiltered by host: another filter is compiled and swapped in without a lost packet elsewhere.
        try await must("PATCH", "/packetcapture/pc1", #"{"filter":"udp","snaplen":262144}"#)
        _ = try network.exec(a.namespace, ["sh", "-c", "echo x | nc -u -w 1 \(near) 9"])
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 1))
        try await eventually(timeout: 10) { (try await self.stats("pc1"))["captured-packets"] as? String == "11" }
        XCTAssertTrue(try read(file).lines.last?.contains("UDP") ?? false)

        // Detached, forwarding is untouched and nothing more is captured.
        try await must("POST", "/detach", #"{"cube":"pc1"}"#)
        XCTAssertTrue(try network.ping(from: a.namespace, to: near, count: 2))
        let after = try await stats("pc1")
        XCTAssertEqual(after["captured-packets"] as? String, "11")
        let bad = try await rest.call("PATCH", "/packetcapture/pc1", #"{"capture":"SIDEWAYS"}"#)
        XCTAssertEqual(bad.status, 400, bad.text)
        try await must("DELETE", "/packetcapture/pc1")
    }

    /// On a router port: what enters the router there. A burst while the control plane is stopped
    /// overflows the ring: every matched packet is either captured or counted lost. A cube-host killed
    /// with -9 continues the same file after its restart, packets that came meanwhile included.
    func testCaptureOnARouterPortBurstAndRestart() async throws {
        let hosts = try routedHosts(2, subnet: 235)
        try await router("r1", type: "TC", hosts: hosts, subnet: 235)
        let file = directory + "/r1p1.pcap"
        try await must("POST", "/packetcapture/pc2", #"{"filter":"icmp","capture":"INGRESS","dump":"\#(file)"}"#)
        try await must("POST", "/attach", #"{"cube":"pc2","port":"r1:p1"}"#)
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 3))
        try await eventually(timeout: 10) { (try await self.stats("pc2"))["captured-packets"] as? String == "3" }
        var lines = try read(file).lines
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines.allSatisfy { $0.contains("\(hosts[0].address) > \(hosts[1].address): ICMP echo request") }, "\(lines)")

        // kill -9 of the cube-host; pings while it is down wait in the ring and reach the file after.
        kill9("cube-host/packetcapture")
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 2), "capture is down, forwarding is not")
        try startCubeHost("packetcapture")
        try await eventually(timeout: 20) { self.count(file) == 5 }
        lines = try read(file).lines
        XCTAssertTrue(lines.allSatisfy { $0.contains("ICMP echo request") }, "\(lines)")

        // A burst while the control plane is stopped: the 16 MiB ring holds ~10,000 records of 1.4 KB.
        signal("cube-host/packetcapture", SIGSTOP)
        let flood = try network.exec(hosts[0].namespace, ["ping", "-f", "-c", "16000", "-s", "1400", "-W", "1", hosts[1].address], timeout: 120)
        signal("cube-host/packetcapture", SIGCONT)
        let summary = flood.stdout.split(separator: "\n").first { $0.contains("packets transmitted") } ?? ""
        let numbers = summary.split(separator: " ").compactMap { Int($0) }
        XCTAssertEqual(numbers.count >= 2 ? numbers[0] : 0, 16000, flood.stdout)
        let received = numbers.count >= 2 ? numbers[1] : 0
        try await eventually(timeout: 30) {
            let stats = try await self.stats("pc2")
            let captured = Int(stats["captured-packets"] as? String ?? "") ?? 0, lost = Int(stats["lost-packets"] as? String ?? "") ?? 0
            // Counted since the restart: the 2 from the ring and the burst.
            return captured + lost >= received + 2 && lost > 0
        }
        let stats = try await stats("pc2")
        let captured = Int(stats["captured-packets"] as? String ?? "") ?? 0, lost = Int(stats["lost-packets"] as? String ?? "") ?? 0
        XCTAssertLessThanOrEqual(captured + lost, 16000 + 2, "\(stats)")
        XCTAssertGreaterThan(captured, 5000, "the ring held thousands while the reader was stopped: \(stats)")
        XCTAssertGreaterThan(lost, 0, "\(stats)")
        let metrics = try await rest.call("GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"packetcapture_lost_packets_total{cube="pc2",service="packetcapture"} \#(lost)"#), metrics)
        // The file: the 3 from before the restart, and all captured since (the 2 from the ring among them).
        try await eventually(timeout: 20) { self.count(file) == 3 + captured }
        XCTAssertTrue(try network.ping(from: hosts[0].namespace, to: hosts[1].address, count: 2))
    }
}

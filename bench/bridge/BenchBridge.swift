// bench/bridge: eight hosts (namespaces) on one bridge, built in turn as (1) a bridge cube (TC),
// (2) the same cube in XDP_SKB, (3) a Linux bridge, on the same veths; variants alternate within
// each round, medians of rounds:
// - UDP packets per second from host a to host b (iperf3, 64-byte datagrams at full speed) and one
//   iperf3 TCP flow's Gbit/s;
// - flood latency: the average round trip of an ARP request (a broadcast reaching all eight hosts)
//   and its answer, arping from a to the last host;
// - tagged: a and b on two bridges joined by a link, as two bridge cubes with the link a trunk
//   carrying their VLAN tagged, the same cubes with the link untagged, and two Linux bridges. This
//   kernel has no VLAN filtering in its bridge, no 802.1Q devices and no tc vlan action: Linux cannot
//   tag here, so its two bridges pass the frames untagged;
// - pbforwarder: packets per second a -> b through 10 and through 1,000 rules, the forwarding rules
//   last.
//
// iperf3 tops out near 0.1 Mpps here (MACHINE-NOTES): a packets-per-second ratio near 1 says the
// bridge costs no more than the generator allows to see, not that it is only as fast.
//
// Run as root, after `swift build -c release`: .build/release/bench-bridge
// Last line: RESULT bridge_vs_linux_pps=… bridge_xdp_vs_linux_pps=… flood_latency_ratio=… pbf_1k_over_10=…
// (and tagged_vs_linux_pps, tcp_gbps_ratio and the figures they come from)
import BenchSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

let repository = repositoryRoot()
let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 5
let duration = ProcessInfo.processInfo.environment["BENCH_SECONDS"] ?? "3"

@main
struct Bench {
    static func main() async throws {
        let tag = "pbb\(getpid() % 10_000)"
        let hosts = ["a", "b", "c", "d", "e", "f", "g", "h"].map { tag + $0 }
        let (a, b) = (hosts[0], hosts[1])
        let linux = tag + "br", linux2 = tag + "bs", trunk = (tag + "ta", tag + "tb")
        let stack = try BenchStack(name: "bridge")
        defer {
            for host in hosts { _ = try? run(["ip", "netns", "del", host]) }
            for device in [linux, linux2, trunk.0] { _ = try? run(["ip", "link", "del", device]) }
            stack.stop()
        }
        for (index, host) in hosts.enumerated() {
            try namespaceHost(host, address: "10.216.0.\(index + 1)/24")
            // TCP through an XDP redirect needs checksums done by the sender (MACHINE-NOTES); the same for every variant.
            try run(["ip", "netns", "exec", host, "ethtool", "-K", host + "n", "tx", "off"])
        }
        try run(["ip", "link", "add", trunk.0, "type", "veth", "peer", "name", trunk.1])
        for end in [trunk.0, trunk.1] { try run(["ip", "link", "set", end, "up"]) }

        let port = 20_100 + Int(getpid() % 90)
        try stack.startDaemons(apiPort: port, services: ["bridge", "pbforwarder"], repository: repository)
        let rest = BenchREST(port: port)
        try await rest.waitFor("GET", "/bridge")
        try await rest.waitFor("GET", "/pbforwarder")

        enum Variant: String, CaseIterable { case cube, cubeXDP, linux }
        func build(_ variant: Variant) async throws {
            switch variant {
            case .cube, .cubeXDP:
                let ports = hosts.map { #"{"name":"\#($0)","peer":"\#($0)"}"# }.joined(separator: ",")
                try await rest.call("POST", "/bridge/\(tag)", #"{"type":"\#(variant == .cube ? "TC" : "XDP_SKB")","ports":[\#(ports)]}"#)
            case .linux:
                try run(["ip", "link", "add", linux, "type", "bridge"])
                for host in hosts { try run(["ip", "link", "set", host, "master", linux]) }
                try run(["ip", "link", "set", linux, "up"])
            }
        }
        func tear(_ variant: Variant) async throws {
            switch variant {
            case .cube, .cubeXDP: try await rest.call("DELETE", "/bridge/\(tag)")
            case .linux: try run(["ip", "link", "del", linux])
            }
        }
        /// Average ARP round trip in µs, a to the last host.
        func floodLatency() throws -> Double {
            let text = try run(["ip", "netns", "exec", a, "arping", "-c", "50", "-W", "0.02", "-i", a + "n", "10.216.0.\(hosts.count)"])
            guard let line = text.split(separator: "\n").first(where: { $0.contains("rtt min/avg/max") }),
                  let numbers = line.split(separator: "=").last?.split(separator: "/"), numbers.count >= 2,
                  let average = Double(numbers[1].trimmingCharacters(in: .whitespaces)) else {
                throw BenchError("arping printed no round trip: \(text.suffix(300))")
            }
            return line.contains(" ms") ? average * 1000 : average
        }

        var pps: [Variant: [Double]] = [:], gbps: [Variant: [Double]] = [:], latency: [Variant: [Double]] = [:]
        for round in 0..<rounds {
            for variant in round % 2 == 0 ? Variant.allCases : Variant.allCases.reversed() {
                try await build(variant)
                usleep(500_000)
                latency[variant, default: []].append(try floodLatency())
                pps[variant, default: []].append(try iperf3(from: a, to: b, address: "10.216.0.2", tcp: false, seconds: duration))
                gbps[variant, default: []].append(try iperf3(from: a, to: b, address: "10.216.0.2", tcp: true, seconds: duration) / 1e9)
                try await tear(variant)
            }
        }

        // Tagged: a and b on two bridges, the trunk between them carrying VLAN 10.
        enum Tagged: CaseIterable { case cubes, cubesUntagged, linux }
        func buildTagged(_ variant: Tagged) async throws {
            switch variant {
            case .cubes, .cubesUntagged:
                let link = variant == .cubes ? #""mode":"trunk","trunk":{"allowed":[{"vlanid":10}],"native-vlan-enabled":false}"#
                    : #""access":{"vlanid":10}"#
                for (name, host, end) in [(tag + "x", a, trunk.0), (tag + "y", b, trunk.1)] {
                    try await rest.call("POST", "/bridge/\(name)", #"{"ports":[{"name":"h","peer":"\#(host)","access":{"vlanid":10}},{"name":"t","peer":"\#(end)",\#(link)}]}"#)
                }
            case .linux:
                for (bridge, host, end) in [(linux, a, trunk.0), (linux2, b, trunk.1)] {
                    try run(["ip", "link", "add", bridge, "type", "bridge"])
                    for device in [host, end] { try run(["ip", "link", "set", device, "master", bridge]) }
                    try run(["ip", "link", "set", bridge, "up"])
                }
            }
        }
        func tearTagged(_ variant: Tagged) async throws {
            switch variant {
            case .cubes, .cubesUntagged: for name in [tag + "x", tag + "y"] { try await rest.call("DELETE", "/bridge/\(name)") }
            case .linux: for bridge in [linux, linux2] { try run(["ip", "link", "del", bridge]) }
            }
        }
        var tagged: [Tagged: [Double]] = [:]
        for round in 0..<rounds {
            for variant in round % 2 == 0 ? Tagged.allCases : Tagged.allCases.reversed() {
                try await buildTagged(variant)
                usleep(500_000)
                tagged[variant, default: []].append(try iperf3(from: a, to: b, address: "10.216.0.2", tcp: false, seconds: duration))
                try await tearTagged(variant)
            }
        }

        // pbforwarder: 10 and 1,000 rules, the two that forward a <-> b last.
        func rules(_ count: Int) -> String {
            var list = (0..<(count - 2)).map { #"{"id":\#($0),"src_ip":"10.200.\#($0 / 250).\#($0 % 250 + 1)","action":"DROP"}"# }
            list.append(#"{"id":\#(count - 2),"in_port":"a","action":"FORWARD","out_port":"b"}"#)
            list.append(#"{"id":\#(count - 1),"in_port":"b","action":"FORWARD","out_port":"a"}"#)
            return list.joined(separator: ",")
        }
        var pbf: [Int: [Double]] = [:]
        for round in 0..<rounds {
            for count in round % 2 == 0 ? [10, 1000] : [1000, 10] {
                try await rest.call("POST", "/pbforwarder/\(tag)p", #"{"ports":[{"name":"a","peer":"\#(a)"},{"name":"b","peer":"\#(b)"}],"rules":[\#(rules(count))]}"#)
                usleep(300_000)
                pbf[count, default: []].append(try iperf3(from: a, to: b, address: "10.216.0.2", tcp: false, seconds: duration))
                try await rest.call("DELETE", "/pbforwarder/\(tag)p")
            }
        }

        let m = { (values: [Double]?) in median(values ?? [0]) }
        for variant in Variant.allCases {
            print(String(format: "%@: %.0f pps, %.2f Gbit/s TCP, ARP round trip %.0f µs", variant.rawValue, m(pps[variant]), m(gbps[variant]), m(latency[variant])))
        }
        print(String(format: "two bridges: cubes with a tagged trunk %.0f pps, untagged %.0f pps, Linux (untagged) %.0f pps; pbforwarder: 10 rules %.0f pps, 1,000 rules %.0f pps",
                     m(tagged[.cubes]), m(tagged[.cubesUntagged]), m(tagged[.linux]), m(pbf[10]), m(pbf[1000])))
        print(String(format: "RESULT bridge_vs_linux_pps=%.2f bridge_xdp_vs_linux_pps=%.2f flood_latency_ratio=%.2f pbf_1k_over_10=%.2f tagged_vs_linux_pps=%.2f tag_cost=%.2f tcp_gbps_ratio=%.2f tcp_xdp_gbps_ratio=%.2f bridge_pps=%.0f bridge_xdp_pps=%.0f linux_pps=%.0f",
                     m(pps[.cube]) / m(pps[.linux]), m(pps[.cubeXDP]) / m(pps[.linux]), m(latency[.cube]) / m(latency[.linux]),
                     m(pbf[1000]) / m(pbf[10]), m(tagged[.cubes]) / m(tagged[.linux]), m(tagged[.cubes]) / m(tagged[.cubesUntagged]), m(gbps[.cube]) / m(gbps[.linux]),
                     m(gbps[.cubeXDP]) / m(gbps[.linux]), m(pps[.cube]), m(pps[.cubeXDP]), m(pps[.linux])))
    }
}

// bench/firewall: UDP packets per second forwarded by Linux from namespace a to namespace b through
// the root namespace, filtered on the way by (1) nothing, (2) the firewall attached to a's root-side
// veth (TC; its INGRESS chain), (3) the same rules in an iptables chain the FORWARD chain jumps to
// for a's traffic, (4) the same rules in an nftables forward chain; for 10, 100, 1,000 and 10,000
// rules, the matching one last (N-1 DROP rules for other /32 sources, then ACCEPT a's source;
// default DROP). Variants alternate within each round; medians of rounds. Also: rules loaded per
// second by the firewall's `batch` (10,000 at once) and `append` (BENCH_APPENDS one by one).
//
// The traffic is iperf3 UDP with 64-byte payloads at full speed (`-b 0`): iperf3 itself tops out
// near 0.1 Mpps here (MACHINE-NOTES), so a filter costs something visible only once its per-packet
// cost nears 10 µs; the ratios say how much each one slows the same path.
//
// NAT: the same path with a's traffic masqueraded as it leaves through b's root-side veth, by the
// nat cube attached there (TC) and by iptables MASQUERADE; UDP packets per second (as above) and
// TCP Gbit/s (one iperf3 flow), alternating within each round.
//
// Run as root, after `swift build -c release`: .build/release/bench-firewall
// Last line: RESULT fw_vs_iptables_1k=… fw_vs_nft_1k=… fw_10k_over_100=… nat_vs_masquerade=… append_per_s=…
// nat_tcp_vs_masquerade=… (and the figures they come from)
import BenchSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

let repository = repositoryRoot()
let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 3
let appends = Int(ProcessInfo.processInfo.environment["BENCH_APPENDS"] ?? "") ?? 2000
let duration = ProcessInfo.processInfo.environment["BENCH_SECONDS"] ?? "3"
/// Rule counts measured (comma-separated); the RESULT line needs 100, 1000 and 10000.
let counts = (ProcessInfo.processInfo.environment["BENCH_COUNTS"] ?? "10,100,1000,10000").split(separator: ",").compactMap { Int($0) }

@main
struct Bench {
    static func main() async throws {
        let tag = "pbf\(getpid() % 10_000)"
        let (a, b) = (tag + "a", tag + "b")
        let stack = try BenchStack(name: "firewall")
        var forwarding = "0"
        defer {
            _ = try? run(["iptables", "-D", "FORWARD", "-i", a, "-j", tag])
            _ = try? run(["iptables", "-F", tag])
            _ = try? run(["iptables", "-X", tag])
            _ = try? run(["nft", "delete", "table", "inet", tag])
            _ = try? run(["iptables", "-t", "nat", "-D", "POSTROUTING", "-o", b, "-j", "MASQUERADE"])
            _ = try? run(["ip", "netns", "del", a])
            _ = try? run(["ip", "netns", "del", b])
            _ = try? run(["sysctl", "-qw", "net.ipv4.conf.\(a).forwarding=\(forwarding)"])
            stack.stop()
        }
        // Two namespaces routed through the root namespace (forwarding on for these two veths only).
        for (name, subnet) in [(a, 1), (b, 2)] {
            try namespaceHost(name, address: "10.211.\(subnet).1/24", gateway: "10.211.\(subnet).254")
            try run(["ip", "addr", "add", "10.211.\(subnet).254/24", "dev", name])
        }
        forwarding = try run(["sysctl", "-n", "net.ipv4.conf.\(a).forwarding"]).trimmingCharacters(in: .whitespacesAndNewlines)
        for name in [a, b] { try run(["sysctl", "-qw", "net.ipv4.conf.\(name).forwarding=1"]) }

        let port = 19_500 + Int(getpid() % 400)
        try stack.startDaemons(apiPort: port, services: ["firewall", "nat"], repository: repository)
        let rest = BenchREST(port: port)
        @discardableResult
        func call(_ method: String, _ path: String, _ body: String = "") async throws -> String { try await rest.call(method, path, body) }
        try await rest.waitFor("POST", "/firewall/bench", #"{"conntrack":"OFF"}"#)
        try await rest.waitFor("POST", "/nat/benchnat", #"{"rule":{"masquerade":{"enabled":true}}}"#)

        func ruleSources(_ count: Int) -> [String] {
            (0..<(count - 1)).map { "10.200.\($0 / 250).\($0 % 250 + 1)" } + ["10.211.1.1"]
        }
        func firewallRules(_ count: Int) -> String {
            let rules = ruleSources(count).enumerated().map { index, source in
                #"{"id":\#(index),"src":"\#(source)","action":"\#(index == count - 1 ? "ACCEPT" : "DROP")"}"#
            }
            return #"{"name":"INGRESS","default":"DROP","rule":[\#(rules.joined(separator: ","))]}"#
        }

        /// Received packets per second of a UDP flood from a to b.
        func pps() throws -> Double { try iperf3(tcp: false) }

        /// UDP: received packets per second; TCP: received bits per second.
        func iperf3(tcp: Bool) throws -> Double {
            try BenchSupport.iperf3(from: a, to: b, address: "10.211.2.1", tcp: tcp, seconds: duration)
        }

        enum Variant: String, CaseIterable { case none, firewall, iptables, nftables }
        func install(_ variant: Variant, rules count: Int) async throws {
            let sources = ruleSources(count)
            switch variant {
            case .none: break
            case .firewall:
                try await call("PUT", "/firewall/bench/chain/INGRESS", firewallRules(count))
                try await call("POST", "/attach", #"{"cube":"bench","port":"\#(a)"}"#)
            case .iptables:
                var script = "*filter\n:\(tag) - [0:0]\n"
                for (index, source) in sources.enumerated() { script += "-A \(tag) -s \(source)/32 -j \(index == count - 1 ? "ACCEPT" : "DROP")\n" }
                script += "-A \(tag) -j DROP\n-A FORWARD -i \(a) -j \(tag)\nCOMMIT\n"
                try run(["iptables-restore", "--noflush"], input: script)
            case .nftables:
                var script = "table inet \(tag) {\n chain rules {\n"
                for (index, source) in sources.enumerated() { script += "  ip saddr \(source) \(index == count - 1 ? "accept" : "drop")\n" }
                script += "  drop\n }\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  iifname \"\(a)\" jump rules\n }\n}\n"
                try run(["nft", "-f", "-"], input: script)
            }
        }
        func remove(_ variant: Variant) async throws {
            switch variant {
            case .none: break
            case .firewall: try await call("POST", "/detach", #"{"cube":"bench"}"#)
            case .iptables:
                try run(["iptables", "-D", "FORWARD", "-i", a, "-j", tag])
                try run(["iptables", "-F", tag])
                try run(["iptables", "-X", tag])
            case .nftables: try run(["nft", "delete", "table", "inet", tag])
            }
        }

        var results: [Int: [Variant: Double]] = [:]
        for count in counts {
            var samples: [Variant: [Double]] = [:]
            for _ in 0..<rounds {
                for variant in Variant.allCases {
                    try await install(variant, rules: count)
                    samples[variant, default: []].append(try pps())
                    try await remove(variant)
                }
            }
            results[count] = samples.mapValues(median)
            print(String(format: "%6d rules: none %8.0f  firewall %8.0f  iptables %8.0f  nftables %8.0f  packets/s",
                         count, results[count]![.none]!, results[count]![.firewall]!, results[count]![.iptables]!, results[count]![.nftables]!))
        }

        // Loading: 10,000 rules in one batch, then BENCH_APPENDS appends one by one.
        try await call("PUT", "/firewall/bench/chain/INGRESS", #"{"name":"INGRESS","default":"ACCEPT"}"#)
        let batch = (0..<10_000).map { #"{"id":\#($0),"operation":"APPEND","src":"10.201.\#($0 / 250).\#($0 % 250 + 1)","action":"DROP"}"# }
        var start = ContinuousClock.now
        try await call("POST", "/firewall/bench/chain/INGRESS/batch", #"{"rules":[\#(batch.joined(separator: ","))]}"#)
        let batchSeconds = seconds(ContinuousClock.now - start)
        start = ContinuousClock.now
        for index in 0..<appends {
            try await call("POST", "/firewall/bench/chain/INGRESS/append", #"{"src":"10.202.\#(index / 250).\#(index % 250 + 1)","action":"DROP"}"#)
        }
        let appendRate = Double(appends) / seconds(ContinuousClock.now - start)
        print(String(format: "10,000 rules in one batch: %.2f s; %d appends: %.0f per second (onto 10,000 rules)", batchSeconds, appends, appendRate))

        // NAT: masquerade of a's traffic leaving through b's root-side veth, by the nat cube attached
        // there (TC) and by iptables MASQUERADE (with conntrack, which it needs), alternating.
        enum Translation: String, CaseIterable { case nat, masquerade }
        var translated: [Translation: (udp: [Double], tcp: [Double])] = [:]
        for _ in 0..<rounds {
            for variant in Translation.allCases {
                switch variant {
                case .nat:
                    try await call("POST", "/attach", #"{"cube":"benchnat","port":"\#(b)"}"#)
                    let learned = Date().addingTimeInterval(15)
                    while !(try await call("GET", "/nat/benchnat/rule/masquerade")).contains("10.211.2.254") {
                        guard Date() < learned else { throw BenchError("the nat cube did not learn \(b)'s address") }
                        usleep(100_000)
                    }
                case .masquerade:
                    try run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", b, "-j", "MASQUERADE"])
                }
                let udp = try iperf3(tcp: false), tcp = try iperf3(tcp: true)
                translated[variant, default: ([], [])].udp.append(udp)
                translated[variant, default: ([], [])].tcp.append(tcp)
                switch variant {
                case .nat: try await call("POST", "/detach", #"{"cube":"benchnat"}"#)
                case .masquerade: try run(["iptables", "-t", "nat", "-D", "POSTROUTING", "-o", b, "-j", "MASQUERADE"])
                }
            }
        }
        let natUDP = median(translated[.nat]!.udp), masqueradeUDP = median(translated[.masquerade]!.udp)
        let natTCP = median(translated[.nat]!.tcp), masqueradeTCP = median(translated[.masquerade]!.tcp)
        print(String(format: "masquerade: nat %8.0f packets/s %6.2f Gbit/s   iptables MASQUERADE %8.0f packets/s %6.2f Gbit/s",
                     natUDP, natTCP / 1e9, masqueradeUDP, masqueradeTCP / 1e9))

        let r = results
        guard [100, 1000, 10_000].allSatisfy({ r[$0] != nil }) else { return }
        print(String(format: "RESULT fw_vs_iptables_1k=%.2f fw_vs_nft_1k=%.2f fw_10k_over_100=%.2f nat_vs_masquerade=%.2f append_per_s=%.0f nat_tcp_vs_masquerade=%.2f iptables_10k_over_100=%.2f nft_10k_over_100=%.2f batch10k_s=%.2f fw_pps_1k=%.0f iptables_pps_1k=%.0f nft_pps_1k=%.0f none_pps=%.0f nat_pps=%.0f masquerade_pps=%.0f nat_gbps=%.2f masquerade_gbps=%.2f",
                     r[1000]![.firewall]! / r[1000]![.iptables]!, r[1000]![.firewall]! / r[1000]![.nftables]!,
                     r[100]![.firewall]! / r[10_000]![.firewall]!, natUDP / masqueradeUDP, appendRate, natTCP / masqueradeTCP,
                     r[100]![.iptables]! / r[10_000]![.iptables]!, r[100]![.nftables]! / r[10_000]![.nftables]!,
                     batchSeconds, r[1000]![.firewall]!, r[1000]![.iptables]!, r[1000]![.nftables]!, r[1000]![.none]!,
                     natUDP, masqueradeUDP, natTCP / 1e9, masqueradeTCP / 1e9))
    }
}

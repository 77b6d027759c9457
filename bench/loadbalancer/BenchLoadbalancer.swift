// bench/loadbalancer: new TCP connections per second and UDP packets per second from a client
// namespace to a service VIP whose backends are in another namespace, through (1) lbrp (TC) between
// the client's veth and the root namespace, and (2) the same services the way kube-proxy's iptables
// mode writes them (a KUBE-SERVICES chain with one rule per service jumping to a chain of
// `statistic --mode random` rules, each to a DNAT), with Linux forwarding both ways; for 10, 100 and
// 1,000 services, the client hitting the last one. Variants alternate within each round; medians.
// Also, from the tables lbrp writes (Maglev): the fraction of slots (new flows) that move when a
// 5th backend joins 4, and the largest share error for weights 1:2:3.
//
// Connections come from one Python client (connect, close, again), packets from iperf3 (64-byte
// UDP): both top out on their own cost near the rates seen here, so the figures say how much each
// balancer slows the same path, not what either could reach.
//
// Run as root, after `swift build -c release`: .build/release/bench-loadbalancer
// Last line: RESULT lb_vs_iptables_1k=… lb_1k_over_10=… remapped=… weight_error=… (and the rates)
import BenchSupport
import Foundation
import Services
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

let repository = repositoryRoot()
let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 3
let duration = ProcessInfo.processInfo.environment["BENCH_SECONDS"] ?? "3"
let counts = (ProcessInfo.processInfo.environment["BENCH_COUNTS"] ?? "10,100,1000").split(separator: ",").compactMap { Int($0) }

/// accept ADDR PORT: accepts and closes, forever. connect VIP PORT SECONDS: connections one after
/// another; prints how many per second.
let tool = """
    import socket, sys, time
    if sys.argv[1] == "accept":
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(4096)
        while True:
            c, _ = s.accept(); c.close()
    else:
        vip, port, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]); n = 0; end = time.time() + seconds; start = time.time()
        while time.time() < end:
            c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
            try:
                c.settimeout(1); c.connect((vip, port)); n += 1
            except OSError:
                pass
            c.close()
        print("%.1f" % (n / (time.time() - start)))
    """

@main
struct Bench {
    static func main() async throws {
        let tag = "pblb\(getpid() % 10_000)"
        let (a, b, backendLink, gatewayLink) = (tag + "a", tag + "b", tag + "l", tag + "g")
        let stack = try BenchStack(name: "loadbalancer")
        let scratch = stack.scratch
        var servers: [Process] = []
        defer {
            for server in servers where server.isRunning { server.terminate(); server.waitUntilExit() }
            _ = try? run(["iptables", "-t", "nat", "-F", tag])
            _ = try? run(["iptables", "-t", "nat", "-D", "PREROUTING", "-i", a, "-j", tag])
            _ = try? run(["sh", "-c", "iptables-save -t nat | grep -o '^:\(tag)[A-Z0-9-]*' | tr -d : | while read c; do iptables -t nat -F $c; done; iptables-save -t nat | grep -o '^:\(tag)[A-Z0-9-]*' | tr -d : | while read c; do iptables -t nat -X $c; done"])
            _ = try? run(["ip", "netns", "del", a])
            _ = try? run(["ip", "netns", "del", b])
            _ = try? run(["ip", "link", "del", backendLink])
            stack.stop()
        }
        try tool.write(toFile: scratch + "/lb.py", atomically: true, encoding: .utf8)
        // Client a (10.214.1.1) and backends b (10.214.2.11-13) around the root namespace.
        for (name, subnet) in [(a, 1), (b, 2)] {
            try namespaceHost(name, address: "10.214.\(subnet).1/24", gateway: "10.214.\(subnet).254")
        }
        try run(["ip", "addr", "add", "10.214.2.254/24", "dev", b])
        for host in 11...13 { try run(["ip", "-n", b, "addr", "add", "10.214.2.\(host)/24", "dev", b + "n"]) }
        // lbrp's BACKEND port reaches the root namespace through its own veth pair.
        try run(["ip", "link", "add", backendLink, "type", "veth", "peer", "name", gatewayLink])
        for link in [backendLink, gatewayLink] { try run(["ip", "link", "set", link, "up"]) }
        for link in [a, b, gatewayLink] { try run(["sysctl", "-qw", "net.ipv4.conf.\(link).forwarding=1"]) }
        for host in 11...13 {
            for (executable, arguments) in [("python3", [scratch + "/lb.py", "accept", "10.214.2.\(host)", "8080"]), ("iperf3", ["-s", "-B", "10.214.2.\(host)", "-p", "5201"])] {
                let server = Process()
                server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                server.arguments = ["ip", "netns", "exec", b, executable] + arguments
                server.standardOutput = FileHandle.nullDevice
                server.standardError = FileHandle.nullDevice
                try server.run()
                servers.append(server)
            }
        }

        let port = 19_900 + Int(getpid() % 90)
        try stack.startDaemons(apiPort: port, services: ["lbrp"], repository: repository)
        let rest = BenchREST(port: port)
        @discardableResult
        func call(_ method: String, _ path: String, _ body: String = "") async throws -> String { try await rest.call(method, path, body) }
        try await rest.waitFor("GET", "/lbrp")

        /// Service i: VIP 10.215.x.y port 80 (TCP) and 5201 (TCP and UDP: iperf3), three backends
        /// for connections; iperf3's control and data must meet one server, so 5201 has one.
        func vip(_ index: Int) -> String { "10.215.\(index / 250).\(index % 250 + 1)" }
        let backends = (11...13).map { "10.214.2.\($0)" }

        enum Variant: String, CaseIterable { case lbrp, iptables }
        func install(_ variant: Variant, services count: Int) async throws {
            switch variant {
            case .lbrp:
                try run(["ip", "addr", "add", "10.214.1.254/24", "dev", gatewayLink])
                let services = (0..<count).flatMap { index -> [String] in
                    let pool = backends.map { #"{"ip":"\#($0)","port":8080}"# }.joined(separator: ",")
                    return [#"{"vip":"\#(vip(index))","vport":80,"proto":"TCP","backend":[\#(pool)]}"#,
                            #"{"vip":"\#(vip(index))","vport":5201,"proto":"ALL","backend":[{"ip":"\#(backends[0])","port":5201}]}"#]
                }
                try await call("POST", "/lbrp/bench", #"""
                    {"ports":[{"name":"fe","type":"FRONTEND","peer":"\#(a)"},{"name":"be","type":"BACKEND","peer":"\#(backendLink)"}],"service":[\#(services.joined(separator: ","))]}
                    """#)
            case .iptables:
                try run(["ip", "addr", "add", "10.214.1.254/24", "dev", a])
                var script = "*nat\n:\(tag) - [0:0]\n"
                var rules = ""
                for index in 0..<count {
                    let service = "\(tag)S\(index)", data = "\(tag)D\(index)"
                    script += ":\(service) - [0:0]\n:\(data) - [0:0]\n"
                    rules += "-A \(tag) -d \(vip(index))/32 -p tcp --dport 80 -j \(service)\n"
                    rules += "-A \(tag) -d \(vip(index))/32 -p tcp --dport 5201 -j \(data)\n"
                    rules += "-A \(tag) -d \(vip(index))/32 -p udp --dport 5201 -j \(data)\n"
                    for (position, backend) in backends.enumerated() {
                        let left = backends.count - position
                        let pick = left > 1 ? "-m statistic --mode random --probability \(String(format: "%.5f", 1.0 / Double(left))) " : ""
                        rules += "-A \(service) \(pick)-p tcp -j DNAT --to-destination \(backend):8080\n"
                    }
                    rules += "-A \(data) -j DNAT --to-destination \(backends[0])\n"   // the port stays 5201
                }
                script += rules + "-A PREROUTING -i \(a) -j \(tag)\nCOMMIT\n"
                try run(["iptables-restore", "--noflush"], input: script)
            }
            try run(["ip", "-n", a, "neigh", "flush", "all"])
        }
        func remove(_ variant: Variant) async throws {
            switch variant {
            case .lbrp:
                try await call("DELETE", "/lbrp/bench")
                try run(["ip", "addr", "del", "10.214.1.254/24", "dev", gatewayLink])
            case .iptables:
                try run(["iptables", "-t", "nat", "-D", "PREROUTING", "-i", a, "-j", tag])
                let chains = try run(["sh", "-c", "iptables-save -t nat | grep -o '^:\(tag)[A-Z0-9]*' | tr -d :"]).split(separator: "\n")
                for chain in chains { try run(["iptables", "-t", "nat", "-F", String(chain)]) }
                for chain in chains { try run(["iptables", "-t", "nat", "-X", String(chain)]) }
                try run(["ip", "addr", "del", "10.214.1.254/24", "dev", a])
            }
        }
        func connections(_ target: String) throws -> Double {
            Double(try run(["ip", "netns", "exec", a, "python3", scratch + "/lb.py", "connect", target, "80", duration]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        func packets(_ target: String) throws -> Double {
            let text = try run(["ip", "netns", "exec", a, "iperf3", "-c", target, "-p", "5201", "-u", "-b", "0", "-l", "64", "-t", duration, "-J"])
            guard let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let end = json["end"] as? [String: Any], let sum = end["sum"] as? [String: Any],
                  let sent = sum["packets"] as? Double ?? (sum["packets"] as? Int).map(Double.init), let seconds = sum["seconds"] as? Double else {
                throw BenchError("iperf3 printed no summary: \(text.prefix(300))")
            }
            let lost = sum["lost_packets"] as? Double ?? (sum["lost_packets"] as? Int).map(Double.init) ?? 0
            return (sent - lost) / seconds
        }

        var rates: [Int: [Variant: (connections: Double, packets: Double)]] = [:]
        for count in counts {
            var samples: [Variant: (connections: [Double], packets: [Double])] = [:]
            for _ in 0..<rounds {
                for variant in Variant.allCases {
                    try await install(variant, services: count)
                    let target = vip(count - 1)
                    let connected = try connections(target), sent = try packets(target)
                    samples[variant, default: ([], [])].connections.append(connected)
                    samples[variant, default: ([], [])].packets.append(sent)
                    try await remove(variant)
                }
            }
            rates[count] = samples.mapValues { (median($0.connections), median($0.packets)) }
            print(String(format: "%5d services: lbrp %7.0f connections/s %8.0f packets/s   iptables %7.0f connections/s %8.0f packets/s",
                         count, rates[count]![.lbrp]!.connections, rates[count]![.lbrp]!.packets,
                         rates[count]![.iptables]!.connections, rates[count]![.iptables]!.packets))
        }

        // Maglev, as lbrp writes it: slots that move when a 5th backend joins 4; share error at 1:2:3.
        let four: [(name: String, weight: Int)] = (1...4).map { ("10.0.0.\($0):8080", 1) }
        let five = four + [(name: "10.0.0.5:8080", weight: 1)]
        let size = Maglev.size(backends: 5)
        let before = Maglev.table(four, size: size).map { four[$0].name }, after = Maglev.table(five, size: size).map { five[$0].name }
        let remapped = Double(zip(before, after).filter { $0 != $1 }.count) / Double(size)
        let weighted = Maglev.table([("a", 1), ("b", 2), ("c", 3)], size: Maglev.size(backends: 3))
        var weightError = 0.0
        for index in 0..<3 {
            let share = Double(weighted.filter { $0 == index }.count) / Double(weighted.count)
            let expected = Double(index + 1) / 6
            weightError = max(weightError, abs(share - expected) / expected)
        }
        print(String(format: "Maglev: %.3f of the slots move when a 5th backend joins 4 (ideal 0.200); largest share error at weights 1:2:3 %.3f", remapped, weightError))

        guard let last = counts.max(), let first = counts.min(), let high = rates[last], let low = rates[first] else { return }
        print(String(format: "RESULT lb_vs_iptables_1k=%.2f lb_1k_over_10=%.2f remapped=%.3f weight_error=%.3f lb_pps_vs_iptables_1k=%.2f iptables_1k_over_10=%.2f lb_cps_1k=%.0f iptables_cps_1k=%.0f lb_pps_1k=%.0f iptables_pps_1k=%.0f",
                     high[.lbrp]!.connections / high[.iptables]!.connections, low[.lbrp]!.connections / high[.lbrp]!.connections,
                     remapped, weightError, high[.lbrp]!.packets / high[.iptables]!.packets,
                     low[.iptables]!.connections / high[.iptables]!.connections,
                     high[.lbrp]!.connections, high[.iptables]!.connections, high[.lbrp]!.packets, high[.iptables]!.packets))
    }
}

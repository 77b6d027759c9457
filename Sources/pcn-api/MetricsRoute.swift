import Foundation
import Hummingbird
import IPC
import PCNProtocol
import NIOCore

/// `GET /polycube/v1/metrics`: every cube's counters, read from pcn-core, as OpenMetrics when the
/// client's `Accept` asks for it (a Prometheus server does), else as Prometheus text 0.0.4 (curl,
/// `promtool check metrics`, older scrapers).
struct MetricsRoute: Sendable {
    let core: CoreClient
    let engine: ConfigEngine

    enum Format {
        case openMetrics, text004

        init(accept: [String]) {
            self = accept.contains { $0.lowercased().contains("application/openmetrics-text") } ? .openMetrics : .text004
        }

        var contentType: String {
            switch self {
            case .openMetrics: return "application/openmetrics-text; version=1.0.0; charset=utf-8"
            case .text004: return "text/plain; version=0.0.4; charset=utf-8"
            }
        }
    }

    /// One metric family: `name` without the `_total` its counter samples carry.
    struct Family {
        var name: String
        var type: String
        var help: String
        var samples: [String]
    }

    func handle(accept: [String]) async -> Response {
        do {
            var stats: [(CubeDescription, CubeStats)] = []
            for cube in try await core.cubes() {
                stats.append((cube, try await core.call(CubeStatsQuery(name: cube.name), timeout: .seconds(10))))
            }
            let format = Format(accept: accept)
            let families = Self.families(stats, services: await engine.serviceMetrics(), texts: await engine.serviceMetricsTexts())
            return Response(status: .ok, headers: [.contentType: format.contentType],
                            body: .init(byteBuffer: ByteBuffer(string: Self.render(families, as: format))))
        } catch {
            return RestError.response(RestFailure(core: error))
        }
    }

    private static func label(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    /// The two formats differ only in the comment lines: Prometheus text names a counter family
    /// by its samples' name (`x_total`), calls `unknown` `untyped`, and has no `# EOF`.
    static func render(_ families: [Family], as format: Format) -> String {
        var out: [String] = []
        for family in families {
            var name = family.name, type = family.type
            if format == .text004 {
                if type == "counter" { name += "_total" }
                if type == "unknown" { type = "untyped" }
            }
            out.append("# TYPE \(name) \(type)")
            if !family.help.isEmpty { out.append("# HELP \(name) \(family.help)") }
            out.append(contentsOf: family.samples)
        }
        if format == .openMetrics { out.append("# EOF") }
        return out.joined(separator: "\n") + "\n"
    }

    private static func families(_ stats: [(CubeDescription, CubeStats)],
                                 services: [(metric: ServiceMetric, samples: [(cube: String, labels: [(String, String)], value: String)])],
                                 texts: [(service: String, cube: String, text: String)]) -> [Family] {
        var out: [Family] = []
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            let suffix = type == "counter" ? "_total" : ""
            out.append(Family(name: name, type: type, help: help, samples: samples.map { "\(name)\(suffix){\($0.0)} \($0.1)" }))
        }
        func cube(_ c: CubeDescription) -> String { "cube=\"\(label(c.name))\",service=\"\(label(c.service))\"" }
        family("pcn_cube_rx_packets", "counter", "Packets the cube received (all ports).", stats.map { (cube($0.0), "\($0.1.rxPackets)") })
        family("pcn_cube_rx_bytes", "counter", "Bytes the cube received.", stats.map { (cube($0.0), "\($0.1.rxBytes)") })
        family("pcn_cube_redirected_packets", "counter", "Packets the cube sent out of a port.", stats.map { (cube($0.0), "\($0.1.redirected)") })
        family("pcn_cube_passed_packets", "counter", "Packets the cube let go on (RX_OK).", stats.map { (cube($0.0), "\($0.1.passed)") })
        family("pcn_cube_slow_path_packets", "counter", "Packets the cube sent to its slow path.", stats.map { (cube($0.0), "\($0.1.toSlowPath)") })
        family("pcn_cube_drops", "counter", "Packets dropped, by reason (missed-tail-call included).",
               stats.flatMap { entry in entry.1.drops.sorted { $0.key < $1.key }.map { ("\(cube(entry.0)),reason=\"\($0.key)\"", "\($0.value)") } })
        family("pcn_cube_slow_path_queue_depth", "gauge", "Packet-in records waiting in pcn-core for the cube's slow path.",
               stats.map { (cube($0.0), "\($0.1.slowPathQueued)") })
        family("pcn_cube_slow_path_queue_dropped", "counter", "Packet-in records dropped because the queue was full.",
               stats.map { (cube($0.0), "\($0.1.slowPathDropped)") })
        let ports = stats.flatMap { entry in entry.1.ports.sorted { $0.key < $1.key }.map { (cube(entry.0) + ",port=\"\(label($0.key))\"", $0.value) } }
        family("pcn_port_rx_packets", "counter", "Packets received on the port.", ports.map { ($0.0, "\($0.1.rxPackets)") })
        family("pcn_port_rx_bytes", "counter", "Bytes received on the port.", ports.map { ($0.0, "\($0.1.rxBytes)") })
        family("pcn_port_tx_packets", "counter", "Packets sent out of the port.", ports.map { ($0.0, "\($0.1.txPackets)") })
        family("pcn_port_tx_bytes", "counter", "Bytes sent out of the port.", ports.map { ($0.0, "\($0.1.txBytes)") })
        // What the services' models declare (name-metric), labelled by the keys of the lists above.
        for (metric, samples) in services {
            family(metric.family, metric.kind.rawValue, label(metric.help.split(whereSeparator: \.isWhitespace).joined(separator: " ")), samples.map { sample in
                let keys = sample.labels.map { "\($0.0)=\"\(label($0.1))\"" }
                return ((["cube=\"\(label(sample.cube))\",service=\"\(label(metric.service))\""] + keys).joined(separator: ","), sample.value)
            })
        }
        // Families the services render themselves: merged across cubes, each sample labelled with its cube.
        var order: [String] = []
        var families: [String: (type: String, help: String, samples: [String])] = [:]
        for (service, cube, text) in texts {
            var current = ""
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ", maxSplits: 3).map(String.init)
                if words.count >= 3 && words[0] == "#" && (words[1] == "TYPE" || words[1] == "HELP") {
                    current = words[2]
                    if families[current] == nil { order.append(current); families[current] = ("unknown", "", []) }
                    if words[1] == "TYPE" { families[current]!.type = words.count > 3 ? words[3] : "unknown" }
                    else { families[current]!.help = words.count > 3 ? words[3] : "" }
                    continue
                }
                guard !line.hasPrefix("#"), !current.isEmpty else { continue }
                let labels = "cube=\"\(label(cube))\",service=\"\(label(service))\""
                let sample: String
                if let brace = line.firstIndex(of: "{") {
                    let rest = line[line.index(after: brace)...]
                    sample = line[..<brace] + "{" + labels + (rest.hasPrefix("}") ? "" : ",") + rest
                } else if let space = line.firstIndex(of: " ") {
                    sample = line[..<space] + "{" + labels + "}" + line[space...]
                } else { continue }
                families[current]!.samples.append(sample)
            }
        }
        for name in order {
            let family = families[name]!
            out.append(Family(name: name, type: family.type, help: family.help, samples: family.samples))
        }
        return out
    }
}

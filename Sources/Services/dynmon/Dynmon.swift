import BPFKit
import CBPF
import Foundation
import ServiceKit

/// dynmon: the user's eBPF C for ingress and egress, loaded as the cube's code (pcn-core compiles
/// and verifies it; an error names the line in `ingress-path/code` or `egress-path/code`), and the
/// maps it names exported as JSON shaped by their BTF types and as OpenMetrics.
public final class Dynmon: CubeService {
    public static let name = "dynmon"
    public init() {}

    public struct Config: Decodable {
        struct Dataplane: Decodable, Equatable {
            var ingress: Path?
            var egress: Path?
            enum CodingKeys: String, CodingKey { case ingress = "ingress-path", egress = "egress-path" }
        }
        struct Path: Decodable, Equatable {
            var name: String?
            var code: String?
            var metrics: [Metric]?
            enum CodingKeys: String, CodingKey { case name, code, metrics = "metric-configs" }
        }
        struct Metric: Decodable, Equatable {
            var name: String
            var map: String
            var options: Options?
            var openMetrics: OpenMetrics?
            enum CodingKeys: String, CodingKey { case name, map = "map-name", options = "extraction-options", openMetrics = "open-metrics-metadata" }
        }
        struct Options: Decodable, Equatable {
            var emptyOnRead: Bool?
            var swapOnRead: Bool?
            var perCPU: String?
            enum CodingKeys: String, CodingKey { case emptyOnRead = "empty-on-read", swapOnRead = "swap-on-read", perCPU = "per-cpu" }
        }
        struct OpenMetrics: Decodable, Equatable {
            var help: String?
            var type: String?
            var labels: [Label]?
        }
        struct Label: Decodable, Equatable {
            var name: String
            var value: String
        }
        var dataplane: Dataplane?
        enum CodingKeys: String, CodingKey { case dataplane = "dataplane-config" }
    }

    public static var bindings: [ConfigBinding<Dynmon>] {
        [.on(\.dataplane, apply: Dynmon.program)]
    }

    /// The maps a path reads with swap-on-read.
    static func swapped(_ path: Config.Path?) -> [String] {
        (path?.metrics ?? []).filter { $0.options?.swapOnRead == true }.map(\.map)
    }

    private static let swappable = "BPF_ARRAY|BPF_PERCPU_ARRAY|BPF_HASH|BPF_PERCPU_HASH|BPF_LRU_HASH|BPF_LRU_PERCPU_HASH"

    /// The user's code with each swap-on-read map declared twice behind a selector (dynmon.h's
    /// DYNMON_SWAP) and its name, from the declaration on, meaning the selected copy. The line count
    /// stays, so compiler messages keep naming the user's lines.
    static func withSwaps(_ code: String, maps: [String], direction: String) throws -> String {
        var found: [(map: String, range: Range<String.Index>)] = []
        for map in Set(maps).sorted() {
            let pattern = "\\b(\(swappable))\\s*\\(\\s*\(map)\\s*,([^;]*)\\)\\s*;"
            guard let range = code.range(of: pattern, options: .regularExpression) else {
                throw ServiceFailure.invalid(path: "dataplane-config/\(direction)/code",
                                             "swap-on-read of '\(map)' needs it declared with one of \(swappable.replacingOccurrences(of: "|", with: ", ")) (dynmon.h)")
            }
            found.append((map, range))
        }
        var code = code
        // From the last declaration up, so the lines counted before each are the user's own.
        for (map, range) in found.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) {
            let declaration = code[range]
            let open = declaration.firstIndex(of: "(")!
            let kind = declaration[..<open].trimmingCharacters(in: .whitespaces)
            let arguments = declaration[declaration.index(after: open)...].drop { $0 != "," }.dropFirst()
            let rest = arguments[..<arguments.lastIndex(of: ")")!]
            let line = code[..<range.lowerBound].reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
            let lineEnd = code[range.upperBound...].firstIndex(of: "\n") ?? code.endIndex
            // A directive needs a line of its own: the #define goes after the declaration's line, and
            // #line puts the numbering back.
            let define = "\n#define \(map) (*(typeof(\(map)__0) *)(dynmon_selected(&\(map)__select) ? (void *)&\(map)__1 : (void *)&\(map)__0))\n#line \(line + 1)"
            code.insert(contentsOf: define, at: lineEnd)
            code.replaceSubrange(range, with: "DYNMON_SWAP(\(kind), \(map), \(rest));")
        }
        return code
    }

    /// The cube's program: the ingress code in the ingress build, the egress code in the egress build
    /// (`#line` makes clang's messages name the user's own lines). nil: no code, every packet goes on.
    static func code(_ dataplane: Config.Dataplane?) throws -> String? {
        let ingress = try dataplane?.ingress?.code.map { try withSwaps($0, maps: swapped(dataplane?.ingress), direction: "ingress-path") }
        let egress = try dataplane?.egress?.code.map { try withSwaps($0, maps: swapped(dataplane?.egress), direction: "egress-path") }
        guard ingress != nil || egress != nil else { return nil }
        let pass = "static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) { return RX_OK; }"
        return """
            #include <pcn/cube.h>
            #include "dynmon.h"
            #ifdef PCN_EGRESS
            #line 1 "egress-path/code"
            \(egress ?? pass)
            #else
            #line 1 "ingress-path/code"
            \(ingress ?? pass)
            #endif

            """
    }

    public func validate(_ change: Change<Config>) throws {
        _ = try Self.code(change.config.dataplane)
        for (direction, path) in [("ingress-path", change.config.dataplane?.ingress), ("egress-path", change.config.dataplane?.egress)] {
            for metric in path?.metrics ?? [] where metric.options?.swapOnRead == true && metric.options?.emptyOnRead == true {
                throw ServiceFailure.invalid(path: "dataplane-config/\(direction)/metric-configs[name='\(metric.name)']/extraction-options",
                                             "give swap-on-read or empty-on-read, not both")
            }
        }
    }

    func program(_ change: Change<Config>) throws {
        change.cube.load(code: try Self.code(change.config.dataplane), blaming: "dataplane-config")
    }

    // MARK: - Reading the maps

    struct Reading {
        var json: Any
        /// (labels, value) per numeric leaf, for OpenMetrics.
        var samples: [(labels: [(String, String)], value: String)]
    }

    private static let hashTypes: Set<UInt32> = [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH].map(\.rawValue).reduce(into: []) { $0.insert($1) }
    private static let arrayTypes: Set<UInt32> = [BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY].map(\.rawValue).reduce(into: []) { $0.insert($1) }
    private static let queueTypes: Set<UInt32> = [BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK].map(\.rawValue).reduce(into: []) { $0.insert($1) }

    /// One map read as its metric configuration says (emptied or swapped out as asked).
    func read(_ metric: Config.Metric, on cube: Cube<Config>) throws -> Reading {
        var name = metric.map
        if metric.options?.swapOnRead == true {
            // Counting moves to the other copy; once the packets in flight are done with this one,
            // it is read and emptied whole.
            let selector = try cube.table(metric.map + "__select")
            let current = try selector.lookup(UInt32(0), as: UInt32.self) ?? 0
            try selector.update(UInt32(0), UInt32(1 - min(current, 1)))
            usleep(1_000)
            name = metric.map + "__\(min(current, 1))"
        }
        let map = try cube.table(name)
        let layout = cube.layout(of: name)
        let each = metric.options?.perCPU == "EACH"
        let take = metric.options?.swapOnRead == true || metric.options?.emptyOnRead == true
        // Without BTF (the kernel keeps none for queues and stacks) 1, 2, 4 or 8 bytes read as an
        // unsigned integer, anything else as its bytes.
        func decode(_ bytes: [UInt8], _ layout: TableLayout?) -> Any {
            let shape = layout ?? ([1, 2, 4, 8].contains(bytes.count) ? .integer(size: bytes.count, signed: false) : .bytes(size: bytes.count))
            return bytes.withUnsafeBytes { shape.decode($0) }
        }
        func value(_ copies: [[UInt8]]) -> Any {
            let decoded = copies.map { decode($0, layout.value) }
            if !map.isPerCPU { return decoded[0] }
            return each ? decoded : decoded.dropFirst().reduce(decoded[0]) { TableLayout.add($0, $1) }
        }
        var entries: [(key: Any?, value: Any)] = []
        let type = map.type.rawValue
        if Self.hashTypes.contains(type) {
            for key in try map.keys() {
                // Taken out atomically (empty-on-read: what the datapath adds after this starts anew).
                guard let copies = try map.values(at: key, andDelete: take) else { continue }
                entries.append((decode(key, layout.key), value(copies)))
            }
        } else if Self.arrayTypes.contains(type) {
            for index in 0..<map.maxEntries {
                let key = withUnsafeBytes(of: UInt32(index).littleEndian, Array.init)
                guard let copies = try map.values(at: key) else { continue }
                entries.append((NSNumber(value: index), value(copies)))
                if take { try map.zero(key: key) }
            }
        } else if Self.queueTypes.contains(type) {
            // Queues and stacks are read by taking their elements out.
            while entries.count < map.maxEntries, let copies = try map.values(at: nil, andDelete: true) {
                entries.append((nil, value(copies)))
            }
        } else {
            throw ServiceFailure.refused("metric '\(metric.name)': map '\(metric.map)' is of a type dynmon does not read (\(type))")
        }
        let json: [Any] = entries.map { entry in
            entry.key.map { ["key": $0, "value": entry.value] as [String: Any] } ?? entry.value
        }
        var samples: [(labels: [(String, String)], value: String)] = []
        for entry in entries {
            var keyLabels: [(String, String)] = []
            if let key = entry.key {
                let leaves = TableLayout.numericLeaves(key)
                keyLabels = leaves.map { ($0.path.isEmpty ? (Self.arrayTypes.contains(type) ? "index" : "key") : Self.labelName($0.path), $0.value.stringValue) }
            }
            let values = TableLayout.numericLeaves(entry.value)
            for leaf in values {
                let field = values.count > 1 ? [("value", leaf.path.joined(separator: "."))] : []
                samples.append((keyLabels + field, leaf.value.stringValue))
            }
        }
        return Reading(json: json, samples: samples)
    }

    private static func labelName(_ path: [String]) -> String {
        let joined = path.joined(separator: "_").map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" }
        let name = String(joined)
        return name.first?.isNumber == true ? "_" + name : name
    }

    private static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        guard let dataplane = cube.config?.dataplane else { return [:] }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        var metrics: [String: Any] = [:]
        var text: [String] = []
        for (list, path) in [("ingress-metrics", dataplane.ingress), ("egress-metrics", dataplane.egress)] {
            var rows: [[String: Any]] = []
            for metric in path?.metrics ?? [] {
                let reading: Reading
                do {
                    reading = try read(metric, on: cube)
                } catch {
                    rows.append(["name": metric.name, "value": (try? String(decoding: JSONSerialization.data(withJSONObject: ["error": "\(error)"]), as: UTF8.self)) ?? "", "timestamp": "\(now)"])
                    continue
                }
                let json = (try? JSONSerialization.data(withJSONObject: reading.json, options: [.sortedKeys])) ?? Data("[]".utf8)
                rows.append(["name": metric.name, "value": String(decoding: json, as: UTF8.self), "timestamp": "\(now)"])
                guard let meta = metric.openMetrics else { continue }
                let type = ["Counter": "counter", "Gauge": "gauge"][meta.type ?? ""] ?? "unknown"
                text.append("# TYPE \(metric.name) \(type)")
                if let help = meta.help { text.append("# HELP \(metric.name) \(Self.escape(help))") }
                let constant = (meta.labels ?? []).map { ($0.name, $0.value) }
                for sample in reading.samples {
                    let labels = (constant + sample.labels).map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
                    text.append("\(metric.name)\(type == "counter" ? "_total" : "")\(labels.isEmpty ? "" : "{\(labels)}") \(sample.value)")
                }
            }
            metrics[list] = rows
        }
        return ["metrics": metrics, "open-metrics": text.joined(separator: "\n")]
    }
}

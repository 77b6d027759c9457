import Foundation
import TestSupport
import XCTest

/// A REST fuzzer generated from the services' models (read from `/schema`): random methods on every
/// path of the tree, with values valid and invalid for each leaf's type, one writer and then several
/// at once, against real cube-hosts and a real pcn-core. Oracles: no 5xx but the documented ones
/// (503, 507); every refusal has a RESTCONF body; a refused write changes nothing (the datastore's
/// ETag stays); an accepted leaf write reads back; no component goes down. The seed is printed, and
/// `PCN_FUZZ_SEED` / `PCN_FUZZ_REQUESTS` replay or lengthen a run.
final class RestFuzzTests: ServiceStackTestCase {
    override class var startsStackInSetUp: Bool { false }
    static let fuzzedServices = ["router", "simplebridge", "helloworld", "ddosmitigator", "firewall", "pbforwarder"]

    /// A schema node and the REST path segments that lead to it (list keys to be filled).
    struct Node: @unchecked Sendable { // read only once built
        var segments: [Segment]
        var kind: String
        var type: String?
        var enums: [String]
        var config: Bool
        var children: [[String: Any]]
    }
    enum Segment { case member(String), keys([String]) }

    /// SplitMix64: reproducible from the seed.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    private var random = Random(state: 0)
    private var failures: [String] = []

    func testTheTreeWithGeneratedRequests() async throws {
        try await startStack(services: Self.fuzzedServices)
        let seed = ProcessInfo.processInfo.environment["PCN_FUZZ_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        let count = ProcessInfo.processInfo.environment["PCN_FUZZ_REQUESTS"].flatMap(Int.init) ?? 3000
        print("RestFuzzTests seed \(seed) (PCN_FUZZ_SEED=\(seed) replays it), \(count) requests")
        random = Random(state: seed)
        var catalog: [String: [Node]] = [:]
        for service in Self.fuzzedServices { catalog[service] = try await nodes(of: service) }
        let cubes = ["\(network.prefix)a", "\(network.prefix)b"]
        // Most requests go below a cube: each service starts with them (the fuzz may delete them).
        for service in Self.fuzzedServices {
            for cube in cubes { _ = try await rest.call("POST", "/\(service)/\(cube)", "{}") }
        }

        var statuses: [Int: Int] = [:]
        for _ in 0..<count {
            let service = random.pick(Self.fuzzedServices)
            let status = try await oneRequest(service: service, cube: random.pick(cubes), nodes: catalog[service]!, checked: true)
            statuses[status, default: 0] += 1
        }
        // Several writers at once, on their own cubes and on shared ones.
        let rest = self.rest, prefix = network.prefix
        let writers = (0..<4).map { index in
            let catalog = catalog
            return Task { [seed] () -> (seen: [Int: Int], failures: [String]) in
                var own = Random(state: seed &+ UInt64(index + 1))
                var seen: [Int: Int] = [:]
                var failures: [String] = []
                for _ in 0..<(count / 8) {
                    let service = own.pick(Self.fuzzedServices)
                    let cube = own.chance(50) ? "\(prefix)w\(index)" : cubes[0]
                    let (method, path, body) = Self.request(service: service, cube: cube, nodes: catalog[service]!, random: &own)
                    let answer = try await rest.call(method, path, body)
                    seen[answer.status, default: 0] += 1
                    if answer.status >= 500 && answer.status != 503 && answer.status != 507 {
                        failures.append("concurrent \(method) \(path) \(body.map { String($0.prefix(200)) } ?? ""): \(answer.status) \(answer.text.prefix(300))")
                    }
                }
                return (seen, failures)
            }
        }
        for writer in writers {
            let (seen, found) = try await writer.value
            for (status, n) in seen { statuses[status, default: 0] += n }
            for failure in found { record(failure) }
        }
        print("RestFuzzTests statuses: " + statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))

        // Nothing went down, and what is stored is what pcn-core has.
        let services = try await must("GET", "/services") as? [Any]
        XCTAssertEqual(services?.count, Self.fuzzedServices.count)
        let stored = try await storedCubes()
        let inCore = Set(((try await must("GET", "/cubes") as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String })
        XCTAssertEqual(stored, inCore, "the datastore and pcn-core disagree about the cubes")
        XCTAssertEqual(failures, [], "seed \(seed): \(failures.count) oracle failures")
    }

    private func record(_ failure: String) {
        if failures.count < 20 { failures.append(failure) }
    }

    private func storedCubes() async throws -> Set<String> {
        var names = Set<String>()
        for service in Self.fuzzedServices {
            let cubes = (try await rest.call("GET", "/\(service)")).json as? [[String: Any]] ?? []
            names.formUnion(cubes.compactMap { $0["name"] as? String })
        }
        return names
    }

    /// One request with the oracles that need the state around it.
    private func oneRequest(service: String, cube: String, nodes: [Node], checked: Bool) async throws -> Int {
        let (method, path, body) = Self.request(service: service, cube: cube, nodes: nodes, random: &random)
        let before = try await rest.call("GET", "/\(service)").headers["etag"]
        let answer = try await rest.call(method, path, body)
        let context = "\(method) \(path) \(body.map { String($0.prefix(200)) } ?? "")"
        if answer.status >= 500 && answer.status != 503 && answer.status != 507 {
            record("\(context): \(answer.status) \(answer.text.prefix(300))")
        } else if answer.status >= 500 {
            print("RestFuzzTests \(context): \(answer.status) \(answer.text.prefix(300))")
        }
        if answer.status >= 400 && method != "HEAD" && answer.errors.isEmpty {
            record("\(context): \(answer.status) without a RESTCONF error body: \(answer.text.prefix(200))")
        }
        let isWrite = ["POST", "PUT", "PATCH", "DELETE"].contains(method)
        if isWrite && answer.status >= 400 {
            let after = try await rest.call("GET", "/\(service)").headers["etag"]
            if after != before { record("\(context): refused (\(answer.status)) yet the datastore changed (\(before ?? "-") -> \(after ?? "-"))") }
        }
        if (method == "PUT" || method == "PATCH"), (200..<300).contains(answer.status), let body,
           let sent = try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]), !(sent is [String: Any]), !(sent is [Any]) {
            let read = try await rest.call("GET", path)
            if !Self.same(sent, read.json) { record("\(context): accepted, but reads back \(read.json.map { "\($0)" } ?? "nothing")") }
        }
        return answer.status
    }

    /// Values compared as the model stores them: enumerations in any case, numbers by value.
    static func same(_ sent: Any, _ read: Any?) -> Bool {
        guard let read else { return false }
        let a = "\(sent)", b = "\(read)"
        return a.caseInsensitiveCompare(b) == .orderedSame || Double(a).map { $0 == Double(b) } == true
    }

    // MARK: - Generating

    static func request(service: String, cube: String, nodes: [Node], random: inout Random) -> (String, String, String?) {
        let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        let method = random.pick(methods)
        // A third of the requests on the cube itself (create it, change its base leaves, delete it).
        if random.chance(30) {
            let body = random.chance(80) ? object(children: nodes.first?.children ?? [], random: &random) : junk(&random)
            return (method, "/\(service)/\(cube)", ["POST", "PUT", "PATCH"].contains(method) ? body : nil)
        }
        let node = random.pick(nodes)
        var path = "/\(service)/\(cube)"
        for segment in node.segments {
            switch segment {
            case .member(let name): path += "/" + name
            case .keys(let keys):
                if random.chance(15) { continue } // the list itself, without its keys
                for _ in keys { path += "/" + (keyValue(&random).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "x") }
            }
        }
        var body: String?
        if ["POST", "PUT", "PATCH"].contains(method) {
            switch node.kind {
            case "leaf": body = random.chance(90) ? leafValue(type: node.type, enums: node.enums, random: &random) : junk(&random)
            case "leaf-list": body = "[" + (0..<random.below(3)).map { _ in leafValue(type: node.type, enums: node.enums, random: &random) }.joined(separator: ",") + "]"
            default: body = random.chance(85) ? object(children: node.children, random: &random) : junk(&random)
            }
        }
        return (method, path, body)
    }

    static func keyValue(_ random: inout Random) -> String {
        random.pick(["p1", "p2", "10.0.0.0/24", "10.1.0.1/30", "1", "0", "INGRESS", "EGRESS", "00:11:22:33:44:55", "x y", "", "../..", String(repeating: "k", count: 40)])
    }

    static func junk(_ random: inout Random) -> String {
        random.pick(["", "{", "[1,2", "null", "\"\\u0000\"", "{\"a\":{\"b\":{\"c\":[{}]}}}", "1e999", "-0", "\"" + String(repeating: "z", count: 5000) + "\"", "[]", "{}", "true"])
    }

    /// A JSON value for a leaf: mostly of its type (in range and out of it), sometimes not.
    static func leafValue(type: String?, enums: [String], random: inout Random) -> String {
        if random.chance(10) { return random.pick(["\"\"", "null", "[]", "{}", "\"∆\"", "-1", "99999999999999999999"]) }
        if !enums.isEmpty {
            let chosen = random.pick(enums)
            return random.chance(80) ? "\"\(random.chance(30) ? chosen.lowercased() : chosen)\"" : "\"\(chosen)X\""
        }
        switch type ?? "" {
        case "boolean": return random.pick(["true", "false", "\"true\"", "\"yes\"", "1"])
        case "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "decimal64":
            return random.pick(["0", "1", "30", "255", "256", "65535", "65536", "4294967296", "-5", "\"12\"", "3.5"])
        case "ipv4-address", "ip-address", "ipv4-address-no-zone":
            return "\"" + random.pick(["10.0.0.1", "10.0.0.300", "1.2.3", "0.0.0.0", "255.255.255.255", "::1"]) + "\""
        case "ipv4-prefix", "interface-address", "ip-prefix":
            return "\"" + random.pick(["10.0.0.0/24", "10.0.0.1/24", "10.0.0.0/33", "10.0.0.0", "0.0.0.0/0", "10.1.0.1/30"]) + "\""
        case "mac-address":
            return "\"" + random.pick(["00:11:22:33:44:55", "02:00:00:00:00:0a", "00:11:22:33:44", "zz:11:22:33:44:55"]) + "\""
        default:
            return "\"" + random.pick(["p1", "veth-none", "abc", "", "r1:p1", "ABC", String(repeating: "s", count: 300)]) + "\""
        }
    }

    /// An object with some of a node's config leaves.
    static func object(children: [[String: Any]], random: inout Random) -> String {
        var members: [String] = []
        for child in children where child["config"] as? Bool == true && child["kind"] as? String == "leaf" && random.chance(40) {
            let name = child["name"] as? String ?? ""
            let value = name == "name" ? "\"\(keyValue(&random))\"" : leafValue(type: child["type"] as? String, enums: child["enum"] as? [String] ?? [], random: &random)
            members.append("\"\(name)\":\(value)")
        }
        if random.chance(10) { members.append("\"nosuch\":1") }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// Every node of a service's tree below the cube, from `/schema`.
    private func nodes(of service: String) async throws -> [Node] {
        var found: [Node] = []
        func walk(_ path: [String], _ segments: [Segment]) async throws {
            let answer = try await rest.call("GET", "/schema/\(service)" + path.map { "/" + $0 }.joined())
            let node = answer.json as? [String: Any] ?? [:]
            let children = node["children"] as? [[String: Any]] ?? []
            if !path.isEmpty {
                found.append(Node(segments: segments, kind: node["kind"] as? String ?? "", type: node["type"] as? String,
                                  enums: node["enum"] as? [String] ?? [], config: node["config"] as? Bool ?? true, children: children))
            } else {
                found.append(Node(segments: [], kind: "list", type: nil, enums: [], config: true, children: children))
            }
            for child in children {
                guard let name = child["name"] as? String, path.count < 6 else { continue }
                var next = segments + [.member(name)]
                if let keys = child["keys"] as? [String], !keys.isEmpty { next.append(.keys(keys)) }
                if ["container", "list"].contains(child["kind"] as? String) {
                    try await walk(path + [name], next)
                } else {
                    found.append(Node(segments: next, kind: child["kind"] as? String ?? "leaf", type: child["type"] as? String,
                                      enums: child["enum"] as? [String] ?? [], config: child["config"] as? Bool ?? true, children: []))
                }
            }
        }
        try await walk([], [])
        return found
    }
}

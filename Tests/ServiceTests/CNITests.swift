import Foundation
import TestSupport
import XCTest

/// How a runtime runs pcn-cni (and Debian's reference plugins): CNI_* variables, the network
/// configuration on stdin, the answer on stdout.
struct CNIRunner {
    struct Outcome: CustomStringConvertible {
        var status: Int32
        var json: [String: Any]?
        var text: String
        var code: Int? { json?["code"] as? Int }
        var message: String { json?["msg"] as? String ?? "" }
        var description: String { "exit \(status): \(text)" }
    }

    /// Runs `plugin` (pcn-cni, or a reference plugin of /usr/lib/cni) for `command`. Only the
    /// variables given (and CNI_PATH) are set.
    static func run(_ command: String?, _ config: [String: Any]?, containerID: String? = nil, netns: String? = nil,
                    ifname: String? = "eth0", plugin: String = "pcn-cni", extra: [String: String] = [:]) throws -> Outcome {
        let input = try config.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        return try run(command, text: input, containerID: containerID, netns: netns, ifname: ifname, plugin: plugin, extra: extra)
    }

    static func run(_ command: String?, text input: String?, containerID: String? = nil, netns: String? = nil,
                    ifname: String? = "eth0", plugin: String = "pcn-cni", extra: [String: String] = [:]) throws -> Outcome {
        var environment = ["CNI_PATH": productsDirectory.path + ":/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        if let command { environment["CNI_COMMAND"] = command }
        if let containerID { environment["CNI_CONTAINERID"] = containerID }
        if let netns { environment["CNI_NETNS"] = netns }
        if let ifname, !["GC", "STATUS", "VERSION"].contains(command ?? "") { environment["CNI_IFNAME"] = ifname }
        for (key, value) in extra { environment[key] = value }
        let path = plugin == "pcn-cni" ? productsDirectory.appendingPathComponent("pcn-cni").path : "/usr/lib/cni/" + plugin
        let result = try runCommand("/usr/bin/env", ["-i"] + environment.map { "\($0.key)=\($0.value)" }.sorted() + [path],
                                    input: input ?? "", timeout: 60)
        let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return Outcome(status: result.status, json: json, text: result.stdout + result.stderr)
    }
}

/// pcn-cni's own CNI conformance suite (no official one exists): the real binary run as a runtime
/// runs it, against a node's cubes (router + lbrp in MULTI mode) in a private stack, pods in
/// namespaces, Debian's host-local as the IPAM plugin.
final class CNITests: ServiceStackTestCase {
    override class var startsStackInSetUp: Bool { false }
    private var lbrp = "", router = "", scratch = ""
    private let subnet = "10.92.1"

    override func setUp() async throws {
        try await super.setUp()
        try await startStack(services: ["lbrp", "router"])
        scratch = directory + "/cni"
        lbrp = network.prefix + "ilb"
        router = network.prefix + "r"
        try await must("POST", "/router/\(router)", #"{"type":"TC","ports":[{"name":"to_pods","ip":"\#(subnet).254/24"}]}"#)
        try await must("POST", "/lbrp/\(lbrp)", #"{"type":"TC","port_mode":"MULTI","ports":[{"name":"backend","type":"BACKEND","peer":"\#(router):to_pods"}]}"#)
    }

    private func conf(_ version: String = "1.1.0", ipam: [String: Any]? = nil, lbrp: String? = nil, api: String? = nil) -> [String: Any] {
        ["cniVersion": version, "name": "pcntest", "type": "pcn-cni", "api": api ?? "http://127.0.0.1:\(rest.port)",
         "lbrp": lbrp ?? self.lbrp, "mtu": 1450, "dataDir": scratch + "/state",
         "ipam": ipam ?? ["type": "host-local", "subnet": "\(subnet).0/24", "gateway": "\(subnet).254", "dataDir": scratch + "/ipam"]]
    }

    private func with(_ config: [String: Any], _ key: String, _ value: Any) -> [String: Any] {
        var copy = config
        copy[key] = value
        return copy
    }

    private struct Pod {
        var id: String
        var netns: String
        var result: [String: Any]
        var host: String { ((result["interfaces"] as? [[String: Any]])?.first?["name"] as? String) ?? "" }
        var address: String { ((result["ips"] as? [[String: Any]])?.last?["address"] as? String) ?? "" }
        var ip: String { String(address.split(separator: "/").first ?? "") }
        var namespace: String { String(netns.split(separator: "/").last ?? "") }
    }

    /// ADD for a new pod namespace `name`; fails the test if ADD fails. The host end is adopted.
    private func addPod(_ name: String, version: String = "1.1.0", config: [String: Any]? = nil) throws -> Pod {
        let netns = try network.emptyNamespace(name)
        let outcome = try CNIRunner.run("ADD", config ?? conf(version), containerID: "ctr-" + name, netns: netns)
        guard outcome.status == 0, let result = outcome.json else {
            XCTFail("ADD \(name): \(outcome)")
            throw TestFailure("ADD \(name) failed")
        }
        let pod = Pod(id: "ctr-" + name, netns: netns, result: result)
        network.adopt(link: pod.host)
        return pod
    }

    private func ports() async throws -> [[String: Any]] {
        (try await rest.call("GET", "/lbrp/\(lbrp)/ports").json as? [[String: Any]]) ?? []
    }

    private func records() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: scratch + "/state/pcntest")) ?? []).filter { $0.hasSuffix(".json") }
    }

    private func leased(_ ip: String) -> Bool { FileManager.default.fileExists(atPath: scratch + "/ipam/pcntest/" + ip) }

    private func linkExists(_ name: String, namespace: String? = nil) throws -> Bool {
        try runCommand("/usr/bin/ip", (namespace.map { ["-n", $0] } ?? []) + ["link", "show", "dev", name]).status == 0
    }

    /// ADD in every version pcn-cni speaks: the result's shape, the namespace as the result says,
    /// the lbrp port, a second ADD refused; traffic between pods; CHECK passing, refused below 0.4.0,
    /// failing after tampering; DEL twice, leaving nothing.
    func testAddCheckAndDelInEveryVersion() async throws {
        var pods: [(version: String, pod: Pod)] = []
        for (index, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].enumerated() {
            let pod = try addPod("p\(index)", version: version)
            pods.append((version, pod))
            let result = pod.result
            XCTAssertEqual(result["cniVersion"] as? String, version)
            let interfaces = result["interfaces"] as? [[String: Any]] ?? []
            XCTAssertEqual(interfaces.count, 2, "\(result)")
            XCTAssertTrue(pod.host.hasPrefix("pcn"), "\(result)")
            XCTAssertEqual(interfaces.last?["name"] as? String, "eth0")
            XCTAssertEqual(interfaces.last?["sandbox"] as? String, pod.netns)
            XCTAssertEqual(interfaces.last?["mtu"] as? Int, version == "1.1.0" ? 1450 : nil, "mtu in interfaces came with 1.1.0")
            let ip = (result["ips"] as? [[String: Any]])?.first ?? [:]
            XCTAssertEqual(ip["interface"] as? Int, 1, "ips[].interface indexes the pod's interface")
            XCTAssertEqual(ip["gateway"] as? String, "\(subnet).254")
            XCTAssertEqual(ip["version"] as? String, version.hasPrefix("0.") ? "4" : nil, "ips[].version: 0.3.x and 0.4.0 only")
            XCTAssertTrue(pod.address.hasSuffix("/32"), pod.address)

            // The namespace is as the result says.
            let shown = try runCommand("/usr/bin/ip", ["-n", pod.namespace, "-json", "addr", "show", "dev", "eth0"])
            let link = (try? JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [[String: Any]])?.first ?? [:]
            XCTAssertEqual(link["address"] as? String, interfaces.last?["mac"] as? String)
            XCTAssertEqual(link["mtu"] as? Int, 1450)
            XCTAssertTrue(shown.stdout.contains("\"local\":\"\(pod.ip)\""), shown.stdout)
            let routes = try runCommand("/usr/bin/ip", ["-n", pod.namespace, "route", "show", "default"]).stdout
            XCTAssertTrue(routes.contains("default via \(subnet).254 dev eth0"), routes)
            let port = try await ports().first { $0["peer"] as? String == pod.host }
            XCTAssertEqual(port?["ip"] as? String, pod.ip, "the lbrp FRONTEND port of the pod")
            XCTAssertEqual(port?["type"] as? String, "FRONTEND")
            XCTAssertTrue(leased(pod.ip))

            let again = try CNIRunner.run("ADD", conf(version), containerID: pod.id, netns: pod.netns)
            XCTAssertNotEqual(again.status, 0, "a second ADD of the same attachment must fail")
            XCTAssertEqual(again.code, 100, again.text)

            let check = try CNIRunner.run("CHECK", with(conf(version), "prevResult", result), containerID: pod.id, netns: pod.netns)
            if version.hasPrefix("0.3") {
                XCTAssertEqual(check.code, 1, "CHECK below 0.4.0: \(check)")
            } else {
                XCTAssertEqual(check.status, 0, "CHECK \(version): \(check)")
            }
        }
        XCTAssertEqual(Set(pods.map(\.pod.ip)).count, pods.count, "every pod its own address")
        XCTAssertEqual(records().count, pods.count)

        // Pods reach each other (through the lbrp and the router) and their gateway.
        XCTAssertTrue(try network.ping(from: pods[0].pod.namespace, to: pods[4].pod.ip))
        XCTAssertTrue(try network.ping(from: pods[2].pod.namespace, to: "\(subnet).254"))

        // Tampering makes CHECK fail, naming what is missing.
        let tampered = pods[4].pod
        _ = try runCommand("/usr/bin/ip", ["-n", tampered.namespace, "addr", "del", tampered.address, "dev", "eth0"])
        let noAddress = try CNIRunner.run("CHECK", with(conf(), "prevResult", tampered.result), containerID: tampered.id, netns: tampered.netns)
        XCTAssertEqual(noAddress.code, 105, noAddress.text)
        XCTAssertTrue(noAddress.message.contains(tampered.address), noAddress.message)
        let unported = pods[3].pod
        let portName = try await ports().first { $0["peer"] as? String == unported.host }?["name"] as? String ?? ""
        try await must("DELETE", "/lbrp/\(lbrp)/ports/\(portName)")
        let noPort = try CNIRunner.run("CHECK", with(conf("1.0.0"), "prevResult", unported.result), containerID: unported.id, netns: unported.netns)
        XCTAssertEqual(noPort.code, 105, noPort.text)
        XCTAssertTrue(noPort.message.contains(portName), noPort.message)
        let hostless = pods[2].pod
        _ = try runCommand("/usr/bin/ip", ["link", "del", hostless.host])
        let noHost = try CNIRunner.run("CHECK", with(conf("0.4.0"), "prevResult", hostless.result), containerID: hostless.id, netns: hostless.netns)
        XCTAssertEqual(noHost.code, 105, noHost.text)

        // DEL (twice each, with the result) leaves nothing: port, veth, lease, record.
        for (version, pod) in pods {
            for round in 1...2 {
                let del = try CNIRunner.run("DEL", with(conf(version), "prevResult", pod.result), containerID: pod.id, netns: pod.netns)
                XCTAssertEqual(del.status, 0, "DEL \(round) of \(pod.id) (\(version)): \(del)")
            }
            XCTAssertFalse(try linkExists(pod.host), "\(pod.host) is left")
            XCTAssertFalse(try linkExists("eth0", namespace: pod.namespace))
            XCTAssertFalse(leased(pod.ip), "the lease of \(pod.ip) is left")
        }
        let left = try await ports().map { $0["name"] as? String ?? "" }
        XCTAssertEqual(left, ["backend"])
        XCTAssertEqual(records(), [])
    }

    /// DEL as the specification wants it: after a failed ADD, without prevResult, twice, after the
    /// namespace is gone. A failed ADD leaves nothing behind.
    func testDelWithoutPrevResultAfterAFailedAddAndAGoneNamespace() async throws {
        // The static IPAM plugin gives no gateway: ADD fails after the lease, and undoes it all.
        let netns = try network.emptyNamespace("f")
        let failing = conf(ipam: ["type": "static", "addresses": [["address": "\(subnet).77/24"]]])
        let add = try CNIRunner.run("ADD", failing, containerID: "ctr-f", netns: netns)
        XCTAssertNotEqual(add.status, 0)
        XCTAssertEqual(add.code, 104, add.text)
        XCTAssertTrue(add.message.contains("gateway"), add.message)
        XCTAssertFalse(try linkExists("eth0", namespace: network.prefix + "f"), "a failed ADD left the pod's interface")
        let frontends = try await ports().filter { $0["type"] as? String == "FRONTEND" }
        XCTAssertEqual(frontends.count, 0, "a failed ADD left a port: \(frontends)")
        XCTAssertEqual(records(), [])
        for round in 1...2 {
            let del = try CNIRunner.run("DEL", failing, containerID: "ctr-f", netns: netns)
            XCTAssertEqual(del.status, 0, "DEL \(round) after the failed ADD: \(del)")
        }

        // The namespace goes first (the runtime lost it): DEL without prevResult still cleans up.
        let pod = try addPod("g")
        XCTAssertTrue(leased(pod.ip))
        _ = try runCommand("/usr/bin/ip", ["netns", "del", pod.namespace])
        for round in 1...2 {
            let del = try CNIRunner.run("DEL", conf(), containerID: pod.id, netns: pod.netns)
            XCTAssertEqual(del.status, 0, "DEL \(round) without the namespace: \(del)")
        }
        XCTAssertFalse(leased(pod.ip))
        XCTAssertFalse(try linkExists(pod.host))
        let left = try await ports().map { $0["name"] as? String ?? "" }
        XCTAssertEqual(left, ["backend"])
        XCTAssertEqual(records(), [])

        // DEL without its variables names them.
        let missing = try CNIRunner.run("DEL", conf(), containerID: nil, netns: nil)
        XCTAssertEqual(missing.code, 4, missing.text)
        XCTAssertTrue(missing.message.contains("CNI_CONTAINERID"), missing.message)
    }

    /// pcn-cni killed (SIGKILL) at points all through an ADD, as a crashed runtime would leave it:
    /// the DEL the runtime then sends undoes whatever was made (lease, veth, lbrp port, record), a new
    /// ADD of the same container works, and pods already attached lose no packet meanwhile.
    func testKilledMidAddIsUndoneByDelAndOtherPodsLoseNothing() async throws {
        let p = try addPod("p"), q = try addPod("q")
        XCTAssertTrue(try network.ping(from: p.namespace, to: q.ip))
        let before = Set(try hostLinks())
        let pinging = p.namespace, target = q.ip
        async let traffic = onThread {
            try runCommand("/usr/bin/ip", ["netns", "exec", pinging, "ping", "-c", "1500", "-i", "0.01", "-W", "2", target], timeout: 120)
        }
        var killedHalfway = 0
        let configPath = scratch + "/add.json"
        try JSONSerialization.data(withJSONObject: conf()).write(to: URL(fileURLWithPath: configPath))
        for (index, delay) in [0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15].enumerated() {
            let id = "ctr-k\(index)", netns = try network.emptyNamespace("k\(index)")
            let environment = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": id, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
                               "CNI_PATH": productsDirectory.path + ":/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
            let plugin = productsDirectory.appendingPathComponent("pcn-cni").path
            let add = try BackgroundCommand("/bin/sh", ["-c", "exec \"$0\" < \"$1\"", plugin, configPath], environment: environment)
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            kill(add.pid, SIGKILL)
            _ = add.waitForExit(timeout: 10)
            let made = try await ports().count > 3 || !leases(of: id).isEmpty || Set(try hostLinks()) != before
            if made { killedHalfway += 1 }
            for round in 1...2 {
                let del = try CNIRunner.run("DEL", conf(), containerID: id, netns: netns)
                XCTAssertEqual(del.status, 0, "DEL \(round) after ADD killed at \(delay) s: \(del)")
            }
            XCTAssertEqual(Set(try hostLinks()), before, "veths left after ADD killed at \(delay) s")
            XCTAssertFalse(try linkExists("eth0", namespace: network.prefix + "k\(index)"), "the pod's interface is left (killed at \(delay) s)")
            let peers = Set(try await ports().compactMap { $0["peer"] as? String })
            XCTAssertEqual(peers, ["\(router):to_pods", p.host, q.host], "ports after ADD killed at \(delay) s")
            XCTAssertEqual(records().count, 2, "records after ADD killed at \(delay) s: \(records())")
            XCTAssertEqual(leases(of: id), [], "host-local still leases to \(id) (killed at \(delay) s)")
            // The runtime tries again: the same container gets attached and reaches the others.
            if index % 3 == 0 {
                let again = try addPod("k\(index)r")
                XCTAssertTrue(try network.ping(from: again.namespace, to: q.ip))
                let del = try CNIRunner.run("DEL", with(conf(), "prevResult", again.result), containerID: again.id, netns: again.netns)
                XCTAssertEqual(del.status, 0, "\(del)")
            }
        }
        XCTAssertEqual(records().count, 2, "only p's and q's records: \(records())")
        XCTAssertGreaterThanOrEqual(killedHalfway, 2, "the kills should land inside ADDs, leaving something for DEL to undo")
        let result = try await traffic
        let summary = result.stdout.split(separator: "\n").first { $0.contains("packets transmitted") } ?? ""
        let numbers = summary.split(separator: " ").compactMap { Int($0) }
        XCTAssertEqual(numbers.count >= 2 ? numbers[0] - numbers[1] : -1, 0, "p → q lost packets while ADDs were killed: \(summary)")
    }

    /// The root namespace's links named like pcn-cni's host ends.
    private func hostLinks() throws -> [String] {
        let shown = try runCommand("/usr/bin/ip", ["-json", "link", "show"]).stdout
        let links = (try? JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [[String: Any]]) ?? []
        return links.compactMap { $0["ifname"] as? String }.filter { $0.hasPrefix("pcn") && $0.count == 15 }
    }

    /// The addresses host-local has leased to container `id`.
    private func leases(of id: String) -> [String] {
        let directory = scratch + "/ipam/pcntest"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { name in
            ((try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? "").hasPrefix(id)
        }
    }

    /// 20 ADDs at once: all succeed with their own address and port; 20 DELs at once leave nothing.
    func testTwentyConcurrentAdds() async throws {
        let names = (0..<20).map { "c\($0)" }
        let namespaces = try names.map { try network.emptyNamespace($0) }
        let config = String(decoding: try JSONSerialization.data(withJSONObject: conf()), as: UTF8.self)
        let outcomes = LockedResults(count: names.count)
        let threads = names.indices.map { index in
            Thread {
                outcomes.set(index, Result { try CNIRunner.run("ADD", text: config, containerID: "ctr-" + names[index], netns: namespaces[index]) })
            }
        }
        threads.forEach { $0.start() }
        try await eventually(timeout: 120) { outcomes.done }
        var pods: [Pod] = []
        for (index, outcome) in outcomes.all.enumerated() {
            let outcome = try outcome.get()
            XCTAssertEqual(outcome.status, 0, "ADD \(names[index]): \(outcome)")
            guard let result = outcome.json, outcome.status == 0 else { continue }
            let pod = Pod(id: "ctr-" + names[index], netns: namespaces[index], result: result)
            network.adopt(link: pod.host)
            pods.append(pod)
        }
        XCTAssertEqual(Set(pods.map(\.ip)).count, 20, "unique addresses: \(pods.map(\.ip))")
        let frontends = try await ports().filter { $0["type"] as? String == "FRONTEND" }
        XCTAssertEqual(Set(frontends.compactMap { $0["ip"] as? String }), Set(pods.map(\.ip)))
        if let first = pods.first, let last = pods.last {
            XCTAssertTrue(try network.ping(from: first.namespace, to: last.ip))
        }

        let deletions = LockedResults(count: pods.count)
        let attachments = pods.map { [$0.id, $0.netns] }
        let deleters = attachments.indices.map { index in
            Thread { deletions.set(index, Result { try CNIRunner.run("DEL", text: config, containerID: attachments[index][0], netns: attachments[index][1]) }) }
        }
        deleters.forEach { $0.start() }
        try await eventually(timeout: 120) { deletions.done }
        for (index, outcome) in deletions.all.enumerated() {
            let deletion = try outcome.get()
            XCTAssertEqual(deletion.status, 0, "DEL \(pods[index].id): \(deletion)")
        }
        let left = try await ports().map { $0["name"] as? String ?? "" }
        XCTAssertEqual(left, ["backend"])
        XCTAssertEqual(records(), [])
    }

    /// GC with 2 of 5 attachments valid removes exactly the other 3 (port, veth, lease, record) and
    /// leaves the 2 working; again, it changes nothing; a port whose record and veth are lost is swept.
    func testGCRemovesExactlyTheStaleAttachments() async throws {
        let pods = try (0..<5).map { try addPod("g\($0)") }
        let valid = [pods[1], pods[3]]
        var gcConfig = conf()
        gcConfig["cni.dev/valid-attachments"] = valid.map { ["containerID": $0.id, "ifname": "eth0"] }
        for round in 1...2 {
            let gc = try CNIRunner.run("GC", gcConfig)
            XCTAssertEqual(gc.status, 0, "GC \(round): \(gc)")
            XCTAssertEqual(gc.text.trimmingCharacters(in: .whitespacesAndNewlines), "", "GC prints nothing on success")
            for pod in pods {
                let kept = valid.contains { $0.id == pod.id }
                XCTAssertEqual(try linkExists(pod.host), kept, "\(pod.id)'s veth")
                XCTAssertEqual(leased(pod.ip), kept, "\(pod.id)'s lease")
            }
            let frontends = try await ports().filter { $0["type"] as? String == "FRONTEND" }
            XCTAssertEqual(Set(frontends.compactMap { $0["peer"] as? String }), Set(valid.map(\.host)))
            XCTAssertEqual(records().count, 2)
        }
        XCTAssertTrue(try network.ping(from: valid[0].namespace, to: valid[1].ip))

        // A record lost and its veth gone: the port is still found (by its name) and swept.
        let lost = try addPod("g5")
        for name in records() where !valid.contains(where: { name.contains(String($0.host.dropFirst(3))) }) {
            unlink(scratch + "/state/pcntest/" + name)
        }
        _ = try runCommand("/usr/bin/ip", ["link", "del", lost.host])
        let sweep = try CNIRunner.run("GC", gcConfig)
        XCTAssertEqual(sweep.status, 0, sweep.text)
        let frontends = try await ports().filter { $0["type"] as? String == "FRONTEND" }
        XCTAssertEqual(Set(frontends.compactMap { $0["peer"] as? String }), Set(valid.map(\.host)))

        // GC without the list it needs is refused and removes nothing.
        let refused = try CNIRunner.run("GC", conf())
        XCTAssertEqual(refused.code, 7, refused.text)
        XCTAssertEqual(records().count, 2)
    }

    /// STATUS: ready with the stack up; 50, quickly, with no such lbrp, no pcn-api, or pcn-core gone.
    func testStatusFollowsTheDaemons() async throws {
        let ready = try CNIRunner.run("STATUS", conf())
        XCTAssertEqual(ready.status, 0, ready.text)
        let noCube = try CNIRunner.run("STATUS", conf(lbrp: network.prefix + "none"))
        XCTAssertEqual(noCube.code, 50, noCube.text)
        let noAPI = try CNIRunner.run("STATUS", conf(api: "http://127.0.0.1:\(freePort())"))
        XCTAssertEqual(noAPI.code, 50, noAPI.text)
        kill9("pcn-core")
        let started = Date()
        let noCore = try CNIRunner.run("STATUS", conf())
        XCTAssertEqual(noCore.code, 50, noCore.text)
        XCTAssertLessThan(Date().timeIntervalSince(started), 15, "STATUS must answer, not wait for pcn-core")
    }

    /// In a 1.0.0 conflist before Debian's tuning and portmap: each gets the previous result and
    /// passes pcn-cni's part on; CHECK in order and DEL in reverse with the final result work; the
    /// port mapping's rules come and go. Given a prevResult itself, pcn-cni keeps it and adds its own.
    func testChainedWithTuningAndPortmap() async throws {
        let netns = try network.emptyNamespace("ch")
        let hostPort = 20000 + Int.random(in: 0..<10000)
        let plugins: [[String: Any]] = [
            conf("1.0.0"),
            ["type": "tuning", "sysctl": ["net.ipv4.conf.eth0.accept_local": "1"]],
            ["type": "portmap", "capabilities": ["portMappings": true]],
        ]
        func request(_ index: Int, _ previous: [String: Any]?) -> [String: Any] {
            var object = plugins[index]
            object["cniVersion"] = "1.0.0"
            object["name"] = "pcntest"
            if plugins[index]["type"] as? String == "portmap" {
                object.removeValue(forKey: "capabilities")
                object["runtimeConfig"] = ["portMappings": [["hostPort": hostPort, "containerPort": 8080, "protocol": "tcp"]]]
            }
            if let previous { object["prevResult"] = previous }
            return object
        }
        var result: [String: Any]? = nil
        var added: [Int] = []
        defer {
            // Whatever was added goes, even when the test fails half-way (portmap's rules are the host's).
            for index in added.reversed() {
                _ = try? CNIRunner.run("DEL", request(index, result), containerID: "ctr-ch", netns: netns,
                                       plugin: plugins[index]["type"] as! String)
            }
        }
        for index in plugins.indices {
            let outcome = try CNIRunner.run("ADD", request(index, result), containerID: "ctr-ch", netns: netns,
                                            plugin: plugins[index]["type"] as! String)
            XCTAssertEqual(outcome.status, 0, "ADD \(plugins[index]["type"]!): \(outcome)")
            guard outcome.status == 0 else { return }
            added.append(index)
            result = outcome.json
            if index == 0, let host = (result?["interfaces"] as? [[String: Any]])?.first?["name"] as? String { network.adopt(link: host) }
        }
        let pod = Pod(id: "ctr-ch", netns: netns, result: result ?? [:])
        XCTAssertEqual((result?["interfaces"] as? [[String: Any]])?.count, 2, "the final result keeps pcn-cni's interfaces: \(result ?? [:])")
        XCTAssertTrue(pod.address.hasPrefix(subnet), "\(result ?? [:])")
        let sysctl = try runCommand("/usr/bin/ip", ["netns", "exec", pod.namespace, "sysctl", "-n", "net.ipv4.conf.eth0.accept_local"])
        XCTAssertEqual(sysctl.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1", "tuning ran on pcn-cni's interface")
        let rules = try runCommand("/usr/sbin/iptables", ["-t", "nat", "-S"]).stdout
        XCTAssertTrue(rules.contains("--dport \(hostPort)") && rules.contains("\(pod.ip):8080"), "portmap's DNAT to the pod")
        // Debian's portmap 1.1.1 fails CHECK on an IPv4-only pod (it looks for its ip6tables chain), so
        // CHECK runs for the two before it.
        for index in plugins.indices.dropLast() {
            let check = try CNIRunner.run("CHECK", request(index, result), containerID: "ctr-ch", netns: netns, plugin: plugins[index]["type"] as! String)
            XCTAssertEqual(check.status, 0, "CHECK \(plugins[index]["type"]!): \(check)")
        }
        for index in plugins.indices.reversed() {
            let del = try CNIRunner.run("DEL", request(index, result), containerID: "ctr-ch", netns: netns, plugin: plugins[index]["type"] as! String)
            XCTAssertEqual(del.status, 0, "DEL \(plugins[index]["type"]!): \(del)")
            added.removeAll { $0 == index }
        }
        let after = try runCommand("/usr/sbin/iptables", ["-t", "nat", "-S"]).stdout
        XCTAssertFalse(after.contains("--dport \(hostPort)"), "portmap's rules are left")
        XCTAssertFalse(try linkExists(pod.host))

        // pcn-cni given a prevResult (chained after another plugin) keeps it and indexes its own after it.
        let other = try network.emptyNamespace("ch2")
        let previous: [String: Any] = ["cniVersion": "1.1.0", "interfaces": [["name": "other0", "mac": "02:00:00:00:00:01"]],
                                       "ips": [["address": "192.0.2.9/24", "interface": 0]], "dns": ["nameservers": ["192.0.2.53"]]]
        let chained = try CNIRunner.run("ADD", with(conf(), "prevResult", previous), containerID: "ctr-ch2", netns: other)
        XCTAssertEqual(chained.status, 0, chained.text)
        let interfaces = chained.json?["interfaces"] as? [[String: Any]] ?? []
        if let host = interfaces.dropFirst().first?["name"] as? String { network.adopt(link: host) }
        XCTAssertEqual(interfaces.map { $0["name"] as? String ?? "" }.first, "other0")
        XCTAssertEqual(interfaces.count, 3)
        let ips = chained.json?["ips"] as? [[String: Any]] ?? []
        XCTAssertEqual(ips.first?["address"] as? String, "192.0.2.9/24")
        XCTAssertEqual(ips.last?["interface"] as? Int, 2)
        XCTAssertEqual((chained.json?["dns"] as? [String: Any])?["nameservers"] as? [String], ["192.0.2.53"])
        let del = try CNIRunner.run("DEL", conf(), containerID: "ctr-ch2", netns: other)
        XCTAssertEqual(del.status, 0, del.text)
    }
}

/// What pcn-cni answers before it touches anything: versions, and the specification's error codes
/// for a bad environment or configuration (no stack needed).
final class CNIErrorTests: XCTestCase {
    private let good: [String: Any] = ["cniVersion": "1.1.0", "name": "pcntest", "type": "pcn-cni",
                                       "ipam": ["type": "host-local", "subnet": "10.93.0.0/24"]]

    func testVersionNegotiation() throws {
        for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let outcome = try CNIRunner.run("VERSION", ["cniVersion": version])
            XCTAssertEqual(outcome.status, 0, outcome.text)
            XCTAssertEqual(outcome.json?["cniVersion"] as? String, version)
            XCTAssertEqual(outcome.json?["supportedVersions"] as? [String], ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        }
        var unknown = good
        unknown["cniVersion"] = "0.2.0"
        let old = try CNIRunner.run("ADD", unknown, containerID: "c1", netns: "/proc/self/ns/net")
        XCTAssertEqual(old.code, 1, old.text)
        XCTAssertTrue(old.message.contains("0.2.0"), old.message)
        unknown["cniVersion"] = "9.9.9"
        XCTAssertEqual(try CNIRunner.run("DEL", unknown, containerID: "c1").code, 1)
    }

    func testErrorCodesNameWhatIsWrong() throws {
        // 4: variables missing or malformed, named.
        let noCommand = try CNIRunner.run(nil, good)
        XCTAssertEqual(noCommand.code, 4, noCommand.text)
        XCTAssertTrue(noCommand.message.contains("CNI_COMMAND"))
        let bogus = try CNIRunner.run("FROB", good)
        XCTAssertEqual(bogus.code, 4)
        XCTAssertTrue(bogus.message.contains("FROB"))
        let noNetns = try CNIRunner.run("ADD", good, containerID: "c1")
        XCTAssertEqual(noNetns.code, 4)
        XCTAssertTrue(noNetns.message.contains("CNI_NETNS"), noNetns.message)
        let badID = try CNIRunner.run("ADD", good, containerID: "-bad id", netns: "/proc/self/ns/net")
        XCTAssertEqual(badID.code, 4)
        XCTAssertTrue(badID.message.contains("CNI_CONTAINERID"))
        let badIfname = try CNIRunner.run("ADD", good, containerID: "c1", netns: "/proc/self/ns/net", ifname: "much-too-long-name0")
        XCTAssertEqual(badIfname.code, 4)
        XCTAssertTrue(badIfname.message.contains("CNI_IFNAME"))
        // 6: not JSON. 7: a configuration that is JSON but wrong, the key named.
        let notJSON = try runCommand("/usr/bin/env", ["-i", "CNI_COMMAND=DEL", "CNI_CONTAINERID=c1", "CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni",
                                                     productsDirectory.appendingPathComponent("pcn-cni").path], input: "{not json")
        XCTAssertNotEqual(notJSON.status, 0)
        XCTAssertEqual((try? JSONSerialization.jsonObject(with: Data(notJSON.stdout.utf8)) as? [String: Any])?["code"] as? Int, 6, notJSON.stdout)
        for (key, value, mention) in [("ipam", NSNull() as Any, "ipam"), ("mtu", 10 as Any, "mtu"), ("api", "ftp://x" as Any, "api"),
                                      ("name", "bad name" as Any, "name"), ("lbrp", "" as Any, "lbrp"), ("dataDir", "relative" as Any, "dataDir")] {
            var config = good
            config[key] = value
            if value is NSNull { config.removeValue(forKey: key) }
            let outcome = try CNIRunner.run("DEL", config, containerID: "c1")
            XCTAssertEqual(outcome.code, 7, "\(key): \(outcome)")
            XCTAssertTrue(outcome.message.contains(mention), "\(key): \(outcome.message)")
        }
        var noType = good
        noType.removeValue(forKey: "type")
        XCTAssertEqual(try CNIRunner.run("DEL", noType, containerID: "c1").code, 7)
        var unknownIPAM = good
        unknownIPAM["ipam"] = ["type": "no-such-ipam"]
        let missingPlugin = try CNIRunner.run("DEL", unknownIPAM, containerID: "c1")
        XCTAssertEqual(missingPlugin.code, 7, missingPlugin.text)
        XCTAssertTrue(missingPlugin.message.contains("no-such-ipam"))
        // 3: ADD into a namespace that does not exist.
        let noNamespace = try CNIRunner.run("ADD", good, containerID: "c1", netns: "/var/run/netns/pcntest-no-such-ns")
        XCTAssertEqual(noNamespace.code, 3, noNamespace.text)
        // Every error is the specification's object, with the configuration's version.
        XCTAssertEqual(noNamespace.json?["cniVersion"] as? String, "1.1.0")
    }
}

/// Results of background calls, one slot each.
final class LockedResults: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<CNIRunner.Outcome, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<CNIRunner.Outcome, Error>) { lock.lock(); slots[index] = result; lock.unlock() }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return slots.allSatisfy { $0 != nil } }
    var all: [Result<CNIRunner.Outcome, Error>] { lock.lock(); defer { lock.unlock() }; return slots.compactMap { $0 } }
}

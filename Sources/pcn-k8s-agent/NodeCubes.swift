import Foundation
import JSONText
import Logging
import PCNHTTP

/// The node's cubes, made to match a plan through pcn-api: the router `r0`, the lbrp `ilb0` the pods
/// attach to (their FRONTEND ports are pcn-cni's, never touched here), the NodePort lbrp `nlb0`
/// between the node's stack and `r0` with the nat `nnat0` on its router side, the nat `nat0` on the
/// underlay, and a firewall per pod a NetworkPolicy isolates. Each step reads what is there and
/// writes only the difference, so running it again changes nothing.
///
///     pods ── ilb0 (MULTI) ── r0 ── to_vxlan ── pcnvxlan0 (other nodes)
///                             └─ to_host ── nnat0 ▸ nlb0 (SINGLE) ── pcnk8s0 ═ pcnk8s1 (node stack) ── eth0 ◂ nat0
struct NodeCubes {
    static let router = "r0", lbrp = "ilb0", nat = "nat0", nodePortLbrp = "nlb0", nodePortNat = "nnat0"
    let api: PcnAPIClient
    let settings: AgentSettings
    let logger: Logger

    func reconcile(_ plan: NodePlan) throws {
        try routerCube(plan)
        try lbrpCube(plan)
        try nodePortCubes(plan)
        try natCube(plan)
        try firewalls(plan)
    }

    private func routerCube(_ plan: NodePlan) throws {
        // `to_host` is peered by nlb0 (an older agent peered it with the host veth: cleared here).
        let ports: [[String: Any]] = [
            ["name": "to_pods", "ip": plan.gateway],
            ["name": "to_vxlan", "ip": plan.vtep, "peer": HostNetwork.vxlan, "mac": HostNetwork.vtepMAC(nodeIP: plan.nodeIP)],
            ["name": "to_host", "ip": settings.routerHostAddress + "/30"],
        ]
        let hostPeers = ["", "\(Self.nodePortLbrp):router"]
        let path = "/router/\(Self.router)"
        if let current = try api.get(path) as? [String: Any] {
            let existing = Dictionary((current["ports"] as? [[String: Any]] ?? []).compactMap { port in (port["name"] as? String).map { ($0, port) } },
                                      uniquingKeysWith: { a, _ in a })
            for port in ports {
                let name = port["name"] as! String
                guard let have = existing[name] else {
                    try api.must("POST", "\(path)/ports/\(name)", port)
                    continue
                }
                var change: [String: Any] = [:]
                for key in ["ip", "peer", "mac"] where port[key] != nil && have[key] as? String ?? "" != port[key] as? String { change[key] = port[key] }
                if name == "to_host", !hostPeers.contains(have["peer"] as? String ?? "") { change["peer"] = "" }
                if !change.isEmpty { try api.must("PATCH", "\(path)/ports/\(name)", change) }
            }
        } else {
            try api.must("POST", path, ["type": settings.cubeType, "ports": ports])
            logger.info("created the router \(Self.router)")
        }
        // Static routes: the ones the agent makes (via another node's VTEP, or the node's stack).
        let vteps = IPv4Prefix(settings.vtepCIDR)
        let managed = { (route: NodePlan.Route) in route.nexthop == settings.hostAddress || (IPv4(route.nexthop).map { vteps?.contains($0) ?? false } ?? false) }
        let present = Set(((try api.get("\(path)/route") as? [[String: Any]]) ?? []).compactMap { entry -> NodePlan.Route? in
            guard let network = entry["network"] as? String, let nexthop = entry["nexthop"] as? String, nexthop != "local" else { return nil }
            return NodePlan.Route(network: network, nexthop: nexthop)
        }.filter(managed))
        let wanted = Set(plan.routes)
        for route in present.subtracting(wanted).sorted() {
            try api.must("DELETE", "\(path)/route/\(PcnAPIClient.segment(route.network))/\(route.nexthop)")
        }
        for route in wanted.subtracting(present).sorted() {
            try api.must("POST", "\(path)/route/\(PcnAPIClient.segment(route.network))/\(route.nexthop)", [String: Any]())
        }
    }

    private func lbrpCube(_ plan: NodePlan) throws {
        let path = "/lbrp/\(Self.lbrp)"
        if try api.get(path) == nil {
            try api.must("POST", path, ["type": settings.cubeType, "port_mode": "MULTI",
                                        "ports": [["name": "backend", "type": "BACKEND", "peer": "\(Self.router):to_pods"]]])
            logger.info("created the lbrp \(Self.lbrp)")
        }
        try syncServices(of: path, plan.services)
    }

    /// NodePort: nat0 forwards `node IP:nodePort` to `nodePortAddress:nodePort`, which the node's
    /// stack routes into nlb0; nlb0 picks an endpoint; nnat0 gives the client this node's NodePort
    /// source address on the way to r0, so that the pod's answer, from whichever node, comes back here.
    private func nodePortCubes(_ plan: NodePlan) throws {
        let path = "/lbrp/\(Self.nodePortLbrp)"
        let peers = ["host": HostNetwork.routerEnd, "router": "\(Self.router):to_host"]
        if let current = try api.get(path) as? [String: Any] {
            for port in current["ports"] as? [[String: Any]] ?? [] {
                guard let name = port["name"] as? String, let peer = peers[name], port["peer"] as? String != peer else { continue }
                try api.must("PATCH", "\(path)/ports/\(name)", ["peer": peer])
            }
        } else {
            try api.must("POST", path, ["type": settings.cubeType, "port_mode": "SINGLE", "ports": [
                ["name": "host", "type": "FRONTEND", "peer": peers["host"]!],
                ["name": "router", "type": "BACKEND", "peer": peers["router"]!],
            ]])
            logger.info("created the NodePort lbrp \(Self.nodePortLbrp)")
        }
        try syncServices(of: path, plan.nodePorts)

        let natPath = "/nat/\(Self.nodePortNat)"
        let current = try api.get(natPath) as? [String: Any]
        if current == nil {
            try api.must("POST", natPath, ["type": settings.cubeType])
            logger.info("created the NodePort nat \(Self.nodePortNat)")
        }
        let point = "\(Self.nodePortLbrp):router"
        if (current?["parent"] as? String) != point {
            try api.must("POST", "/attach", ["cube": Self.nodePortNat, "port": point])
        }
        let have = try api.get("\(natPath)/rule/snat/entry/0") as? [String: Any]
        if have?["internal-net"] as? String != "0.0.0.0/0" || have?["external-ip"] as? String != plan.nodePortSource {
            try api.must("PUT", "\(natPath)/rule/snat/entry/0", ["id": 0, "internal-net": "0.0.0.0/0", "external-ip": plan.nodePortSource])
        }
    }

    /// An lbrp's services made `wanted`: one entry per Service port, its endpoints as the backends.
    private func syncServices(of path: String, _ wanted: [NodePlan.LBService]) throws {
        var present: [String: [String: Any]] = [:]
        for entry in (try api.get("\(path)/service") as? [[String: Any]]) ?? [] {
            guard let vip = entry["vip"] as? String, let vport = entry["vport"] as? Int, let proto = entry["proto"] as? String else { continue }
            present["\(vip)/\(vport)/\(proto)"] = entry
        }
        let wanted = Dictionary(wanted.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for key in present.keys.sorted() where wanted[key] == nil {
            try api.must("DELETE", "\(path)/service/\(key)")
            logger.info("\(path): removed the service \(key)")
        }
        for (key, service) in wanted.sorted(by: { $0.key < $1.key }) {
            let backends = Set(((present[key]?["backend"] as? [[String: Any]]) ?? []).compactMap { entry -> NodePlan.Backend? in
                guard let ip = entry["ip"] as? String, let port = entry["port"] as? Int else { return nil }
                return NodePlan.Backend(ip: ip, port: port)
            })
            guard present[key] == nil || backends != Set(service.backends) || present[key]?["name"] as? String != service.name else { continue }
            try api.must("PUT", "\(path)/service/\(key)", [
                "vip": service.vip, "vport": service.vport, "proto": service.proto, "name": service.name,
                "backend": service.backends.map { ["ip": $0.ip, "port": $0.port, "weight": 1] },
            ])
            logger.info("\(path): service \(key), \(service.backends.count) backend(s)")
        }
    }

    /// Pods' traffic to anywhere outside the cluster leaves the underlay with the node's address.
    private func natCube(_ plan: NodePlan) throws {
        let path = "/nat/\(Self.nat)"
        let current = try api.get(path) as? [String: Any]
        if current == nil {
            try api.must("POST", path, ["type": settings.cubeType])
            logger.info("created the nat \(Self.nat)")
        }
        if (current?["parent"] as? String) != settings.underlay {
            try api.must("POST", "/attach", ["cube": Self.nat, "port": settings.underlay])
        }
        let rule: [String: Any] = ["id": 0, "internal-net": settings.clusterCIDR, "external-ip": plan.nodeIP]
        let have = try api.get("\(path)/rule/snat/entry/0") as? [String: Any]
        if have?["internal-net"] as? String != settings.clusterCIDR || have?["external-ip"] as? String != plan.nodeIP {
            try api.must("PUT", "\(path)/rule/snat/entry/0", rule)
        }

        // NodePorts: `node IP:nodePort` forwarded to nlb0's address, one rule per port and protocol
        // (its id: the port, doubled, plus one for UDP).
        var wanted: [Int: [String: Any]] = [:]
        for service in plan.nodePorts {
            wanted[service.vport * 2 + (service.proto == "UDP" ? 1 : 0)] = [
                "external-ip": plan.nodeIP, "external-port": service.vport, "proto": service.proto,
                "internal-ip": settings.nodePortAddress, "internal-port": service.vport,
            ]
        }
        var present: [Int: [String: Any]] = [:]
        for entry in (try api.get("\(path)/rule/port-forwarding/entry") as? [[String: Any]]) ?? [] {
            if let id = entry["id"] as? Int { present[id] = entry }
        }
        for id in present.keys.sorted() where wanted[id] == nil {
            try api.must("DELETE", "\(path)/rule/port-forwarding/entry/\(id)")
        }
        for (id, fields) in wanted.sorted(by: { $0.key < $1.key }) {
            let same = present[id].map { have in fields.allSatisfy { key, value in JSONText.text(have[key] ?? "") == JSONText.text(value) } } ?? false
            if !same { try api.must("PUT", "\(path)/rule/port-forwarding/entry/\(id)", fields.merging(["id": id]) { a, _ in a }) }
        }
    }

    /// `fw<pod address in hex>`: a pod's firewall, on the pod's lbrp port (its EGRESS chain is what
    /// goes to the pod).
    static func firewallName(podIP: String) -> String { "fw" + String(format: "%08x", IPv4(podIP)?.value ?? 0) }

    private func firewalls(_ plan: NodePlan) throws {
        let cubes = ((try api.get("/cubes")) as? [[String: Any]]) ?? []
        let existing = Set(cubes.filter { $0["service"] as? String == "firewall" }.compactMap { $0["name"] as? String }.filter { $0.hasPrefix("fw") && $0.count == 10 })
        let podPorts = Dictionary(((try api.get("/lbrp/\(Self.lbrp)/ports") as? [[String: Any]]) ?? []).compactMap { port -> (String, String)? in
            guard let ip = port["ip"] as? String, let name = port["name"] as? String else { return nil }
            return (ip, name)
        }, uniquingKeysWith: { a, _ in a })
        var wanted = Set<String>()
        for (podIP, rules) in plan.policies.sorted(by: { $0.key < $1.key }) {
            let name = Self.firewallName(podIP: podIP)
            wanted.insert(name)
            guard let port = podPorts[podIP] else { continue }   // not attached yet: pcn-cni makes the port
            let chain: [String: Any] = ["name": "EGRESS", "default": "DROP", "rule": rules.enumerated().map { index, rule -> [String: Any] in
                var object: [String: Any] = ["id": index, "action": rule.action]
                if let src = rule.src { object["src"] = src }
                if let proto = rule.l4proto { object["l4proto"] = proto }
                if let port = rule.dport { object["dport"] = port }
                return object
            }]
            let path = "/firewall/\(name)"
            let current = try api.get(path) as? [String: Any]
            if current == nil {
                try api.must("POST", path, ["type": settings.cubeType, "accept-established": "ON", "chain": [chain]])
                logger.info("pod \(podIP): firewall \(name) with \(rules.count) rule(s)")
            } else {
                let chains = current?["chain"] as? [[String: Any]] ?? []
                let have = chains.first { $0["name"] as? String == "EGRESS" }
                if !Self.sameChain(have, chain) { try api.must("PUT", "\(path)/chain/EGRESS", chain) }
            }
            let point = "\(Self.lbrp):\(port)"
            if (current?["parent"] as? String) != point {
                if current?["parent"] as? String != nil, !(current?["parent"] as? String ?? "").isEmpty {
                    try api.must("POST", "/detach", ["cube": name])
                }
                try api.must("POST", "/attach", ["cube": name, "port": point])
            }
        }
        for name in existing.subtracting(wanted).sorted() {
            try api.must("DELETE", "/firewall/\(name)")
            logger.info("removed the firewall \(name)")
        }
    }

    private static func sameChain(_ have: [String: Any]?, _ want: [String: Any]) -> Bool {
        guard let have, have["default"] as? String == want["default"] as? String else { return false }
        let keys = ["id", "action", "src", "l4proto", "dport"]
        func normal(_ rules: Any?) -> [String] {
            ((rules as? [[String: Any]]) ?? []).map { rule in keys.map { "\(rule[$0].map { JSONText.text($0) } ?? "")" }.joined(separator: "|") }
        }
        return normal(have["rule"]) == normal(want["rule"])
    }
}

import Foundation

/// IPv4 addresses and prefixes as numbers.
struct IPv4: Comparable, Hashable, CustomStringConvertible {
    var value: UInt32

    init(_ value: UInt32) { self.value = value }

    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part), String(byte) == part else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    var description: String { (0..<4).map { String(value >> (24 - 8 * $0) & 0xff) }.joined(separator: ".") }
    static func < (a: IPv4, b: IPv4) -> Bool { a.value < b.value }
}

struct IPv4Prefix: Hashable, CustomStringConvertible {
    var network: IPv4
    var length: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let address = IPv4(String(parts[0])), let length = Int(parts[1]), (0...32).contains(length) else { return nil }
        self.length = length
        network = IPv4(address.value & Self.mask(length))
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }
    var mask: UInt32 { Self.mask(length) }
    var description: String { "\(network)/\(length)" }
    func contains(_ address: IPv4) -> Bool { address.value & mask == network.value }
    /// The address `offset` into the prefix (1: its first host).
    func host(_ offset: UInt32) -> IPv4 { IPv4(network.value | (offset & ~mask)) }
}

/// How the agent builds a node; the same on every node of a cluster.
struct AgentSettings: Equatable {
    var node: String
    var clusterCIDR = "10.10.0.0/16"
    /// The routers' addresses on the VXLAN: each node's is this prefix with its node address's low bits.
    var vtepCIDR = "10.18.0.0/16"
    var vni = 42
    /// The node's interface to the other nodes (the VXLAN's underlay, where egress is masqueraded).
    var underlay = "eth0"
    var cubeType = "TC"
    /// The /30 between the router's `to_host` port and the node's own stack.
    var routerHostAddress = "169.254.100.1"
    var hostAddress = "169.254.100.2"
    /// NodePort: what the underlay's nat forwards `node IP:nodePort` to, on the node's own stack's
    /// side of the NodePort lbrp (never leaves the node).
    var nodePortAddress = "169.254.101.1"
    /// NodePort clients are seen by the pods with the entry node's address here (this prefix with the
    /// node address's low bits), so that replies from a pod on any node come back through that node.
    var nodePortSourceCIDR = "10.19.0.0/16"
}

/// What a node should have, computed from the cluster alone (no kernel, no pcn-api).
struct NodePlan: Equatable {
    struct Route: Hashable, Comparable {
        var network: String
        var nexthop: String
        static func < (a: Route, b: Route) -> Bool { (a.network, a.nexthop) < (b.network, b.nexthop) }
    }
    struct Backend: Hashable, Comparable {
        var ip: String
        var port: Int
        static func < (a: Backend, b: Backend) -> Bool { (IPv4(a.ip) ?? IPv4(0), a.port) < (IPv4(b.ip) ?? IPv4(0), b.port) }
    }
    struct LBService: Hashable {
        var vip: String
        var vport: Int
        var proto: String
        var name: String
        var backends: [Backend]
        var key: String { "\(vip)/\(vport)/\(proto)" }
    }
    /// One rule of a pod's ingress policy, in the order they are tried (firewall EGRESS chain: what
    /// leaves the lbrp toward the pod).
    struct PolicyRule: Hashable {
        var action: String          // ACCEPT or DROP
        var src: String?
        var l4proto: String?
        var dport: Int?
    }

    var nodeIP: String
    var podCIDR: String
    /// The router's address on the pods' side (the CIDR's first host) with the CIDR's length.
    var gateway: String
    var vtep: String
    var routes: [Route]
    /// The other nodes' addresses: the VXLAN sends to each.
    var peers: [String]
    var services: [LBService]
    /// NodePort services: `nodePortAddress:nodePort` to the endpoints, in the NodePort lbrp.
    var nodePorts: [LBService]
    /// This node's address for NodePort clients (see `AgentSettings.nodePortSourceCIDR`).
    var nodePortSource: String
    /// The pods of this node that a NetworkPolicy isolates, by address, with the rules letting traffic in.
    var policies: [String: [PolicyRule]]

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func make(_ state: ClusterState, _ settings: AgentSettings) throws -> NodePlan {
        guard let cluster = IPv4Prefix(settings.clusterCIDR) else { throw Failure(description: "--cluster-cidr '\(settings.clusterCIDR)' is not an IPv4 prefix") }
        guard let vteps = IPv4Prefix(settings.vtepCIDR) else { throw Failure(description: "--vtep-cidr '\(settings.vtepCIDR)' is not an IPv4 prefix") }
        guard let sources = IPv4Prefix(settings.nodePortSourceCIDR) else {
            throw Failure(description: "--nodeport-source-cidr '\(settings.nodePortSourceCIDR)' is not an IPv4 prefix")
        }
        guard let node = state.nodes[settings.node] else {
            throw Failure(description: "node '\(settings.node)' is not in the cluster (nodes: \(state.nodes.keys.sorted().joined(separator: ", ")))")
        }
        func addresses(_ node: Node) throws -> (ip: IPv4, pods: IPv4Prefix) {
            guard let text = node.internalIP, let ip = IPv4(text) else {
                throw Failure(description: "node '\(node.metadata.name)' has no IPv4 InternalIP in status.addresses")
            }
            guard let cidr = node.podCIDR, let pods = IPv4Prefix(cidr) else {
                throw Failure(description: "node '\(node.metadata.name)' has no IPv4 spec.podCIDR")
            }
            guard cluster.contains(pods.network), pods.length >= cluster.length else {
                throw Failure(description: "node '\(node.metadata.name)': spec.podCIDR \(pods) is not inside --cluster-cidr \(cluster)")
            }
            return (ip, pods)
        }
        let own = try addresses(node)
        func vtep(_ ip: IPv4) -> IPv4 { IPv4(vteps.network.value | (ip.value & ~vteps.mask)) }
        func nodePortSource(_ ip: IPv4) -> IPv4 { IPv4(sources.network.value | (ip.value & ~sources.mask)) }

        // NodePort clients of this node are answered through its stack; those of another node, through it.
        var routes = [Route(network: "0.0.0.0/0", nexthop: settings.hostAddress),
                      Route(network: "\(nodePortSource(own.ip))/32", nexthop: settings.hostAddress)]
        var peers: [String] = []
        for other in state.nodes.values where other.metadata.name != settings.node && other.metadata.deletionTimestamp == nil {
            // A node not yet given its addresses is left out until it has them.
            guard let remote = try? addresses(other) else { continue }
            let via = vtep(remote.ip).description
            routes.append(Route(network: remote.pods.description, nexthop: via))
            routes.append(Route(network: "\(nodePortSource(remote.ip))/32", nexthop: via))
            peers.append(remote.ip.description)
        }
        let (clusterIPs, nodePorts) = services(state, nodePortAddress: settings.nodePortAddress)

        return NodePlan(nodeIP: own.ip.description, podCIDR: own.pods.description,
                        gateway: "\(own.pods.host(1))/\(own.pods.length)", vtep: "\(vtep(own.ip))/\(vteps.length)",
                        routes: routes.sorted(), peers: peers.sorted { (IPv4($0) ?? IPv4(0)) < (IPv4($1) ?? IPv4(0)) },
                        services: clusterIPs, nodePorts: nodePorts, nodePortSource: nodePortSource(own.ip).description,
                        policies: policies(state, node: settings.node, pods: own.pods))
    }

    /// Every ClusterIP port with its ready endpoints (EndpointSlices of the Service, port matched by
    /// name); and every nodePort of a NodePort or LoadBalancer Service, as `nodePortAddress:nodePort`
    /// to the same endpoints.
    static func services(_ state: ClusterState, nodePortAddress: String) -> (clusterIP: [LBService], nodePort: [LBService]) {
        var result: [LBService] = [], nodePorts: [LBService] = []
        for (key, service) in state.services {
            guard let vip = service.clusterIPv4, IPv4(vip) != nil else { continue }   // headless ("None") or IPv6
            let namespace = service.metadata.namespace ?? "default"
            let slices = state.endpointSlices.values.filter {
                ($0.metadata.namespace ?? "default") == namespace && $0.serviceName == service.metadata.name && ($0.addressType ?? "IPv4") == "IPv4"
            }
            for port in service.spec?.ports ?? [] {
                let proto = (port.protocol ?? "TCP").uppercased()
                guard proto == "TCP" || proto == "UDP" else { continue }
                var backends = Set<Backend>()
                for slice in slices {
                    guard let target = (slice.ports ?? []).first(where: { $0.name == port.name && ($0.protocol ?? "TCP").uppercased() == proto })?.port else { continue }
                    for endpoint in slice.endpoints ?? [] where endpoint.conditions?.ready != false && endpoint.conditions?.terminating != true {
                        for address in endpoint.addresses where IPv4(address) != nil { backends.insert(Backend(ip: address, port: target)) }
                    }
                }
                let name = key + (port.name.map { ":" + $0 } ?? ""), ordered = backends.sorted()
                result.append(LBService(vip: vip, vport: port.port, proto: proto, name: name, backends: ordered))
                if ["NodePort", "LoadBalancer"].contains(service.spec?.type ?? "ClusterIP"), let nodePort = port.nodePort, (1...65535).contains(nodePort) {
                    nodePorts.append(LBService(vip: nodePortAddress, vport: nodePort, proto: proto, name: name, backends: ordered))
                }
            }
        }
        return (result.sorted { $0.key < $1.key }, nodePorts.sorted { $0.key < $1.key })
    }

    /// Ingress NetworkPolicies of the pods on this node: a pod selected by one is isolated; what any
    /// of its policies allows gets in (ipBlock `except`s are DROP rules before their ACCEPT).
    static func policies(_ state: ClusterState, node: String, pods: IPv4Prefix) -> [String: [PolicyRule]] {
        var result: [String: [PolicyRule]] = [:]
        let namespaceLabels = state.namespaces.mapValues { ($0.metadata.labels ?? [:]).merging(["kubernetes.io/metadata.name": $0.metadata.name]) { a, _ in a } }
        for pod in state.pods.values where pod.spec?.nodeName == node && pod.spec?.hostNetwork != true {
            guard let ip = pod.ipv4, let address = IPv4(ip), pods.contains(address) else { continue }
            let namespace = pod.metadata.namespace ?? "default"
            let selecting = state.policies.values.filter {
                ($0.metadata.namespace ?? "default") == namespace && $0.coversIngress && $0.spec.podSelector.matches(pod.metadata.labels ?? [:])
            }.sorted { $0.metadata.name < $1.metadata.name }
            guard !selecting.isEmpty else { continue }
            var rules: [PolicyRule] = []
            for policy in selecting {
                for ingress in policy.spec.ingress ?? [] {
                    // Sources: nil means any.
                    var sources: [(accept: String?, except: [String])] = []
                    if let from = ingress.from, !from.isEmpty {
                        for peer in from {
                            if let block = peer.ipBlock {
                                sources.append((block.cidr, block.except ?? []))
                                continue
                            }
                            let peerNamespaces: [String]
                            if let selector = peer.namespaceSelector {
                                peerNamespaces = namespaceLabels.filter { selector.matches($0.value) }.map(\.key)
                            } else {
                                peerNamespaces = [namespace]
                            }
                            for other in state.pods.values where peerNamespaces.contains(other.metadata.namespace ?? "default") {
                                guard peer.podSelector?.matches(other.metadata.labels ?? [:]) ?? true, let otherIP = other.ipv4 else { continue }
                                sources.append((otherIP + "/32", []))
                            }
                        }
                        if sources.isEmpty { continue }   // selects nobody: allows nothing
                    } else {
                        sources = [(nil, [])]
                    }
                    let ports: [(String?, Int?)] = (ingress.ports ?? []).isEmpty ? [(nil, nil)] : (ingress.ports ?? []).compactMap { port in
                        let proto = (port.protocol ?? "TCP").uppercased()
                        switch port.port {
                        case .int(let number)?: return (proto, number)
                        case nil: return (proto, nil)
                        case .string?: return nil   // named ports are not resolved: such an entry allows nothing
                        }
                    }
                    for source in sources {
                        for (proto, port) in ports {
                            for excluded in source.except { rules.append(PolicyRule(action: "DROP", src: excluded, l4proto: proto, dport: port)) }
                            rules.append(PolicyRule(action: "ACCEPT", src: source.accept, l4proto: proto, dport: port))
                        }
                    }
                }
            }
            var seen = Set<PolicyRule>()
            result[ip] = rules.filter { seen.insert($0).inserted }
        }
        return result
    }
}

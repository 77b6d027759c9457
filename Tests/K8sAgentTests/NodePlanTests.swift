@testable import pcn_k8s_agent
import Foundation
import XCTest

/// The agent's pure parts: manifests read in Kubernetes' schema, and the plan of a node.
final class NodePlanTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "pcn-k8s-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    private let cluster = """
        apiVersion: v1
        kind: NodeList
        items:
        - metadata: {name: n1}
          spec: {podCIDR: 10.10.1.0/24}
          status: {addresses: [{type: Hostname, address: n1}, {type: InternalIP, address: 10.214.200.1}]}
        - metadata: {name: n2}
          spec: {podCIDRs: [fd00::/64, 10.10.2.0/24]}
          status: {addresses: [{type: InternalIP, address: 10.214.200.2}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          type: NodePort
          clusterIP: 10.96.0.10
          ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, targetPort: dns, nodePort: 30053}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: inside, namespace: default}
        spec: {type: ClusterIP, clusterIP: 10.96.0.11, ports: [{port: 81, nodePort: 30081}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: headless}
        spec: {clusterIP: None, ports: [{port: 80}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-abc
          namespace: default
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
        endpoints:
        - addresses: [10.10.2.5]
          nodeName: n2
        - addresses: [10.10.1.5]
          conditions: {ready: true}
        - addresses: [10.10.1.9]
          conditions: {ready: false}
        """

    func testTheManifestsAndThePlanOfANode() throws {
        try write("cluster.yaml", cluster)
        let state = try DirectorySource(directory: directory).read()
        XCTAssertEqual(state.nodes.count, 2)
        XCTAssertEqual(state.nodes["n2"]?.podCIDR, "10.10.2.0/24", "the IPv4 one of podCIDRs")
        let plan = try NodePlan.make(state, AgentSettings(node: "n1"))
        XCTAssertEqual(plan.nodeIP, "10.214.200.1")
        XCTAssertEqual(plan.gateway, "10.10.1.1/24")
        XCTAssertEqual(plan.vtep, "10.18.200.1/16")
        XCTAssertEqual(plan.peers, ["10.214.200.2"])
        XCTAssertEqual(plan.routes, [.init(network: "0.0.0.0/0", nexthop: "169.254.100.2"), .init(network: "10.10.2.0/24", nexthop: "10.18.200.2"),
                                     .init(network: "10.19.200.1/32", nexthop: "169.254.100.2"), .init(network: "10.19.200.2/32", nexthop: "10.18.200.2")],
                       "NodePort clients of n1 answered through its stack, those of n2 through n2")
        XCTAssertEqual(plan.services.map(\.key), ["10.96.0.10/53/UDP", "10.96.0.10/80/TCP", "10.96.0.11/81/TCP"], "the headless service has no VIP")
        XCTAssertEqual(plan.nodePortSource, "10.19.200.1")
        XCTAssertEqual(plan.nodePorts.map(\.key), ["169.254.101.1/30053/UDP", "169.254.101.1/30080/TCP"],
                       "the NodePort Service's ports; a ClusterIP Service's nodePort field is not one")
        XCTAssertEqual(plan.nodePorts.first { $0.vport == 30080 }?.backends, [.init(ip: "10.10.1.5", port: 8080), .init(ip: "10.10.2.5", port: 8080)])
        let http = plan.services.first { $0.vport == 80 }
        XCTAssertEqual(http?.backends, [.init(ip: "10.10.1.5", port: 8080), .init(ip: "10.10.2.5", port: 8080)], "ready endpoints, the port by name")
        XCTAssertEqual(plan.services.first { $0.vport == 53 }?.backends.map(\.port), [5353, 5353])
        XCTAssertEqual(plan.policies, [:])
    }

    func testNetworkPoliciesIsolateTheSelectedPods() throws {
        try write("nodes.yaml", cluster)
        try write("pods.json", """
            {"apiVersion": "v1", "kind": "List", "items": [
              {"kind": "Pod", "metadata": {"name": "web1", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"podIP": "10.10.1.5"}},
              {"kind": "Pod", "metadata": {"name": "web2", "labels": {"app": "web"}}, "spec": {"nodeName": "n2"}, "status": {"podIP": "10.10.2.5"}},
              {"kind": "Pod", "metadata": {"name": "client", "labels": {"role": "client"}}, "spec": {"nodeName": "n2"}, "status": {"podIP": "10.10.2.7"}},
              {"kind": "Pod", "metadata": {"name": "other", "namespace": "other", "labels": {"role": "client"}}, "spec": {"nodeName": "n1"}, "status": {"podIP": "10.10.1.8"}}
            ]}
            """)
        try write("policy.yaml", """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: web-from-clients, namespace: default}
            spec:
              podSelector: {matchLabels: {app: web}}
              ingress:
              - from:
                - podSelector: {matchExpressions: [{key: role, operator: In, values: [client]}]}
                - ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.9/32]}
                ports: [{port: 8080}]
            """)
        let state = try DirectorySource(directory: directory).read()
        let plan = try NodePlan.make(state, AgentSettings(node: "n1"))
        XCTAssertEqual(Array(plan.policies.keys), ["10.10.1.5"], "web1 is on n1; web2 on n2; 'other' is not selected")
        XCTAssertEqual(plan.policies["10.10.1.5"], [
            .init(action: "ACCEPT", src: "10.10.2.7/32", l4proto: "TCP", dport: 8080),
            .init(action: "DROP", src: "192.0.2.9/32", l4proto: "TCP", dport: 8080),
            .init(action: "ACCEPT", src: "192.0.2.0/24", l4proto: "TCP", dport: 8080),
        ], "the client of the same namespace only; the ipBlock with its except first")
        // A policy that selects no source allows nothing: the pod stays isolated with no rule.
        try write("policy.yaml", """
            kind: NetworkPolicy
            apiVersion: networking.k8s.io/v1
            metadata: {name: deny}
            spec: {podSelector: {}, policyTypes: [Ingress]}
            """)
        let denied = try NodePlan.make(try DirectorySource(directory: directory).read(), AgentSettings(node: "n1"))
        XCTAssertEqual(denied.policies, ["10.10.1.5": []])
    }

    func testBadManifestsAreNamedWithTheirField() throws {
        try write("a.yaml", "kind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 5}\n")
        XCTAssertThrowsError(try DirectorySource(directory: directory).read()) {
            XCTAssertTrue("\($0)".contains("a.yaml document 1: Node 'n1': spec.podCIDR: not a String"), "\($0)")
        }
        try write("a.yaml", "kind: Pod\nspec: {}\n")
        XCTAssertThrowsError(try DirectorySource(directory: directory).read()) {
            XCTAssertTrue("\($0)".contains("'metadata' is missing"), "\($0)")
        }
        try write("a.yaml", "kind: Pod\nmetadata: {name: [unclosed\n")
        XCTAssertThrowsError(try DirectorySource(directory: directory).read()) { XCTAssertTrue("\($0)".contains("is not YAML"), "\($0)") }
        // Kinds the agent does not read are skipped.
        try write("a.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
        XCTAssertEqual(try DirectorySource(directory: directory).read(), ClusterState())
        // The node itself must be there, with its addresses.
        try write("a.yaml", "kind: Node\nmetadata: {name: n1}\n")
        XCTAssertThrowsError(try NodePlan.make(try DirectorySource(directory: directory).read(), AgentSettings(node: "n1"))) {
            XCTAssertTrue("\($0)".contains("no IPv4 InternalIP"), "\($0)")
        }
        XCTAssertThrowsError(try NodePlan.make(ClusterState(), AgentSettings(node: "n9"))) { XCTAssertTrue("\($0)".contains("'n9' is not in the cluster")) }
    }

    func testAddressArithmetic() {
        XCTAssertEqual(IPv4Prefix("10.10.1.77/24")?.description, "10.10.1.0/24")
        XCTAssertEqual(IPv4Prefix("10.10.1.0/24")?.host(1).description, "10.10.1.1")
        XCTAssertNil(IPv4("10.1.2"))
        XCTAssertNil(IPv4("10.1.2.256"))
        XCTAssertNil(IPv4Prefix("10.0.0.0/33"))
        XCTAssertEqual(HostNetwork.vtepMAC(nodeIP: "10.214.200.1"), "02:18:0a:d6:c8:01")
        XCTAssertEqual(NodeCubes.firewallName(podIP: "10.10.1.5"), "fw0a0a0105")
    }
}

import ArgumentParser
import DaemonKit
import Foundation
import Logging
import PCNHTTP
import ServiceLifecycle

@main
struct Entry {
    static func main() { DaemonMain.main(K8sAgent.self) }
}

/// pcn-k8s-agent: one per node. Reads the cluster (Nodes, Pods, Services, EndpointSlices,
/// NetworkPolicies), plans what the node needs (NodePlan) and makes the node's cubes and host side
/// match it through the node's pcn-api; again on every change and every `--resync` seconds.
struct K8sAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcn-k8s-agent",
        abstract: "The Polycube-Swift Kubernetes node agent: keeps a node's cubes in step with the cluster.")

    @OptionGroup var paths: PathOptions

    @Option(help: "This node's name (its Node object's metadata.name).")
    var node: String

    @Option(name: .customLong("cluster-dir"), help: "A directory of manifests in Kubernetes' schema (YAML or JSON) to read the cluster from.")
    var clusterDirectory: String?

    @Flag(name: .customLong("in-cluster"), help: "Read the cluster from the Kubernetes API (list + watch), with the pod's service account.")
    var inCluster = false

    @Option(help: "The node's pcn-api.")
    var api = "http://127.0.0.1:9000"

    @Option(name: .customLong("token-file"), help: "pcn-api's bearer token file.")
    var tokenFile: String?

    @Option(help: "The CA pcn-api's certificate chains to (https).")
    var cacert: String?

    @Option(name: .customLong("cluster-cidr"), help: "Every node's pod CIDR is inside it.")
    var clusterCIDR = "10.10.0.0/16"

    @Option(name: .customLong("vtep-cidr"), help: "The routers' addresses on the VXLAN (each node's: this prefix with its address's low bits).")
    var vtepCIDR = "10.18.0.0/16"

    @Option(name: .customLong("nodeport-source-cidr"), help: "NodePort clients reach the pods with the entry node's address in it (this prefix with the node address's low bits).")
    var nodePortSourceCIDR = "10.19.0.0/16"

    @Option(help: "The VXLAN's network identifier.")
    var vni = 42

    @Option(help: "The node's interface to the other nodes (VXLAN underlay; pods' egress is masqueraded there).")
    var underlay = "eth0"

    @Option(name: .customLong("cube-type"), help: "TC, XDP_SKB or XDP_DRV.")
    var cubeType = "TC"

    @Option(help: "Seconds between full reconciles when nothing changed.")
    var resync = 10.0

    func validate() throws {
        guard (clusterDirectory != nil) != inCluster else { throw ValidationError("give one source of the cluster: --cluster-dir DIR or --in-cluster") }
        guard ["TC", "XDP_SKB", "XDP_DRV"].contains(cubeType) else { throw ValidationError("--cube-type must be TC, XDP_SKB or XDP_DRV (it is '\(cubeType)')") }
        guard IPv4Prefix(clusterCIDR) != nil else { throw ValidationError("--cluster-cidr '\(clusterCIDR)' is not an IPv4 prefix") }
        guard IPv4Prefix(vtepCIDR) != nil else { throw ValidationError("--vtep-cidr '\(vtepCIDR)' is not an IPv4 prefix") }
        guard IPv4Prefix(nodePortSourceCIDR) != nil else { throw ValidationError("--nodeport-source-cidr '\(nodePortSourceCIDR)' is not an IPv4 prefix") }
        guard (1...16_777_215).contains(vni) else { throw ValidationError("--vni must be 1 to 16777215") }
        guard resync >= 0.5 else { throw ValidationError("--resync must be at least 0.5 seconds") }
        guard URL(string: api)?.host != nil, api.hasPrefix("http") else { throw ValidationError("--api '\(api)' is not pcn-api's URL") }
    }

    func run() async throws {
        LogSetup.bootstrap(component: "pcn-k8s-agent", level: LogSetup.level(named: paths.logLevelName)!)
        let logger = Logger(label: "pcn.k8s-agent")
        try DirectoryCheck.writable(paths.runtimeDir, purpose: "runtime directory")
        var token: String?
        if let tokenFile {
            guard let read = PcnAPIClient.token(fromFile: tokenFile) else { throw DaemonError("cannot read the token file \(tokenFile)") }
            token = read
        }
        let settings = AgentSettings(node: node, clusterCIDR: clusterCIDR, vtepCIDR: vtepCIDR, vni: vni, underlay: underlay, cubeType: cubeType,
                                     nodePortSourceCIDR: nodePortSourceCIDR)
        let source: any ClusterSource
        let origin: String
        if let clusterDirectory {
            source = DirectorySource(directory: clusterDirectory)
            origin = clusterDirectory
        } else {
            let kubernetes = KubernetesSource(settings: try KubernetesSource.Settings.inCluster(), logger: Logger(label: "pcn.k8s-agent.api"))
            kubernetes.start()
            source = kubernetes
            origin = "the Kubernetes API"
        }
        let gate = ReadyGate()
        let loop = ReconcileLoop(source: source, settings: settings,
                                 api: PcnAPIClient(base: api, token: token, caFile: cacert), resync: resync, gate: gate, logger: logger)
        try await DaemonLifecycle(component: "pcn-k8s-agent", paths: paths, logger: logger)
            .run(services: [loop], status: "node \(node) in step with \(origin)", gate: gate)
    }
}

/// Reads the source when it changed (or every `resync` seconds), plans, reconciles. A source that
/// cannot be read keeps the last good state; a reconcile that fails is retried within a second.
/// Ready once the node first matches the cluster.
struct ReconcileLoop: Service {
    let source: any ClusterSource
    let settings: AgentSettings
    let api: PcnAPIClient
    let resync: Double
    let gate: ReadyGate
    let logger: Logger

    func run() async throws {
        let host = HostNetwork(settings: settings)
        let cubes = NodeCubes(api: api, settings: settings, logger: logger)
        var seen: String? = nil
        var state: ClusterState? = nil
        var lastPlan: NodePlan? = nil
        var due = Date.distantPast
        var ready = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let fingerprint = source.generation()
            if fingerprint != seen || Date() >= due {
                if fingerprint != seen || state == nil {
                    seen = fingerprint
                    do {
                        state = try source.read()
                    } catch {
                        logger.error("the cluster cannot be read (the last state read stays in force): \(error)")
                    }
                }
                if let state {
                    do {
                        let plan = try NodePlan.make(state, settings)
                        try host.ensure(plan)
                        try cubes.reconcile(plan)
                        if plan != lastPlan {
                            logger.info("in step: \(plan.peers.count) other node(s), \(plan.services.count) service port(s), \(plan.nodePorts.count) node port(s), \(plan.policies.count) isolated pod(s)")
                            lastPlan = plan
                        }
                        due = Date().addingTimeInterval(resync)
                        if !ready { ready = true; gate.open() }
                    } catch {
                        logger.error("reconcile failed (retried in 1 s): \(error)")
                        due = Date().addingTimeInterval(1)
                    }
                } else {
                    due = Date().addingTimeInterval(1)
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
    }
}

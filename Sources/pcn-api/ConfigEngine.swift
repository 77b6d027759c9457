import DaemonKit
import Foundation
import JSONText
import IPC
import PCNProtocol
import Logging
import YangKit

/// A refused request: its HTTP status and every error, RFC 8040 style.
struct RestFailure: Error {
    let status: Int
    let errors: [RestconfError]

    init(_ status: Int, _ errors: [RestconfError]) {
        self.status = status
        self.errors = errors
    }

    init(_ status: Int, tag: String, path: String? = nil, _ message: String) {
        self.init(status, [RestconfError(tag: tag, path: path, message: message)])
    }
}

/// The services' models, the datastore, and every write: resolve, validate the whole candidate,
/// apply to the datapath and the service's cube-host, commit; or refuse with nothing changed.
/// Writes (and replays, attaches, actions) pass one at a time, in arrival order, through
/// `exclusively`: an actor alone would let a second write start from the state the first one is
/// still changing while it awaits the datapath. Readers only ever see committed configuration.
actor ConfigEngine {
    struct Service: Codable {
        var name: String
        var yang: String
        /// The cube-host that registered it (receives `cube.apply`).
        var endpoint: String
    }

    private let yangDirectory: String
    private let bus: BusClient
    private let logger: Logger
    private var services: [String: Service] = [:]
    private var context: YangContext?
    private var tops: [String: SchemaNode] = [:]
    /// What the registered models export at /metrics (checked when they were built).
    private var metrics: [ServiceMetric] = []
    private(set) var store: Datastore
    private let applier: Applier
    private let core: CoreClient
    /// The models registered so far, one file per service: after a restart the service trees are
    /// served at once (reads, and writes once the cube-host answers), not only after it registers again.
    private let modelDirectory: String
    /// The write in progress, and those waiting for it in arrival order.
    private var writing = false
    private var writers: [CheckedContinuation<Void, Never>] = []

    init(yangDirectory: String, datastorePath: String, bus: BusClient, logger: Logger) throws {
        self.yangDirectory = yangDirectory
        self.bus = bus
        self.logger = logger
        store = try Datastore(path: datastorePath)
        core = CoreClient(bus: bus)
        applier = Applier(core: core, logger: logger)
        modelDirectory = (datastorePath as NSString).deletingLastPathComponent + "/models"
        var known: [String: Service] = [:]
        for file in (try? FileManager.default.contentsOfDirectory(atPath: modelDirectory)) ?? [] where file.hasSuffix(".json") {
            if let data = FileManager.default.contents(atPath: "\(modelDirectory)/\(file)"), let model = try? JSONDecoder().decode(Service.self, from: data) {
                known[model.name] = model
            }
        }
        do {
            (context, tops, metrics) = try Self.build(known, yangDirectory: yangDirectory)
            services = known
        } catch {
            logger.warning("the stored service models do not load (\(error)): waiting for the cube-hosts to register them")
            (context, tops, metrics) = try Self.build([:], yangDirectory: yangDirectory)
        }
    }

    /// A context with the base models and `models`, each service's top list, and their metrics.
    private static func build(_ models: [String: Service], yangDirectory: String) throws -> (YangContext, [String: SchemaNode], [ServiceMetric]) {
        let fresh = try YangContext(searchDirectory: yangDirectory)
        _ = try fresh.loadModule(named: "polycube-base")
        for service in models.values.sorted(by: { $0.name < $1.name }) {
            let module: String
            do {
                module = try fresh.addModule(yang: service.yang)
            } catch {
                throw RestFailure(400, tag: "invalid-value", "the model of service '\(service.name)' does not load: \(error)")
            }
            guard module == service.name else {
                throw RestFailure(400, tag: "invalid-value", "the model of service '\(service.name)' is module '\(module)': it must be named after the service")
            }
            guard fresh.schema(module: module).contains(where: { $0.name == module && $0.kind == .list && $0.keys == ["name"] }) else {
                throw RestFailure(400, tag: "invalid-value", "the model of service '\(service.name)' has no top list '\(module)' keyed by name")
            }
        }
        let tops = Dictionary(uniqueKeysWithValues: models.keys.compactMap { name in fresh.schema(module: name).first { $0.name == name }.map { (name, $0) } })
        return (fresh, tops, try ServiceMetric.declarations(tops))
    }

    /// Runs `body` once every write that came before it has finished.
    private func exclusively<T>(_ body: () async throws -> T) async throws -> T {
        if writing {
            await withCheckedContinuation { writers.append($0) }
        } else {
            writing = true
        }
        // The turn passes straight to the next writer, so none can overtake it.
        defer { if writers.isEmpty { writing = false } else { writers.removeFirst().resume() } }
        return try await body()
    }

    // MARK: - Services

    /// A cube-host registers its service's model. The REST tree of the service exists from then on,
    /// and the service's stored cubes are replayed to the datapath and to it.
    func register(service name: String, yang: String, endpoint: String) async throws {
        var models = services
        let model = Service(name: name, yang: yang, endpoint: endpoint)
        models[name] = model
        if let known = services[name], known.yang == yang, known.endpoint == endpoint {
            // The same model again (a restarted cube-host): nothing to rebuild.
        } else {
            (context, tops, metrics) = try Self.build(models, yangDirectory: yangDirectory)
            services = models
            try? FileManager.default.createDirectory(atPath: modelDirectory, withIntermediateDirectories: true)
            try? JSONEncoder().encode(model).write(to: URL(fileURLWithPath: "\(modelDirectory)/\(name).json"), options: .atomic)
        }
        logger.info("service registered", metadata: ["service": "\(name)", "by": "\(endpoint)"])
    }

    /// Sends every stored cube of a service to the datapath and to its cube-host (after a restart of
    /// either, or of everything). Failures are logged: the configuration stays stored. Called after
    /// the registration is answered, so a cube-host that handles one request at a time is free.
    func replay(service: String) async {
        _ = try? await exclusively { await replayNow(service: service) }
    }

    private func replayNow(service: String) async {
        guard let top = tops[service], let endpoint = services[service]?.endpoint else { return }
        let cubes = (store.document["\(service):\(service)"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
        for cube in cubes {
            do {
                try await applier.apply(service: service, endpoint: endpoint, top: top, old: nil, new: cube, replaying: true)
            } catch {
                logger.error("replaying cube '\(cube["name"] ?? "?")' of \(service) failed: \(error)")
            }
        }
        if !cubes.isEmpty { logger.info("replayed \(cubes.count) cubes of \(service)") }
        await replayAttachments()
    }

    /// pcn-core came (back): every registered service's cubes are replayed.
    func replayAll() async {
        _ = try? await exclusively {
            for service in services.keys.sorted() { await replayNow(service: service) }
        }
    }

    /// What the services' models export as metrics, with their samples in every cube (read from the
    /// cube-hosts' state now; a cube whose cube-host does not answer gives no sample).
    func serviceMetrics() async -> [(metric: ServiceMetric, samples: [(cube: String, labels: [(String, String)], value: String)])] {
        guard !metrics.isEmpty else { return [] }
        let metrics = self.metrics
        var cubes: [String: [[String: Any]]] = [:]
        let coreCubes = try? await core.cubes(timeout: .seconds(5))  // once for all the cubes
        for service in Set(metrics.map(\.service)).sorted() {
            var withStates: [[String: Any]] = []
            for cube in (store.document["\(service):\(service)"] as? [Any] ?? []).compactMap({ $0 as? [String: Any] }) {
                withStates.append(await withState(cube, service: service, coreCubes: coreCubes))
            }
            cubes[service] = withStates
        }
        return metrics.map { metric in
            (metric, (cubes[metric.service] ?? []).flatMap { cube in
                metric.samples(in: cube).map { (cube["name"] as? String ?? "", $0.labels, $0.value) }
            })
        }
    }

    // MARK: - Transparent cubes

    /// Attaches a transparent cube (pcn-core checks the position and types) and stores it.
    func attach(_ request: [String: String]) async throws {
        try await exclusively { try await attachNow(request) }
    }

    private func attachNow(_ request: [String: String]) async throws {
        guard let cube = request["cube"], let to = request["to"] ?? request["port"] else {
            throw RestFailure(400, tag: "missing-element", "attach needs {\"cube\": name, \"port\": netdev or cube:port}")
        }
        // The chain's order after the attach is what replay rebuilds.
        let chain: [String]
        do {
            _ = try await core.call(CubeAttach(cube: cube, to: to, position: request["position"], before: request["before"], after: request["after"]))
            chain = try await core.chain(at: to)
        } catch {
            throw RestFailure(core: error)
        }
        var attachments = store.attachments.filter { $0["cube"] != cube }
        attachments.removeAll { chain.contains($0["cube"] ?? "") }
        attachments += chain.map { ["cube": $0, "to": to] }
        try store.commit(store.document, changed: [], attachments: attachments)
    }

    func detach(_ cube: String) async throws {
        try await exclusively { try await detachNow(cube) }
    }

    private func detachNow(_ cube: String) async throws {
        do {
            _ = try await core.call(CubeDetach(name: cube))
        } catch {
            throw RestFailure(core: error)
        }
        try store.commit(store.document, changed: [], attachments: store.attachments.filter { $0["cube"] != cube })
    }

    /// Re-attaches stored transparent cubes that pcn-core does not have attached (after a restart).
    private func replayAttachments() async {
        guard let cubes = try? await core.cubes() else { return }
        for attachment in store.attachments {
            guard let cube = attachment["cube"], let to = attachment["to"],
                  let current = cubes.first(where: { $0.name == cube }), current.parent == nil else { continue }
            do {
                _ = try await core.call(CubeAttach(cube: cube, to: to, position: "last"))
            } catch {
                logger.info("replay: '\(cube)' not attached to \(to) yet: \(error)")
            }
        }
    }

    /// `GET /polycube/v1/services`, as JSON.
    func serviceList() -> Data {
        let list: [[String: Any]] = services.values.sorted { $0.name < $1.name }.map { service in
            ["name": service.name, "cube-host": service.endpoint,
             "cubes": (store.document["\(service.name):\(service.name)"] as? [Any])?.count ?? 0]
        }
        return (try? JSONText.data(list)) ?? Data("[]".utf8)
    }

    func schema(of service: String) throws -> SchemaNode {
        guard let top = tops[service] else {
            throw RestFailure(404, tag: "invalid-value", "no service '\(service)' is registered (registered: \(services.keys.sorted().joined(separator: ", ")))")
        }
        return top
    }

    /// The service of a cube, for `/<cube>/...` paths.
    func service(ofCube cube: String) -> String? {
        for (member, value) in store.document {
            if (value as? [Any])?.contains(where: { ConfigTree.matches($0, ["name": cube]) }) == true {
                return String(member.split(separator: ":").first ?? "")
            }
        }
        return nil
    }

    // MARK: - Reads

    /// The configuration at a target, as JSON.
    func readJSON(_ target: Target) async throws -> Data {
        try JSONText.data(try await read(target))
    }

    /// The state (config false) of a cube: the generic leaves from pcn-core (service-name, ports'
    /// status and transparent cubes, a transparent cube's parent) and what the cube-host answers to
    /// `cube.state {cube}` (counters, tables: read from its maps), merged over its configuration.
    /// `coreCubes`: pcn-core's cubes when the caller has them already.
    private func withState(_ cube: [String: Any], service: String, coreCubes: [CubeDescription]? = nil) async -> [String: Any] {
        guard let name = cube["name"] as? String else { return cube }
        var merged = cube
        merged["service-name"] = service
        let cubes: [CubeDescription]? = if let coreCubes { coreCubes } else { try? await core.cubes(timeout: .seconds(5)) }
        if let live = cubes?.first(where: { $0.name == name }) {
            if let parent = live.parent { merged["parent"] = parent }
            if var ports = merged["ports"] as? [Any] {
                for (index, entry) in ports.enumerated() {
                    guard var port = entry as? [String: Any], let livePort = live.ports.first(where: { $0.name == port["name"] as? String }) else { continue }
                    port["status"] = livePort.peer.isEmpty ? "DOWN" : "UP"
                    if !livePort.tcubes.isEmpty { port["tcubes"] = livePort.tcubes }
                    ports[index] = port
                }
                merged["ports"] = ports
            }
        }
        if let endpoint = services[service]?.endpoint,
           let state = try? await CubeHostBus(bus, endpoint: endpoint).call(CubeStateQuery(cube: name), timeout: .seconds(5)).object,
           let top = tops[service] {
            merged = (try? ConfigTree.merge(merged, state, node: top, path: "")) as? [String: Any] ?? merged
        }
        return merged
    }

    private func read(_ target: Target) async throws -> Any {
        let list = store.document["\(target.service):\(target.service)"] as? [Any] ?? []
        guard let cube = target.cube else { return list }
        guard let stored = list.first(where: { ConfigTree.matches($0, ["name": cube]) }) as? [String: Any] else {
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "cube '\(cube)' does not exist")
        }
        let entry = await withState(stored, service: target.service)
        guard let value = ConfigTree.get(entry, target.steps[...]) else {
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "nothing is configured at \(target.dataPath)")
        }
        return value
    }

    var etag: String { store.etag }
    var lastModified: Date { store.lastModified }

    // MARK: - Writes

    enum Method: String { case post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE" }

    /// One write. Returns true when it created the target.
    func write(_ method: Method, _ target: Target, body bodyData: Data?, ifMatch: String?) async throws -> Bool {
        try await exclusively { try await writeNow(method, target, body: bodyData, ifMatch: ifMatch) }
    }

    private func writeNow(_ method: Method, _ target: Target, body bodyData: Data?, ifMatch: String?) async throws -> Bool {
        var body: Any?
        if let bodyData {
            do {
                body = try JSONSerialization.jsonObject(with: bodyData, options: [.fragmentsAllowed])
            } catch {
                throw RestFailure(400, tag: "malformed-message", "the body is not JSON: \(error.localizedDescription)")
            }
        }
        if let ifMatch, ifMatch != "*", ifMatch != store.etag {
            throw RestFailure(412, tag: "operation-failed", "If-Match \(ifMatch) does not match the datastore's ETag \(store.etag)")
        }
        guard let context, let top = tops[target.service], let endpoint = services[target.service]?.endpoint else {
            throw RestFailure(404, tag: "invalid-value", "no service '\(target.service)' is registered")
        }
        guard let cubeName = target.cube else {
            throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "\(method.rawValue) needs a cube: /polycube/v1/\(target.service)/<cube>")
        }
        if !target.node.config {
            throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "'\(target.node.name)' is read-only (state, config false)")
        }
        if target.isCollection && method != .post {
            throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "\(method.rawValue) needs an entry of '\(target.node.name)': give its key in the path")
        }
        let member = "\(target.service):\(target.service)"
        let list = store.document[member] as? [Any] ?? []
        let oldCube = list.first { ConfigTree.matches($0, ["name": cubeName]) } as? [String: Any]
        let cubePath = "/\(member)[name='\(cubeName)']"
        let current = oldCube.flatMap { ConfigTree.get($0, target.steps[...]) }

        var newCube: [String: Any]?
        switch method {
        case .delete:
            guard oldCube != nil, current != nil else {
                throw RestFailure(404, tag: "data-missing", path: target.dataPath, "nothing is configured at \(target.dataPath)")
            }
            newCube = target.steps.isEmpty ? nil : ConfigTree.set(oldCube, target.steps[...], to: nil) as? [String: Any]
        case .post, .put, .patch:
            // POST of a named entry without a body creates it with its defaults (`pcnctl ddosmitigator add d1`).
            let given: Any? = body ?? (method == .post && !target.isCollection ? [String: Any]() : nil)
            guard let body = given else { throw RestFailure(400, tag: "malformed-message", "\(method.rawValue) needs a JSON body") }
            let content = try unwrap(body, target: target)
            var value: Any
            switch method {
            case .post:
                if target.isCollection {
                    // POST to a list: the body is a new entry, its keys inside.
                    guard let entry = content as? [String: Any] else {
                        throw RestFailure(400, tag: "invalid-value", path: target.dataPath, "POST to '\(target.node.name)' needs an object for the new entry")
                    }
                    let keys = Dictionary(uniqueKeysWithValues: target.node.keys.compactMap { key in entry[key].map { (key, ConfigCheck.text($0)) } })
                    guard keys.count == target.node.keys.count else {
                        throw RestFailure(400, tag: "missing-element", path: target.dataPath, "the new entry of '\(target.node.name)' needs its keys \(target.node.keys.joined(separator: ", "))")
                    }
                    if (current as? [Any])?.contains(where: { ConfigTree.matches($0, keys) }) == true {
                        throw RestFailure(409, tag: "data-exists", path: target.dataPath, "'\(target.node.name)' already has an entry \(keys.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","))")
                    }
                    value = (current as? [Any] ?? []) + [entry]
                } else {
                    if current != nil || (target.steps.isEmpty && oldCube != nil) {
                        throw RestFailure(409, tag: "data-exists", path: target.dataPath, target.steps.isEmpty ? "cube '\(cubeName)' already exists" : "\(target.dataPath) already exists: use PATCH or PUT to change it")
                    }
                    value = try withPathKeys(content, target: target, cubeName: cubeName)
                }
            case .put:
                value = try withPathKeys(content, target: target, cubeName: cubeName)
            default:
                guard current != nil, oldCube != nil else {
                    throw RestFailure(404, tag: "data-missing", path: target.dataPath, "nothing is configured at \(target.dataPath): create it with POST")
                }
                value = try ConfigTree.merge(current, try withPathKeys(content, target: target, cubeName: cubeName), node: target.node, path: target.dataPath)
            }
            if !target.steps.isEmpty && oldCube == nil {
                throw RestFailure(404, tag: "data-missing", path: cubePath, "cube '\(cubeName)' does not exist: create it first (POST /polycube/v1/\(target.service)/\(cubeName))")
            }
            newCube = target.steps.isEmpty ? value as? [String: Any] : ConfigTree.set(oldCube, target.steps[...], to: value) as? [String: Any]
            if newCube == nil { throw RestFailure(400, tag: "invalid-value", path: cubePath, "a cube is an object") }
        }

        // Validate: every node of the new cube, then the whole candidate datastore.
        var typedCube: [String: Any]?
        if let newCube {
            let checked = ConfigCheck(context: context).check([newCube], node: top, path: "/\(member)", existing: oldCube.map { [$0] })
            if !checked.errors.isEmpty { throw RestFailure(400, checked.errors) }
            typedCube = (checked.value as? [Any])?.first as? [String: Any]
        }
        // The whole-tree rules (must, when, leafref, unique) and the defaults: the cube's own tree is
        // what they range over (a cube's configuration does not refer to another cube's), so the
        // cost of a write follows the size of its cube, not of the datastore.
        var committedCube: [String: Any]?
        if let typedCube {
            do {
                let text = try context.normalize(json: String(decoding: try JSONText.data([member: [typedCube]]), as: UTF8.self))
                let normalized = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
                committedCube = (normalized[member] as? [Any])?.first as? [String: Any]
            } catch let issue as YangIssue {
                throw RestFailure(400, tag: "invalid-value", path: Self.restPath(issue.path) ?? cubePath, issue.message)
            }
        }
        var normalized = store.document
        var committedList = list.filter { !ConfigTree.matches($0, ["name": cubeName]) }
        if let committedCube {
            if let index = list.firstIndex(where: { ConfigTree.matches($0, ["name": cubeName]) }) {
                committedList.insert(committedCube, at: index)
            } else {
                committedList.append(committedCube)
            }
        }
        normalized[member] = committedList.isEmpty ? nil : committedList
        var document = normalized
        let changed = [(member: member, cube: cubeName)] + Self.mirrorPeers(of: cubeName, old: oldCube, new: committedCube, in: &document)

        // Apply, then commit; a refusal undoes what was applied.
        try await applier.apply(service: target.service, endpoint: endpoint, top: top, old: oldCube, new: committedCube, replaying: false)
        do {
            try store.commit(document, changed: changed)
        } catch {
            try? await applier.apply(service: target.service, endpoint: endpoint, top: top, old: committedCube, new: oldCube, replaying: false)
            throw RestFailure(500, tag: "operation-failed", "\(error)")
        }
        // A POST always creates; a PUT creates when nothing was there.
        return method == .post || (method == .put && current == nil)
    }

    /// A link between two cube ports is one fact with two ends: when a port's peer becomes (or stops
    /// being) `other:port`, the other end's peer leaf follows (pcn-core links both ends at once).
    /// Returns the cubes it changed.
    @discardableResult
    static func mirrorPeers(of cube: String, old: [String: Any]?, new: [String: Any]?, in document: inout [String: Any]) -> [(member: String, cube: String)] {
        var touched: [(member: String, cube: String)] = []
        func peers(_ config: [String: Any]?) -> [String: String] {
            var result: [String: String] = [:]
            for case let port as [String: Any] in config?["ports"] as? [Any] ?? [] {
                if let name = port["name"] as? String { result[name] = port["peer"] as? String ?? "" }
            }
            return result
        }
        let before = peers(old), after = peers(new)
        for port in Set(before.keys).union(after.keys) where before[port] != after[port] {
            if let old = before[port], old.contains(":"), let hit = setPeer(old, to: nil, unlessNot: "\(cube):\(port)", in: &document) { touched.append(hit) }
            if let new = after[port], new.contains(":"), let hit = setPeer(new, to: "\(cube):\(port)", unlessNot: nil, in: &document) { touched.append(hit) }
        }
        return touched
    }

    /// Sets the peer leaf of `end` (cube:port) in whichever service holds that cube; with `unlessNot`,
    /// only if it currently names that peer.
    private static func setPeer(_ end: String, to value: String?, unlessNot expected: String?, in document: inout [String: Any]) -> (member: String, cube: String)? {
        let parts = end.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        for (member, list) in document {
            guard var entries = list as? [Any], let index = entries.firstIndex(where: { ConfigTree.matches($0, ["name": parts[0]]) }),
                  var cube = entries[index] as? [String: Any], var ports = cube["ports"] as? [Any],
                  let portIndex = ports.firstIndex(where: { ConfigTree.matches($0, ["name": parts[1]]) }),
                  var port = ports[portIndex] as? [String: Any] else { continue }
            if let expected, port["peer"] as? String != expected { return nil }
            port["peer"] = value
            ports[portIndex] = port
            cube["ports"] = ports
            entries[index] = cube
            document[member] = entries
            return (member, parts[0])
        }
        return nil
    }

    // MARK: - Actions

    /// A YANG action: its input is checked against the model and handed to the cube-host
    /// (`cube.action {cube, path, action, input, config}`, config being the cube's current one); its answer is the action's output. An answer that
    /// carries `config` (the cube's configuration after the action, e.g. a rule appended) is
    /// validated and committed like a write, so the result is persisted.
    func call(_ target: Target, input bodyData: Data?) async throws -> Data {
        try await exclusively { try await callNow(target, input: bodyData) }
    }

    private func callNow(_ target: Target, input bodyData: Data?) async throws -> Data {
        guard let context, let top = tops[target.service], let endpoint = services[target.service]?.endpoint, let cubeName = target.cube else {
            throw RestFailure(404, tag: "invalid-value", "no service '\(target.service)' is registered")
        }
        let member = "\(target.service):\(target.service)"
        let list = store.document[member] as? [Any] ?? []
        guard let cube = list.first(where: { ConfigTree.matches($0, ["name": cubeName]) }) as? [String: Any] else {
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "cube '\(cubeName)' does not exist")
        }
        var input: [String: Any] = [:]
        if let bodyData, !bodyData.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: bodyData) as? [String: Any] else {
                throw RestFailure(400, tag: "malformed-message", path: target.dataPath, "an action's input is a JSON object")
            }
            // RFC 8040 wraps it in "<module>:input".
            input = object.count == 1 ? (object.first { $0.key.hasSuffix("input") }?.value as? [String: Any] ?? object) : object
        }
        // Check the input as the members of a container whose children are the action's input.
        var errors: [RestconfError] = []
        var typed: [String: Any] = [:]
        for (name, value) in input {
            guard let parameter = target.node.input.first(where: { $0.name == name }) else {
                errors.append(.init(tag: "unknown-element", path: target.dataPath + "/" + name,
                                    message: "action '\(target.node.name)' has no input '\(name)' (it has \(target.node.input.map(\.name).joined(separator: ", ")))"))
                continue
            }
            let checked = ConfigCheck(context: context).check(value, node: parameter, path: target.dataPath + "/" + name, existing: nil)
            errors += checked.errors
            typed[name] = checked.value
        }
        for parameter in target.node.input where typed[parameter.name] == nil {
            if let value = parameter.defaultValue { typed[parameter.name] = value }
            else if parameter.mandatory { errors.append(.init(tag: "missing-element", path: target.dataPath + "/" + parameter.name, message: "'\(parameter.name)' is mandatory")) }
        }
        if !errors.isEmpty { throw RestFailure(400, errors) }
        let path = target.steps.dropLast().map { step -> String in
            switch step {
            case .member(let name): name
            case .entry(let keys): keys.sorted { $0.key < $1.key }.map(\.value).joined(separator: "/")
            }
        }
        let reply: [String: Any]
        do {
            reply = try await CubeHostBus(bus, endpoint: endpoint).call(
                CubeAction(cube: cubeName, path: path, action: target.node.name, input: typed, config: cube), timeout: .seconds(30)).object
        } catch let error as BusError where error.code == .noRoute || error.code == .disconnected {
            throw RestFailure(503, tag: "resource-denied", path: target.dataPath, "\(endpoint) is not running")
        } catch let error as BusError {
            throw RestFailure(409, tag: "operation-failed", path: target.dataPath, "\(endpoint): \(error.message)")
        }
        if let config = reply["config"] as? [String: Any] {
            let checked = ConfigCheck(context: context).check([config], node: top, path: "/\(member)", existing: [cube])
            if !checked.errors.isEmpty {
                throw RestFailure(500, [RestconfError(tag: "operation-failed", path: target.dataPath, message: "\(endpoint) returned a configuration that does not validate")] + checked.errors)
            }
            let text = try context.normalize(json: String(decoding: try JSONText.data([member: checked.value]), as: UTF8.self))
            let normalized = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
            if let committed = (normalized[member] as? [Any])?.first {
                var document = store.document
                document[member] = list.map { ConfigTree.matches($0, ["name": cubeName]) ? committed : $0 }
                try store.commit(document, changed: [(member: member, cube: cubeName)])
            }
        }
        let output = reply["output"] ?? [String: Any]()
        return try JSONText.data(output)
    }

    /// RFC 8040 bodies wrap the value in its name (`{"mtu": 1500}` for .../mtu); Polycube's carry the
    /// bare value. Both are accepted.
    private func unwrap(_ body: Any, target: Target) throws -> Any {
        if let object = body as? [String: Any], object.count == 1, let (key, value) = object.first,
           key == target.node.name || key == "\(target.node.module):\(target.node.name)",
           target.node.kind != .container || target.node.child(key) == nil {
            return target.isCollection || target.node.kind != .list ? value : ((value as? [Any])?.first ?? value)
        }
        return body
    }

    /// A list entry's body gets the keys of its path (a different key in the body is an error).
    private func withPathKeys(_ content: Any, target: Target, cubeName: String) throws -> Any {
        let keys: [String: String]
        if target.steps.isEmpty {
            keys = ["name": cubeName]
        } else if case .entry(let entryKeys)? = target.steps.last {
            keys = entryKeys
        } else {
            return content
        }
        guard var object = content as? [String: Any] else {
            throw RestFailure(400, tag: "invalid-value", path: target.dataPath, "'\(target.node.name)' entries are objects")
        }
        for (key, value) in keys {
            if let given = object[key], ConfigCheck.text(given) != value {
                throw RestFailure(400, tag: "invalid-value", path: target.dataPath + "/" + key, "the body's \(key) '\(ConfigCheck.text(given))' differs from the path's '\(value)'")
            }
            if object[key] == nil { object[key] = value }
        }
        return object
    }

    /// libyang's `Data location "/m:a/b", line number 1.` (or a plain path) as a data path.
    static func restPath(_ location: String?) -> String? {
        guard let location else { return nil }
        if let start = location.range(of: "\"")?.upperBound, let end = location[start...].firstIndex(of: "\"") {
            return String(location[start..<end])
        }
        return location.hasPrefix("/") ? location : nil
    }
}

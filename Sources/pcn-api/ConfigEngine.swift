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
    let bus: BusClient
    let logger: Logger
    var services: [String: Service] = [:]
    var context: YangContext?
    var tops: [String: SchemaNode] = [:] {
        didSet { independence = tops.mapValues(IndependentLists.init) }
    }
    /// Each service's lists whose entries are validated and sent one by one (see `CubeSlice`).
    var independence: [String: IndependentLists] = [:]
    /// Off: every write is validated and sent whole (what cutting must give the same result as).
    private(set) var slicing = true
    func setSlicing(_ on: Bool) { slicing = on }
    /// What the registered models export at /metrics (checked when they were built).
    var metrics: [ServiceMetric] = []
    var store: Datastore
    let applier: Applier
    let core: CoreClient
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
        independence = tops.mapValues(IndependentLists.init)
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
    func exclusively<T>(_ body: () async throws -> T) async throws -> T {
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

    /// A newer model may have leaves with defaults the stored cubes were written without: before a
    /// replay the stored cubes get them (as a write would have given them), so replays and reads carry them.
    private func withNewDefaults(service: String) {
        let member = "\(service):\(service)"
        guard let context, let cubes = store.document[member] as? [Any], !cubes.isEmpty else { return }
        do {
            let text = try context.normalize(json: String(decoding: try JSONText.data([member: cubes]), as: UTF8.self))
            let normalized = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
            guard let updated = normalized[member] as? [Any],
                  try JSONText.data(updated) != JSONText.data(cubes) else { return }
            var document = store.document
            document[member] = updated
            try store.commit(document, changed: updated.compactMap { ($0 as? [String: Any])?["name"] as? String }.map { (member, $0) })
            logger.info("stored cubes of \(service) given the defaults of its new model", metadata: ["cubes": "\(updated.count)"])
        } catch {
            logger.error("the stored cubes of \(service) do not fit its new model; they are replayed as stored: \(error)")
        }
    }

    /// Sends every stored cube of a service to the datapath and to its cube-host (after a restart of
    /// either, or of everything). Failures are logged: the configuration stays stored. Called after
    /// the registration is answered, so a cube-host that handles one request at a time is free.
    func replay(service: String) async {
        _ = try? await exclusively { await replayNow(service: service) }
    }

    func replayNow(service: String) async {
        guard let top = tops[service], let endpoint = services[service]?.endpoint else { return }
        withNewDefaults(service: service)
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

    /// The OpenMetrics text the services render themselves (a top-level leaf with `pb:metrics-text`),
    /// per cube, read from the cube-hosts' state now.
    func serviceMetricsTexts() async -> [(service: String, cube: String, text: String)] {
        var out: [(service: String, cube: String, text: String)] = []
        var coreCubes: [CubeDescription]?  // asked once, and only if some model has such a leaf
        for service in tops.keys.sorted() {
            guard let leaf = tops[service]?.children.first(where: { $0.metricsText && $0.kind == .leaf })?.name else { continue }
            if coreCubes == nil { coreCubes = (try? await core.cubes(timeout: .seconds(5))) ?? [] }
            for cube in (store.document["\(service):\(service)"] as? [Any] ?? []).compactMap({ $0 as? [String: Any] }) {
                let merged = await withState(cube, service: service, coreCubes: coreCubes)
                if let text = merged[leaf] as? String, let name = cube["name"] as? String { out.append((service, name, text)) }
            }
        }
        return out
    }

}

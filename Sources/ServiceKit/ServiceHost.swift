import BPFKit
import Foundation
import JSONText
import IPC
import Logging
import PCNDatapathABI
import PCNProtocol

/// Runs one service on the bus: registers its model with pcn-api (again on every reconnection and
/// whenever pcn-api comes back), applies configuration changes to its cubes' tables, answers state
/// reads and actions, handles packet-in and sends packet-out. One request at a time: a service
/// never sees two calls at once.
public actor ServiceHost<Service: CubeService> {
    private let bus: BusClient
    private let model: String
    private let logger: Logger
    private let service: Service
    private var cubes: [String: Cube<Service.Config>] = [:]
    /// The lists of each cube's applied configuration, by coding path: what a write that sends part
    /// of a list (`ConfigCut`) edits.
    private var lists: [String: [String: Any]] = [:]
    /// The configuration the last `cube.check` of each cube accepted (and its lists), until `cube.apply` takes it.
    private var checked: [String: (config: Service.Config, lists: [String: Any])] = [:]
    /// Packet-in for cubes whose configuration has not arrived yet (after a restart pcn-core
    /// delivers what it queued as soon as we are on the bus, before pcn-api replays).
    private var waiting: [UInt32: [PacketIn]] = [:]
    private static var waitingLimit: Int { 4096 }

    public init(bus: BusClient, model: String, logger: Logger) {
        self.bus = bus
        self.model = model
        self.logger = logger
        self.service = Service()
    }

    /// Serves until the message stream ends or the task is cancelled.
    public func run() async {
        let bus = self.bus
        await withDiscardingTaskGroup { group in
            group.addTask { [weak self] in
                for await _ in bus.registrations { await self?.register() }
            }
            group.addTask { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await self?.tick()
                }
            }
            for await message in bus.messages {
                await handle(message)
            }
            group.cancelAll()
        }
    }

    // MARK: - Registration

    private func register() async {
        for attempt in 0..<50 {
            do {
                _ = try await APIBus(bus).call(ServiceRegister(service: Service.name, yang: model), timeout: .seconds(30))
                logger.info("model registered with pcn-api")
                return
            } catch let error as BusError where error.code == .noRoute || error.code == .disconnected || error.code == .timeout {
                // pcn-api is not up yet: it will announce itself (hub.registered) and we register then.
                if attempt == 0 { logger.debug("pcn-api not reachable yet: \(error.message)") }
                if error.code == .noRoute { return }
                try? await Task.sleep(for: .milliseconds(200))
            } catch {
                logger.error("pcn-api refused the model of \(Service.name): \(error)")
                return
            }
        }
    }

    // MARK: - Messages

    private func handle(_ message: BusMessage) async {
        switch message.method {
        case HubMethod.registered:
            if (try? message.decode(HubNotice.self))?.name == BusName.api { Task { await self.register() } }
            return
        case HubMethod.unregistered:
            return
        default:
            break
        }
        do {
            // The configuration comes from pcn-api alone, packets from pcn-core alone.
            if message.contractMethod == .packetIn, message.source != BusName.core { return }
            if let method = message.contractMethod, let refusal = method.refusal(caller: message.source) {
                throw BusError(code: .forbidden, message: refusal)
            }
            let answer: [String: Any]
            switch message.contractMethod {
            case .ping?:
                bus.reply(to: message, BusReply(payload: Array(BusName.cubeHost(Service.name).utf8)))
                return
            case .packetIn?:
                await packetIn(message.payload)
                return
            case .cubeCheck?:
                answer = try check(try CubeCheck(message: message))
            case .cubeApply?:
                answer = try await apply(try CubeApply(message: message))
            case .cubeState?:
                answer = try state(try CubeStateQuery(message: message).cube)
            case .cubeAction?:
                answer = try await action(try CubeAction(message: message))
            case .cubeStream?:
                answer = try stream(try CubeStreamRead(message: message))
            default:
                throw BusError(code: .unknownMethod, message: "\(BusName.cubeHost(Service.name)) offers no method '\(message.method)'")
            }
            bus.reply(to: message, BusReply(payload: Array(try JSONText.data(answer))))
        } catch let error as BusError {
            bus.fail(message, error)
        } catch {
            bus.fail(message, BusError(code: .failed, message: "\(error)"))
        }
    }

    private func dataPath(_ cube: String, _ relative: String) -> String {
        "/\(Service.name):\(Service.name)[name='\(cube)']" + (relative.isEmpty ? "" : "/" + relative)
    }

    /// Turns what a service threw into the bus error pcn-api reports.
    private func busError(_ error: Error, cube: String) -> BusError {
        switch error {
        case let failure as ServiceFailure:
            if case .invalid(let path, let text) = failure {
                return BusError(code: .badRequest, message: text, path: dataPath(cube, path))
            }
            return BusError(code: .failed, message: failure.description)
        case let error as BusError:
            return error
        default:
            return BusError(code: .failed, message: "\(error)")
        }
    }

    // MARK: - Configuration

    /// The configuration as the service reads it, and its lists. pcn-api validated the tree, so a
    /// tree that does not decode is the service's own mistake (its `Config` does not match its model).
    /// With `cuts`, `json` is an edit's base and the cut lists are edited from `previous`.
    private func decode(_ json: [String: Any], cube: String, cuts: [ConfigCut] = [], previous: [String: Any] = [:]) throws -> (config: Service.Config, lists: [String: Any]) {
        let decoding = ConfigDecoding(cuts: cuts, previous: previous)
        let decoder = JSONDecoder()
        decoder.userInfo[ConfigDecoding.key] = decoding
        let config: Service.Config
        do {
            config = try decoder.decode(Service.Config.self, from: JSONText.data(json))
        } catch let error as DecodingError {
            let path: String
            let reason: String
            switch error {
            case .keyNotFound(let key, let context): (path, reason) = ((context.codingPath + [key]).map(\.stringValue).joined(separator: "/"), "missing")
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                (path, reason) = (context.codingPath.map(\.stringValue).joined(separator: "/"), context.debugDescription)
            @unknown default: (path, reason) = ("", "\(error)")
            }
            throw BusError(code: .failed, message: "\(Service.name) cannot read the configuration of '\(cube)' at '\(path)': \(reason)")
        }
        if let list = decoding.unconsumed.first {
            // The service's configuration does not read that list as a KeyedList: it needs all of it.
            throw BusError(code: .needsWhole, message: "\(Service.name) reads '\(list)' of '\(cube)' as a whole")
        }
        return (config, decoding.lists)
    }

    /// Phase (b) of a write: would the service take this configuration? Nothing changes, and
    /// no datapath state is needed (the service's rules are about the configuration).
    private func check(_ request: CubeCheck) throws -> [String: Any] {
        checked[request.cube] = nil
        guard let json = request.config else { return [:] }
        let known = cubes[request.cube]
        if !request.cuts.isEmpty && (known?.config == nil || lists[request.cube] == nil) {
            throw BusError(code: .needsWhole, message: "cube '\(request.cube)' has no configuration here to edit")
        }
        let candidate = try decode(json, cube: request.cube, cuts: request.cuts, previous: lists[request.cube] ?? [:])
        let change = Change(cube: known ?? Cube(name: request.cube, service: Service.name), config: candidate.config,
                            previous: known?.config)
        let dependents = service.dependents(of: change)
        if !dependents.isEmpty {
            // Not accepted as it is: pcn-api removes these too and asks again.
            return CubeCheckAnswer(dependents: dependents).object
        }
        do {
            try service.validate(change)
        } catch {
            throw busError(error, cube: request.cube)
        }
        checked[request.cube] = candidate
        return [:]
    }

    /// Applies a cube's configuration: what changed since the configuration this host applied last,
    /// or all of it for a new cube or a `replay`. A write applies what its check accepted; a replay
    /// brings its configuration, and the service's rules run on it first.
    private func apply(_ request: CubeApply) async throws -> [String: Any] {
        let name = request.cube
        let candidate: (config: Service.Config, lists: [String: Any])
        if request.checked {
            guard let accepted = checked.removeValue(forKey: name) else {
                throw BusError(code: .failed, message: "no checked configuration of cube '\(name)' to apply (this cube-host restarted since the check?)")
            }
            candidate = accepted
        } else if let json = request.config {
            candidate = try decode(json, cube: name)
        } else {
            lists[name] = nil
            if let cube = cubes.removeValue(forKey: name) {
                service.removed(cube)
                logger.info("cube removed", metadata: ["cube": "\(name)"])
            }
            return [:]
        }
        let known = cubes[name]
        let cube = known ?? Cube(name: name, service: Service.name)
        let change = Change(cube: cube, config: candidate.config, previous: request.replay ? nil : known?.config)
        if !request.checked {
            do {
                try service.validate(change)
            } catch {
                throw busError(error, cube: name)
            }
        }
        // The cube's datapath identity comes with the request (pcn-core's answer to the write's
        // datapath step); only a cube this host does not know yet costs a look-up.
        let described: CubeDescription?
        if let datapath = request.datapath {
            described = datapath
        } else if known != nil {
            described = nil
        } else {
            described = try await lookUp(name)
        }
        let previousPorts = cube.ports, previousNode = cube.node, previousTransparent = cube.transparent
        if let described {
            cube.node = described.node
            cube.transparent = described.transparent
            cube.ports = described.ports.map { CubePort(name: $0.name, index: $0.index, peer: $0.peer) }
            cube.shadowNamespace = described.shadowNamespace
        }
        if request.replay { cube.appliedShadow = [:] }
        do {
            if known == nil || request.replay || cube.tables.isEmpty { try await openTables(cube) }
            for binding in Service.bindings where binding.changed(change) {
                try binding.apply(service)(change)
            }
            try await loadCode(cube)
            try await configureShadow(cube)
        } catch {
            // Put back what the previous configuration had (pcn-api undoes the datapath part).
            (cube.ports, cube.node, cube.transparent) = (previousPorts, previousNode, previousTransparent)
            if let before = change.previous {
                let undo = Change(cube: cube, config: before, previous: nil)
                for binding in Service.bindings { try? binding.apply(service)(undo) }
                try? await loadCode(cube)
            }
            throw busError(error, cube: name)
        }
        cube.config = change.config
        lists[name] = candidate.lists
        if known == nil {
            cubes[name] = cube
            logger.info("cube configured", metadata: ["cube": "\(name)"])
        }
        for packet in waiting.removeValue(forKey: cube.node) ?? [] {
            await deliver(packet, to: cube)
        }
        await flush(cube)
        return [:]
    }

    private var core: CoreBus { CoreBus(bus) }

    /// A cube as pcn-core has it (for a cube this host has not been told about by a write).
    private func lookUp(_ name: String) async throws -> CubeDescription {
        let all: [CubeDescription]
        do {
            all = try await core.call(CubeList(), timeout: .seconds(30))
        } catch {
            throw BusError(code: .failed, message: "pcn-core did not list the cubes: \(error)")
        }
        guard let described = all.first(where: { $0.name == name }) else {
            throw BusError(code: .failed, message: "pcn-core has no cube '\(name)'")
        }
        return described
    }

    /// Has pcn-core run the code the bindings asked for (`Cube.load(code:blaming:)`), if it differs
    /// from what this host last loaded. pcn-core keeps the running program when the code does not
    /// compile or verify; its message comes back as an error of the node the service named.
    private func loadCode(_ cube: Cube<Service.Config>) async throws {
        guard let wanted = cube.wantedCode, wanted != cube.loadedCode else { return }
        do {
            _ = try await core.call(CubeReload(name: cube.name, index: 0, code: wanted.code), timeout: .seconds(60))
        } catch let error as BusError where error.code == .failed || error.code == .badRequest {
            throw ServiceFailure.invalid(path: wanted.path, error.message)
        }
        cube.loadedCode = wanted
        // The new code may declare other tables.
        try await openTables(cube)
    }

    /// Has pcn-core give a shadow cube's twins what the bindings asked for (`Cube.shadow(port:...)`),
    /// the ports that changed only.
    private func configureShadow(_ cube: Cube<Service.Config>) async throws {
        guard cube.shadowNamespace != nil else { return }
        let portNames = Set(cube.ports.map(\.name))
        let changed = cube.wantedShadow.values.filter { portNames.contains($0.name) && cube.appliedShadow[$0.name] != $0 }
        guard !changed.isEmpty else { return }
        do {
            _ = try await core.call(ShadowConfigure(cube: cube.name, interfaces: changed.sorted { $0.name < $1.name }), timeout: .seconds(30))
        } catch let error as BusError where error.code == .failed || error.code == .badRequest {
            throw ServiceFailure.invalid(path: error.path ?? "shadow", "the shadow namespace \(cube.shadowNamespace!): \(error.message)")
        }
        for interface in changed { cube.appliedShadow[interface.name] = interface }
    }

    /// Opens the cube's tables: fds that pcn-core hands to this cube-host only.
    private func openTables(_ cube: Cube<Service.Config>) async throws {
        let answer = try await core.message(CubeTables(name: cube.name), timeout: .seconds(30))
        let described = try answer.decode(CubeTables.Answer.self)
        guard described.count == answer.fds.count else {
            throw BusError(code: .failed, message: "cube.tables answered \(described.count) names and \(answer.fds.count) fds")
        }
        var opened: [String: BPFMap] = [:]
        var layouts: [String: (key: TableLayout?, value: TableLayout?)] = [:]
        for (table, fd) in zip(described, answer.fds) {
            opened[table.name] = try BPFMap(adopting: fd.take())
            layouts[table.name] = (table.keyType.flatMap(TableLayout.init(json:)), table.valueType.flatMap(TableLayout.init(json:)))
        }
        cube.tables = opened
        cube.layouts = layouts
    }

    // MARK: - State and actions

    private func state(_ name: String) throws -> [String: Any] {
        // Not given the cube (yet): not the same answer as a cube without state.
        guard let cube = cubes[name] else { throw BusError(code: .failed, message: "\(BusName.cubeHost(Service.name)) has no cube '\(name)'") }
        do {
            return try service.state(of: cube)
        } catch {
            throw busError(error, cube: name)
        }
    }

    private func stream(_ request: CubeStreamRead) throws -> [String: Any] {
        guard let cube = cubes[request.cube] else {
            throw BusError(code: .failed, message: "cube '\(request.cube)' is not configured in cube-host/\(Service.name) yet")
        }
        let chunk: StreamChunk
        do {
            chunk = try service.stream(request.path, from: request.from, limit: max(1024, min(request.limit, 64 << 10)),
                                   maxRecords: max(1, request.maxRecords ?? .max), on: cube)
        } catch {
            throw busError(error, cube: request.cube)
        }
        return ["header": Data(chunk.header).base64EncodedString(), "data": Data(chunk.data).base64EncodedString(),
                "records": chunk.records, "next": "\(chunk.next)", "dropped": "\(chunk.dropped)"]
    }

    private func action(_ request: CubeAction) async throws -> [String: Any] {
        let name = request.cube
        guard let cube = cubes[name] else {
            throw BusError(code: .failed, message: "cube '\(name)' is not configured in cube-host/\(Service.name) yet")
        }
        let result: ActionResult
        do {
            result = try service.action(request.action, path: request.path, input: request.input, on: cube)
        } catch {
            throw busError(error, cube: name)
        }
        await flush(cube)
        var answer: [String: Any] = ["output": result.output]
        if let write = result.write { answer["write"] = write.object }
        return answer
    }

    // MARK: - Slow path

    private func packetIn(_ record: [UInt8]) async {
        guard let packet = PacketIn(record: record) else {
            logger.warning("packet-in of \(record.count) bytes is shorter than its header: dropped")
            return
        }
        guard let cube = cubes.values.first(where: { $0.node == packet.node }) else {
            if waiting.values.reduce(0, { $0 + $1.count }) < Self.waitingLimit {
                waiting[packet.node, default: []].append(packet)
            }
            return
        }
        await deliver(packet, to: cube)
    }

    private func deliver(_ packet: PacketIn, to cube: Cube<Service.Config>) async {
        do {
            try service.packetIn(packet, on: cube)
        } catch {
            cube.logger.warning("slow path: \(error)")
        }
        await flush(cube)
    }

    private func tick() async {
        for cube in cubes.values {
            if Service.followsAttachment, cube.transparent, cube.config != nil,
               let learned = try? await APIBus(bus).call(CubeAttachment(cube: cube.name), timeout: .seconds(2)),
               learned != cube.attachment, cubes[cube.name] === cube {
                cube.attachment = learned
                do {
                    try service.attachmentChanged(cube)
                } catch {
                    cube.logger.warning("attached to \(learned.parent ?? "nothing"): \(error)")
                }
            }
            service.tick(cube)
            await flush(cube)
        }
    }

    /// Sends what the service queued with `Cube.send`.
    private func flush(_ cube: Cube<Service.Config>) async {
        let outgoing = cube.outbox
        cube.outbox = []
        for packet in outgoing {
            do {
                try await core.packetOut(PacketOut(cube: cube.name, port: packet.port, direction: packet.direction == .ingress ? .ingress : .egress,
                                                   metadata: packet.metadata, frame: packet.frame))
            } catch {
                cube.logger.warning("packet-out through '\(packet.port)' failed: \((error as? BusError)?.message ?? "\(error)")")
            }
        }
    }
}

import BPFKit
import Foundation
import JSONText
import IPC
import Logging
import PCNDatapathABI

/// Runs one service on the bus: registers its model with pcn-api (again on every reconnection and
/// whenever pcn-api comes back), applies configuration changes to its cubes' tables, answers state
/// reads and actions, handles packet-in and sends packet-out. One request at a time: a service
/// never sees two calls at once.
public actor ServiceHost<Service: CubeService> {
    private let bus: BusClient
    private let model: String
    private let logger: Logger
    private let service: Service
    private var cubes: [String: Cube] = [:]
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

    private struct Registration: Codable { var service: String; var yang: String }

    private func register() async {
        let payload = (try? JSONEncoder().encode(Registration(service: Service.name, yang: model))).map(Array.init) ?? []
        for attempt in 0..<50 {
            do {
                _ = try await bus.request("api", method: "service.register", payload: payload, timeout: .seconds(30))
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
        case "ping":
            bus.reply(to: message, BusReply(payload: Array("cube-host/\(Service.name)".utf8)))
        case HubMethod.registered:
            if (try? message.decode(HubNotice.self))?.name == "api" { Task { await self.register() } }
        case HubMethod.unregistered:
            break
        case "packet-in":
            await packetIn(message.payload)
        case "cube.apply", "cube.state", "cube.action":
            do {
                let body = try JSONSerialization.jsonObject(with: Data(message.body)) as? [String: Any] ?? [:]
                guard let name = body["cube"] as? String else {
                    throw BusError(code: .badRequest, message: "\(message.method): no 'cube' in the request")
                }
                let answer: [String: Any]
                switch message.method {
                case "cube.apply": answer = try await apply(name, config: body["config"] as? [String: Any], replay: body["replay"] as? Bool ?? true)
                case "cube.state": answer = try state(name)
                default: answer = try await action(name, body)
                }
                bus.reply(to: message, BusReply(payload: Array(try JSONText.data(answer))))
            } catch let error as BusError {
                bus.fail(message, error)
            } catch {
                bus.fail(message, BusError(code: .failed, message: "\(error)"))
            }
        default:
            bus.fail(message, BusError(code: .unknownMethod, message: "cube-host/\(Service.name) offers no method '\(message.method)'"))
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

    /// Applies a cube's configuration: what changed since the configuration this host applied last,
    /// or all of it for a new cube or a `replay`.
    private func apply(_ name: String, config: [String: Any]?, replay: Bool) async throws -> [String: Any] {
        guard let config else {
            if let cube = cubes.removeValue(forKey: name) {
                service.removed(cube)
                logger.info("cube removed", metadata: ["cube": "\(name)"])
            }
            return [:]
        }
        let known = cubes[name]
        let cube = known ?? Cube(name: name, service: Service.name)
        try await refresh(cube, tables: known == nil || replay)
        let change = Change(cube: cube, config: config, previous: replay ? nil : known?.config)
        do {
            try service.validate(change)
        } catch {
            throw busError(error, cube: name)
        }
        do {
            for binding in Service.bindings where binding.paths.contains(where: change.changed) {
                try binding.apply(service)(change)
            }
        } catch {
            // Put back what the previous configuration had (pcn-api undoes the datapath part).
            if let before = change.previous {
                let undo = Change(cube: cube, config: before, previous: nil)
                for binding in Service.bindings { try? binding.apply(service)(undo) }
            }
            throw busError(error, cube: name)
        }
        cube.config = config
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

    private struct CoreCube: Decodable {
        struct Port: Decodable { var name: String; var index: Int; var peer: String }
        var name: String
        var node: UInt32
        var transparent: Bool
        var ports: [Port]
    }

    private struct TableDescription: Decodable { var name: String }

    /// Reads the cube's ports and identity from pcn-core and, when asked, opens its tables (fds
    /// that pcn-core hands to this cube-host only).
    private func refresh(_ cube: Cube, tables: Bool) async throws {
        let all: [CoreCube]
        do {
            all = try await bus.request("core", method: "cube.list", timeout: .seconds(30)).decode([CoreCube].self)
        } catch {
            throw BusError(code: .failed, message: "pcn-core did not list the cubes: \(error)")
        }
        guard let described = all.first(where: { $0.name == cube.name }) else {
            throw BusError(code: .failed, message: "pcn-core has no cube '\(cube.name)'")
        }
        cube.node = described.node
        cube.transparent = described.transparent
        cube.ports = described.ports.map { Cube.Port(name: $0.name, index: $0.index, peer: $0.peer) }
        guard tables || cube.tables.isEmpty else { return }
        let answer = try await bus.request("core", method: "cube.tables", payload: Array(try JSONEncoder().encode(["name": cube.name])), timeout: .seconds(30))
        let names = try answer.decode([TableDescription].self).map(\.name)
        guard names.count == answer.fds.count else {
            throw BusError(code: .failed, message: "cube.tables answered \(names.count) names and \(answer.fds.count) fds")
        }
        var opened: [String: BPFMap] = [:]
        for (name, fd) in zip(names, answer.fds) {
            opened[name] = try BPFMap(adopting: fd.take())
        }
        cube.tables = opened
    }

    // MARK: - State and actions

    private func state(_ name: String) throws -> [String: Any] {
        guard let cube = cubes[name] else { return [:] }
        do {
            return try service.state(of: cube)
        } catch {
            throw busError(error, cube: name)
        }
    }

    private func action(_ name: String, _ body: [String: Any]) async throws -> [String: Any] {
        guard let cube = cubes[name] else {
            throw BusError(code: .failed, message: "cube '\(name)' is not configured in cube-host/\(Service.name) yet")
        }
        let result: ActionResult
        do {
            result = try service.action(body["action"] as? String ?? "", path: body["path"] as? [String] ?? [],
                                        input: body["input"] as? [String: Any] ?? [:], on: cube)
        } catch {
            throw busError(error, cube: name)
        }
        await flush(cube)
        var answer: [String: Any] = ["output": result.output]
        if let config = result.config { answer["config"] = config }
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

    private func deliver(_ packet: PacketIn, to cube: Cube) async {
        do {
            try service.packetIn(packet, on: cube)
        } catch {
            cube.logger.warning("slow path: \(error)")
        }
        await flush(cube)
    }

    private func tick() async {
        for cube in cubes.values {
            service.tick(cube)
            await flush(cube)
        }
    }

    /// Sends what the service queued with `Cube.send`.
    private func flush(_ cube: Cube) async {
        let outgoing = cube.outbox
        cube.outbox = []
        for packet in outgoing {
            var request = pcn_packet_out_request()
            withUnsafeMutableBytes(of: &request.cube) { raw in
                for (index, byte) in cube.name.utf8.prefix(Int(PCN_NAME_MAX) - 1).enumerated() { raw[index] = byte }
            }
            withUnsafeMutableBytes(of: &request.port) { raw in
                for (index, byte) in packet.port.utf8.prefix(Int(PCN_NAME_MAX) - 1).enumerated() { raw[index] = byte }
            }
            request.direction = packet.direction.rawValue
            request.md = packet.metadata
            let payload = withUnsafeBytes(of: request) { Array($0) } + packet.frame
            do {
                _ = try await bus.request("core", method: "packet-out", payload: payload, timeout: .seconds(5))
            } catch {
                cube.logger.warning("packet-out through '\(packet.port)' failed: \((error as? BusError)?.message ?? "\(error)")")
            }
        }
    }
}

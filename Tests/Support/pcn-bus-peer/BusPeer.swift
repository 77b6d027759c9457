import ArgumentParser
import BPFKit
import Foundation
import IPC
import PCNProtocol
import JSONText
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A bus participant the tests run as a separate process. It prints `REGISTERED <n>` on stdout each
/// time it (re-)registers, so a test can wait for it.
@main
struct BusPeer: AsyncParsableCommand {
    enum Mode: String, ExpressibleByArgument {
        /// Answers `echo`, `relay`, `map-update`, `notify`; ignores `ignore`.
        case serve
        /// Registers with a raw socket and reads nothing until the file `--resume-when` appears, then
        /// drains and prints `DRAINED <n>`.
        case stall
        /// A stand-in cube-host: registers the model `--yang` for service `--service` with pcn-api
        /// (again whenever pcn-api registers), prints `APPLY <cube> <config JSON>` for each
        /// `cube.apply` and refuses a configuration whose `refuse` leaf is true.
        case service
    }

    @Option var socket: String
    @Option var name: String
    @Option var mode: Mode = .serve
    @Option(help: "stall mode: start draining once this path exists") var resumeWhen: String?
    @Option(help: "service mode: the service's name") var service: String?
    @Option(help: "service mode: the service's YANG model file") var yang: String?
    @Flag(help: "service mode: print `APPLY <cube>` without the configuration (benchmarks of large cubes)") var briefApply = false

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        switch mode {
        case .serve: await serve()
        case .stall: try stall()
        case .service: try await serveModel()
        }
    }

    struct MapUpdate: Codable { var key: UInt32; var value: UInt64 }
    struct Relay: Codable { var to: String; var text: String }

    private func serve() async {
        let client = BusClient(socketPath: socket, name: name, logger: Logger(label: "peer.\(name)"))
        client.start()
        Task {
            for await count in client.registrations { emit("REGISTERED \(count)") }
        }
        for await message in client.messages {
            let reply = Task { await answer(message, client) }
            if message.method == "relay" { _ = reply } else { await reply.value }
        }
    }

    private func answer(_ message: BusMessage, _ client: BusClient) async {
        switch message.method {
        case "echo":
            client.reply(to: message, BusReply(payload: message.body))
        case "ignore":
            break
        case "packet-in":
            emit("PACKET-IN \(message.payload.count)")
        case "notify":
            // An event answered by an event back to its sender.
            try? client.event(message.source, method: "notified", payload: message.payload)
        case "relay":
            do {
                let relay = try message.decode(Relay.self)
                let answer = try await client.request(relay.to, method: "echo", payload: Array(relay.text.utf8))
                client.reply(to: message, BusReply(payload: Array("\(answer.source):".utf8) + answer.payload))
            } catch let error as BusError {
                client.fail(message, error)
            } catch {
                client.fail(message, BusError(code: .failed, message: "\(error)"))
            }
        case "map-update":
            do {
                let update = try message.decode(MapUpdate.self)
                guard let passed = message.fds.first else {
                    throw BusError(code: .badRequest, message: "map-update needs a map fd")
                }
                let map = try BPFMap(adopting: passed.take())
                try map.update(update.key, update.value)
                client.reply(to: message, BusReply(payload: Array("updated map id \(map.id)".utf8)))
            } catch {
                client.fail(message, BusError(code: .failed, message: "\(error)"))
            }
        case HubMethod.registered, HubMethod.unregistered:
            break
        default:
            client.fail(message, BusError(code: .unknownMethod, message: "peer offers no '\(message.method)'"))
        }
    }

    private func serveModel() async throws {
        guard let service, let yang else { throw ValidationError("--mode service needs --service and --yang") }
        let model = try String(contentsOfFile: yang, encoding: .utf8)
        let client = BusClient(socketPath: socket, name: name, logger: Logger(label: "peer.\(name)"))
        client.start()
        let registration = ServiceRegister(service: service, yang: model)
        @Sendable func register() async {
            for _ in 0..<100 {
                do {
                    _ = try await APIBus(client).call(registration, timeout: .seconds(10))
                    emit("MODEL REGISTERED")
                    return
                } catch {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        // Register the model each time we are (re)connected to the hub, and whenever pcn-api comes (back).
        Task {
            for await _ in client.registrations { await register() }
        }
        var checked: [String: [String: Any]] = [:]
        // What each cube was last given (a check with cuts edits it, as a cube-host does).
        var applied: [String: [String: Any]] = [:]
        for await message in client.messages {
            switch message.method {
            case Method.cubeCheck.rawValue:
                guard var check = try? CubeCheck(message: message) else { continue }
                if let edit = check.edit {
                    guard let previous = applied[check.cube] else {
                        client.fail(message, BusError(code: .needsWhole, message: "cube \(check.cube) was not applied here"))
                        continue
                    }
                    check.config = edit.applied(to: previous)
                }
                if check.config?["refuse"] as? Bool == true {
                    emit("REFUSED \(check.cube)")
                    client.fail(message, BusError(code: .failed, message: "cube \(check.cube): this test service refuses refuse=true"))
                    continue
                }
                checked[check.cube] = check.config
                client.reply(to: message, BusReply(payload: Array("{}".utf8)))
            case Method.cubeApply.rawValue:
                guard let apply = try? CubeApply(message: message) else { continue }
                let config = apply.checked ? checked.removeValue(forKey: apply.cube) : apply.config
                applied[apply.cube] = config
                if briefApply {
                    emit("APPLY \(apply.cube)")
                } else {
                    emit("APPLY \(apply.cube) \(config.flatMap { try? JSONText.string($0) } ?? "null")")
                }
                client.reply(to: message, BusReply(payload: Array("{}".utf8)))
            case "cube.state":
                // What a real cube-host reads from its maps: here a fixed counter.
                client.reply(to: message, BusReply(payload: Array(#"{"hits":"42"}"#.utf8)))
            case "cube.action":
                // `reset` appends "reset-<what>" to the cube's tags: an action that changes configuration
                // answers with the write that does it.
                let body = (try? JSONSerialization.jsonObject(with: Data(message.body))) as? [String: Any] ?? [:]
                let what = (body["input"] as? [String: Any])?["what"] as? String ?? "?"
                let cube = body["cube"] as? String ?? "?"
                let tags = (applied[cube]?["tags"] as? [Any] ?? []) + ["reset-\(what)"]
                emit("ACTION \(cube) \(body["action"] ?? "?") \(what)")
                let reply: [String: Any] = ["output": ["done": what], "write": ActionWrite(.patch, [], body: ["tags": tags]).object]
                client.reply(to: message, BusReply(payload: Array((try? JSONSerialization.data(withJSONObject: reply)) ?? Data())))
            case HubMethod.registered:
                if (try? message.decode(HubNotice.self))?.name == "api" { Task { await register() } }
            default:
                client.fail(message, BusError(code: .unknownMethod, message: "peer offers no '\(message.method)'"))
            }
        }
    }

    private func stall() throws {
        guard let resumeWhen else { throw ValidationError("--mode stall needs --resume-when PATH") }
        let sock = try SeqPacketSocket.connect(path: socket)
        _ = try sock.send(Frame(kind: .register, id: 1, destination: HubMethod.hubName, payload: Array(name.utf8)).encode())
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameHeader.maxFrameSize, alignment: 8)
        guard case .datagram = try sock.receive(into: buffer) else { throw BusError(code: .closed, message: "hub closed") }
        emit("REGISTERED 1")
        while access(resumeWhen, F_OK) != 0 { usleep(10_000) }
        var tv = timeval(tv_sec: 0, tv_usec: 500_000)
        setsockopt(sock.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var count = 0
        while case .datagram(let n, _, _) = try sock.receive(into: buffer) {
            if let frame = try? Frame.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<n])), frame.kind == .event,
               frame.source != HubMethod.hubName {
                count += 1
            }
        }
        emit("DRAINED \(count)")
    }
}

/// Unbuffered line on stdout: the test reads it while we run.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

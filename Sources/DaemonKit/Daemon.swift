import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Entry point shared by the daemons: parse flags (a bad one is one line on stderr and exit 64), run.
public enum DaemonMain {
    public static func run<Command: AsyncParsableCommand>(_ type: Command.Type) async {
        let name = Command.configuration.commandName ?? "daemon"
        var command: Command
        do {
            command = try Command.parse()
        } catch {
            let code = Command.exitCode(for: error)
            if code == .success {
                print(Command.fullMessage(for: error))
                exit(0)
            }
            FileHandle.standardError.write(Data("\(name): \(Command.message(for: error))\n".utf8))
            exit(64)
        }
        do {
            try await command.run()
        } catch let error as DaemonError {
            FileHandle.standardError.write(Data("\(name): \(error.description)\n".utf8))
            exit(1)
        } catch {
            FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            exit(1)
        }
    }
}

/// Runs a daemon's services until SIGTERM/SIGINT: reports READY once `services` are set up, pings the
/// watchdog from the async runtime (so a wedged daemon stops pinging), reports STOPPING on the way out.
public struct DaemonLifecycle {
    public let readiness: Readiness
    public let logger: Logger

    public init(component: String, paths: PathOptions, logger: Logger) {
        self.readiness = Readiness(component: component, runtimeDir: paths.runtimeDir)
        self.logger = logger
    }

    /// Runs `services`; READY is reported once `gate` opens (at once if none is given).
    public func run(services: [any Service], status: String, gate: ReadyGate = .open) async throws {
        var all = services
        all.append(ReadyService(readiness: readiness, status: status, gate: gate, logger: logger))
        let group = ServiceGroup(configuration: .init(
            services: all.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        defer { readiness.stopping() }
        try await group.run()
    }
}

/// Reports readiness, then keeps the watchdog fed until graceful shutdown.
private struct ReadyService: Service {
    let readiness: Readiness
    let status: String
    let gate: ReadyGate
    let logger: Logger

    func run() async throws {
        guard await gate.wait() else { return }
        readiness.ready(status: status)
        logger.info("ready: \(status)")
        let interval = readiness.watchdogInterval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let interval {
                readiness.watchdogPing()
                try? await gracefulShutdownSleep(interval / 2)
            } else {
                try? await gracefulShutdown()
            }
        }
        readiness.stopping()
        logger.info("stopping")
    }
}

private func gracefulShutdownSleep(_ duration: Duration) async throws {
    try await cancelWhenGracefulShutdown {
        try await Task.sleep(for: duration)
    }
}

/// A BusClient as a lifecycle service: connects in the background, disconnects on shutdown.
public struct BusClientService: Service {
    public let client: IPCBusClient

    public init(client: IPCBusClient) { self.client = client }

    public func run() async throws {
        client.start()
        try? await gracefulShutdown()
        client.stop()
    }
}

/// Opened by a daemon once it actually serves (for pcn-api: once the HTTP socket listens).
public final class ReadyGate: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public static var open: ReadyGate {
        let gate = ReadyGate()
        gate.open()
        return gate
    }

    public func open() { continuation.yield() }

    /// True once opened; false if shutdown came first.
    func wait() async -> Bool {
        await cancelWhenGracefulShutdown {
            for await _ in self.stream { return true }
            return false
        } ?? false
    }
}

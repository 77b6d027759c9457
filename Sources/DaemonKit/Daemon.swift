import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Entry point shared by the daemons: parse flags (a bad one is one line on stderr and exit 64), run.
public enum DaemonMain {
    /// A synchronous main, not `async`: an async main parks the main thread in sigsuspend with every
    /// signal open before any of our code runs, so a SIGTERM then would kill the daemon outright.
    /// Here the signal handler is in place first; then the main queue runs the daemon, as for async.
    public static func main<Command: AsyncParsableCommand>(_ type: Command.Type) -> Never {
        EarlyTermination.install()
        Task {
            await run(type)
            exit(0)
        }
        dispatchMain()
    }

    static func run<Command: AsyncParsableCommand>(_ type: Command.Type) async {
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

/// SIGTERM or SIGINT before the lifecycle traps them (while the daemon sets up, which for pcn-core
/// means adopting the pinned datapath) is remembered, not fatal: the daemon finishes starting and
/// shuts down at once, cleanly, instead of dying by the signal with its pins and sockets half made.
enum EarlyTermination {
    static let requested = Atomic<Bool>(false)

    static func install() {
        // Initialized here, not lazily inside the handler (swift_once is not async-signal-safe).
        _ = requested.load(ordering: .relaxed)
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in EarlyTermination.requested.store(true, ordering: .relaxed) }
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, nil)
            sigaddset(&signals, signal)
        }
        // A parent may have started us with them blocked (a test runner's thread): they must reach us.
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
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
        let early = EarlyShutdown()
        all.append(ReadyService(readiness: readiness, status: status, gate: gate, early: early, logger: logger))
        let group = ServiceGroup(configuration: .init(
            services: all.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        early.group = group
        defer { readiness.stopping() }
        try await group.run()
    }
}

/// The group to shut down when a signal came before the group trapped signals itself.
private final class EarlyShutdown: @unchecked Sendable {
    // Set once, before the group runs any service.
    var group: ServiceGroup?
}

/// Reports readiness, then keeps the watchdog fed until graceful shutdown.
private struct ReadyService: Service {
    let readiness: Readiness
    let status: String
    let gate: ReadyGate
    let early: EarlyShutdown
    let logger: Logger

    func run() async throws {
        // The group traps its signals before starting services: one that came earlier is only here.
        if EarlyTermination.requested.load(ordering: .relaxed) {
            logger.info("terminated while starting: shutting down")
            await early.group?.triggerGracefulShutdown()
            try? await gracefulShutdown()
            return
        }
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

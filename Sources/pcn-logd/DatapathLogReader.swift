import BPFKit
import DaemonKit
import PCNProtocol
import Foundation
import IPC
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Drains the datapath's log ring (its fd comes from pcn-core: no privilege needed), turns each
/// record into a line with the formats pcn-core read from the programs, and reports the records the
/// datapath lost while the ring was full, once, when it notices them (also across its own restarts:
/// the count it last reported is kept in `lostFile`).
final class DatapathLogReader: Service, @unchecked Sendable {
    private let bus: BusClient
    private let sinks: LogSinks
    private let lostFile: String
    private let logger: Logger
    private let lock = NSLock()
    private var reader: RingBufferReader?
    private var lostMap: BPFMap?
    private var formats: [UInt32: LogSource] = [:]
    private let records: AsyncStream<DatapathLogRecord>
    private let sink: AsyncStream<DatapathLogRecord>.Continuation

    init(bus: BusClient, sinks: LogSinks, lostFile: String, logger: Logger) {
        self.bus = bus
        self.sinks = sinks
        self.lostFile = lostFile
        self.logger = logger
        (records, sink) = AsyncStream.makeStream(of: DatapathLogRecord.self, bufferingPolicy: .unbounded)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.connectWhenPossible() }
                group.addTask { await self.format() }
                group.addTask { await self.watchLosses() }
            }
        }
        lock.withLock { reader }?.stop()
    }

    /// pcn-core (re)registered: if we have no ring yet, ask for it now.
    func coreRegistered() async {
        if lock.withLock({ reader == nil }) { await connect() }
    }

    private func connectWhenPossible() async {
        while !Task.isCancelled, lock.withLock({ reader == nil }) {
            await connect()
            try? await Task.sleep(for: .seconds(1))
        }
        // Stay in the group until shutdown, so that the group's end means shutdown.
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    private func connect() async {
        guard let answer = try? await CoreBus(bus).message(LogRing(), timeout: .seconds(2)), answer.fds.count == 2 else { return }
        do {
            let ring = try BPFMap(adopting: answer.fds[0].take())
            let lost = try BPFMap(adopting: answer.fds[1].take())
            let sink = self.sink
            let made = try RingBufferReader(map: ring) { bytes in
                if let record = DatapathLogRecord(bytes) { sink.yield(record) }
            }
            let started = lock.withLock { () -> Bool in
                guard reader == nil else { return false }
                reader = made
                lostMap = lost
                return true
            }
            if started {
                made.start()
                logger.info("draining the datapath log ring")
            }
        } catch {
            logger.error("cannot drain the datapath log ring: \(error)")
        }
    }

    private func format() async {
        for await record in records {
            if lock.withLock({ formats[record.source] }) == nil { await refreshFormats() }
            let source = lock.withLock { formats[record.source] }
            let level = DatapathLogFormat.levelName(record.level)
            if let source, let format = source.formats["\(record.format)"] {
                sinks.write(service: source.service, cube: source.cube, level: level,
                            message: DatapathLogFormat.render(format, record.arguments))
            } else {
                sinks.write(service: "-", cube: "cube#\(record.cubeID)", level: level,
                            message: "a log record of a program pcn-core does not know (source \(record.source), format \(record.format))")
            }
        }
    }

    private func refreshFormats() async {
        guard let sources = try? await CoreBus(bus).call(LogFormats(), timeout: .seconds(2)) else { return }
        lock.withLock {
            for source in sources { formats[source.source] = source }
        }
    }

    private func watchLosses() async {
        var reported = UInt64((try? String(contentsOfFile: lostFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            guard let map = lock.withLock({ lostMap }), let perCPU = try? map.lookupPerCPU(UInt32(0), as: UInt64.self) else { continue }
            let lost = perCPU.reduce(0, +)
            if lost < reported {
                // The counter started again (the bpffs root was wiped): nothing new was lost.
                reported = lost
            } else if lost > reported {
                sinks.write(service: "pcn-logd", cube: "-", level: "WARN",
                            message: "\(lost - reported) datapath log records were lost: the log ring was full (\(lost) in all)")
                reported = lost
            } else {
                continue
            }
            try? "\(reported)\n".write(toFile: lostFile, atomically: true, encoding: .utf8)
        }
    }
}

import BPFKit
import DatapathKit
import Foundation
import IPC
import Logging
import PCNDatapathABI
import PCNProtocol

/// Packet-in delivery: records from the ring go, in order, to each cube's subscriber over the bus
/// (by default `cube-host/<service>`). While the subscriber is not registered, a bounded queue per cube
/// holds them (beyond it they are dropped and counted) and is delivered when it registers.
actor SlowPath {
    static let queueLimit = 1024

    private let endpoint: LocalEndpoint
    private let datapath: Datapath
    private let logger: Logger
    /// The hub's registration table, read at each decision (never a copy kept from notices).
    private let isRegistered: @Sendable (String) -> Bool
    private var subscribers: [String: String] = [:]
    private var queues: [String: [[UInt8]]] = [:]
    private var dropped: [String: UInt64] = [:]
    private var services: [String: String] = [:]

    init(endpoint: LocalEndpoint, datapath: Datapath, isRegistered: @escaping @Sendable (String) -> Bool, logger: Logger) {
        self.endpoint = endpoint
        self.isRegistered = isRegistered
        self.datapath = datapath
        self.logger = logger
    }

    /// The records as the ring reader hands them over, in ring order.
    static func recordStream() -> (AsyncStream<[UInt8]>, AsyncStream<[UInt8]>.Continuation) {
        AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingOldest(65_536))
    }

    /// Consumes records until the stream ends.
    func run(records: AsyncStream<[UInt8]>) async {
        for await record in records {
            await handle(record)
        }
    }

    private func handle(_ record: [UInt8]) async {
        let headerSize = MemoryLayout<pcn_packet_in>.offset(of: \pcn_packet_in.data)!
        guard record.count >= headerSize else { return }
        let node = record.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        guard let cube = await datapath.cube(node: node) else {
            logger.debug("packet-in for unknown cube node \(node) dropped")
            return
        }
        services[cube.name] = cube.service
        let subscriber = subscriber(of: cube.name)!
        // The payload is the record itself: `struct pcn_packet_in`'s header, then the captured bytes.
        let capturedOffset = MemoryLayout<pcn_packet_in>.offset(of: \pcn_packet_in.captured_len)!
        let captured = Int(record.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: capturedOffset, as: UInt32.self) })
        let payload = Array(record.prefix(headerSize + min(captured, Int(PCN_PACKET_IN_MAX))))
        if isRegistered(subscriber) {
            // What waited goes first, in order (its subscriber may have come before the notice).
            let waiting = queues.removeValue(forKey: cube.name) ?? []
            for earlier in waiting { send(earlier, to: subscriber, cube: cube.name) }
            send(payload, to: subscriber, cube: cube.name)
        } else {
            enqueue(payload, cube: cube.name)
        }
    }

    private func send(_ payload: [UInt8], to subscriber: String, cube: String) {
        do {
            try endpoint.event(subscriber, method: Method.packetIn.rawValue, payload: payload)
        } catch {
            enqueue(payload, cube: cube)
        }
    }

    private func enqueue(_ payload: [UInt8], cube: String) {
        if queues[cube, default: []].count >= Self.queueLimit {
            dropped[cube, default: 0] += 1
            return
        }
        queues[cube, default: []].append(payload)
    }

    func subscribe(cube: String, subscriber: String) {
        subscribers[cube] = subscriber
        flush()
    }

    /// The hub announced a registration: what waits may be deliverable now.
    func endpointRegistered() { flush() }

    /// Delivers what waits for subscribers that are registered now.
    private func flush() {
        for (cube, waiting) in queues where !waiting.isEmpty {
            guard let subscriber = subscriber(of: cube), isRegistered(subscriber) else { continue }
            queues[cube] = []
            for payload in waiting { send(payload, to: subscriber, cube: cube) }
        }
    }

    /// Who gets a cube's packet-in: whoever subscribed, else its service's cube-host.
    private func subscriber(of cube: String) -> String? {
        subscribers[cube] ?? services[cube].map { "cube-host/\($0)" }
    }

    func counters(cube: String) -> (queued: Int, dropped: UInt64) {
        (queues[cube]?.count ?? 0, dropped[cube] ?? 0)
    }
}

/// Starts draining the packet-in ring once it exists (the first cube's load creates it).
actor PacketInPump {
    private var reader: RingBufferReader?
    private let sink: AsyncStream<[UInt8]>.Continuation
    private let logger: Logger

    init(sink: AsyncStream<[UInt8]>.Continuation, logger: Logger) {
        self.sink = sink
        self.logger = logger
    }

    func ensureStarted(_ datapath: Datapath) async {
        guard reader == nil, let ring = await datapath.packetInRing() else { return }
        do {
            let sink = self.sink, logger = self.logger
            let backlogDrops = Counter()
            let reader = try RingBufferReader(map: ring) { bytes in
                if case .dropped = sink.yield(Array(bytes)) {
                    // The consumer is 65,536 records behind: the packet is lost, like in a full ring,
                    // and said so (first time, then every 1,000).
                    let total = backlogDrops.increment()
                    if total == 1 || total.isMultiple(of: 1000) {
                        logger.warning("packet-in backlog full: \(total) records dropped so far")
                    }
                }
            }
            reader.start()
            self.reader = reader
            logger.info("draining the packet-in ring")
        } catch {
            logger.error("cannot drain the packet-in ring: \(error)")
        }
    }

    func stop() {
        reader?.stop()
        reader = nil
        sink.finish()
    }
}

/// A count shared with the ring reader's thread.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0

    func increment() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

// bench/ipc: the bus against a plain socketpair, in the same run.
//
// Round trips: a request and its reply, one at a time (requester -> hub -> responder -> hub -> back),
// next to a blocking send/receive ping-pong over one SOCK_SEQPACKET socketpair.
// One-way: events in windows of 256 followed by one synchronising request (so the receiver is never
// overrun and nothing is dropped), next to the same windows over the socketpair.
// Each variant runs 5 times, alternating; medians are compared. Last line:
//   RESULT rtt_ratio=<bus/socketpair round trips per s, 64 B> msg_ratio=<bus/socketpair messages per s, 64 B> ...
import CShims
import Foundation
import IPC
import Logging
#if canImport(Glibc)
import Glibc
#endif

let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
let window = 256
let roundTrips = Int(ProcessInfo.processInfo.environment["BENCH_RTT"] ?? "") ?? 20_000
let messages = Int(ProcessInfo.processInfo.environment["BENCH_MSGS"] ?? "") ?? 200_000

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

// MARK: - socketpair baseline

/// An echo thread on one end of a socketpair: answers every datagram with itself.
final class PairEcho: @unchecked Sendable {
    let client: SeqPacketSocket
    private let server: SeqPacketSocket
    private let done = DispatchSemaphore(value: 0)

    init() throws {
        (client, server) = try SeqPacketSocket.pair()
        let server = self.server
        let done = self.done
        Thread {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
            defer { buffer.deallocate() }
            // One-way messages start with 'A' and get no answer; everything else (pings, syncs) is echoed.
            while case .datagram(let n, _, _) = try! server.receive(into: buffer) {
                if buffer[0] == 0x41 { continue }
                _ = try! server.send(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<n])))
            }
            done.signal()
        }.start()
    }

    func close() {
        client.shutdown()
        done.wait()
        client.close()
        server.close()
    }
}

func pairRoundTrips(payload: Int) throws -> Double {
    let echo = try PairEcho()
    defer { echo.close() }
    let bytes = [UInt8](repeating: 7, count: payload)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
    defer { buffer.deallocate() }
    let start = ContinuousClock.now
    for _ in 0..<roundTrips {
        _ = try echo.client.send(bytes)
        _ = try echo.client.receive(into: buffer)
    }
    let elapsed = ContinuousClock.now - start
    return Double(roundTrips) / (Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
}

func pairMessages(payload: Int) throws -> Double {
    let echo = try PairEcho()
    defer { echo.close() }
    // A message is `payload` bytes; the window closes with a 2-byte sync that is echoed.
    let bytes = [UInt8](repeating: 0x41, count: payload)
    let sync: [UInt8] = [0x53, 0x53]
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
    defer { buffer.deallocate() }
    let start = ContinuousClock.now
    var sent = 0
    while sent < messages {
        for _ in 0..<window {
            _ = try echo.client.send(bytes)
        }
        sent += window
        _ = try echo.client.send(sync)
        _ = try echo.client.receive(into: buffer)
    }
    let elapsed = ContinuousClock.now - start
    return Double(sent) / (Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
}

// MARK: - the bus

struct BusRig {
    let hub: BusHub
    let requester: BusClient
    let responder: BusClient
    let serving: Task<Void, Never>
    let received: Counter

    final class Counter: @unchecked Sendable {
        private let lock = PosixLock()
        private var value = 0
        func add() { lock.withLock { value += 1 } }
        var count: Int { lock.withLock { value } }
    }

    static func start(directory: String) async throws -> BusRig {
        let hub = BusHub(socketPath: directory + "/bus.sock", logger: quiet)
        try hub.start()
        let requester = BusClient(socketPath: hub.socketPath, name: "bench-requester", logger: quiet)
        let responder = BusClient(socketPath: hub.socketPath, name: "bench-responder", logger: quiet)
        requester.start()
        responder.start()
        guard await requester.waitUntilRegistered(timeout: .seconds(5)),
              await responder.waitUntilRegistered(timeout: .seconds(5)) else {
            fatalError("bench clients did not register")
        }
        let received = Counter()
        let serving = Task {
            for await message in responder.messages {
                if message.kind == .request {
                    responder.reply(to: message, BusReply(payload: message.payload))
                } else if message.method == "one-way" {
                    received.add()
                }
            }
        }
        return BusRig(hub: hub, requester: requester, responder: responder, serving: serving, received: received)
    }

    func stop() {
        requester.stop()
        responder.stop()
        serving.cancel()
        hub.stop()
    }

    func roundTrips(payload: Int) async throws -> Double {
        let bytes = [UInt8](repeating: 7, count: payload)
        let time = try await seconds {
            for _ in 0..<benchRoundTrips {
                _ = try await requester.request("bench-responder", method: "echo", payload: bytes)
            }
        }
        return Double(benchRoundTrips) / time
    }

    func oneWay(payload: Int) async throws -> Double {
        let bytes = [UInt8](repeating: 7, count: payload)
        let before = received.count
        var sent = 0
        let time = try await seconds {
            while sent < benchMessages {
                for _ in 0..<window { try requester.event("bench-responder", method: "one-way", payload: bytes) }
                sent += window
                _ = try await requester.request("bench-responder", method: "sync", payload: [1, 1])
            }
        }
        let delivered = received.count - before
        precondition(delivered == sent, "bus lost messages in the benchmark: \(sent) sent, \(delivered) received")
        return Double(sent) / time
    }
}

let benchRoundTrips = roundTrips
let benchMessages = messages

@main
struct Bench {
    static func main() async throws {
        var template = Array("/tmp/pcnbench.XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rig = try await BusRig.start(directory: directory)
        defer { rig.stop() }

        var results: [String: [Double]] = [:]
        // Warm up both paths once.
        _ = try await rig.roundTrips(payload: 64)
        _ = try pairRoundTrips(payload: 64)
        for round in 1...5 {
            for payload in [64, 1500] {
                results["bus_rtt_\(payload)", default: []].append(try await rig.roundTrips(payload: payload))
                results["pair_rtt_\(payload)", default: []].append(try pairRoundTrips(payload: payload))
                results["bus_msg_\(payload)", default: []].append(try await rig.oneWay(payload: payload))
                results["pair_msg_\(payload)", default: []].append(try pairMessages(payload: payload))
            }
            print("round \(round) done")
        }
        print("measure        bus per s  socketpair per s   ratio")
        var ratios: [String: Double] = [:]
        for kind in ["rtt", "msg"] {
            for payload in [64, 1500] {
                let bus = median(results["bus_\(kind)_\(payload)"]!)
                let pair = median(results["pair_\(kind)_\(payload)"]!)
                ratios["\(kind)_\(payload)"] = bus / pair
                print("\(kind) \(payload) B".padding(toLength: 12, withPad: " ", startingAt: 0)
                      + String(format: " %11.0f %17.0f %7.3f", bus, pair, bus / pair))
            }
        }
        print(String(format: "RESULT rtt_ratio=%.3f msg_ratio=%.3f rtt_ratio_1500=%.3f msg_ratio_1500=%.3f bus_rtt_per_s=%.0f bus_msg_per_s=%.0f",
                     ratios["rtt_64"]!, ratios["msg_64"]!, ratios["rtt_1500"]!, ratios["msg_1500"]!,
                     median(results["bus_rtt_64"]!), median(results["bus_msg_64"]!)))
    }
}

// bench/api: what validation and routing cost a write, measured against an unvalidated echo route of
// the same server in the same run; and loading 10,000 list entries in one request and one by one.
//
// It runs the release pcn-core, pcn-api and the stand-in cube-host pcn-bus-peer (serving
// Tests/Fixtures/testfwd.yang) on private paths: build every product first (`swift build -c release`).
//   echo_s:   POST /polycube/v1/echo (the body comes back, nothing validated), requests/s;
//   patch_s:  PATCH /testfwd/t1 {"mtu": n}: resolve, validate the whole candidate, apply (pcn-core and
//             the cube-host), commit with fsync;
//   post_s:   POST /testfwd/t1/items {"id": n, ...}: the same, creating an entry (a DELETE, not timed,
//             takes it back so every POST sees the same cube);
//   bulk10k_s: seconds to create a cube with 10,000 `items` in one POST;
//   each10k_s: seconds to create 10,000 `items` one POST each (BENCH_EACH changes the count; the
//             figure is scaled to 10,000);
//   large_small_ratio: PATCHes per second on a cube holding 10,000 entries over those on an empty
//             cube (goal ≥ 0.8: a write costs what it changes, not what the cube holds);
//   bus_trips_per_write: bus requests (to pcn-core and the cube-host, counted by the hub) per
//             validated PATCH (goal ≤ 3).
// Requests are sequential from one client (URLSession), interleaved in rounds; medians of rounds.
//
// Last line: RESULT patch_ratio=<patch_s/echo_s> post_ratio=<post_s/echo_s> bulk10k_s=… each10k_s=…
//            large_small_ratio=… bus_trips_per_write=…
import BenchSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

let repository = repositoryRoot()
let perRound = Int(ProcessInfo.processInfo.environment["BENCH_REQUESTS"] ?? "") ?? 300
let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 5
let eachCount = Int(ProcessInfo.processInfo.environment["BENCH_EACH"] ?? "") ?? 10_000

@main
struct Bench {
    static func main() async throws {
        let stack = try BenchStack(name: "api")
        defer { stack.stop() }
        let port = 19_000 + Int(getpid() % 1000)
        try stack.spawn("pcn-core", stack.pathFlags + ["--bpf-dir", repository.appendingPathComponent("bpf").path, "--service-dir", repository.appendingPathComponent("Tests/Fixtures/bpf").path])
        try stack.spawn("pcn-api", stack.pathFlags + ["--api-addr", "127.0.0.1:\(port)"])
        try stack.spawn("pcn-bus-peer", ["--socket", stack.busSocket, "--name", "cube-host/testfwd", "--mode", "service",
                                   "--service", "testfwd", "--yang", repository.appendingPathComponent("Tests/Fixtures/testfwd.yang").path, "--brief-apply"])
        let base = "http://127.0.0.1:\(port)/polycube/v1"
        let session = URLSession(configuration: .ephemeral)
        func call(_ method: String, _ path: String, _ body: String) async throws -> Int {
            var request = URLRequest(url: URL(string: base + path)!)
            request.httpMethod = method
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.timeoutInterval = 300
            let (_, response) = try await session.data(for: request)
            return (response as? HTTPURLResponse)?.statusCode ?? 0
        }
        // Ready when the service's tree answers.
        let deadline = ContinuousClock.now + .seconds(60)
        while (try? await call("POST", "/testfwd/t1", "{}")) != 201 {
            guard ContinuousClock.now < deadline else { throw BenchError("pcn-api and the service did not come up") }
            try await Task.sleep(for: .milliseconds(200))
        }

        /// Frames the hub delivered to pcn-core and to the cube-host so far.
        func busRequests() async throws -> Int {
            let (data, _) = try await session.data(from: URL(string: base + "/bus")!)
            let stats = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            return (stats?["endpoints"] as? [[String: Any]] ?? [])
                .filter { ["core", "cube-host/testfwd"].contains($0["name"] as? String) }
                .reduce(0) { $0 + ($1["delivered"] as? Int ?? 0) }
        }

        let entries = (0..<10_000).map { #"{"id":\#($0),"note":"route \#($0)"}"# }.joined(separator: ",")
        var start = ContinuousClock.now
        guard try await call("POST", "/testfwd/bulk", #"{"items":[\#(entries)]}"#) == 201 else { throw BenchError("bulk POST refused") }
        let bulk = seconds(ContinuousClock.now - start)

        var echo: [Double] = [], patch: [Double] = [], post: [Double] = [], large: [Double] = [], trips: [Double] = []
        var next = 0
        for _ in 1...rounds {
            var start = ContinuousClock.now
            for i in 0..<perRound { _ = try await call("POST", "/echo", #"{"mtu":\#(1000 + i % 100)}"#) }
            echo.append(Double(perRound) / seconds(ContinuousClock.now - start))
            let requestsBefore = try await busRequests()
            start = ContinuousClock.now
            for i in 0..<perRound {
                guard try await call("PATCH", "/testfwd/t1", #"{"mtu":\#(1000 + i % 100)}"#) == 204 else { throw BenchError("PATCH refused") }
            }
            patch.append(Double(perRound) / seconds(ContinuousClock.now - start))
            trips.append(Double(try await busRequests() - requestsBefore) / Double(perRound))
            // The same PATCH on the cube holding 10,000 entries (fewer: each may cost more).
            let largeCount = max(perRound / 10, 5)
            start = ContinuousClock.now
            for i in 0..<largeCount {
                guard try await call("PATCH", "/testfwd/bulk", #"{"mtu":\#(1000 + i % 100)}"#) == 204 else { throw BenchError("PATCH refused") }
            }
            large.append(Double(largeCount) / seconds(ContinuousClock.now - start))
            // POSTs of entries, each taken back by a DELETE (not timed) so the cube stays the same size.
            var posting = Duration.zero
            for _ in 0..<perRound {
                start = ContinuousClock.now
                guard try await call("POST", "/testfwd/t1/items", #"{"id":\#(next),"note":"entry \#(next)"}"#) == 201 else { throw BenchError("POST refused") }
                posting += ContinuousClock.now - start
                guard try await call("DELETE", "/testfwd/t1/items/\(next)", "") == 204 else { throw BenchError("DELETE refused") }
                next += 1
            }
            post.append(Double(perRound) / seconds(posting))
        }
        print("sequential requests from one client, \(rounds) rounds of \(perRound), medians")
        print(String(format: "  echo (unvalidated)   %8.0f requests/s", median(echo)))
        print(String(format: "  PATCH (validated)    %8.0f requests/s", median(patch)))
        print(String(format: "  POST  (validated)    %8.0f requests/s   (a list entry, removed again after each)", median(post)))
        print(String(format: "  PATCH on a cube of 10,000 entries %8.0f requests/s (%.2f of the empty cube's)", median(large), median(large) / median(patch)))
        print(String(format: "  bus requests per PATCH: %.2f", median(trips)))
        print(String(format: "  10,000 entries in one POST: %.2f s", bulk))
        guard try await call("POST", "/testfwd/each", "{}") == 201 else { throw BenchError("POST refused") }
        start = ContinuousClock.now
        for i in 0..<eachCount {
            guard try await call("POST", "/testfwd/each/items", #"{"id":\#(i),"note":"route \#(i)"}"#) == 201 else { throw BenchError("POST refused") }
        }
        let each = seconds(ContinuousClock.now - start) * 10_000 / Double(eachCount)
        print(String(format: "  %d entries one POST each: %.2f s (scaled to 10,000: %.1f s)", eachCount, seconds(ContinuousClock.now - start), each))
        print(String(format: "RESULT patch_ratio=%.3f post_ratio=%.3f bulk10k_s=%.2f each10k_s=%.1f large_small_ratio=%.3f bus_trips_per_write=%.2f echo_s=%.0f patch_s=%.0f post_s=%.0f",
                     median(patch) / median(echo), median(post) / median(echo), bulk, each, median(large) / median(patch), median(trips),
                     median(echo), median(patch), median(post)))
    }
}

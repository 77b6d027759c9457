import Foundation
import TestSupport
import XCTest

/// bench/k8s in its smallest form (one round, one second per run, two ADDs): it must still build
/// both clusters, measure every case and end with its RESULT line, every figure in it positive.
/// The figures themselves are not checked (tests check behaviour, never timing).
final class K8sBenchSmokeTests: XCTestCase {
    func testTheBenchRunsAndReportsEveryFigure() throws {
        let script = repositoryRoot.appendingPathComponent("bench/k8s/run").path
        let before = try benchNamespaces()
        let result = try runCommand(script, [], environment: [
            "PCN_BIN_DIR": productsDirectory.path, "BENCH_ROUNDS": "1", "BENCH_SECONDS": "1", "BENCH_ADDS": "2",
        ], timeout: 600)
        XCTAssertEqual(result.status, 0, "bench/k8s failed:\n\(result.stdout.suffix(2000))\n\(result.stderr.suffix(2000))")
        let lines = result.stdout.split(separator: "\n")
        guard let last = lines.last, last.hasPrefix("RESULT ") else {
            return XCTFail("no RESULT line last: \(lines.suffix(5))")
        }
        var figures: [String: Double] = [:]
        for field in last.dropFirst("RESULT ".count).split(separator: " ") {
            let parts = field.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { return XCTFail("'\(field)' is not name=value") }
            figures[String(parts[0])] = Double(parts[1])
        }
        let names = ["pod_pod_same", "pod_clusterip_same", "pod_pod_cross", "pod_clusterip_cross", "cni_add_ms",
                     "cni_add_reference_ms", "pod_pod_same_ceiling", "pod_pod_same_of_ceiling", "direct_gbps"]
        for name in names {
            XCTAssertGreaterThan(figures[name] ?? 0, 0, "\(name) in \(last)")
        }
        // Nothing of the bench is left (its namespaces are bk<tag>…).
        XCTAssertEqual(try benchNamespaces().subtracting(before), [], "the bench left namespaces behind")
    }

    private func benchNamespaces() throws -> Set<String> {
        let listed = try runCommand("/usr/bin/ip", ["netns", "list"]).stdout
        return Set(listed.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.hasPrefix("bk") })
    }
}

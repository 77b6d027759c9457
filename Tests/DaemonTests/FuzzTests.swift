import Foundation
import TestSupport
import XCTest

/// The coverage-guided fuzzers (scripts/fuzz: libFuzzer on the frame decoder, the JSON writer's round
/// trip, pcnctl's grammar, the YANG value checks), a bounded run of each from the repository's corpus: no crash.
final class FuzzTests: XCTestCase {
    func testEachFuzzTargetRunsWithoutACrash() throws {
        let result = try runCommand(repositoryRoot.appendingPathComponent("scripts/fuzz").path, ["-t", "15"], timeout: 600)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        for target in ["frame", "json", "grammar", "yang"] {
            XCTAssertTrue(result.stdout.contains("scripts/fuzz: \(target) for 15 s"), result.stdout)
        }
        // Each ran (libFuzzer's count of executed inputs).
        let counts = result.stdout.split(separator: "\n").filter { $0.hasPrefix("stat::number_of_executed_units:") }
            .compactMap { Int($0.split(separator: " ").last ?? "") }
        XCTAssertEqual(counts.count, 4, result.stdout)
        XCTAssertTrue(counts.allSatisfy { $0 > 1000 }, "\(counts)")
    }
}

@testable import Services
import XCTest

/// lbrp's backend tables: shares follow weights, few flows move when the backend set changes.
final class MaglevTests: XCTestCase {
    private func backends(_ count: Int, weights: [Int]? = nil) -> [(name: String, weight: Int)] {
        (0..<count).map { ("10.0.\($0 / 250).\($0 % 250 + 1):8080", weights?[$0] ?? 1) }
    }

    private func shares(_ table: [Int], count: Int) -> [Double] {
        (0..<count).map { index in Double(table.filter { $0 == index }.count) / Double(table.count) }
    }

    func testSharesFollowWeights() {
        for (count, weights) in [(3, [1, 2, 3]), (4, [1, 1, 1, 1]), (10, [5, 1, 1, 1, 1, 1, 1, 1, 1, 1])] {
            let size = Maglev.size(backends: count)
            let table = Maglev.table(backends(count, weights: weights), size: size)
            XCTAssertEqual(table.count, size)
            XCTAssertFalse(table.contains(-1))
            let total = Double(weights.reduce(0, +))
            for (index, share) in shares(table, count: count).enumerated() {
                let expected = Double(weights[index]) / total
                XCTAssertEqual(share, expected, accuracy: expected * 0.05, "backend \(index) of \(count), weights \(weights)")
            }
        }
    }

    /// The fraction of slots that name another backend after a change (a flow hashes to a slot).
    private func moved(_ before: [(name: String, weight: Int)], _ after: [(name: String, weight: Int)]) -> Double {
        let size = Maglev.size(backends: after.count)
        XCTAssertEqual(size, Maglev.size(backends: before.count), "the table keeps its size")
        let old = Maglev.table(before, size: size).map { before[$0].name }
        let new = Maglev.table(after, size: size).map { after[$0].name }
        return Double(zip(old, new).filter { $0 != $1 }.count) / Double(size)
    }

    func testAddingOrRemovingOneOfNMovesAboutOneNth() {
        let four = backends(4), five = backends(5)
        XCTAssertLessThanOrEqual(moved(four, five), 1.0 / 5 + 0.05, "a 5th joins 4")
        XCTAssertLessThanOrEqual(moved(five, four), 1.0 / 5 + 0.05, "one of 5 leaves")
        let many = backends(40), fewer = Array(many.dropFirst())
        XCTAssertLessThanOrEqual(moved(many, fewer), 1.0 / 40 + 0.05)
        let thousand = backends(1000)
        XCTAssertEqual(Maglev.size(backends: 1000), 65_521)
        XCTAssertLessThanOrEqual(moved(thousand, Array(thousand.dropLast())), 1.0 / 1000 + 0.05)
    }

    func testOneBackendIsOneSlotAndTablesAreStable() {
        XCTAssertEqual(Maglev.table(backends(1), size: Maglev.size(backends: 1)), [0])
        XCTAssertEqual(Maglev.table(backends(3), size: 251), Maglev.table(backends(3), size: 251), "the same names give the same table")
    }
}

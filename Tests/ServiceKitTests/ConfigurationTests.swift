import Foundation
@testable import ServiceKit
import XCTest

/// Typed configuration and its diffs, in-process: decoding pcn-api's JSON, which members changed,
/// and the entries a list gained, lost or changed.
final class ConfigurationTests: XCTestCase {
    struct Entry: Decodable, Equatable, Keyed {
        var ip: IPv4Address
        var note: String?
        var key: IPv4Address { ip }
    }
    struct Config: Decodable {
        var mtu: Int
        var entries: KeyedList<Entry>
        var mac: MACAddress?
    }

    private func decode(_ json: String) throws -> Config {
        try JSONDecoder().decode(Config.self, from: Data(json.utf8))
    }

    func testDecodingTypedValuesAndAbsentLists() throws {
        let config = try decode(#"{"mtu":1500,"mac":"02:00:00:00:00:01","entries":[{"ip":"10.0.0.1"},{"ip":"10.0.0.2","note":"b"}]}"#)
        XCTAssertEqual(config.entries.count, 2)
        XCTAssertEqual(config.entries[IPv4Address("10.0.0.2")!]?.note, "b")
        XCTAssertEqual(config.mac?.description, "02:00:00:00:00:01")
        XCTAssertTrue(try decode(#"{"mtu":1500}"#).entries.isEmpty, "an absent list has no entries (RFC 7951 leaves it out)")
        XCTAssertThrowsError(try decode(#"{"mtu":1,"entries":[{"ip":"10.0.0.300"}]}"#)) { error in
            XCTAssertTrue("\(error)".contains("'10.0.0.300' is not a valid IPv4Address"), "\(error)")
        }
    }

    func testListDifferences() throws {
        let before = try decode(#"{"mtu":1,"entries":[{"ip":"10.0.0.1"},{"ip":"10.0.0.2","note":"b"},{"ip":"10.0.0.3"}]}"#).entries
        let after = try decode(#"{"mtu":1,"entries":[{"ip":"10.0.0.2","note":"changed"},{"ip":"10.0.0.3"},{"ip":"10.0.0.4"}]}"#).entries
        let difference = after.difference(from: before)
        XCTAssertEqual(difference.added.map(\.ip.description), ["10.0.0.4"])
        XCTAssertEqual(difference.removed.map(\.ip.description), ["10.0.0.1"])
        XCTAssertEqual(difference.changed.map(\.ip.description), ["10.0.0.2"])
        XCTAssertEqual(after.difference(from: nil).added.count, 3, "against nothing, everything is added")
    }

    func testChangedComparesTypedMembers() throws {
        let cube = Cube<Config>(name: "c1", service: "test")
        let old = try decode(#"{"mtu":1500,"entries":[{"ip":"10.0.0.1"}]}"#)
        let new = try decode(#"{"mtu":1400,"entries":[{"ip":"10.0.0.1"}]}"#)
        let change = Change(cube: cube, config: new, previous: old)
        XCTAssertTrue(change.changed(\.mtu))
        XCTAssertFalse(change.changed(\.entries))
        XCTAssertTrue(Change(cube: cube, config: new, previous: nil).changed(\.entries), "applied anew, everything changed")
    }
}

import Foundation
import IPC
import PCNProtocol
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

    /// A write that sends part of a list (a cut): the list is the one decoded before, edited; it
    /// equals decoding the whole configuration, and its difference is what the write changed.
    func testCutListsEditTheListDecodedBefore() throws {
        func decode(_ json: String, cuts: [ConfigCut] = [], previous: [String: Any] = [:]) throws -> (Config, [String: Any]) {
            let decoding = ConfigDecoding(cuts: cuts, previous: previous)
            let decoder = JSONDecoder()
            decoder.userInfo[ConfigDecoding.key] = decoding
            let config = try decoder.decode(Config.self, from: Data(json.utf8))
            XCTAssertEqual(decoding.unconsumed, [], "every cut was a KeyedList of the configuration")
            return (config, decoding.lists)
        }
        let (before, lists) = try decode(#"{"mtu":1,"entries":[{"ip":"10.0.0.1"},{"ip":"10.0.0.2","note":"b"},{"ip":"10.0.0.3"}]}"#)
        XCTAssertNotNil(lists["entries"], "each decoded list is kept for the next edit")
        let cut = ConfigCut(path: ["entries"], previousPath: ["entries"], keys: ["ip"], removed: [["ip": "10.0.0.1"]])
        let (after, _) = try decode(#"{"mtu":1,"entries":[{"ip":"10.0.0.2","note":"changed"},{"ip":"10.0.0.4"}]}"#, cuts: [cut], previous: lists)
        let whole = try self.decode(#"{"mtu":1,"entries":[{"ip":"10.0.0.2","note":"changed"},{"ip":"10.0.0.3"},{"ip":"10.0.0.4"}]}"#)
        XCTAssertEqual(after.entries, whole.entries)
        XCTAssertEqual(after.entries.map(\.ip.description), ["10.0.0.2", "10.0.0.3", "10.0.0.4"])
        let difference = after.entries.difference(from: before.entries)
        XCTAssertEqual(difference.added.map(\.ip.description), ["10.0.0.4"])
        XCTAssertEqual(difference.removed.map(\.ip.description), ["10.0.0.1"])
        XCTAssertEqual(difference.changed.map(\.ip.description), ["10.0.0.2"])
        XCTAssertNotEqual(after.entries, before.entries)

        // A cut that writes nothing (a write elsewhere in the cube) leaves the list as it was.
        let (untouched, _) = try decode(#"{"mtu":2}"#, cuts: [ConfigCut(path: ["entries"], previousPath: ["entries"], keys: ["ip"])], previous: lists)
        XCTAssertEqual(untouched.entries, before.entries)
        XCTAssertTrue(untouched.entries.difference(from: before.entries) == ([], [], []))

        // The last entries removed: the list is absent from the base and still edited.
        let all = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map { ["ip": $0] as [String: Any] }
        let (emptied, _) = try decode(#"{"mtu":1}"#, cuts: [ConfigCut(path: ["entries"], previousPath: ["entries"], keys: ["ip"], removed: all)], previous: lists)
        XCTAssertTrue(emptied.entries.isEmpty)

        // A cut of a list this host never decoded cannot be rebuilt: pcn-api sends the whole configuration.
        XCTAssertThrowsError(try decode(#"{"mtu":1}"#, cuts: [cut], previous: [:])) { error in
            XCTAssertEqual((error as? BusError)?.code, .needsWhole)
        }
    }
}

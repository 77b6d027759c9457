import Foundation
import XCTest
import YangKit

final class ConfigCheckTests: XCTestCase {
    var context: YangContext!
    var cube: SchemaNode!

    override func setUpWithError() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        context = try YangContext(searchDirectory: root.appendingPathComponent("yang").path)
        let model = try String(contentsOf: root.appendingPathComponent("Tests/Fixtures/testfwd.yang"), encoding: .utf8)
        XCTAssertEqual(try context.addModule(yang: model), "testfwd")
        cube = try XCTUnwrap(context.schema(module: "testfwd").first)
    }

    private func check(_ json: String, existing: String? = nil) throws -> ConfigCheck.Result {
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        let before = try existing.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) }
        var errors: [RestconfError] = []
        let typed = ConfigCheck(context: context).members(value as! [String: Any], of: cube, path: "/testfwd:testfwd[name='t1']",
                                                           existing: before as? [String: Any], creating: before == nil, errors: &errors)
        return ConfigCheck.Result(value: typed, errors: errors)
    }

    func testSchemaIsReadFromTheModel() throws {
        XCTAssertEqual(cube.kind, .list)
        XCTAssertEqual(cube.keys, ["name"])
        let type = try XCTUnwrap(cube.child("type"))
        XCTAssertTrue(type.initOnly)
        XCTAssertEqual(type.enums, ["TC", "XDP_SKB", "XDP_DRV"])
        XCTAssertEqual(type.defaultValue, "TC")
        XCTAssertEqual(cube.child("address")?.typeName, "ipv4-prefix")
        XCTAssertEqual(cube.child("hits")?.config, false)
        XCTAssertEqual(cube.child("ports")?.child("status")?.config, false)
        XCTAssertEqual(cube.child("rules")?.maxElements, 3)
        XCTAssertEqual(cube.child("reset")?.kind, .action)
        XCTAssertEqual(cube.child("reset")?.input.first?.name, "what")
        XCTAssertEqual(cube.child("mtu")?.description, "Largest frame.")
    }

    func testEveryErrorIsReportedAtOnce() throws {
        let result = try check(#"{"name":"t1","mtu":20,"label":"ABC","address":"10.0.1.300/24","mode":"sideways","bogus":1,"hits":3,"rules":[{"id":1}]}"#)
        let byPath = Dictionary(grouping: result.errors, by: { $0.path ?? "" })
        XCTAssertEqual(result.errors.count, 7, "\(result.errors)")
        XCTAssertTrue(byPath["/testfwd:testfwd[name='t1']/mtu"]?.first?.message.contains("'20' is not a valid uint16") == true, "\(result.errors)")
        XCTAssertEqual(byPath["/testfwd:testfwd[name='t1']/label"]?.first?.message, "'ABC' is not a valid string")
        XCTAssertEqual(byPath["/testfwd:testfwd[name='t1']/address"]?.first?.message, "'10.0.1.300/24' is not a valid ipv4-prefix")
        XCTAssertTrue(byPath["/testfwd:testfwd[name='t1']/mode"]?.first?.message.contains("one of FORWARD, DROP, SLOWPATH") == true)
        XCTAssertEqual(byPath["/testfwd:testfwd[name='t1']/bogus"]?.first?.tag, "unknown-element")
        XCTAssertEqual(byPath["/testfwd:testfwd[name='t1']/hits"]?.first?.message, "'hits' is read-only (state, config false)")
        XCTAssertEqual(byPath["/testfwd:testfwd[name='t1']/rules[id='1']/priority"]?.first?.tag, "missing-element")
    }

    func testValuesAreTypedFromTheModel() throws {
        let result = try check(#"{"name":"t1","type":"xdp_skb","mtu":"9000","enabled":"TRUE","counter64":12}"#)
        XCTAssertEqual(result.errors, [])
        let typed = result.value as! [String: Any]
        XCTAssertEqual(typed["type"] as? String, "XDP_SKB")
        XCTAssertEqual(typed["mtu"] as? Int, 9000)
        XCTAssertEqual(typed["enabled"] as? Bool, true)
        XCTAssertEqual(typed["counter64"] as? String, "12")
    }

    func testInitOnlyCannotChangeAfterCreation() throws {
        let result = try check(#"{"name":"t1","type":"XDP_SKB"}"#, existing: #"{"name":"t1","type":"TC"}"#)
        XCTAssertEqual(result.errors.first?.message, "'type' is set when 't1' is created and cannot change (it is 'TC')")
        XCTAssertEqual(try check(#"{"name":"t1","type":"TC","mtu":100}"#, existing: #"{"name":"t1","type":"TC"}"#).errors, [])
    }

    func testWholeTreeRulesAndDefaults() throws {
        XCTAssertThrowsError(try context.normalize(json: #"{"testfwd:testfwd":[{"name":"t1","low":5,"high":3}]}"#)) { error in
            XCTAssertTrue("\(error)".contains("low must be below high"), "\(error)")
        }
        XCTAssertThrowsError(try context.normalize(json: #"{"testfwd:testfwd":[{"name":"t1","default-port":"p9"}]}"#)) { error in
            XCTAssertTrue("\(error)".contains("p9"), "\(error)")
        }
        XCTAssertThrowsError(try context.normalize(json: #"{"testfwd:testfwd":[{"name":"t1","rules":[{"id":1,"priority":5},{"id":2,"priority":5}]}]}"#)) { error in
            XCTAssertTrue("\(error)".lowercased().contains("unique"), "\(error)")
        }
        let filled = try context.normalize(json: #"{"testfwd:testfwd":[{"name":"t1","ports":[{"name":"p1"}],"default-port":"p1"}]}"#)
        XCTAssertTrue(filled.contains(#""mtu":1500"#) && filled.contains(#""type":"TC""#) && filled.contains(#""loglevel":"INFO""#), filled)
    }
}

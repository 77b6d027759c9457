import Foundation
import JSONText
import XCTest

final class JSONTextTests: XCTestCase {
    func testWritesWhatJSONSerializationReadsBackUnchanged() throws {
        let source = #"{"b":[1,-3,18446744073709551615,1.5,true,false,null,"x\"y\\z\n\t\u0001/é"],"a":{"c":{},"d":[]},"e":"10.0.0.0/24"}"#
        let tree = try JSONSerialization.jsonObject(with: Data(source.utf8))
        let text = try JSONText.string(tree)
        XCTAssertEqual(text, #"{"a":{"c":{},"d":[]},"b":[1,-3,18446744073709551615,1.5,true,false,null,"x\"y\\z\n\t\u0001/é"],"e":"10.0.0.0/24"}"#)
        let again = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary
        XCTAssertEqual(again, tree as? NSDictionary)
    }

    func testSwiftValuesAndFragments() throws {
        XCTAssertEqual(try JSONText.string(["n": 3, "f": 2.5, "t": true, "s": "v", "l": [UInt64.max]] as [String: Any]),
                       #"{"f":2.5,"l":[18446744073709551615],"n":3,"s":"v","t":true}"#)
        XCTAssertEqual(try JSONText.string("peer"), #""peer""#)
        XCTAssertEqual(try JSONText.string(NSNull()), "null")
        XCTAssertEqual(try JSONText.string(["a": ["b": "c"]] as [String: [String: String]]), #"{"a":{"b":"c"}}"#)
    }

    func testEqualityOfTrees() throws {
        let a = try JSONSerialization.jsonObject(with: Data(#"{"x":[1,true,"s",null,{"y":2.5}]}"#.utf8))
        let b = try JSONSerialization.jsonObject(with: Data(#"{"x":[1,true,"s",null,{"y":2.5}]}"#.utf8))
        XCTAssertTrue(JSONText.equal(a, b))
        for other in [#"{"x":[true,true,"s",null,{"y":2.5}]}"#, #"{"x":[1,1,"s",null,{"y":2.5}]}"#, #"{"x":[1,true,"s",null,{"y":2.5,"z":1}]}"#,
                      #"{"x":[1,true,"s",null]}"#, #"{"x":[1,true,"t",null,{"y":2.5}]}"#, #"{"x":[1,true,"s",0,{"y":2.5}]}"#] {
            XCTAssertFalse(JSONText.equal(a, try JSONSerialization.jsonObject(with: Data(other.utf8))), other)
        }
        XCTAssertTrue(JSONText.equal(["n": 3, "s": "v"] as [String: Any], ["s": "v", "n": 3] as [String: Any]))
        XCTAssertFalse(JSONText.equal(["n": 3] as [String: Any], ["n": "3"] as [String: Any]))
    }

    func testRefusesWhatJSONCannotHold() {
        XCTAssertThrowsError(try JSONText.data(["x": Date()]))
        XCTAssertThrowsError(try JSONText.data([Double.nan]))
    }
}

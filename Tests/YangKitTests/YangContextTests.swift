import XCTest
import YangKit

final class YangContextTests: XCTestCase {
    let model = """
        module demo {
          yang-version 1.1;
          namespace "urn:pcn:demo";
          prefix demo;
          import ietf-inet-types { prefix inet; }
          container router {
            list ports {
              key name;
              leaf name { type string; }
              leaf ip { type inet:ipv4-prefix; mandatory true; }
              leaf mtu { type uint16 { range "68..9000"; } default 1500; }
            }
          }
        }
        """

    func testValidAndInvalidData() throws {
        let context = try YangContext()
        XCTAssertEqual(try context.addModule(yang: model), "demo")
        XCTAssertNoThrow(try context.validate(json: #"{"demo:router":{"ports":[{"name":"p1","ip":"10.0.1.254/24"}]}}"#))

        XCTAssertThrowsError(try context.validate(json: #"{"demo:router":{"ports":[{"name":"p1","ip":"10.0.1.300/24"}]}}"#)) { error in
            let issue = error as? YangIssue
            XCTAssertTrue(issue?.message.contains("10.0.1.300/24") == true, "\(error)")
            XCTAssertTrue(issue?.path?.contains("ports[name='p1']") == true, "\(error)")
        }
        XCTAssertThrowsError(try context.validate(json: #"{"demo:router":{"ports":[{"name":"p1","ip":"10.0.0.1/8","mtu":20}]}}"#)) { error in
            XCTAssertTrue("\(error)".contains("20"), "\(error)")
        }
        XCTAssertThrowsError(try context.validate(json: #"{"demo:router":{"ports":[{"name":"p1"}]}}"#)) { error in
            XCTAssertTrue("\(error)".lowercased().contains("mandatory"), "\(error)")
        }
        XCTAssertThrowsError(try context.validate(json: #"{"demo:router":{"bogus":1}}"#))
    }

    func testBrokenModuleIsReported() throws {
        let context = try YangContext()
        XCTAssertThrowsError(try context.addModule(yang: "module broken { leaf x { type nosuchtype; } }"))
    }
}

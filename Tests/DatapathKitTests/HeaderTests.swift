import DatapathKit
import Foundation
import Logging
import XCTest

/// Every framework header compiles on its own, for TC and for XDP, with the flags pcn-core uses: a
/// service includes what it needs and nothing breaks for want of another header first.
final class HeaderTests: XCTestCase {
    func testEveryHeaderCompilesOnItsOwnForBothHooks() throws {
        guard let clang = BPFCompiler.locateClang() else { throw XCTSkip("no clang on PATH") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let include = root.appendingPathComponent("bpf/include").path
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("pcn-header-test-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let compiler = BPFCompiler(clang: clang, includeDirectory: include, cacheDirectory: cache, logger: Logger(label: "test"))
        let headers = try FileManager.default.contentsOfDirectory(atPath: include + "/pcn").filter { $0.hasSuffix(".h") }.sorted()
        XCTAssertGreaterThan(headers.count, 8)
        for header in headers {
            for defines in [[], ["PCN_XDP"]] {
                // cube.h wraps a handle_rx the source must define.
                let body = header == "cube.h" ? "static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) { return RX_OK; }\n" : ""
                XCTAssertNoThrow(try compiler.compile(sourceText: "#include <pcn/\(header)>\n" + body, name: header, defines: defines),
                                 "\(header) does not compile alone (\(defines.isEmpty ? "TC" : "XDP"))")
            }
        }
    }
}

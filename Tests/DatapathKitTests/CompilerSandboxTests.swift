import DatapathKit
import Foundation
import Logging
import XCTest

/// Code from a client is compiled in a jail: nothing of the host outside the allowed headers can be
/// read into it or quoted back in an error.
final class CompilerSandboxTests: XCTestCase {
    private var cache = ""
    private var compiler: BPFCompiler?

    override func setUpWithError() throws {
        guard let clang = BPFCompiler.locateClang() else { throw XCTSkip("no clang on PATH") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        cache = FileManager.default.temporaryDirectory.appendingPathComponent("pcn-sandbox-test-\(getpid())").path
        compiler = BPFCompiler(clang: clang, includeDirectory: root.appendingPathComponent("bpf/include").path, cacheDirectory: cache, logger: Logger(label: "test"))
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: cache) }

    private func refusal(_ source: String) -> String {
        do {
            _ = try compiler!.compile(sourceText: source, name: "probe")
            return "(compiled)"
        } catch {
            return "\(error)"
        }
    }

    func testHostFilesCannotBeIncludedOrQuoted() throws {
        let shadowLine = (try? String(contentsOfFile: "/etc/shadow", encoding: .utf8))?.split(separator: "\n").first.map(String.init) ?? "root:"
        let passwdLine = try String(contentsOfFile: "/etc/passwd", encoding: .utf8).split(separator: "\n").first.map(String.init) ?? "root:x:0:0"

        let direct = refusal(#"#include "/etc/shadow""# + "\n")
        XCTAssertTrue(direct.contains("#include of '/etc/shadow' is not allowed"), direct)
        XCTAssertTrue(refusal("#include \"../../../etc/passwd\"\n").contains("is not allowed"))
        // What no scan sees: a computed include, the assembler's .incbin. The jail has no such files.
        for source in ["#define F </etc/passwd>\n#include F\n", "#define S \"/etc/shadow\"\n#include S\n",
                       "asm(\".incbin \\\"/etc/passwd\\\"\");\n", "#include <../../etc/passwd>\n"] {
            let output = refusal(source)
            XCTAssertNotEqual(output, "(compiled)", source)
            XCTAssertFalse(output.contains(passwdLine), "\(source): \(output)")
            XCTAssertFalse(output.contains(shadowLine), "\(source): \(output)")
        }
        // What a datapath needs is there: the framework's, the kernel's, libbpf's and clang's headers.
        XCTAssertNoThrow(try compiler!.compile(sourceText: "#include <stddef.h>\n#include <linux/if_ether.h>\n#include <bpf/bpf_helpers.h>\n#include <pcn/packet.h>\n",
                                               name: "allowed"))
    }
}

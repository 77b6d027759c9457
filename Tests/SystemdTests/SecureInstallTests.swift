import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// scripts/install with an address off loopback, under a real systemd: pcn-api, socket activated,
/// serves HTTPS with the certificate and token install made, and the installed pcnctl reaches it
/// through the pcnctl.yaml install wrote.
final class SecureInstallTests: SandboxedSystemdTestCase {
    override class var apiHost: String { "0.0.0.0" }

    var etc: String { units!.prefix + "/etc" }

    override func prepare(_ units: RenderedUnits) throws {
        // pcn-api runs as pcn, whose group is 990 in the sandbox (this machine may have no pcn group).
        for path in [units.prefix + "/etc/tls", units.prefix + "/etc/tls/key.pem", units.prefix + "/etc/api-token"] {
            guard chown(path, 0, 990) == 0 else { throw TestFailure("chown \(path): \(String(cString: strerror(errno)))") }
        }
        chmod(units.prefix + "/etc/tls/key.pem", 0o640)
        chmod(units.prefix + "/etc/api-token", 0o640)
    }

    override func allServicesRegistered() async -> Bool {
        guard let result = try? pcnctl(["services", "-json"]), result.status == 0 else { return false }
        return (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [Any])?.count == catalogServices.count
    }

    /// The installed pcnctl with nothing but the installed settings file.
    func pcnctl(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand(units!.prefix + "/bin/pcnctl", arguments,
                       environment: ["PCNCTL_CONFIG": etc + "/pcnctl.yaml", "PCN_API_URL": "", "PCN_API_CACERT": "", "PCN_API_TOKEN_FILE": ""],
                       timeout: 60)
    }

    func curl(_ arguments: [String]) throws -> String {
        try runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"] + arguments).stdout
    }

    func testInstalledOffLoopbackServesHTTPSWithTheTokenToPcnctl() async throws {
        let environment = try String(contentsOfFile: etc + "/pcn.env", encoding: .utf8)
        XCTAssertTrue(environment.contains("PCN_API_TLS_CERT=\(etc)/tls/cert.pem\n"), environment)
        XCTAssertTrue(environment.contains("PCN_API_TOKEN_FILE=\(etc)/api-token\n"), environment)
        let settings = try String(contentsOfFile: etc + "/pcnctl.yaml", encoding: .utf8)
        XCTAssertTrue(settings.contains("url: https://127.0.0.1:\(units!.apiPort)\n"), settings)
        var info = stat()
        XCTAssertEqual(stat(etc + "/tls/key.pem", &info), 0)
        XCTAssertEqual(info.st_mode & 0o007, 0, "the key is readable by others")

        var result = try pcnctl(["simplebridge", "add", "b1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try pcnctl(["b1", "fdb", "set", "aging-time=42"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try pcnctl(["b1", "fdb", "show", "-json"])
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["aging-time"] as? Int, 42, result.stdout + result.stderr)

        let url = "https://127.0.0.1:\(units!.apiPort)/polycube/v1/simplebridge/b1"
        XCTAssertEqual(try curl(["--cacert", etc + "/tls/cert.pem", url]), "401", "served without the token")
        let token = try String(contentsOfFile: etc + "/api-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try curl(["--cacert", etc + "/tls/cert.pem", "-H", "Authorization: Bearer \(token)", url]), "200")
        XCTAssertNotEqual(try curl(["http://127.0.0.1:\(units!.apiPort)/polycube/v1/simplebridge/b1"]), "200", "served in clear")
        let status = try systemctl(["show", "-p", "StatusText", "--value", "pcn-api.service"]).stdout
        XCTAssertTrue(status.contains("(socket activated) with TLS, bearer token"), status)

        // A restart of pcn-api: requests wait in the socket's backlog, then are served over TLS again.
        XCTAssertEqual(try systemctl(["restart", "pcn-api.service"]).status, 0)
        result = try pcnctl(["b1", "fdb", "show", "-json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("\"aging-time\" : 42"), result.stdout)
    }
}

import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// pcn-api off loopback: refused without TLS and a bearer token; with both, served over HTTPS
/// (directly and through a socket systemd-style activation hands it) to curl and pcnctl.
final class AccessTests: XCTestCase {
    var directory = ""
    var bpffsRoot = ""
    var common: [String] = []
    var children: [Child] = []
    var activator: BackgroundCommand?

    var certificate: String { directory + "/tls/cert.pem" }
    var key: String { directory + "/tls/key.pem" }
    var token: String { directory + "/token" }

    override func setUp() async throws {
        directory = makeTemporaryDirectory()
        bpffsRoot = "/sys/fs/bpf/pcntest-access-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        common = ["--runtime-dir", directory + "/run", "--state-dir", directory + "/state", "--log-dir", directory + "/log",
                  "--bpffs-root", bpffsRoot, "--log-level", "warning"]
        try FileManager.default.createDirectory(atPath: directory + "/tls", withIntermediateDirectories: true)
        try makeCertificate(certificate: certificate, key: key)
        try openssl(["rand", "-hex", "-out", token, "32"])
        chmod(token, 0o600)
    }

    override func tearDown() {
        activator?.stop()
        for child in children.reversed() { child.killAndWait(SIGTERM) }
        _ = try? runCommand("/bin/rm", ["-rf", bpffsRoot])
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try runCommand("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw TestFailure("openssl \(arguments.joined(separator: " ")): \(result.stderr)") }
    }

    /// A self-signed certificate for 127.0.0.1 and its key (mode 0600).
    private func makeCertificate(certificate: String, key: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                     "-subj", "/CN=pcn-api-test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                     "-keyout", key, "-out", certificate])
        chmod(key, 0o600)
    }

    /// pcn-api run to its end: it must refuse to start.
    private func refusal(_ arguments: [String]) throws -> String {
        let result = try runCommand(productsDirectory.appendingPathComponent("pcn-api").path, common + arguments, timeout: 30)
        XCTAssertNotEqual(result.status, 0, "pcn-api \(arguments) started")
        return result.stderr
    }

    func testOffLoopbackWithoutTLSAndATokenPcnAPIRefusesToStart() throws {
        let address = ["--api-addr", "0.0.0.0:\(freePort())"]
        XCTAssertTrue(try refusal(address).contains("without TLS (--tls-cert and --tls-key) and a bearer token (--token-file)"))
        XCTAssertTrue(try refusal(address + ["--tls-cert", certificate, "--tls-key", key]).contains("without a bearer token (--token-file)"))
        XCTAssertTrue(try refusal(address + ["--token-file", token]).contains("without TLS (--tls-cert and --tls-key)"))
        XCTAssertTrue(try refusal(address + ["--tls-cert", certificate, "--token-file", token]).contains("--tls-cert was given without --tls-key"))
        // Bad secrets are named, also on loopback.
        let loopback = ["--api-addr", "127.0.0.1:\(freePort())"]
        XCTAssertTrue(try refusal(loopback + ["--tls-cert", key, "--tls-key", key]).contains("cannot read the TLS certificate \(key): not a PEM certificate"))
        XCTAssertTrue(try refusal(loopback + ["--tls-cert", certificate, "--tls-key", directory + "/none.pem"]).contains("cannot read the TLS private key \(directory)/none.pem"))
        let otherKey = directory + "/tls/other-key.pem"
        try makeCertificate(certificate: directory + "/tls/other.pem", key: otherKey)
        XCTAssertTrue(try refusal(loopback + ["--tls-cert", certificate, "--tls-key", otherKey]).contains("does not go with the certificate"))
        chmod(token, 0o644)
        XCTAssertTrue(try refusal(loopback + ["--token-file", token]).contains("is readable by every user (mode 644)"))
        try "short\n".write(toFile: token, atomically: true, encoding: .utf8)
        chmod(token, 0o600)
        XCTAssertTrue(try refusal(loopback + ["--token-file", token]).contains("at least 16 are needed"))
    }

    /// pcn-core, the testfwd stand-in service, and pcn-api with `apiArguments`; returns when pcn-api is ready.
    private func startStack(api: () throws -> Void) throws {
        children.append(try Child("pcn-core", common + ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path, "--service-dir", repositoryRoot.appendingPathComponent("Tests/Fixtures/bpf").path]))
        try api()
        let service = try Child("pcn-bus-peer", ["--socket", directory + "/run/bus.sock", "--name", "cube-host/testfwd", "--mode", "service",
                                                 "--service", "testfwd", "--yang", repositoryRoot.appendingPathComponent("Tests/Fixtures/testfwd.yang").path])
        children.append(service)
        try service.waitForLine(timeout: 30) { $0 == "MODEL REGISTERED" }
    }

    private func waitUntilReady(_ component: String) throws {
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: directory + "/run/ready/" + component) {
            guard Date() < deadline else { throw TestFailure("\(component) did not become ready") }
            usleep(20_000)
        }
    }

    private func eventuallyConnect(port: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while try runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "--max-time", "1", "telnet://127.0.0.1:\(port)"]).status == 7 {
            guard Date() < deadline else { throw TestFailure("nothing listens on \(port)") }
            usleep(50_000)
        }
    }

    private func curl(_ arguments: [String]) throws -> (status: Int32, code: String, body: String) {
        let result = try runCommand("/usr/bin/curl", ["-sS", "-o", directory + "/curl.out", "-w", "%{http_code}", "--max-time", "20"] + arguments)
        let body = (try? String(contentsOfFile: directory + "/curl.out", encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: directory + "/curl.out")
        return (result.status, result.stdout, body + result.stderr)
    }

    private func pcnctl(_ arguments: [String], settings: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let file = directory + "/pcnctl.yaml"
        try settings.write(toFile: file, atomically: true, encoding: .utf8)
        return try runCommand(productsDirectory.appendingPathComponent("pcnctl").path, arguments,
                              environment: ["PCNCTL_CONFIG": file, "PCN_API_URL": "", "PCN_API_CACERT": "", "PCN_API_TOKEN_FILE": ""])
    }

    /// What a client sees of a pcn-api serving HTTPS with a token on `port`.
    private func checkServedSecurely(port: Int) throws {
        let url = "https://127.0.0.1:\(port)/polycube/v1/"
        let secret = try String(contentsOfFile: token, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var answer = try curl(["--cacert", certificate, url + "version"])
        XCTAssertEqual(answer.code, "401", answer.body)
        XCTAssertTrue(answer.body.contains(#""error-tag":"access-denied""#), answer.body)
        answer = try curl(["--cacert", certificate, "-H", "Authorization: Bearer \(secret)x", url + "version"])
        XCTAssertEqual(answer.code, "401", "a longer token is not the token")
        answer = try curl(["--cacert", certificate, "-H", "Authorization: Bearer \(secret.dropLast())", url + "services"])
        XCTAssertEqual(answer.code, "401", "a prefix of the token is not the token")
        answer = try curl(["--cacert", certificate, "-H", "Authorization: Bearer \(secret)", url + "version"])
        XCTAssertEqual(answer.code, "200", answer.body)
        answer = try curl(["-H", "Authorization: Bearer \(secret)", url + "version"])
        XCTAssertNotEqual(answer.status, 0, "a certificate no CA vouches for was accepted")
        answer = try curl(["-H", "Authorization: Bearer \(secret)", "http://127.0.0.1:\(port)/polycube/v1/version"])
        XCTAssertNotEqual(answer.code, "200", "plain HTTP was served")

        // pcnctl from its settings file: url, cacert, token-file.
        let good = "url: https://127.0.0.1:\(port)\ncacert: \(certificate)\ntoken-file: \(token)\n"
        var result = try pcnctl(["testfwd", "add", "t1", "type=tc", "mtu=9000"], settings: good)
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try pcnctl(["t1", "show", "-json"], settings: good)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["mtu"] as? Int, 9000, result.stdout)
        result = try pcnctl(["t1", "show"], settings: "url: https://127.0.0.1:\(port)\ntoken-file: \(token)\n")
        XCTAssertEqual(result.status, 69)
        XCTAssertTrue(result.stderr.contains("--cacert or PCN_API_CACERT"), result.stderr)
        result = try pcnctl(["t1", "show"], settings: "url: https://127.0.0.1:\(port)\ncacert: \(directory)/tls/other.pem\ntoken-file: \(token)\n")
        XCTAssertEqual(result.status, 69, "another CA's certificate was trusted: \(result.stderr)")
        result = try pcnctl(["t1", "show"], settings: "url: https://127.0.0.1:\(port)\ncacert: \(certificate)\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("this API needs a bearer token"), result.stderr)
        result = try pcnctl(["t1", "show"], settings: "url: 127.0.0.1:\(port)\n")
        XCTAssertEqual(result.status, 64, "a URL without its scheme: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("is not a valid URL"), result.stderr)
        result = try pcnctl(["t1", "show"], settings: "url: https://127.0.0.1:\(port)\nbogus: 1\n")
        XCTAssertEqual(result.status, 78)
        XCTAssertTrue(result.stderr.contains("unknown key 'bogus'"), result.stderr)
    }

    func testTLSAndTokenServeOffLoopback() throws {
        try makeCertificate(certificate: directory + "/tls/other.pem", key: directory + "/tls/other-key.pem")
        let port = freePort()
        try startStack {
            children.append(try Child("pcn-api", common + ["--api-addr", "0.0.0.0:\(port)", "--tls-cert", certificate,
                                                           "--tls-key", key, "--token-file", token]))
            try waitUntilReady("pcn-api")
        }
        try checkServedSecurely(port: port)
    }

    /// As under pcn-api.socket: the TLS bytes cross the relay to the HTTP server untouched.
    func testTLSAndTokenThroughSocketActivation() throws {
        try makeCertificate(certificate: directory + "/tls/other.pem", key: directory + "/tls/other-key.pem")
        let port = freePort()
        try startStack {
            activator = try BackgroundCommand("/usr/bin/systemd-socket-activate", [
                "-l", "0.0.0.0:\(port)", "-E", "PCN_API_TLS_CERT=\(certificate)", "-E", "PCN_API_TLS_KEY=\(key)",
                "-E", "PCN_API_TOKEN_FILE=\(token)", productsDirectory.appendingPathComponent("pcn-api").path] + common)
            // It starts pcn-api at the first connection, which then waits in the socket's backlog.
            try eventuallyConnect(port: port)
            XCTAssertEqual(try curl(["--cacert", certificate, "https://127.0.0.1:\(port)/polycube/v1/version"]).code, "401")
            try waitUntilReady("pcn-api")
        }
        try checkServedSecurely(port: port)
    }
}

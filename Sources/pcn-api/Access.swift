import DaemonKit
import Foundation
import Hummingbird
import HummingbirdTLS
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// Who may reach the REST API: loopback alone by default; any other address only over TLS and
/// with a bearer token, so neither the configuration nor the token crosses a network in clear.
struct AccessPolicy {
    /// The server's TLS identity, when given.
    let tls: TLSConfiguration?
    /// The token every request must carry (`Authorization: Bearer <token>`), when given.
    let token: BearerToken?

    /// Loads what the options name and checks it is enough for `address`.
    init(address: ListenAddress, certificatePath: String?, keyPath: String?, tokenPath: String?) throws {
        switch (certificatePath, keyPath) {
        case (nil, nil):
            tls = nil
        case let (certificate?, key?):
            tls = try Self.loadTLS(certificatePath: certificate, keyPath: key)
        case (nil, _?):
            throw DaemonError("--tls-key was given without --tls-cert (PCN_API_TLS_CERT): both are needed for TLS")
        case (_?, nil):
            throw DaemonError("--tls-cert was given without --tls-key (PCN_API_TLS_KEY): both are needed for TLS")
        }
        token = try tokenPath.map(BearerToken.init(path:))
        guard !address.isLoopback else { return }
        var missing: [String] = []
        if tls == nil { missing.append("TLS (--tls-cert and --tls-key)") }
        if token == nil { missing.append("a bearer token (--token-file)") }
        guard missing.isEmpty else {
            throw DaemonError("refusing to listen on \(address.host):\(address.port) without \(missing.joined(separator: " and ")): "
                + "only loopback addresses are served without both")
        }
    }

    var summary: String {
        [tls == nil ? nil : "TLS", token == nil ? nil : "bearer token"].compactMap { $0 }.joined(separator: ", ")
    }

    private static func loadTLS(certificatePath: String, keyPath: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw DaemonError("cannot read the TLS certificate \(certificatePath): \(Self.describe(error, path: certificatePath, expected: "a PEM certificate"))")
        }
        guard !chain.isEmpty else { throw DaemonError("the TLS certificate file \(certificatePath) holds no PEM certificate") }
        try SecretFile.checkPrivate(keyPath, what: "TLS private key")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw DaemonError("cannot read the TLS private key \(keyPath): \(Self.describe(error, path: keyPath, expected: "a PEM private key"))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // A key that does not belong to the certificate fails every handshake: find out now.
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw DaemonError("the TLS private key \(keyPath) does not go with the certificate \(certificatePath): \(error)")
        }
        return configuration
    }

    private static func describe(_ error: any Error, path: String, expected: String) -> String {
        FileManager.default.isReadableFile(atPath: path) ? "not \(expected) (\(error))" : "the file cannot be read"
    }
}

/// A secret read from a file, compared in constant time.
struct BearerToken: Sendable {
    private let bytes: [UInt8]

    init(path: String) throws {
        try SecretFile.checkPrivate(path, what: "token file")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DaemonError("cannot read the token file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count >= 16 else {
            throw DaemonError("the token in \(path) is \(text.count) characters long: at least 16 are needed (e.g. `openssl rand -hex 32 > \(path)`)")
        }
        guard text.allSatisfy({ $0.isASCII && !$0.isWhitespace && !$0.isNewline && $0.asciiValue! >= 0x21 && $0.asciiValue! < 0x7f }) else {
            throw DaemonError("the token in \(path) must be one line of printable ASCII without spaces")
        }
        bytes = Array(text.utf8)
    }

    /// True if `header` is `Bearer <this token>`; the time taken does not depend on where they differ.
    func admits(authorization header: String?) -> Bool {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let offered = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        var difference = UInt8(offered.count == bytes.count ? 0 : 1)
        for index in bytes.indices {
            difference |= bytes[index] ^ (index < offered.count ? offered[index] : 0)
        }
        return difference == 0
    }
}

enum SecretFile {
    /// Refuses a secret that every user of the machine can read.
    static func checkPrivate(_ path: String, what: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw DaemonError("cannot read the \(what) \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw DaemonError("the \(what) \(path) is not a regular file") }
        guard info.st_mode & 0o007 == 0 else {
            throw DaemonError("the \(what) \(path) is readable by every user (mode \(String(info.st_mode & 0o777, radix: 8))): `chmod o-rwx \(path)`")
        }
    }
}

/// Every request carries the token, or gets 401 with RFC 8040's `access-denied`.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: BearerToken

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard token.admits(authorization: request.headers[.authorization]) else {
            var response = RestError.response(status: .unauthorized, tag: "access-denied",
                message: request.headers[.authorization] == nil
                    ? "this API needs a bearer token: send 'Authorization: Bearer <token>' (pcnctl: --token-file or PCN_API_TOKEN_FILE)"
                    : "the bearer token is not the one pcn-api was given")
            response.headers[.wwwAuthenticate] = #"Bearer realm="pcn-api""#
            return response
        }
        return try await next(request, context)
    }
}

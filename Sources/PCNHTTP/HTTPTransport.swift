import CCurlShims
import Foundation

/// HTTP(S) through libcurl, for pcn-api's clients (pcnctl, pcn-cni, the node agent): unlike
/// URLSession on Linux it can trust a CA given by the user, which a pcn-api serving its own
/// certificate needs.
public enum HTTPTransport {
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
    }

    public struct Failure: Error, Sendable {
        public var reason: String
    }

    public static func perform(method: String, url: String, body: Data?, headers: [String], caFile: String?,
                        timeoutSeconds: Int, streamTo fd: Int32 = -1) throws -> Response {
        var response = pcn_http_response()
        defer { pcn_http_response_free(&response) }
        let headerCopies = headers.map { strdup($0) }
        defer { headerCopies.forEach { free($0) } }
        let outcome = headerCopies.map { UnsafePointer($0) }.withUnsafeBufferPointer { headerList in
            (body ?? Data()).withUnsafeBytes { bytes in
                pcn_http_perform(url, method, body == nil ? nil : bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                                 body?.count ?? 0, headerList.baseAddress, headers.count, caFile,
                                 timeoutSeconds, fd, &response)
            }
        }
        guard outcome == 0 else {
            throw Failure(reason: withUnsafeBytes(of: response.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        return Response(status: response.status, body: response.body.map { Data(bytes: $0, count: response.length) } ?? Data())
    }
}

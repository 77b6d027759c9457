import Foundation

/// A failure as the CNI specification's error object: written on stdout (as libcni reads it), exit status 1.
struct CNIError: Error, CustomStringConvertible {
    enum Code: Int {
        // The specification's well-known codes.
        case incompatibleVersion = 1
        case unsupportedField = 2
        case unknownContainer = 3
        case invalidEnvironment = 4
        case ioFailure = 5
        case decodeFailure = 6
        case invalidConfig = 7
        case tryAgainLater = 11
        // STATUS's answers.
        case notAvailable = 50
        case notAvailableExistingDegraded = 51
        // pcn-cni's own (100 and up), listed in docs/kubernetes.md.
        case interfaceExists = 100
        case apiUnreachable = 101
        case apiRefused = 102
        case linkFailure = 103
        case delegateFailure = 104
        case checkFailed = 105
    }

    var code: Code
    var msg: String
    var details: String?
    /// A delegate's own code, passed on as it came.
    var rawCode: Int?

    init(_ code: Code, _ msg: String, details: String? = nil) {
        self.code = code
        self.msg = msg
        self.details = details
    }

    var description: String { msg + (details.map { " (\($0))" } ?? "") }

    func json(cniVersion: String) -> [String: Any] {
        var object: [String: Any] = ["cniVersion": cniVersion, "code": rawCode ?? code.rawValue, "msg": msg]
        if let details { object["details"] = details }
        return object
    }
}

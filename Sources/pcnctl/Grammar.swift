import Foundation

/// The words of a command line turned into one REST call.
struct CommandLineRequest {
    var method: String
    var path: [String]
    var body: Any?
    /// False when no verb was given (a GET, or the call of a YANG action).
    var explicitVerb = true

    private static let verbs = ["add": "POST", "set": "PATCH", "show": "GET", "del": "DELETE"]

    init(words: [String], stdin: () throws -> Any? = { nil }) throws {
        // The generic commands.
        if let command = words.first, ["connect", "disconnect", "attach", "detach"].contains(command) {
            let rest = Array(words.dropFirst())
            let positional = rest.filter { !$0.contains("=") }
            var body: [String: Any] = [:]
            for pair in rest where pair.contains("=") {
                let (key, value) = Self.split(pair)
                body[key] = value
            }
            switch command {
            case "connect":
                guard positional.count == 2 else { throw CommandFailure(message: "usage: pcnctl connect CUBE:PORT CUBE:PORT|NETDEV", code: 64) }
                body["peer1"] = positional[0]
                body["peer2"] = positional[1]
            case "disconnect":
                guard (1...2).contains(positional.count) else { throw CommandFailure(message: "usage: pcnctl disconnect CUBE:PORT [PEER]", code: 64) }
                body["peer1"] = positional[0]
                if positional.count == 2 { body["peer2"] = positional[1] }
            case "attach":
                guard positional.count == 2 else { throw CommandFailure(message: "usage: pcnctl attach CUBE CUBE:PORT|NETDEV [position=first|last|auto] [before=X] [after=X]", code: 64) }
                body["cube"] = positional[0]
                body["port"] = positional[1]
            default:
                guard (1...2).contains(positional.count) else { throw CommandFailure(message: "usage: pcnctl detach CUBE [CUBE:PORT|NETDEV]", code: 64) }
                body["cube"] = positional[0]
                if positional.count == 2 { body["port"] = positional[1] }
            }
            method = "POST"
            path = [command]
            self.body = body
            return
        }
        var path: [String] = []
        var method = "GET"
        var pairs: [(String, String)] = []
        var sawVerb = false
        for word in words {
            if let eq = word.firstIndex(of: "="), eq != word.startIndex {
                pairs.append(Self.split(word))
            } else if !sawVerb, let verb = Self.verbs[word] {
                method = verb
                sawVerb = true
            } else if sawVerb && pairs.isEmpty && method != "PATCH" {
                path.append(word)  // `add NAME`, `del NAME`, `show NAME`: an entry's key.
            } else if sawVerb {
                throw CommandFailure(message: "unexpected '\(word)' after the verb (expected key=value)", code: 64)
            } else {
                path.append(word)
            }
        }
        if path.isEmpty { throw CommandFailure(message: "nothing to do: give a path, e.g. 'pcnctl services' (see --help)", code: 64) }
        if pairs.isEmpty && (method == "POST" || method == "PATCH"), let document = try stdin() {
            self.body = document
        } else if method == "PATCH" && pairs.isEmpty {
            throw CommandFailure(message: "'set' needs at least one key=value (or a YAML/JSON body on standard input)", code: 64)
        } else if method == "POST" || !pairs.isEmpty {
            // Nested members with dots: limits.rate=10 is {"limits": {"rate": "10"}}.
            var body: [String: Any] = [:]
            for (key, value) in pairs { Self.assign(&body, key.split(separator: ".").map(String.init)[...], value) }
            self.body = body
        }
        self.method = method
        self.path = path
        self.explicitVerb = sawVerb
    }

    static func split(_ word: String) -> (String, String) {
        let eq = word.firstIndex(of: "=")!
        return (String(word[..<eq]), String(word[word.index(after: eq)...]))
    }

    /// Values stay text: pcn-api types them from the model (a uint16 leaf gets a number, a string
    /// leaf keeps "0123" as written).
    static func assign(_ object: inout [String: Any], _ keys: ArraySlice<String>, _ value: String) {
        guard let first = keys.first else { return }
        if keys.count == 1 {
            object[first] = value
        } else {
            var inner = object[first] as? [String: Any] ?? [:]
            assign(&inner, keys.dropFirst(), value)
            object[first] = inner
        }
    }
}

struct CommandFailure: Error {
    let message: String
    let code: Int32
}

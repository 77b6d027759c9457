import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@main
struct Entry {
    static func main() async {
        do {
            var command = try Pcnctl.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("pcnctl: \(failure.message)\n".utf8))
            exit(failure.code)
        } catch {
            Pcnctl.exit(withError: error)
        }
    }
}

/// pcnctl: the command line for people, in polycubectl's grammar:
/// `pcnctl [path...] [add|del|show|set] [k=v ...]`.
struct Pcnctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcnctl",
        abstract: "Configure Polycube-Swift through pcn-api.",
        discussion: """
            Words name a path in the REST tree, then an optional verb and key=value pairs:
              pcnctl bus                      show the components registered on the bus
              pcnctl version                  show pcn-api's version
              pcnctl <path...> show           GET   /polycube/v1/<path>
              pcnctl <path...> add [k=v...]   POST
              pcnctl <path...> set k=v...     PATCH
              pcnctl <path...> del            DELETE
              pcnctl logs [CUBE] [--follow] [--level L] [--tail N]
                                              the datapath's and the daemons' log lines
            """)

    @Option(help: "pcn-api URL (env PCN_API_URL, default http://127.0.0.1:9000).")
    var url: String?

    @Argument(parsing: .captureForPassthrough, help: "Path words, verb and key=value pairs.")
    var words: [String] = []

    func run() async throws {
        let base = url ?? ProcessInfo.processInfo.environment["PCN_API_URL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "http://127.0.0.1:9000"
        let client = APIClient(base: base)
        if words.first == "logs" {
            try await LogsCommand(words: Array(words.dropFirst())).run(client)
            return
        }
        let request = try CommandLineRequest(words: words)
        let (status, body) = try await client.send(request)
        if (200..<300).contains(status) {
            if !body.isEmpty { print(Render.pretty(body)) }
        } else {
            throw CommandFailure(message: Render.error(status: status, body: body), code: 1)
        }
    }
}

struct CommandFailure: Error {
    let message: String
    let code: Int32
}

/// The words of a command line turned into one REST call.
struct CommandLineRequest: Equatable {
    var method: String
    var path: [String]
    var body: [String: Any]?

    static func == (a: CommandLineRequest, b: CommandLineRequest) -> Bool {
        a.method == b.method && a.path == b.path && (a.body as NSDictionary?) == (b.body as NSDictionary?)
    }

    private static let verbs = ["add": "POST", "set": "PATCH", "show": "GET", "del": "DELETE"]

    init(words: [String]) throws {
        var path: [String] = []
        var method = "GET"
        var pairs: [(String, String)] = []
        var sawVerb = false
        for word in words {
            if let eq = word.firstIndex(of: "="), eq != word.startIndex {
                pairs.append((String(word[..<eq]), String(word[word.index(after: eq)...])))
            } else if !sawVerb, let verb = Self.verbs[word] {
                method = verb
                sawVerb = true
            } else if sawVerb && pairs.isEmpty && method == "POST" {
                path.append(word)  // `add NAME`: the name is the new entry's key.
            } else if sawVerb {
                throw CommandFailure(message: "unexpected '\(word)' after the verb (expected key=value)", code: 64)
            } else {
                path.append(word)
            }
        }
        if path.isEmpty { throw CommandFailure(message: "nothing to do: give a path, e.g. 'pcnctl bus' (see --help)", code: 64) }
        if method == "PATCH" && pairs.isEmpty { throw CommandFailure(message: "'set' needs at least one key=value", code: 64) }
        self.method = method
        self.path = path
        self.body = pairs.isEmpty ? nil : Dictionary(pairs.map { ($0.0, Self.typed($0.1)) }, uniquingKeysWith: { $1 })
    }

    /// polycubectl's typing: integers, floats and booleans become JSON numbers and booleans.
    static func typed(_ text: String) -> Any {
        if let int = Int(text) { return int }
        if let double = Double(text), text.contains(".") && text.split(separator: ".").count == 2 { return double }
        if text == "true" { return true }
        if text == "false" { return false }
        return text
    }
}

/// `pcnctl logs [CUBE] [--follow|-f] [--level L] [--tail N]`.
struct LogsCommand {
    var cube: String?
    var follow = false
    var level: String?
    var tail = 50

    init(words: [String]) throws {
        var rest = words[...]
        while let word = rest.popFirst() {
            switch word {
            case "--follow", "-f": follow = true
            case "--level":
                guard let value = rest.popFirst() else { throw CommandFailure(message: "--level needs a value (TRACE, DEBUG, INFO, WARN, ERR, CRITICAL)", code: 64) }
                level = value
            case "--tail", "-n":
                guard let value = rest.popFirst(), let count = Int(value), count >= 0 else { throw CommandFailure(message: "--tail needs a number of lines", code: 64) }
                tail = count
            default:
                guard !word.hasPrefix("-"), cube == nil else { throw CommandFailure(message: "logs: unexpected '\(word)' (usage: pcnctl logs [CUBE] [--follow] [--level L] [--tail N])", code: 64) }
                cube = word
            }
        }
    }

    func run(_ client: APIClient) async throws {
        var query = [("tail", "\(tail)")]
        if let cube { query.append(("cube", cube)) }
        if let level { query.append(("level", level)) }
        var answer = try await client.logs(query)
        while true {
            for line in answer.lines { print(line) }
            fflush(nil)
            guard follow else { return }
            answer = try await client.logs(query.filter { $0.0 != "tail" } + [("from", "\(answer.next)"), ("wait", "10")])
        }
    }
}

struct APIClient {
    let base: String

    struct Logs: Decodable {
        var lines: [String]
        var next: Int
    }

    func logs(_ query: [(String, String)]) async throws -> Logs {
        var components = URLComponents(string: base + "/polycube/v1/logs")
        components?.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        guard let url = components?.url else { throw CommandFailure(message: "'\(base)' is not a valid URL", code: 64) }
        var http = URLRequest(url: url)
        http.timeoutInterval = 40
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: http)
        } catch {
            throw CommandFailure(message: "cannot reach pcn-api at \(base): \(error.localizedDescription)", code: 69)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200, let logs = try? JSONDecoder().decode(Logs.self, from: data) else {
            throw CommandFailure(message: Render.error(status: status, body: data), code: 1)
        }
        return logs
    }

    func send(_ request: CommandLineRequest) async throws -> (Int, Data) {
        let escaped = request.path.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? $0 }
        guard let url = URL(string: base + "/polycube/v1/" + escaped.joined(separator: "/")) else {
            throw CommandFailure(message: "'\(base)' is not a valid URL", code: 64)
        }
        var http = URLRequest(url: url)
        http.httpMethod = request.method
        http.timeoutInterval = 30
        if let body = request.body {
            http.httpBody = try JSONSerialization.data(withJSONObject: body)
            http.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        do {
            let (data, response) = try await URLSession.shared.data(for: http)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch {
            throw CommandFailure(message: "cannot reach pcn-api at \(base): \(error.localizedDescription)", code: 69)
        }
    }
}

enum Render {
    static func pretty(_ data: Data) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data),
              let text = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else {
            return String(decoding: data, as: UTF8.self)
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// RFC 8040 errors as one line each, for people.
    static func error(status: Int, body: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
           let errors = (object["ietf-restconf:errors"] as? [String: Any])?["error"] as? [[String: Any]] {
            return errors.map { e in
                let path = (e["error-path"] as? String).map { "\($0): " } ?? ""
                return "\(path)\(e["error-message"] as? String ?? "error") (\(e["error-tag"] as? String ?? "HTTP \(status)"))"
            }.joined(separator: "\n")
        }
        let text = String(decoding: body, as: UTF8.self)
        return "HTTP \(status)" + (text.isEmpty ? "" : ": \(text)")
    }
}

import ArgumentParser
import Yams
import Foundation
import JSONText

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
              pcnctl router add r1 type=TC          create cube r1 of service router
              pcnctl r1 ports add p1 peer=veth1     add a port (the cube's service is found for you)
              pcnctl r1 ports p1 set peer=veth2     change it
              pcnctl r1 show                        show the cube (-json, -yaml, -brief)
              pcnctl r1 del                         delete it
              pcnctl connect r1:p1 r2:p1            link two ports (or a port and a netdev)
              pcnctl disconnect r1:p1
              pcnctl attach fw1 r1:p1 position=first     (or before=X, after=X; auto by default)
              pcnctl detach fw1
              pcnctl topology | cubes | netdevs | services | bus | version
              pcnctl logs [CUBE] [--follow] [--level L] [--tail N]
              pcnctl router ports help              what a node has, from the service's model
              pcnctl completion bash                a bash completion script
            Values are typed from the model (pcn-api converts them). With add/set and no key=value,
            a YAML or JSON body is read from standard input.
            """)

    @Option(help: "pcn-api URL (env PCN_API_URL, settings file key url; default http://127.0.0.1:9000).")
    var url: String?

    @Option(help: "PEM CA bundle pcn-api's https certificate must chain to (env PCN_API_CACERT, key cacert; default: the system's CAs).")
    var cacert: String?

    @Option(name: .customLong("token-file"), help: "File holding pcn-api's bearer token (env PCN_API_TOKEN_FILE, key token-file).")
    var tokenFile: String?

    @Argument(parsing: .captureForPassthrough, help: "Path words, verb and key=value pairs.")
    var words: [String] = []

    func run() async throws {
        let settings = try ClientSettings(url: url, cacert: cacert, tokenFile: tokenFile)
        let client = APIClient(base: settings.url, caFile: settings.caFile, token: try settings.token())
        var words = self.words
        var output = OutputFormat.pretty
        words.removeAll { word in
            switch word {
            case "-json", "--json": output = .json; return true
            case "-yaml", "--yaml": output = .yaml; return true
            case "-brief", "--brief": output = .brief; return true
            default: return false
            }
        }
        switch words.first {
        case "logs":
            try await LogsCommand(words: Array(words.dropFirst())).run(client)
            return
        case "completion":
            print(Completion.bashScript)
            return
        case "__complete":
            for candidate in await Completion.candidates(Array(words.dropFirst()), client: client) { print(candidate) }
            return
        default:
            break
        }
        if words.last == "help" || words.last == "-h" || words.last == "--help" {
            print(try await Help.text(for: Array(words.dropLast()), client: client))
            return
        }
        var request = try CommandLineRequest(words: words, stdin: Self.standardInputBody)
        request.path = await client.withService(request.path)
        if !request.explicitVerb, await client.isAction(request.path) {
            // Polycube's grammar: a YANG action is called by naming it (`b1 fdb flush`).
            request.method = "POST"
            if request.body == nil { request.body = [String: Any]() }
        }
        let (status, body) = try await client.send(request)
        if (200..<300).contains(status) {
            if !body.isEmpty { print(Render.output(body, format: output)) }
        } else {
            throw CommandFailure(message: Render.error(status: status, body: body), code: 1)
        }
    }

    /// A YAML or JSON document on standard input, when it is not a terminal.
    static func standardInputBody() throws -> Any? {
        guard isatty(STDIN_FILENO) == 0 else { return nil }
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard let text = String(data: data, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        do {
            return try Yams.load(yaml: text)
        } catch {
            throw CommandFailure(message: "the body on standard input is neither YAML nor JSON: \(error)", code: 64)
        }
    }
}

enum OutputFormat { case pretty, json, yaml, brief }

struct CommandFailure: Error {
    let message: String
    let code: Int32
}

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
                guard positional.count == 1 else { throw CommandFailure(message: "usage: pcnctl detach CUBE", code: 64) }
                body["cube"] = positional[0]
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
    /// PEM bundle pcn-api's certificate must chain to (https); nil: the system's CAs.
    var caFile: String?
    /// Sent as `Authorization: Bearer` on every request.
    var token: String?

    static let genericPaths: Set = ["services", "cubes", "netdevs", "topology", "connect", "disconnect", "attach", "detach",
                                    "bus", "version", "logs", "schema", "metrics"]

    /// `r1 ports p1` is `router r1 ports p1`: a path that starts with a cube's name gets its service
    /// (pcn-api would redirect, but a redirect drops the body of a POST or PATCH).
    func withService(_ path: [String]) async -> [String] {
        guard let first = path.first, !Self.genericPaths.contains(first) else { return path }
        let services = ((try? await getJSON("services")) as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        guard !services.contains(first) else { return path }
        let cubes = (try? await getJSON("cubes")) as? [[String: Any]] ?? []
        guard let service = cubes.first(where: { $0["name"] as? String == first })?["service"] as? String else { return path }
        return [service] + path
    }

    /// True if `service cube member...` names a YANG action of the service's model.
    func isAction(_ path: [String]) async -> Bool {
        guard path.count >= 3, !Self.genericPaths.contains(path[0]) else { return false }
        let node = (try? await getJSON("schema/" + ([path[0]] + path.dropFirst(2)).joined(separator: "/"))) as? [String: Any]
        return node?["kind"] as? String == "action"
    }

    /// GET /polycube/v1/<path> as JSON, nil on any failure.
    func getJSON(_ path: String) async throws -> Any? {
        let (status, data) = try transfer("GET", base + "/polycube/v1/" + path, timeout: 30)
        guard status == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    struct Logs: Decodable {
        var lines: [String]
        var next: Int
    }

    func logs(_ query: [(String, String)]) async throws -> Logs {
        var components = URLComponents(string: base + "/polycube/v1/logs")
        components?.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        guard let url = components?.url else { throw CommandFailure(message: "'\(base)' is not a valid URL", code: 64) }
        let (status, data) = try transfer("GET", url.absoluteString, timeout: 40)
        guard status == 200, let logs = try? JSONDecoder().decode(Logs.self, from: data) else {
            throw CommandFailure(message: Render.error(status: status, body: data), code: 1)
        }
        return logs
    }

    func send(_ request: CommandLineRequest) async throws -> (Int, Data) {
        let escaped = request.path.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? $0 }
        let body = try request.body.map { try JSONText.data($0) }
        return try transfer(request.method, base + "/polycube/v1/" + escaped.joined(separator: "/"), body: body, timeout: 30)
    }

    /// One exchange with pcn-api: the status and body of its answer, whatever the status.
    private func transfer(_ method: String, _ url: String, body: Data? = nil, timeout: Int) throws -> (Int, Data) {
        var headers = ["Accept: application/json"]
        if body != nil { headers.append("Content-Type: application/json") }
        if let token { headers.append("Authorization: Bearer " + token) }
        do {
            let response = try HTTPTransport.perform(method: method, url: url, body: body, headers: headers,
                                                     caFile: caFile, timeoutSeconds: timeout)
            return (response.status, response.body)
        } catch let failure as HTTPTransport.Failure {
            throw CommandFailure(message: "cannot reach pcn-api at \(base): \(failure.reason)"
                + (failure.reason.contains("certificate") ? " (give the CA that signed pcn-api's certificate: --cacert or PCN_API_CACERT)" : "")
                + (failure.reason.contains("Empty reply") && base.hasPrefix("http:") ? " (does it serve https? then use an https:// URL)" : ""),
                code: 69)
        }
    }
}

enum Render {
    static func output(_ data: Data, format: OutputFormat) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            return String(decoding: data, as: UTF8.self)
        }
        if let list = object as? [Any], list.isEmpty { return "[]" }
        switch format {
        case .json, .pretty:
            guard let text = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]) else {
                return String(decoding: data, as: UTF8.self)
            }
            return String(decoding: text, as: UTF8.self)
        case .yaml:
            return ((try? Yams.dump(object: plain(object), sortKeys: true)) ?? String(decoding: data, as: UTF8.self)).trimmingCharacters(in: .newlines)
        case .brief:
            return brief(object)
        }
    }

    /// Leaves only, one `name: value` per line; lists and containers as their size.
    static func brief(_ object: Any) -> String {
        if let list = object as? [Any] {
            return list.map { entry in ((entry as? [String: Any])?["name"]).map { "\($0)" } ?? "\(entry)" }.joined(separator: "\n")
        }
        guard let dictionary = object as? [String: Any] else { return "\(object)" }
        return dictionary.keys.sorted().map { key in
            switch dictionary[key] {
            case let list as [Any]: return "\(key): \(list.count) entries"
            case let inner as [String: Any]: return "\(key): \(inner.count) members"
            case let value?: return "\(key): \(value)"
            default: return key
            }
        }.joined(separator: "\n")
    }

    /// Foundation's JSON values as plain Swift values Yams can write.
    static func plain(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]: return dictionary.mapValues(plain)
        case let list as [Any]: return list.map(plain)
        case let number as NSNumber:
            if JSONText.isBoolean(number) { return number.boolValue }
            return number.doubleValue == Double(number.int64Value) ? number.int64Value as Any : number.doubleValue as Any
        default: return value
        }
    }

    /// RFC 8040 errors as one line each, for people: the error path as the words one would type
    /// (`/router:router[name='r1']/ports[name='p1']/ip` is `r1 ports p1 ip`).
    static func error(status: Int, body: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
           let errors = (object["ietf-restconf:errors"] as? [String: Any])?["error"] as? [[String: Any]] {
            return errors.map { e in
                let path = (e["error-path"] as? String).map { words(ofPath: $0) }.map { $0.isEmpty ? "" : "\($0): " } ?? ""
                return "\(path)\(e["error-message"] as? String ?? "error")"
            }.joined(separator: "\n")
        }
        let text = String(decoding: body, as: UTF8.self)
        return "HTTP \(status)" + (text.isEmpty ? "" : ": \(text)")
    }

    static func words(ofPath path: String) -> String {
        if path.hasPrefix("/polycube/v1/") { return path.dropFirst("/polycube/v1/".count).split(separator: "/").joined(separator: " ") }
        // Split at the slashes outside quotes: key values may hold one (10.0.0.0/24).
        var segments: [String] = [], current = "", quoted = false
        for character in path {
            if character == "'" { quoted.toggle() }
            if character == "/" && !quoted {
                if !current.isEmpty { segments.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { segments.append(current) }
        var words: [String] = []
        for (index, segment) in segments.enumerated() {
            let name = segment.prefix { $0 != "[" }
            // Each predicate is [key='value']; values are taken whole, in order.
            var keys: [String] = []
            var rest = segment.dropFirst(name.count)
            while let open = rest.range(of: "='"), let close = rest[open.upperBound...].range(of: "']") {
                keys.append(String(rest[open.upperBound..<close.lowerBound]))
                rest = rest[close.upperBound...]
            }
            // The first segment is the service's list: the cube's name says enough.
            if index > 0 { words.append(String(name.split(separator: ":").last ?? name)) }
            words += keys
        }
        return words.joined(separator: " ")
    }
}

/// `... help`: what a node of a service's model has, from pcn-api's schema endpoint.
enum Help {
    static func text(for words: [String], client: APIClient) async throws -> String {
        guard let first = words.first else { return Pcnctl.helpMessage() }
        var service = first
        var rest = Array(words.dropFirst())
        let cubeService = ((try? await client.getJSON("cubes")) as? [[String: Any]])?.first { $0["name"] as? String == first }?["service"] as? String
        var node: [String: Any]
        if let cubeService {
            // A cube's name stands for its service.
            service = cubeService
            node = try await client.getJSON("schema/" + service) as? [String: Any] ?? [:]
        } else {
            node = try await client.getJSON("schema/" + service) as? [String: Any] ?? [:]
            // `router r1 ports help` names a cube after the service, `router ports help` does not.
            let members = (node["children"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            if let next = rest.first, !members.contains(next) { rest.removeFirst() }
        }
        var path = [service]
        // List keys are skipped.
        var index = 0
        while index < rest.count {
            let children = node["children"] as? [[String: Any]] ?? []
            guard let child = children.first(where: { $0["name"] as? String == rest[index] }) else { index += 1; continue }
            path.append(rest[index])
            node = try await client.getJSON("schema/" + path.joined(separator: "/")) as? [String: Any] ?? child
            index += (child["kind"] as? String == "list") ? 2 : 1
        }
        var lines = ["\(node["name"] ?? service) (\(node["kind"] ?? "")): \(node["description"] ?? "")"]
        for child in node["children"] as? [[String: Any]] ?? [] {
            var detail = child["kind"] as? String ?? ""
            if let type = child["type"] as? String { detail = type }
            if let values = child["enum"] as? [String] { detail += " {" + values.joined(separator: "|") + "}" }
            if let keys = child["keys"] as? [String] { detail += " keyed by " + keys.joined(separator: ",") }
            if child["config"] as? Bool == false { detail += ", read-only" }
            if child["init-only"] as? Bool == true { detail += ", set at creation" }
            if let value = child["default"] as? String { detail += ", default \(value)" }
            let name = (child["name"] as? String ?? "").padding(toLength: 16, withPad: " ", startingAt: 0)
            lines.append("  \(name) \(detail)  \(child["description"] as? String ?? "")")
        }
        return lines.joined(separator: "\n")
    }
}

/// Bash completion: the script asks `pcnctl __complete <words so far>` for candidates.
enum Completion {
    static let bashScript = """
        # pcnctl completion: source it, or put it in /etc/bash_completion.d/pcnctl
        _pcnctl() {
            local words=() options=() i
            # --url, --cacert and --token-file (and their values) say where pcn-api is, not what to complete.
            for ((i = 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                    --url|--cacert|--token-file) options+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}"); i=$((i + 1)) ;;
                    *) words+=("${COMP_WORDS[i]}") ;;
                esac
            done
            COMPREPLY=($(compgen -W "$(pcnctl "${options[@]}" __complete "${words[@]}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -F _pcnctl pcnctl
        """

    static func candidates(_ words: [String], client: APIClient) async -> [String] {
        let generic = ["connect", "disconnect", "attach", "detach", "topology", "cubes", "netdevs", "services", "bus", "version", "logs", "help"]
        let services = ((try? await client.getJSON("services")) as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        let cubes = ((try? await client.getJSON("cubes")) as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        guard let first = words.first else { return generic + services + cubes }
        if ["connect", "disconnect", "attach", "detach"].contains(first) { return cubes }
        let path = await client.withService(words.filter { !["add", "set", "show", "del"].contains($0) && !$0.contains("=") })
        guard !path.isEmpty else { return generic + services + cubes }
        // The schema path: the service, then the member names below the cube.
        let schemaPath = [path[0]] + path.dropFirst(2)
        let node = (try? await client.getJSON("schema/" + schemaPath.joined(separator: "/"))) as? [String: Any]
        let children = (node?["children"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        return children + ["add", "set", "show", "del", "help"]
    }
}

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
              pcnctl r1 show                        show the cube (polycubectl's layout; -json, -yaml, -brief, -hide=ports,route.pathcost)
              pcnctl topology show veth1            the chains a netdev's packets go through
              pcnctl ?   pcnctl r1 ports ?          what can follow (exit 0 once pcn-api answers)
              pcnctl r1 del                         delete it
              pcnctl connect r1:p1 r2:p1            link two ports (or a port and a netdev)
              pcnctl disconnect r1:p1
              pcnctl attach fw1 r1:p1 position=first     (or before=X, after=X; auto by default)
              pcnctl detach fw1 [r1:p1]
              pcnctl topology | cubes | netdevs | services | bus | version
              pcnctl logs [CUBE] [--follow] [--level L] [--tail N]
              pcnctl pc1 capture [count=N] [seconds=T] | tcpdump -r -    a stream (pcap) on stdout
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
        var output = OutputFormat.text
        var hidden: Set<String> = []
        words.removeAll { word in
            if word.hasPrefix("-hide=") {
                hidden.formUnion(word.dropFirst("-hide=".count).split(separator: ",").map(String.init))
                return true
            }
            switch word {
            case "-normal", "-verbose": return true  // polycubectl's; the text layout is both
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
        if words.last == "?" {
            // polycubectl's `?`: what can follow. Scripts poll `pcnctl ?` until pcn-api answers, so
            // an unreachable pcn-api is an error (69), not an empty list.
            _ = try await client.getJSON("version")
            for candidate in await Completion.candidates(Array(words.dropLast()), client: client) { print(candidate) }
            return
        }
        if words.last == "help" || words.last == "-h" || words.last == "--help" {
            print(try await Help.text(for: Array(words.dropLast()), client: client))
            return
        }
        var request = try CommandLineRequest(words: words, stdin: Self.standardInputBody)
        request.path = await client.withService(request.path)
        if !request.explicitVerb, let contentType = await client.streamType(request.path) {
            // `pcnctl pc1 capture [count=N] [seconds=T]`: the node's stream (pcap) on standard output.
            let query = ((request.body as? [String: Any]) ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
            let (status, body) = try client.stream(request.path, query: query, contentType: contentType)
            guard status == 200 else { throw CommandFailure(message: Render.error(status: status, body: body), code: 1) }
            return
        }
        if !request.explicitVerb, await client.isAction(request.path) {
            // Polycube's grammar: a YANG action is called by naming it (`b1 fdb flush`).
            request.method = "POST"
            if request.body == nil { request.body = [String: Any]() }
        }
        let (status, body) = try await client.send(request)
        guard (200..<300).contains(status) else {
            // An empty list shows as nothing, as in polycubectl (pcn-api answers 404: no such node).
            if status == 404, request.method == "GET", await client.isEmptyList(request.path) { return }
            throw CommandFailure(message: Render.error(status: status, body: body), code: 1)
        }
        guard !body.isEmpty else { return }
        if output == .text, let value = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) {
            if request.path.count == 2, request.path[0] == "topology", let chains = value as? [String: Any] {
                // Polycube's `topology show NETDEV`.
                for direction in ["ingress", "egress"] {
                    print("\(direction) service chain: " + (chains[direction] as? [String] ?? []).joined(separator: " ---> "))
                }
                return
            }
            let order = await client.memberOrder(request.path, value: value)
            let text = TextLayout(order: { order[$0] ?? ["name"] }, hidden: hidden).render(value)
            if !text.isEmpty { print(text) }
            return
        }
        print(Render.output(body, format: output))
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

/// `text`: polycubectl's layout (TextLayout); `json`: the answer as indented JSON.
enum OutputFormat { case text, json, yaml, brief }


import Foundation

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

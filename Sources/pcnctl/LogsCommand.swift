import Foundation

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

import Foundation
import Hummingbird
#if canImport(Glibc)
import Glibc
#endif

/// `GET /polycube/v1/logs`: lines of pcn-logd's file, filtered by cube and minimum level.
/// Query: `cube`, `level` (TRACE…CRITICAL), `tail` (last N lines, default 200; from the start of the
/// file with `from`), `from` (a byte offset returned as `next` by an earlier call) and `wait`
/// (seconds to wait for new lines after `from`, at most 30): a follower calls again with `next`.
struct LogsRoute: Sendable {
    let logFile: String

    static let levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERR", "CRITICAL"]

    struct Answer: Codable {
        var lines: [String]
        /// Where the next call continues.
        var next: Int
    }

    struct Filter {
        var cube: String?
        var minimumLevel: Int

        /// `[YYYY-MM-DD HH:MM:SS.mmm] [service] [cube] [LEVEL] message` (the time is optional).
        func accepts(_ line: Substring) -> Bool {
            var rest = line
            if line.dropFirst().first?.isNumber == true, let close = line.firstIndex(of: "]") { rest = line[line.index(after: close)...] }
            let fields = rest.split(separator: "]", maxSplits: 3).map { $0.drop { $0 == " " || $0 == "[" } }
            guard fields.count >= 3 else { return cube == nil && minimumLevel == 0 }
            if let cube, fields[1] != cube { return false }
            return (LogsRoute.levels.firstIndex(of: String(fields[2])) ?? 0) >= minimumLevel
        }
    }

    func handle(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = Filter(cube: query["cube"].map(String.init), minimumLevel: 0)
        if let level = query["level"] {
            guard let index = Self.levels.firstIndex(of: level.uppercased()) else {
                return RestError.response(status: .badRequest, tag: "invalid-value",
                                          message: "level '\(level)' is not one of \(Self.levels.joined(separator: ", "))", path: "level")
            }
            filter.minimumLevel = index
        }
        guard let tail = Int(query["tail"] ?? "200"), tail >= 0 else {
            return RestError.response(status: .badRequest, tag: "invalid-value", message: "tail must be a number of lines", path: "tail")
        }
        guard let wait = Double(query["wait"] ?? "0"), (0...30).contains(wait) else {
            return RestError.response(status: .badRequest, tag: "invalid-value", message: "wait must be 0...30 seconds", path: "wait")
        }
        let from = query["from"].flatMap { Int($0) }
        let deadline = ContinuousClock.now + .milliseconds(Int(wait * 1000))
        while true {
            let (text, size) = read(from: from ?? 0)
            var lines = text.split(separator: "\n").filter(filter.accepts).map(String.init)
            if from == nil { lines = Array(lines.suffix(tail)) }
            if !lines.isEmpty || from == nil || ContinuousClock.now >= deadline {
                let body = try JSONEncoder().encode(Answer(lines: lines, next: size))
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// The file's complete lines from `offset` (from 0 if the file is now shorter: it was rotated),
    /// and the offset after them.
    private func read(from offset: Int) -> (String, Int) {
        guard let handle = FileHandle(forReadingAtPath: logFile) else { return ("", 0) }
        defer { try? handle.close() }
        let size = Int((try? handle.seekToEnd()) ?? 0)
        let start = offset > size ? 0 : offset
        try? handle.seek(toOffset: UInt64(start))
        let data = (try? handle.readToEnd()) ?? Data()
        // Only whole lines: a line being written is read next time.
        guard let lastNewline = data.lastIndex(of: UInt8(ascii: "\n")) else { return ("", start) }
        let whole = data[data.startIndex...lastNewline]
        return (String(decoding: whole, as: UTF8.self), start + whole.count)
    }
}

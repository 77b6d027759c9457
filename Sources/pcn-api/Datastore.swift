import DaemonKit
import Foundation
import JSONText
#if canImport(Glibc)
import Glibc
#endif

/// The running configuration: RFC 7951 JSON, one member per service (`"router:router": [cubes]`),
/// with a version that is the ETag. Written atomically (temp file, fsync, rename) on every commit.
struct Datastore {
    let path: String
    private(set) var document: [String: Any] = [:]
    /// Transparent cubes' attachments, in the order of their chains: `{cube, to}` (replayed last).
    private(set) var attachments: [[String: String]] = []
    private(set) var version: UInt64 = 0
    /// Each cube's JSON as last written, by service member and cube name: a commit serialises only
    /// the cubes that changed (a large cube elsewhere costs a copy, not a re-encoding).
    private var fragments: [String: [String: Data]] = [:]
    private(set) var lastModified = Date()

    /// Reads the file if there is one. A file that does not parse stops pcn-api (and is kept).
    init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else { return }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let content = object["config"] as? [String: Any] else {
            throw DaemonError("the datastore \(path) is corrupt (not the JSON pcn-api writes); it was left as it is: move it away to start empty, or repair it")
        }
        document = content
        attachments = object["attachments"] as? [[String: String]] ?? []
        version = (object["version"] as? NSNumber)?.uint64Value ?? 0
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path), let date = attributes[.modificationDate] as? Date {
            lastModified = date
        }
    }

    var etag: String { "\"\(version)\"" }

    /// Commits a new document: written to disk before it becomes the running one.
    /// `changed` names the cubes (`member`, `cube`) that differ from the last commit; nil: all may.
    mutating func commit(_ next: [String: Any], changed: [(member: String, cube: String)]? = nil,
                         attachments nextAttachments: [[String: String]]? = nil) throws {
        var fresh = fragments
        if let changed {
            for (member, cube) in changed { fresh[member]?[cube] = nil }
        } else {
            fresh = [:]
        }
        var data = Data(#"{"attachments":"#.utf8)
        data += try JSONText.data(nextAttachments ?? attachments)
        data += Data(#","config":{"#.utf8)
        for (index, member) in next.keys.sorted().enumerated() {
            if index > 0 { data += Data(",".utf8) }
            data += try JSONText.data(member) + Data(":[".utf8)
            for (position, entry) in (next[member] as? [Any] ?? []).enumerated() {
                let name = ((entry as? [String: Any])?["name"] as? String) ?? ""
                let fragment = try fresh[member]?[name] ?? JSONText.data(entry)
                fresh[member, default: [:]][name] = fragment
                if position > 0 { data += Data(",".utf8) }
                data += fragment
            }
            data += Data("]".utf8)
        }
        data += Data(#"},"version":\#(version + 1)}"#.utf8)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw DaemonError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            throw DaemonError("cannot commit the datastore \(path): \(String(cString: strerror(errno)))")
        }
        document = next
        fragments = fresh.filter { next[$0.key] != nil }
        if let nextAttachments { attachments = nextAttachments }
        version += 1
        lastModified = Date()
    }
}

import DaemonKit
import Foundation
import JSONText
import PCNProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The running configuration: RFC 7951 JSON, one member per service (`"router:router": [cubes]`),
/// with a version that is the ETag. A write's commit appends its cubes' edits to a journal
/// (`<path>.journal`, one JSON line per commit, fsync'd), so its cost follows what it changed; the
/// whole file is rewritten atomically (temp file, fsync, rename) when the journal has grown as
/// large as it, on attachment changes, and when pcn-api starts.
struct Datastore {
    /// One cube's change as the journal keeps it: its new configuration as an edit of the one
    /// before (nil: the cube is gone).
    struct CubeChange {
        var member: String
        var cube: String
        var edit: ConfigEdit?
    }

    let path: String
    private var journalPath: String { path + ".journal" }
    private var journalBytes = 0
    private var fileBytes = 0
    private(set) var document: [String: Any] = [:]
    /// Transparent cubes' attachments, in the order of their chains: `{cube, to}` (replayed last).
    private(set) var attachments: [[String: String]] = []
    private(set) var version: UInt64 = 0
    /// Each cube's JSON as last written, by service member and cube name: a commit serialises only
    /// the cubes that changed (a large cube elsewhere costs a copy, not a re-encoding).
    private var fragments: [String: [String: Data]] = [:]
    private(set) var lastModified = Date()

    /// Reads the file and its journal if there are. A file that does not parse stops pcn-api (and is kept).
    init(path: String) throws {
        self.path = path
        if let data = FileManager.default.contents(atPath: path) {
            try read(data)
        }
        if try replayJournal() {
            // Fold the journal in (a commit cut short by a crash leaves a torn last line behind).
            try rewrite(document, changed: nil, attachments: nil, version: version)
        }
    }

    private mutating func read(_ data: Data) throws {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let content = object["config"] as? [String: Any] else {
            throw DaemonError("the datastore \(path) is corrupt (not the JSON pcn-api writes); it was left as it is: move it away to start empty, or repair it")
        }
        document = content
        attachments = object["attachments"] as? [[String: String]] ?? []
        version = (object["version"] as? NSNumber)?.uint64Value ?? 0
        fileBytes = data.count
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path), let date = attributes[.modificationDate] as? Date {
            lastModified = date
        }
    }

    /// Applies the journal's commits newer than the file's version; true if there were any.
    private mutating func replayJournal() throws -> Bool {
        guard let data = FileManager.default.contents(atPath: journalPath), !data.isEmpty else { return false }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var replayed = false
        for (number, line) in lines.enumerated() where !line.isEmpty {
            let record = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
            guard let record, let recordVersion = (record["version"] as? NSNumber)?.uint64Value, let changes = record["changes"] as? [Any] else {
                // Only the last line can be torn (its commit was never answered).
                if number >= lines.count - 2 { break }
                throw DaemonError("the datastore journal \(journalPath) is corrupt at line \(number + 1); it was left as it is: move it away to start from \(path) alone")
            }
            guard recordVersion > version else { continue }
            var next = document
            for case let change as [String: Any] in changes {
                guard let member = change["member"] as? String, let cube = change["cube"] as? String else { continue }
                let edit = try (change["edit"] as? [String: Any]).map { try ConfigEdit(object: $0) }
                var entries = next[member] as? [Any] ?? []
                let index = entries.firstIndex { ($0 as? [String: Any])?["name"] as? String == cube }
                let updated = edit?.applied(to: index.flatMap { entries[$0] as? [String: Any] })
                switch (index, updated) {
                case let (index?, updated?): entries[index] = updated
                case let (index?, nil): entries.remove(at: index)
                case let (nil, updated?): entries.append(updated)
                case (nil, nil): break
                }
                next[member] = entries.isEmpty ? nil : entries
            }
            document = next
            version = recordVersion
            replayed = true
        }
        return replayed
    }

    var etag: String { "\"\(version)\"" }

    /// Commits a write's new document: its cubes' edits are appended to the journal, on disk before
    /// the document becomes the running one.
    mutating func commit(_ next: [String: Any], changes: [CubeChange]) throws {
        if journalBytes > max(1 << 20, fileBytes) {
            return try commit(next, changed: changes.map { ($0.member, $0.cube) }, attachments: nil)
        }
        let record: [String: Any] = ["version": Int(version + 1), "changes": changes.map { change -> [String: Any] in
            ["member": change.member, "cube": change.cube, "edit": change.edit?.object ?? NSNull()]
        }]
        var line = try JSONText.data(record)
        line.append(UInt8(ascii: "\n"))
        let fd = open(journalPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StorageFailure("cannot write \(journalPath)") }
        let end = lseek(fd, 0, SEEK_END)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = written == line.count ? fdatasync(fd) : -1
        let failure = written == line.count && synced == 0 ? nil : StorageFailure("cannot append to the datastore journal \(journalPath)")
        // A partial line would be followed by the next commit's: cut it (the journal stays as it was).
        if failure != nil, end >= 0 { _ = ftruncate(fd, end) }
        close(fd)
        if let failure { throw failure }
        for change in changes { fragments[change.member]?[change.cube] = nil }
        journalBytes += line.count
        document = next
        version += 1
        lastModified = Date()
    }

    /// Commits a new document by rewriting the whole file (and emptying the journal).
    /// `changed` names the cubes (`member`, `cube`) that differ from the last commit; nil: all may.
    mutating func commit(_ next: [String: Any], changed: [(member: String, cube: String)]? = nil,
                         attachments nextAttachments: [[String: String]]? = nil) throws {
        try rewrite(next, changed: changed, attachments: nextAttachments, version: version + 1)
        lastModified = Date()
    }

    /// Writes the whole file at `newVersion` (the current one when the journal is folded in at start).
    private mutating func rewrite(_ next: [String: Any], changed: [(member: String, cube: String)]?,
                                  attachments nextAttachments: [[String: String]]?, version newVersion: UInt64) throws {
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
        data += Data(#"},"version":\#(newVersion)}"#.utf8)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StorageFailure("cannot write \(temporary)") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = written == data.count ? fsync(fd) : -1
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            let failure = StorageFailure("cannot commit the datastore \(path)")
            // The last good file stays; no half-written copy is left beside it.
            unlink(temporary)
            throw failure
        }
        // The file holds everything the journal had: empty it (a crash before this leaves records
        // the file's version already covers, skipped when read).
        guard truncate(journalPath, 0) == 0 || errno == ENOENT else {
            throw StorageFailure("cannot empty the datastore journal \(journalPath)")
        }
        journalBytes = 0
        fileBytes = data.count
        document = next
        fragments = fresh.filter { next[$0.key] != nil }
        if let nextAttachments { attachments = nextAttachments }
        version = newVersion
    }
}

/// A write to the state directory that failed, with the system's reason (`errno` when it was made).
struct StorageFailure: Error, CustomStringConvertible {
    let message: String
    let code: Int32

    init(_ message: String, code: Int32 = errno) {
        self.message = message
        self.code = code == 0 ? EIO : code
    }

    /// The disk (or the user's quota) is full: the client may retry once space is back.
    var isOutOfSpace: Bool { code == ENOSPC || code == EDQUOT }
    var description: String { "\(message): \(String(cString: strerror(code)))" }

    /// How a client is told: 507 for a full disk, 500 for anything else; the last good datastore stays.
    var restFailure: RestFailure {
        isOutOfSpace
            ? RestFailure(507, tag: "resource-denied", "the state directory is full (\(description)): nothing was changed; retry once there is space")
            : RestFailure(500, tag: "operation-failed", "\(description): nothing was changed")
    }
}

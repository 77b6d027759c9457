import Foundation

/// One pod interface pcn-cni made: what DEL undoes when no prevResult comes, what GC sweeps.
struct Attachment: Codable, Equatable {
    var network: String
    var containerID: String
    var ifname: String
    var netns: String
    /// The root-namespace end of the pod's veth.
    var hostInterface: String
    var lbrp: String
    var port: String
    var address: String?

    /// A stable name part for (network, container, interface): the host veth and the lbrp port
    /// are found from it by DEL and GC even when the record is gone.
    static func key(network: String, containerID: String, ifname: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in [network, containerID, ifname].joined(separator: "\u{0}").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(String(hash, radix: 16).leftPadded(to: 16).prefix(12))
    }

    static func hostInterface(key: String) -> String { "pcn" + key }   // 15 bytes: IFNAMSIZ - 1
    static func portName(key: String) -> String { "pod" + key }
}

extension String {
    func leftPadded(to length: Int) -> String { count >= length ? self : String(repeating: "0", count: length - count) + self }
}

/// The records of one network, one file each under `<dataDir>/<network>/`.
struct AttachmentStore {
    let directory: String

    init(dataDir: String, network: String) {
        directory = dataDir + "/" + network
    }

    private func path(_ key: String) -> String { directory + "/" + key + ".json" }

    func save(_ attachment: Attachment) throws {
        let key = Attachment.key(network: attachment.network, containerID: attachment.containerID, ifname: attachment.ifname)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let data = try JSONEncoder().encode(attachment)
            // Written whole or not at all: a reader never sees half a record.
            let temporary = path(key) + ".tmp-\(getpid())"
            try data.write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path(key)) == 0 else { throw CNIError(.ioFailure, "rename to \(path(key)): \(String(cString: strerror(errno)))") }
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(.ioFailure, "cannot write the attachment record in \(directory)", details: "\(error)")
        }
    }

    func load(containerID: String, ifname: String, network: String) -> Attachment? {
        let key = Attachment.key(network: network, containerID: containerID, ifname: ifname)
        guard let data = FileManager.default.contents(atPath: path(key)) else { return nil }
        return try? JSONDecoder().decode(Attachment.self, from: data)
    }

    func remove(containerID: String, ifname: String, network: String) {
        unlink(path(Attachment.key(network: network, containerID: containerID, ifname: ifname)))
    }

    func all() -> [Attachment] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            FileManager.default.contents(atPath: directory + "/" + name).flatMap { try? JSONDecoder().decode(Attachment.self, from: $0) }
        }
    }
}

import BPFKit
import CShims
import Foundation
import PCNDatapathABI
#if canImport(Glibc)
import Glibc
#endif

/// Packet-out: a veth pair owned by pcn-core. Frames written on one end (AF_PACKET) carry a
/// `pcn_packet_out_trailer`; at the other end an XDP program (generic mode) takes those for the XDP
/// patch panel and the TC ingress program the rest: each strips the trailer and sends the frame into
/// a program of its panel, up a netdev's stack or out of a netdev.
final class PacketInjector {
    let writeEnd: String
    let programEnd: String
    private let socket: Int32
    private let object: BPFObject
    private let xdpObject: BPFObject

    /// The pair's names: `pcni<tag>w` and `pcni<tag>p`, the tag unique per stack (from its bpffs root).
    static func names(bpffsRoot: String) -> (write: String, program: String) {
        var hasher = FNV1a()
        hasher.add(bpffsRoot)
        let tag = String(String(hasher.value, radix: 16).suffix(6))
        return ("pcni\(tag)w", "pcni\(tag)p")
    }

    init(names: (write: String, program: String), compiler: BPFCompiler, bpfDirectory: String, bpffsRoot: String) throws {
        (writeEnd, programEnd) = names
        if if_nametoindex(writeEnd) == 0 {
            try NetworkCommand.ip(["link", "add", writeEnd, "type", "veth", "peer", "name", programEnd])
        }
        for device in [writeEnd, programEnd] {
            // Keep the stack's own traffic (IPv6 neighbour discovery) off the injection path.
            try? "1".write(toFile: "/proc/sys/net/ipv6/conf/\(device)/disable_ipv6", atomically: false, encoding: .utf8)
            try NetworkCommand.ip(["link", "set", device, "up"])
        }
        let path = try compiler.compile(file: "\(bpfDirectory)/core/inject_tc.c", name: "inject_tc")
        object = try BPFObject(path: path, pinRoot: bpffsRoot)
        do {
            try object.load()
        } catch {
            throw DatapathError("the packet-out program was rejected: \(error.summary)")
        }
        try TrafficControl.attach(ifindex: Int32(if_nametoindex(programEnd)), direction: .ingress,
                                  programFD: try object.programFD("pcn_inject"))
        let xdpPath = try compiler.compile(file: "\(bpfDirectory)/core/inject_xdp.c", name: "inject_xdp")
        xdpObject = try BPFObject(path: xdpPath, pinRoot: bpffsRoot)
        do {
            try xdpObject.load()
        } catch {
            throw DatapathError("the XDP packet-out program was rejected: \(error.summary)")
        }
        try XDPAttachment.attach(ifindex: Int32(if_nametoindex(programEnd)), programFD: try xdpObject.programFD("pcn_inject_xdp"), mode: .generic)
        socket = pcn_packet_socket(Int32(if_nametoindex(writeEnd)))
        guard socket >= 0 else { throw DatapathError("cannot open a packet socket on \(writeEnd): \(String(cString: strerror(errno)))") }
    }

    func send(frame: [UInt8], trailer: pcn_packet_out_trailer) throws {
        var bytes = frame
        withUnsafeBytes(of: trailer) { bytes += $0 }
        let sent = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else {
            throw DatapathError("packet-out write failed: \(String(cString: strerror(errno)))")
        }
    }

    /// True while both ends of the pair are there (a script that cleans interfaces may delete it).
    var isPresent: Bool { if_nametoindex(writeEnd) > 0 && if_nametoindex(programEnd) > 0 }

    /// Removes the veth pair (on a clean stop).
    func remove() {
        close(socket)
        _ = try? NetworkCommand.ip(["link", "del", writeEnd])
    }

    /// Lets go of a pair that is gone: only its socket is left to close.
    func abandon() { close(socket) }
}

import PCNDatapathABI

/// A packet the datapath sent to the slow path: `struct pcn_packet_in` and the captured bytes.
public struct PacketIn {
    /// The port index it arrived on (transparent cubes: 0 ingress, 1 egress).
    public let port: Int
    public let direction: PacketDirection
    /// The service's reason code (second argument of pcn_pkt_controller).
    public let reason: UInt16
    /// The service's metadata (pcn_pkt_controller_with_metadata).
    public let metadata: (UInt32, UInt32, UInt32)
    /// The length of the whole frame; `frame` holds at most PCN_PACKET_IN_MAX bytes of it.
    public let length: Int
    public let frame: [UInt8]
    let node: UInt32

    static let headerSize = MemoryLayout<pcn_packet_in>.offset(of: \pcn_packet_in.data)!

    init?(record: [UInt8]) {
        guard record.count >= Self.headerSize else { return nil }
        let header = record.withUnsafeBytes { raw -> pcn_packet_in in
            var header = pcn_packet_in()
            withUnsafeMutableBytes(of: &header) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<Self.headerSize])) }
            return header
        }
        node = header.cube_id
        port = Int(header.port)
        direction = header.direction == 1 ? .egress : .ingress
        reason = header.reason
        metadata = header.md
        length = Int(header.packet_len)
        frame = Array(record[Self.headerSize..<min(record.count, Self.headerSize + Int(header.captured_len))])
    }
}

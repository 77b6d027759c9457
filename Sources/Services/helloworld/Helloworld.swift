import PCNDatapathABI
import ServiceABI
import ServiceKit

/// helloworld: two ports; every packet is dropped, sent to the slow path (logged), or forwarded.
public final class Helloworld: CubeService {
    public static let name = "helloworld"
    public init() {}

    public static var bindings: [ConfigBinding<Helloworld>] {
        [.on("action", "ports", apply: Helloworld.program)]
    }

    private static let actions: [String: helloworld_action] = [
        "DROP": HELLOWORLD_DROP, "SLOWPATH": HELLOWORLD_SLOWPATH, "FORWARD": HELLOWORLD_FORWARD,
    ]

    func program(_ change: Change) throws {
        var entry = helloworld_config()
        entry.action = (Self.actions[change.config.string("action") ?? "DROP"] ?? HELLOWORLD_DROP).rawValue
        let indices = change.cube.ports.prefix(2).map { UInt16($0.index) }
        entry.ports = (indices.first ?? UInt16(PCN_NO_PORT), indices.dropFirst().first ?? UInt16(PCN_NO_PORT))
        try change.cube.table("helloworld_config").update(UInt32(0), entry)
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube) throws {
        let frame = ParsedFrame(packet.frame)
        cube.logger.info("packet received on port \(cube.port(index: packet.port)?.name ?? "\(packet.port)"): \(packet.length) bytes from \(frame.sourceMAC?.description ?? "?") to \(frame.destinationMAC?.description ?? "?")")
    }
}

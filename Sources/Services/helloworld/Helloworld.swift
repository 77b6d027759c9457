import PCNDatapathABI
import ServiceABI
import ServiceKit

/// helloworld: two ports; every packet is dropped, sent to the slow path (logged), or forwarded.
public final class Helloworld: CubeService {
    public static let name = "helloworld"
    public init() {}

    public struct Config: Decodable {
        enum Action: String, Decodable { case DROP, SLOWPATH, FORWARD }
        var action: Action
        var ports: KeyedList<StandardPort>
    }

    public static var bindings: [ConfigBinding<Helloworld>] {
        [.on(\.action, \.ports, apply: Helloworld.program)]
    }

    func program(_ change: Change<Config>) throws {
        var entry = helloworld_config()
        entry.action = switch change.config.action {
        case .DROP: HELLOWORLD_DROP.rawValue
        case .SLOWPATH: HELLOWORLD_SLOWPATH.rawValue
        case .FORWARD: HELLOWORLD_FORWARD.rawValue
        }
        let indices = change.cube.ports.prefix(2).map { UInt16($0.index) }
        entry.ports = (indices.first ?? UInt16(PCN_NO_PORT), indices.dropFirst().first ?? UInt16(PCN_NO_PORT))
        try change.cube.table("helloworld_config").update(UInt32(0), entry)
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        let frame = ParsedFrame(packet.frame)
        cube.logger.info("packet received on port \(cube.port(index: packet.port)?.name ?? "\(packet.port)"): \(packet.length) bytes from \(frame.sourceMAC?.description ?? "?") to \(frame.destinationMAC?.description ?? "?")")
    }
}

import ServiceABI
import ServiceKit

/// transparenthelloworld: one action per direction; the slow path logs the packet and sends it on.
public final class TransparentHelloworld: CubeService {
    public static let name = "transparenthelloworld"
    public init() {}

    public struct Config: Decodable {
        enum Action: String, Decodable {
            case PASS, DROP, SLOWPATH
            var entry: transparenthelloworld_entry {
                switch self {
                case .PASS: transparenthelloworld_entry(action: TRANSPARENTHELLOWORLD_PASS.rawValue)
                case .DROP: transparenthelloworld_entry(action: TRANSPARENTHELLOWORLD_DROP.rawValue)
                case .SLOWPATH: transparenthelloworld_entry(action: TRANSPARENTHELLOWORLD_SLOWPATH.rawValue)
                }
            }
        }
        var ingress: Action
        var egress: Action
        enum CodingKeys: String, CodingKey { case ingress = "ingress-action", egress = "egress-action" }
    }

    public static var bindings: [ConfigBinding<TransparentHelloworld>] {
        [.on(\.ingress, \.egress, apply: TransparentHelloworld.program)]
    }

    func program(_ change: Change<Config>) throws {
        let table = try change.cube.table("transparenthelloworld_actions")
        try table.update(UInt32(0), change.config.ingress.entry)
        try table.update(UInt32(1), change.config.egress.entry)
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        cube.logger.info("\(packet.direction == .ingress ? "ingress" : "egress") packet of \(packet.length) bytes: sent on")
        cube.send(packet.frame, direction: packet.direction)
    }
}

import ServiceABI
import ServiceKit

/// transparenthelloworld: one action per direction; the slow path logs the packet and sends it on.
public final class TransparentHelloworld: CubeService {
    public static let name = "transparenthelloworld"
    public init() {}

    public static var bindings: [ConfigBinding<TransparentHelloworld>] {
        [.on("ingress-action", "egress-action", apply: TransparentHelloworld.program)]
    }

    private static let actions: [String: transparenthelloworld_action] = [
        "PASS": TRANSPARENTHELLOWORLD_PASS, "DROP": TRANSPARENTHELLOWORLD_DROP, "SLOWPATH": TRANSPARENTHELLOWORLD_SLOWPATH,
    ]

    func program(_ change: Change) throws {
        let table = try change.cube.table("transparenthelloworld_actions")
        for (index, leaf) in ["ingress-action", "egress-action"].enumerated() {
            let action = Self.actions[change.config.string(leaf) ?? "PASS"] ?? TRANSPARENTHELLOWORLD_PASS
            try table.update(UInt32(index), transparenthelloworld_entry(action: action.rawValue))
        }
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube) throws {
        cube.logger.info("\(packet.direction == .ingress ? "ingress" : "egress") packet of \(packet.length) bytes: sent on")
        cube.send(packet.frame, direction: packet.direction)
    }
}

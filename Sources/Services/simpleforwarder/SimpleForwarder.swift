import PCNDatapathABI
import ServiceABI
import ServiceKit

/// simpleforwarder: an action per input port (the paper's pcn-simplefwd).
public final class SimpleForwarder: CubeService {
    public static let name = "simpleforwarder"
    public init() {}

    public struct Config: Decodable {
        struct Action: Decodable, Equatable, Keyed {
            enum Kind: String, Decodable { case DROP, SLOWPATH, FORWARD }
            var inport: String
            var action: Kind
            var outport: String?
            var key: String { inport }
        }
        var actions: KeyedList<Action>
        var ports: KeyedList<StandardPort>
    }

    public static var bindings: [ConfigBinding<SimpleForwarder>] {
        [.on(\.actions, \.ports, apply: SimpleForwarder.program)]
    }

    func program(_ change: Change<Config>) throws {
        let table = try change.cube.table("simpleforwarder_actions")
        var wanted: [UInt16: simpleforwarder_entry] = [:]
        for entry in change.config.actions {
            guard let port = change.cube.port(named: entry.inport) else { continue }
            let action = switch entry.action {
            case .DROP: SIMPLEFORWARDER_DROP
            case .SLOWPATH: SIMPLEFORWARDER_SLOWPATH
            case .FORWARD: SIMPLEFORWARDER_FORWARD
            }
            let out = entry.outport.flatMap { change.cube.port(named: $0) }
            wanted[UInt16(port.index)] = simpleforwarder_entry(action: UInt16(action.rawValue), out_port: UInt16(out?.index ?? Int(PCN_NO_PORT)))
        }
        for key in try table.keys(as: UInt16.self) where wanted[key] == nil { try table.delete(key) }
        for (key, entry) in wanted { try table.update(key, entry) }
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        cube.logger.info("packet of \(packet.length) bytes from port \(cube.port(index: packet.port)?.name ?? "\(packet.port)")")
    }
}

import PCNDatapathABI
import ServiceABI
import ServiceKit

/// simpleforwarder: an action per input port (the paper's pcn-simplefwd).
public final class SimpleForwarder: CubeService {
    public static let name = "simpleforwarder"
    public init() {}

    public static var bindings: [ConfigBinding<SimpleForwarder>] {
        [.on("actions", "ports", apply: SimpleForwarder.program)]
    }

    private static let actions: [String: simpleforwarder_action] = [
        "DROP": SIMPLEFORWARDER_DROP, "SLOWPATH": SIMPLEFORWARDER_SLOWPATH, "FORWARD": SIMPLEFORWARDER_FORWARD,
    ]

    public func validate(_ change: Change) throws {
        for entry in change.config.list("actions") where entry.string("action") == "FORWARD" && entry.string("outport") == nil {
            throw ServiceFailure.invalid(path: "actions[inport='\(entry.string("inport") ?? "")']/outport", "FORWARD needs an outport")
        }
    }

    func program(_ change: Change) throws {
        let table = try change.cube.table("simpleforwarder_actions")
        var wanted: [UInt16: simpleforwarder_entry] = [:]
        for entry in change.config.list("actions") {
            guard let port = change.cube.port(named: entry.string("inport") ?? "") else { continue }
            let out = entry.string("outport").flatMap { change.cube.port(named: $0) }
            wanted[UInt16(port.index)] = simpleforwarder_entry(
                action: UInt16((Self.actions[entry.string("action") ?? "DROP"] ?? SIMPLEFORWARDER_DROP).rawValue),
                out_port: UInt16(out?.index ?? Int(PCN_NO_PORT)))
        }
        for key in try table.keys(as: UInt16.self) where wanted[key] == nil { try table.delete(key) }
        for (key, entry) in wanted { try table.update(key, entry) }
    }

    public func packetIn(_ packet: PacketIn, on cube: Cube) throws {
        cube.logger.info("packet of \(packet.length) bytes from port \(cube.port(index: packet.port)?.name ?? "\(packet.port)")")
    }
}

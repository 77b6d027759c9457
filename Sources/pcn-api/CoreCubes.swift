import IPC

/// A cube as pcn-core describes it (`cube.list`): what pcn-api reads of the running datapath.
struct CoreCube: Decodable {
    struct Port: Decodable {
        var name: String
        var peer: String
        var tcubes: [String]
    }
    var name: String
    var service: String
    var loglevel: String
    var parent: String?
    var ports: [Port]

    /// Every cube pcn-core has now.
    static func all(_ bus: BusClient, timeout: Duration = .seconds(10)) async throws -> [CoreCube] {
        try await bus.request("core", method: "cube.list", timeout: timeout).decode([CoreCube].self)
    }
}

/// Every method on the bus, by the endpoint that answers it. The raw value is the wire name.
public enum Method: String, Sendable, CaseIterable {
    // Every component.
    case ping

    // pcn-core (`core`)
    case cubeCreate = "cube.create"
    case cubeDestroy = "cube.destroy"
    /// Cube, type, log level, ports and peers at once: one build, one swap.
    case cubeConfigure = "cube.configure"
    case cubeList = "cube.list"
    case cubeStats = "cube.stats"
    case cubeReload = "cube.reload"
    case cubeAttach = "cube.attach"
    case cubeDetach = "cube.detach"
    case cubeSetLogLevel = "cube.set-loglevel"
    case cubeTables = "cube.tables"
    /// A shadow cube's twins: MACs and addresses, from the cube's own cube-host.
    case shadowConfigure = "shadow.configure"
    case portAdd = "port.add"
    case portRemove = "port.remove"
    case portSetPeer = "port.set-peer"
    case chainList = "chain.list"
    case netdevChains = "netdev.chains"
    case packetOut = "packet-out"
    case packetInSubscribe = "packet-in.subscribe"
    case logFormats = "log.formats"
    case logRing = "log.ring"

    // pcn-api (`api`)
    case serviceRegister = "service.register"
    /// What a transparent cube is attached to, and that netdev's or cube port's IPv4 address.
    case cubeAttachment = "cube.attachment"

    // a cube-host (`cube-host/<service>`)
    /// Phase (b) of a write: would the service accept this configuration? Nothing changes.
    case cubeCheck = "cube.check"
    case cubeApply = "cube.apply"
    case cubeState = "cube.state"
    case cubeAction = "cube.action"
    /// The next chunk of a byte stream a cube serves (packetcapture's pcap), from a cursor.
    case cubeStream = "cube.stream"
    /// Sent by pcn-core to a cube's subscriber (an event): `struct pcn_packet_in` then the bytes.
    case packetIn = "packet-in"

    // pcn-logd (`logd`)
    /// An event: one log line of a component, forwarded to the log sinks.
    case logLine = "log.line"
}

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

/// Who may call a method. Bus names are proven (`BusNamePolicy`), so a rule on names is a rule on
/// processes; a refused call is answered `forbidden`.
public enum CallerRule: Sendable, Equatable {
    case anyone
    /// pcn-api: what changes the configuration goes through its datastore.
    case api
    case logd
    /// The cube-host of the cube's service.
    case owner
    case apiOrOwner
    /// A cube-host (of any service).
    case cubeHost
}

extension Method {
    public var callers: CallerRule {
        switch self {
        case .ping, .cubeList, .cubeStats, .chainList, .netdevChains, .logFormats, .logLine: .anyone
        case .cubeCreate, .cubeDestroy, .cubeConfigure, .cubeAttach, .cubeDetach, .cubeSetLogLevel,
             .portAdd, .portRemove, .portSetPeer: .api
        // Code that runs in the kernel: the datastore's (a replay, a write) or the service's own.
        case .cubeReload: .apiOrOwner
        // File descriptors of a cube's tables, its packets, its namespace: its service's alone.
        case .cubeTables, .shadowConfigure, .packetInSubscribe, .packetOut: .owner
        case .logRing: .logd
        case .serviceRegister, .cubeAttachment: .cubeHost
        case .cubeCheck, .cubeApply, .cubeState, .cubeAction, .cubeStream: .api
        case .packetIn: .anyone
        }
    }

    /// Nil when `caller` may call this method (on a cube of `service`, for the owner rules), else why not.
    public func refusal(caller: String, service: String? = nil) -> String? {
        let allowed: Bool
        switch callers {
        case .anyone: allowed = true
        case .api: allowed = caller == BusName.api
        case .logd: allowed = caller == BusName.logd
        case .owner: allowed = service.map { caller == BusName.cubeHost($0) } ?? false
        case .apiOrOwner: allowed = caller == BusName.api || service.map { caller == BusName.cubeHost($0) } ?? false
        case .cubeHost: allowed = caller.hasPrefix(BusName.cubeHostPrefix)
        }
        guard !allowed else { return nil }
        let who: String
        switch callers {
        case .anyone: who = "anyone"
        case .api: who = "pcn-api"
        case .logd: who = "pcn-logd"
        case .owner: who = service.map { BusName.cubeHost($0) } ?? "the cube's cube-host"
        case .apiOrOwner: who = "pcn-api or " + (service.map { BusName.cubeHost($0) } ?? "the cube's cube-host")
        case .cubeHost: who = "a cube-host"
        }
        return "\(rawValue) is for \(who) only, not \(caller)"
    }
}

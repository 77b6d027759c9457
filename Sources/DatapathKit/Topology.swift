import PCNDatapathABI
import PCNProtocol

/// The hook a cube's programs run at. TC and XDP programs live in separate patch panels and can
/// never be chained to each other.
public enum CubeType: String, Codable, Sendable, CaseIterable {
    case tc = "TC"
    case xdpSKB = "XDP_SKB"
    case xdpDRV = "XDP_DRV"

    /// Case-insensitive, as Polycube accepts it.
    public init?(parsing text: String) {
        guard let type = CubeType(rawValue: text.uppercased()) else { return nil }
        self = type
    }

    var hook: Hook { self == .tc ? .tc : .xdp }
}

/// Which patch panel (and program type) a program belongs to.
enum Hook: String, Codable, Sendable {
    case tc, xdp
}

/// Where a port leads.
public enum Peer: Equatable, Hashable, CustomStringConvertible, Sendable, Codable {
    case none
    case netdev(String)
    case cube(String, String)

    public init(parsing text: String) {
        if text.isEmpty { self = .none; return }
        if let colon = text.firstIndex(of: ":") {
            self = .cube(String(text[..<colon]), String(text[text.index(after: colon)...]))
        } else {
            self = .netdev(text)
        }
    }

    public var description: String {
        switch self {
        case .none: ""
        case .netdev(let name): name
        case .cube(let cube, let port): "\(cube):\(port)"
        }
    }

    public init(from decoder: Decoder) throws { self.init(parsing: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Where a transparent cube is attached: a netdev, or a standard cube's port (`cube:port`).
public typealias AttachPoint = Peer

/// Where in a chain of transparent cubes a new one goes. The chain is ordered as DESIGN.md §4 says:
/// on a netdev, cubes[0] is the first to see ingress traffic (next to the wire); on a cube port,
/// cubes[0] is innermost (next to the cube).
public enum Position: Equatable, Sendable {
    case first, last, auto
    case before(String), after(String)

    /// The services whose relative order `auto` knows, innermost first.
    static let autoOrder = ["nat", "ddosmitigator"]
}

/// What is sent where: the whole datapath as data. Every request edits a copy and the reconciler
/// makes the kernel match it, so a refused change leaves the running datapath as it was.
struct Topology: Codable {
    struct Port: Codable {
        var name: String
        var index: Int
        var peer: Peer = .none
        /// Transparent cubes on this port, innermost first.
        var tcubes: [String] = []
    }

    struct Cube: Codable {
        var name: String
        var service: String
        var type: CubeType
        var transparent: Bool
        /// The cube's identity and the patch-panel node of its first program.
        var node: UInt32
        var ports: [Port] = []
        /// µCube code given with `reload`, by index (0 replaces the service's MASTER code).
        var code: [Int: String] = [:]
        /// The egress program's µCubes of a standard cube (0 is its MASTER), if it has one.
        var egressCode: [Int: String] = [:]
        /// A transparent cube's attachment.
        var parent: AttachPoint?
        /// The datapath log level (INFO when not set).
        var logLevel: DatapathLogLevel?
        /// A standard cube with a shadow namespace (set at creation), and whether it spans its ports there.
        var shadow: Bool?
        var span: Bool?
        /// What the service last gave the twins (MAC, addresses), by port: put back on a twin made again.
        var shadowInterfaces: [String: ShadowConfigure.Interface]?

        func port(_ name: String) -> Port? { ports.first { $0.name == name } }
        func port(index: Int) -> Port? { ports.first { $0.index == index } }
    }

    var cubes: [String: Cube] = [:]
    /// Transparent cubes attached to netdevs, by netdev, in ingress order.
    var netdevChains: [String: [String]] = [:]
    /// Patch-panel nodes of programs other than a cube's first, by stage key.
    var nodes: [String: UInt32] = [:]

    // MARK: - Nodes

    func usedNodes() -> Set<UInt32> { Set(cubes.values.map(\.node)).union(nodes.values) }

    mutating func allocateNode() -> UInt32? {
        let used = usedNodes()
        return (1..<UInt32(PCN_MAX_NODES)).first { !used.contains($0) }
    }

    /// The node of one of a cube's programs (allocated by `allocateNodes`).
    func node(_ cube: String, _ role: Role) -> UInt32 {
        if role == .ingress || role == .transparentIngress { return cubes[cube]?.node ?? 0 }
        return nodes[Role.key(cube, role)] ?? 0
    }

    /// Gives every program that needs a patch-panel node one, and frees the nodes of programs that
    /// are gone. Returns false when the panel is full.
    mutating func allocateNodes() -> Bool {
        var wanted = Set<String>()
        for cube in cubes.values {
            for role in roles(of: cube) where role != .ingress && role != .transparentIngress {
                wanted.insert(Role.key(cube.name, role))
            }
        }
        nodes = nodes.filter { wanted.contains($0.key) }
        for key in wanted.sorted() where nodes[key] == nil {
            guard let node = allocateNode() else { return false }
            nodes[key] = node
        }
        return true
    }

    // MARK: - Programs

    /// The kinds of program a cube has; each is built from the cube's source with its own defines.
    enum Role: String, CaseIterable, Sendable {
        case ingress, egress
        /// An XDP cube's egress program built for TC, for what the host stack sends out.
        case egressTC = "egress-tc"
        case transparentIngress = "transparent-ingress"
        case transparentEgress = "transparent-egress"
        /// An XDP transparent cube on a netdev, built for TC, for what the host stack sends out.
        case transparentEgressTC = "transparent-egress-tc"

        static func key(_ cube: String, _ role: Role) -> String { "\(cube)/\(role.rawValue)" }

        var isEgress: Bool { self != .ingress && self != .transparentIngress }
        var isTCTwin: Bool { self == .egressTC || self == .transparentEgressTC }
    }

    /// Whether `role` of `cube` runs at a netdev's ingress hook (what came in), not at its egress
    /// (what the stack sends out): a transparent cube's egress role on a cube port runs from its parent.
    func runsAtIngress(_ cube: Cube, _ role: Role) -> Bool {
        switch role {
        case .ingress, .transparentIngress: return true
        case .transparentEgress: if case .some(.cube) = cube.parent { return true } else { return false }
        case .egress, .egressTC, .transparentEgressTC: return false
        }
    }

    func roles(of cube: Cube) -> [Role] {
        let xdp = cube.type.hook == .xdp
        if cube.transparent {
            var roles: [Role] = [.transparentIngress, .transparentEgress]
            if xdp, case .netdev = cube.parent { roles.append(.transparentEgressTC) }
            return roles
        }
        guard cube.egressCode[0] != nil else { return [.ingress] }
        return xdp ? [.ingress, .egress, .egressTC] : [.ingress, .egress]
    }

    func hook(of cube: Cube, _ role: Role) -> Hook { role.isTCTwin ? .tc : cube.type.hook }

    // MARK: - Hops

    /// Where a packet goes next.
    enum Hop: Equatable {
        case none
        case netdev(String)
        case node(UInt32, port: Int)
        case stack
    }

    /// The standard cube's port whose peer is `device`.
    func user(ofNetdev device: String) -> (cube: Cube, port: Port)? {
        for cube in cubes.values {
            if let port = cube.ports.first(where: { $0.peer == .netdev(device) }) { return (cube, port) }
        }
        return nil
    }

    /// Where a packet entering `cube` through `port` goes first: the port's transparent cubes,
    /// outermost first, then the cube.
    func entry(_ cube: Cube, _ port: Port) -> Hop {
        if let outermost = port.tcubes.last { return .node(node(outermost, .transparentIngress), port: 0) }
        return .node(cube.node, port: port.index)
    }

    /// Where a packet `cube` sends out of `port` goes: the port's transparent cubes, innermost
    /// first, then the peer.
    func exit(_ cube: Cube, _ port: Port) -> Hop {
        if let innermost = port.tcubes.first { return .node(node(innermost, .transparentEgress), port: 0) }
        return peerHop(cube, port)
    }

    /// The far side of a port.
    func peerHop(_ cube: Cube, _ port: Port) -> Hop {
        switch port.peer {
        case .none:
            return .none
        case .cube(let otherName, let otherPort):
            guard let other = cubes[otherName], let end = other.port(otherPort) else { return .none }
            return entry(other, end)
        case .netdev(let device):
            // TC: a redirect reaches the netdev's TC egress hook, where its egress chain runs. XDP
            // frames skip that hook, so the XDP build of the chain runs before the redirect.
            if cube.type.hook == .tc { return .netdev(device) }
            if cube.egressCode[0] != nil { return .node(node(cube.name, .egress), port: port.index) }
            return egressChainStart(device, hook: .xdp)
        }
    }

    /// The first of a netdev's transparent cubes for what leaves it (the last in ingress order).
    func egressChainStart(_ device: String, hook: Hook) -> Hop {
        guard let last = netdevChains[device]?.last, let tcube = cubes[last] else {
            return hook == .xdp ? .netdev(device) : .stack
        }
        let role: Role = hook == .tc && tcube.type.hook == .xdp ? .transparentEgressTC : .transparentEgress
        return .node(node(last, role), port: 0)
    }

    /// Where a transparent cube sends what it lets through in one direction.
    func next(ofTransparent cube: Cube, _ role: Role) -> Hop {
        switch cube.parent {
        case nil, .some(.none):
            return .none
        case .some(.cube(let parentName, let portName)):
            guard let parent = cubes[parentName], let port = parent.port(portName),
                  let i = port.tcubes.firstIndex(of: cube.name) else { return .none }
            if role == .transparentIngress {
                return i > 0 ? .node(node(port.tcubes[i - 1], .transparentIngress), port: 0) : .node(parent.node, port: port.index)
            }
            return i < port.tcubes.count - 1 ? .node(node(port.tcubes[i + 1], .transparentEgress), port: 0) : peerHop(parent, port)
        case .some(.netdev(let device)):
            let chain = netdevChains[device] ?? []
            guard let i = chain.firstIndex(of: cube.name) else { return .none }
            if role == .transparentIngress {
                if i < chain.count - 1 { return .node(node(chain[i + 1], .transparentIngress), port: 0) }
                if let (user, port) = self.user(ofNetdev: device) { return entry(user, port) }
                return .stack
            }
            let hook = hook(of: cube, role)
            if i > 0 { return .node(node(chain[i - 1], role), port: 0) }
            return hook == .xdp ? .netdev(device) : .stack
        }
    }

    /// A standard cube's egress program: where what it lets out of `port` goes next.
    func egressNext(_ cube: Cube, _ port: Port, hook: Hook) -> Hop {
        guard case .netdev(let device) = port.peer else { return .none }
        return egressChainStart(device, hook: hook)
    }

    /// The programs a netdev needs: its ingress entry (and the XDP mode), and its TC egress entry.
    struct NetdevEntries: Equatable {
        var ingress: Hop = .none
        var ingressType: CubeType = .tc
        var egress: Hop = .none
    }

    func entries(ofNetdev device: String) -> NetdevEntries {
        var entries = NetdevEntries()
        if let (cube, port) = shadowUser(ofTwin: device) {
            // What the namespace sends: into the cube, which sends it out of the port as it is.
            entries.ingress = .node(cube.node, port: Int(PCN_MAX_PORTS) + port.index)
            entries.ingressType = cube.type
            return entries
        }
        let chain = netdevChains[device] ?? []
        let user = self.user(ofNetdev: device)
        if let first = chain.first, let tcube = cubes[first] {
            entries.ingress = .node(node(first, .transparentIngress), port: 0)
            entries.ingressType = tcube.type
        } else if let (cube, port) = user {
            entries.ingress = entry(cube, port)
            entries.ingressType = cube.type
        }
        if let (cube, port) = user, cube.egressCode[0] != nil {
            entries.egress = .node(node(cube.name, cube.type.hook == .xdp ? .egressTC : .egress), port: port.index)
        } else {
            let start = egressChainStart(device, hook: .tc)
            if case .node = start { entries.egress = start }
        }
        return entries
    }

    /// Every netdev that has a peer or transparent cubes, and the twins of shadow cubes' ports.
    func netdevsInUse() -> Set<String> {
        var devices = Set(netdevChains.filter { !$0.value.isEmpty }.keys)
        for cube in cubes.values {
            for port in cube.ports { if case .netdev(let device) = port.peer { devices.insert(device) } }
        }
        return devices.union(shadowTwins().keys)
    }

    // MARK: - Shadow namespaces

    /// The namespace of a shadow cube.
    static func shadowNamespace(_ cube: String) -> String { "pcn-\(cube)" }

    /// The host end of the veth pair whose other end, in the cube's namespace, is the port's twin:
    /// `pcs` and a hash of cube and port (interface names have at most 15 characters).
    static func twinName(cube: String, port: String) -> String {
        var hasher = FNV1a()
        hasher.add("\(cube)/\(port)")
        let hex = String(hasher.value & 0xffff_ffff, radix: 16)
        return "pcs" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Every shadow cube's twins: host end → (cube, port).
    func shadowTwins() -> [String: (cube: String, port: String)] {
        var twins: [String: (cube: String, port: String)] = [:]
        for cube in cubes.values where cube.shadow == true {
            for port in cube.ports { twins[Self.twinName(cube: cube.name, port: port.name)] = (cube.name, port.name) }
        }
        return twins
    }

    func shadowUser(ofTwin device: String) -> (cube: Cube, port: Port)? {
        guard device.hasPrefix("pcs"), let (cubeName, portName) = shadowTwins()[device],
              let cube = cubes[cubeName], let port = cube.port(portName) else { return nil }
        return (cube, port)
    }

    // MARK: - Transparent chains

    /// The chain at an attach point.
    func chain(at point: AttachPoint) -> [String] {
        switch point {
        case .netdev(let device): netdevChains[device] ?? []
        case .cube(let cube, let port): cubes[cube]?.port(port)?.tcubes ?? []
        case .none: []
        }
    }

    mutating func setChain(_ chain: [String], at point: AttachPoint) {
        switch point {
        case .netdev(let device):
            netdevChains[device] = chain.isEmpty ? nil : chain
        case .cube(let cubeName, let portName):
            guard let index = cubes[cubeName]?.ports.firstIndex(where: { $0.name == portName }) else { return }
            cubes[cubeName]!.ports[index].tcubes = chain
        case .none:
            break
        }
    }

    /// Where `cube` goes in `chain` for `position`, or why it cannot.
    func insertionIndex(of cube: Cube, in chain: [String], position: Position) throws -> Int {
        switch position {
        case .first:
            return 0
        case .last:
            return chain.count
        case .before(let other), .after(let other):
            guard let index = chain.firstIndex(of: other) else {
                throw DatapathError("cannot place '\(cube.name)' next to '\(other)': '\(other)' is not in this chain (\(chain.isEmpty ? "empty" : chain.joined(separator: ", ")))")
            }
            if case .after = position { return index + 1 }
            return index
        case .auto:
            if chain.isEmpty { return 0 }
            func rank(_ service: String) -> Int? { Position.autoOrder.firstIndex(of: service) }
            let unknown = ([cube.service] + chain.compactMap { cubes[$0]?.service }).filter { rank($0) == nil }
            guard unknown.isEmpty, let mine = rank(cube.service) else {
                throw DatapathError("cannot choose an auto position for '\(cube.name)' among \(chain.joined(separator: ", ")): "
                                    + "the order of \(Set(unknown).sorted().joined(separator: ", ")) is not known; give first, last, before=X or after=X")
            }
            return chain.firstIndex { rank(cubes[$0]!.service)! > mine } ?? chain.count
        }
    }
}

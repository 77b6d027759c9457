import PCNDatapathABI
import PCNProtocol

/// The rules a change of the topology must follow, as pure functions of the topology (no kernel):
/// the datapath actor checks a request with them on a copy, then reconciles once.
extension Topology {
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 32 && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
    }

    func existing(_ name: String) throws -> Cube {
        guard let cube = cubes[name] else { throw DatapathError("cube '\(name)' does not exist") }
        return cube
    }

    func standard(_ name: String) throws -> Cube {
        let cube = try existing(name)
        guard !cube.transparent else { throw DatapathError("'\(name)' is a transparent cube: it has no ports") }
        return cube
    }

    /// Refuses a peer that port `cube:port` may not have. `netdevExists` asks the kernel.
    func checkPeer(_ peer: Peer, cube name: String, port portName: String, netdevExists: (String) -> Bool) throws {
        let cube = try standard(name)
        guard cube.port(portName) != nil else { throw DatapathError("cube '\(name)' has no port '\(portName)'") }
        switch peer {
        case .none:
            break
        case .netdev(let device):
            guard netdevExists(device) else { throw DatapathError("netdev '\(device)' does not exist") }
            if let (owner, twinOf) = shadowUser(ofTwin: device) {
                throw DatapathError("netdev '\(device)' is the shadow twin of \(owner.name):\(twinOf.name); it cannot be a peer")
            }
            if let user = user(ofNetdev: device), !(user.cube.name == name && user.port.name == portName) {
                throw DatapathError("netdev '\(device)' is already in use by \(user.cube.name):\(user.port.name)")
            }
            if let first = netdevChains[device]?.first, let tcube = cubes[first], tcube.type != cube.type {
                throw DatapathError("netdev '\(device)' has \(tcube.type.rawValue) transparent cubes; cube '\(name)' is \(cube.type.rawValue): the types must match")
            }
        case .cube(let otherName, let otherPort):
            guard let other = cubes[otherName] else { throw DatapathError("peer cube '\(otherName)' does not exist") }
            guard !other.transparent else { throw DatapathError("'\(otherName)' is a transparent cube: attach it instead of connecting to it") }
            guard let otherEnd = other.port(otherPort) else { throw DatapathError("peer cube '\(otherName)' has no port '\(otherPort)'") }
            guard otherEnd.peer == .none || otherEnd.peer == .cube(name, portName) else {
                throw DatapathError("port \(otherName):\(otherPort) is already connected to '\(otherEnd.peer)'")
            }
            guard !(otherName == name && otherPort == portName) else { throw DatapathError("a port cannot be its own peer") }
            guard other.type.hook == cube.type.hook else {
                throw DatapathError("it is not possible to connect TC and XDP ports: \(name) is \(cube.type.rawValue), \(otherName) is \(other.type.rawValue)")
            }
        }
    }

    /// Sets a port's peer, both ends of a cube link (the old link's other end is released).
    mutating func link(_ peer: Peer, cube name: String, port portName: String) {
        guard let current = cubes[name]?.port(portName)?.peer, current != peer else { return }
        if case .cube(let otherName, let otherPort) = current { setPeer(.none, cube: otherName, port: otherPort) }
        setPeer(peer, cube: name, port: portName)
        if case .cube(let otherName, let otherPort) = peer { setPeer(.cube(name, portName), cube: otherName, port: otherPort) }
    }

    /// Removes a port (releasing the other end of its link). Its transparent cubes are detached and
    /// stay, unattached, as Polycube does.
    mutating func removePort(cube name: String, port portName: String) throws {
        let cube = try standard(name)
        guard let port = cube.port(portName) else { throw DatapathError("cube '\(name)' has no port '\(portName)'") }
        for tcube in port.tcubes { cubes[tcube]?.parent = nil }
        link(.none, cube: name, port: portName)
        cubes[name]!.ports.removeAll { $0.name == portName }
    }

    /// Adds a port with the lowest free index.
    mutating func addPort(cube name: String, port portName: String) throws -> Int {
        let cube = try standard(name)
        guard cube.port(portName) == nil else { throw DatapathError("cube '\(name)' already has a port '\(portName)'") }
        guard Self.isValidName(portName) else { throw DatapathError("port name '\(portName)' is not valid (letters, digits, - and _, at most 32)") }
        if cube.shadow == true, portName.utf8.count > 15 || portName == "lo" {
            throw DatapathError("cube '\(name)' is a shadow cube: port '\(portName)' names its interface in \(Self.shadowNamespace(name)), "
                                + "which must be at most 15 characters and not 'lo'", path: "ports[name='\(portName)']/name")
        }
        let used = Set(cube.ports.map(\.index))
        guard let index = (0..<Int(PCN_MAX_PORTS)).first(where: { !used.contains($0) }) else {
            throw DatapathError("cube '\(name)' has the maximum of \(PCN_MAX_PORTS) ports")
        }
        cubes[name]!.ports.append(Port(name: portName, index: index))
        return index
    }

    /// Removes a cube with its links; the transparent cubes on its ports are detached and stay.
    mutating func destroy(cube name: String) throws {
        let cube = try existing(name)
        for port in cube.ports {
            for tcube in port.tcubes { cubes[tcube]?.parent = nil }
            link(.none, cube: name, port: port.name)
        }
        if let parent = cube.parent {
            setChain(chain(at: parent).filter { $0 != name }, at: parent)
        }
        cubes.removeValue(forKey: name)
    }

    /// Makes a cube what `request` describes: created if missing, then its log level, ports and
    /// peers. Throws at the first rule broken, leaving `self` partly edited: call it on a copy.
    /// Returns the peers left unlinked under `lenientPeers`, with the reason.
    mutating func configure(_ request: CubeConfigure, netdevExists: (String) -> Bool) throws -> [(port: String, reason: String)] {
        let name = request.name
        guard let type = CubeType(parsing: request.type) else {
            throw DatapathError("cube '\(name)': type '\(request.type)' is not one of TC, XDP_SKB, XDP_DRV")
        }
        guard let level = DatapathLogLevel(parsing: request.loglevel) else {
            throw DatapathError("cube '\(name)': log level '\(request.loglevel)' is not one of \(DatapathLogLevel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let cube = cubes[name] {
            guard cube.service == request.service else {
                throw DatapathError("cube '\(name)' already exists as a \(cube.service) cube")
            }
            guard cube.type == type, cube.transparent == request.transparent else {
                throw DatapathError("cube '\(name)' is \(cube.type.rawValue)\(cube.transparent ? " (transparent)" : ""): its type cannot change")
            }
            guard cube.shadow ?? false == request.shadow ?? false else {
                throw DatapathError("cube '\(name)': shadow is set when the cube is created; it cannot change", path: "shadow")
            }
        } else {
            guard Self.isValidName(name) else { throw DatapathError("cube name '\(name)' is not valid (letters, digits, - and _, at most 32)") }
            guard let node = allocateNode() else { throw DatapathError("no free patch-panel node (\(PCN_MAX_NODES - 1) programs)") }
            cubes[name] = Cube(name: name, service: request.service, type: type, transparent: request.transparent, node: node)
            if request.shadow == true {
                guard !request.transparent else { throw DatapathError("'\(name)' is a transparent cube: it cannot have a shadow", path: "shadow") }
                // The namespace is pcn-<name>, and namespace names are file names of /run/netns.
                guard name.count <= 200 else { throw DatapathError("cube '\(name)': the name is too long for a shadow namespace", path: "shadow") }
                cubes[name]!.shadow = true
            }
        }
        if cubes[name]!.logLevel ?? .info != level { cubes[name]!.logLevel = level }
        let span = request.span ?? false
        if span {
            guard cubes[name]!.shadow == true else {
                throw DatapathError("cube '\(name)': span needs a shadow cube (shadow=true, set when the cube is created)", path: "span")
            }
            guard type.hook == .tc else {
                throw DatapathError("cube '\(name)': span copies packets with bpf_clone_redirect, which XDP has not: use a TC cube", path: "span")
            }
        }
        if cubes[name]!.span ?? false != span { cubes[name]!.span = span ? true : nil }
        guard let wanted = request.ports else {
            guard request.transparent else { throw DatapathError("cube '\(name)': a standard cube needs its port list") }
            return []
        }
        guard !request.transparent else { throw DatapathError("'\(name)' is a transparent cube: it has no ports") }
        var seen = Set<String>()
        for port in wanted where !seen.insert(port.name).inserted {
            throw DatapathError("cube '\(name)': port '\(port.name)' is given twice")
        }
        for port in cubes[name]!.ports where !seen.contains(port.name) {
            try removePort(cube: name, port: port.name)
        }
        for port in wanted where cubes[name]!.port(port.name) == nil {
            _ = try addPort(cube: name, port: port.name)
        }
        // Peers that go away first, so a peer can move from one port to another in one change.
        for port in wanted where port.peer != cubes[name]!.port(port.name)!.peer.description {
            link(.none, cube: name, port: port.name)
        }
        var unlinked: [(port: String, reason: String)] = []
        for port in wanted where !port.peer.isEmpty && port.peer != cubes[name]!.port(port.name)!.peer.description {
            let peer = Peer(parsing: port.peer)
            do {
                try checkPeer(peer, cube: name, port: port.name, netdevExists: netdevExists)
            } catch let error as DatapathError where request.lenientPeers == true || port.kept == true {
                unlinked.append((port.name, error.description))
                continue
            } catch let error as DatapathError {
                throw DatapathError(error.description, path: "ports[name='\(port.name)']/peer")
            }
            link(peer, cube: name, port: port.name)
        }
        return unlinked
    }

    func describe(_ cube: Cube) -> CubeDescription {
        CubeDescription(name: cube.name, service: cube.service, type: cube.type.rawValue, transparent: cube.transparent,
                        node: cube.node, parent: cube.parent?.description, loglevel: (cube.logLevel ?? .info).rawValue,
                        ports: cube.ports.map { .init(name: $0.name, index: $0.index, peer: $0.peer.description, tcubes: $0.tcubes) },
                        shadowNamespace: cube.shadow == true ? Self.shadowNamespace(cube.name) : nil, span: cube.span)
    }
}

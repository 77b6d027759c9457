import Foundation
import PCNDatapathABI
import ServiceABI
import ServiceKit

/// router: the tables of an IPv4 static router (port addresses, best routes, static neighbours)
/// from its configuration; ARP resolution with packets held meanwhile; ICMP time exceeded.
public final class Router: CubeService {
    public static let name = "router"
    public init() {}

    public struct Config: Decodable {
        struct Port: Decodable, Equatable, Keyed {
            struct Secondary: Decodable, Equatable, Keyed {
                var ip: IPv4Prefix
                var key: IPv4Prefix { ip }
            }
            var name: String
            var peer: String?
            var ip: IPv4Prefix?
            var secondaryip: KeyedList<Secondary>
            var mac: MACAddress?
            var key: String { name }
        }
        struct Route: Decodable, Equatable, Keyed {
            var network: IPv4Prefix
            var nexthop: IPv4Address
            var pathcost: Int
            var key: [String] { [network.description, nexthop.description] }
        }
        struct Neighbour: Decodable, Equatable, Keyed {
            var address: IPv4Address
            var mac: MACAddress
            var interface: String
            var key: IPv4Address { address }
        }
        var ports: KeyedList<Port>
        var route: KeyedList<Route>
        var arpTable: KeyedList<Neighbour>
        /// Seconds a learned neighbour stays without being heard from before it is probed.
        var arpReachableTime: Int
        enum CodingKeys: String, CodingKey { case ports, route, arpTable = "arp-table", arpReachableTime = "arp-reachable-time" }

        /// Every address of every port, primary first, with the path that names it in errors.
        var addresses: [Address] {
            ports.flatMap { port in
                (port.ip.map { [Address(port: port.name, prefix: $0, path: "ports[name='\(port.name)']/ip", primary: true)] } ?? [])
                    + port.secondaryip.map { Address(port: port.name, prefix: $0.ip, path: "ports[name='\(port.name)']/secondaryip[ip='\($0.ip)']/ip", primary: false) }
            }
        }

        /// The port's MAC: configured, else derived from the cube and port names (stable across restarts).
        func mac(of port: String, cube: String) -> MACAddress {
            ports[port]?.mac ?? MACAddress.derived(from: "\(cube)/\(port)")
        }
    }

    public static var bindings: [ConfigBinding<Router>] {
        [.on(\.ports, \.route, apply: Router.program), .on(\.arpTable, \.ports, apply: Router.staticNeighbours)]
    }

    // MARK: - Configuration

    /// A port's address as configured, with the path that names it in errors.
    struct Address {
        var port: String
        var prefix: IPv4Prefix
        var path: String
        var primary: Bool
    }

    /// The port (and its address) whose network holds `address`, the longest prefix first.
    static func connected(_ address: IPv4Address, in addresses: [Address]) -> Address? {
        addresses.filter { $0.prefix.contains(address) }.max { $0.prefix.length < $1.prefix.length }
    }

    /// Routes whose next hop the change takes off every port's network (a secondary address, a
    /// primary or a port removed): removed with it, as Polycube does.
    public func dependents(of change: Change<Config>) -> [String] {
        guard let previous = change.previous else { return [] }
        let before = previous.addresses, after = change.config.addresses
        return change.config.route.filter { route in
            previous.route[route.key] != nil && Self.connected(route.nexthop, in: before) != nil && Self.connected(route.nexthop, in: after) == nil
        }.map { "route[network='\($0.network)'][nexthop='\($0.nexthop)']" }
    }

    public func validate(_ change: Change<Config>) throws {
        let addresses = change.config.addresses
        let existing = Set(change.previous?.addresses.map(\.path) ?? [])
        for (index, address) in addresses.enumerated() {
            if address.prefix.length == 0 {
                throw ServiceFailure.invalid(path: address.path, "\(address.prefix) has no network (prefix length 0)")
            }
            // Addresses of one port may share a network (a secondary inside the primary's, as Polycube
            // accepts); two ports may not.
            for earlier in addresses[..<index] where earlier.port != address.port && earlier.prefix.overlaps(address.prefix) {
                // Name the address this change brings, not the one already there.
                let (offender, other) = existing.contains(address.path) && !existing.contains(earlier.path) ? (earlier, address) : (address, earlier)
                throw ServiceFailure.invalid(path: offender.path, "\(offender.prefix) overlaps \(other.prefix) of port \(other.port)")
            }
        }
        for route in change.config.route {
            let path = "route[network='\(route.network)'][nexthop='\(route.nexthop)']/nexthop"
            if addresses.contains(where: { $0.prefix.address == route.nexthop }) {
                throw ServiceFailure.invalid(path: path, "next hop \(route.nexthop) is one of the router's own addresses")
            }
            guard Self.connected(route.nexthop, in: addresses) != nil else {
                throw ServiceFailure.invalid(path: path, "next hop \(route.nexthop) is not on the network of any port (\(addresses.map { $0.prefix.description }.joined(separator: ", ")))")
            }
        }
    }

    /// Ports, the router's own addresses and the best route per prefix.
    func program(_ change: Change<Config>) throws {
        let cube = change.cube, config = change.config
        let addresses = config.addresses
        let ports = try cube.table("router_ports")
        for index in 0..<Int(PCN_MAX_PORTS) {
            var entry = router_port()
            if let port = cube.port(index: index) {
                if let primary = config.ports[port.name]?.ip {
                    entry.ip = primary.address.networkOrder
                    entry.netmask = primary.mask.bigEndian
                }
                let secondaries = addresses.filter { $0.port == port.name && !$0.primary }.prefix(Int(ROUTER_MAX_SECONDARY))
                withUnsafeMutableBytes(of: &entry.secondary_ip) { raw in
                    for (slot, address) in secondaries.enumerated() { raw.storeBytes(of: address.prefix.address.networkOrder, toByteOffset: slot * 4, as: UInt32.self) }
                }
                withUnsafeMutableBytes(of: &entry.secondary_netmask) { raw in
                    for (slot, address) in secondaries.enumerated() { raw.storeBytes(of: address.prefix.mask.bigEndian, toByteOffset: slot * 4, as: UInt32.self) }
                }
                entry.secondary_count = UInt8(secondaries.count)
                if entry.ip == 0, let first = secondaries.first { entry.ip = first.prefix.address.networkOrder }
                entry.mac = config.mac(of: port.name, cube: cube.name).tuple
            }
            try ports.update(UInt32(index), entry)
        }

        let local = try cube.table("router_local")
        var wantedLocal: [UInt32: UInt32] = [:]
        for address in addresses {
            guard let port = cube.port(named: address.port) else { continue }
            wantedLocal[address.prefix.address.networkOrder] = UInt32(port.index)
        }
        for key in try local.keys(as: UInt32.self) where wantedLocal[key] == nil { try local.delete(key) }
        for (key, port) in wantedLocal { try local.update(key, router_local_address(port: port)) }

        let routes = try cube.table("router_routes")
        var wanted: [RouteKey: router_route] = [:]
        for (prefix, via) in Self.bestRoutes(config) {
            guard let port = cube.port(named: via.port) else { continue }
            wanted[RouteKey(prefix.network, prefix.length)] = router_route(nexthop: via.nexthop?.networkOrder ?? 0, port: UInt32(port.index))
        }
        for key in try routes.keys(as: router_route_key.self) where wanted[RouteKey(key)] == nil { try routes.delete(key) }
        for (key, route) in wanted { try routes.update(key.c, route) }

        // A shadow router's namespace speaks as its ports: same MACs, same addresses.
        for port in cube.ports {
            cube.shadow(port: port.name, mac: config.mac(of: port.name, cube: cube.name).description,
                        addresses: addresses.filter { $0.port == port.name }.map(\.prefix.description))
        }
    }

    struct RouteKey: Hashable {
        var network: IPv4Address
        var length: Int
        init(_ network: IPv4Address, _ length: Int) { self.network = network; self.length = length }
        init(_ key: router_route_key) { network = IPv4Address(networkOrder: key.network); length = Int(key.prefixlen) }
        var c: router_route_key { router_route_key(prefixlen: UInt32(length), network: network.networkOrder) }
    }

    /// Per network: its port's link (connected), else the configured route of lowest path cost.
    static func bestRoutes(_ config: Config) -> [(IPv4Prefix, (port: String, nexthop: IPv4Address?, cost: Int))] {
        let addresses = config.addresses
        var best: [RouteKey: (prefix: IPv4Prefix, port: String, nexthop: IPv4Address?, cost: Int)] = [:]
        for route in config.route {
            guard let via = connected(route.nexthop, in: addresses) else { continue }
            let prefix = IPv4Prefix(address: route.network.network, length: route.network.length)
            let key = RouteKey(prefix.network, prefix.length)
            if let current = best[key], current.cost < route.pathcost || (current.cost == route.pathcost && current.nexthop! <= route.nexthop) { continue }
            best[key] = (prefix, via.port, route.nexthop, route.pathcost)
        }
        for address in addresses {
            let prefix = IPv4Prefix(address: address.prefix.network, length: address.prefix.length)
            best[RouteKey(prefix.network, prefix.length)] = (prefix, address.port, nil, 0)
        }
        return best.values.sorted { ($0.prefix.length, $0.prefix.network) > ($1.prefix.length, $1.prefix.network) }
            .map { ($0.prefix, ($0.port, $0.nexthop, $0.cost)) }
    }

    /// Configured neighbours are static entries. Learned ones stay, except on a port that is gone or
    /// whose peer changed: what was behind it is not any more.
    func staticNeighbours(_ change: Change<Config>) throws {
        let cube = change.cube
        let arp = try cube.table("router_arp")
        var wanted: [UInt32: router_arp_entry] = [:]
        for entry in change.config.arpTable {
            guard let port = cube.port(named: entry.interface) else { continue }
            wanted[entry.address.networkOrder] = router_arp_entry(mac: entry.mac.tuple, port: UInt16(port.index), flags: UInt32(ROUTER_ARP_STATIC), confirmed: 0)
        }
        let moved = Set(cube.ports.filter { port in
            change.previous.map { $0.ports[port.name]?.peer != change.config.ports[port.name]?.peer } ?? false
        }.map(\.index))
        for key in try arp.keys(as: UInt32.self) where wanted[key] == nil {
            guard let entry = try arp.lookup(key, as: router_arp_entry.self) else { continue }
            let learned = entry.flags & UInt32(ROUTER_ARP_STATIC) == 0
            if !learned || moved.contains(Int(entry.port)) || cube.port(index: Int(entry.port)) == nil { try arp.delete(key) }
        }
        for (key, entry) in wanted { try arp.update(key, entry) }
    }

    // MARK: - State

    public func state(of cube: Cube<Config>) throws -> [String: Any] {
        guard let config = cube.config else { return [:] }
        let addresses = config.addresses
        var routes: [[String: Any]] = []
        for (prefix, via) in Self.bestRoutes(config) where via.nexthop == nil {
            routes.append(["network": prefix.description, "nexthop": "local", "interface": via.port, "pathcost": 0])
        }
        for route in config.route {
            guard let via = Self.connected(route.nexthop, in: addresses) else { continue }
            routes.append(["network": route.network.description, "nexthop": route.nexthop.description, "interface": via.port])
        }
        let arp = try cube.table("router_arp")
        let now = DatapathClock.nanoseconds
        let neighbours: [[String: Any]] = try arp.keys(as: UInt32.self).sorted().compactMap { key in
            guard let entry = try arp.lookup(key, as: router_arp_entry.self) else { return nil }
            var neighbour: [String: Any] = ["address": IPv4Address(networkOrder: key).description, "mac": MACAddress(tuple: entry.mac).description,
                                            "interface": cube.port(index: Int(entry.port))?.name ?? "\(entry.port)",
                                            "type": entry.flags & UInt32(ROUTER_ARP_STATIC) != 0 ? "STATIC" : "DYNAMIC"]
            if entry.flags & UInt32(ROUTER_ARP_STATIC) == 0 { neighbour["age"] = (now > entry.confirmed ? now - entry.confirmed : 0) / 1_000_000_000 }
            return neighbour
        }
        let ports: [[String: Any]] = cube.ports.map { ["name": $0.name, "mac": config.mac(of: $0.name, cube: cube.name).description] }
        return ["route": routes, "arp-table": neighbours, "ports": ports]
    }

    // MARK: - Slow path

    /// Packets waiting for a next hop's MAC address.
    struct Pending {
        var port: Int
        var frames: [[UInt8]] = []
        var asked = 0
        var lastAsked = Date.distantPast
    }
    private var pending: [String: [IPv4Address: Pending]] = [:]
    private static var heldPerHop: Int { 64 }
    private static var attempts: Int { 3 }

    public func packetIn(_ packet: PacketIn, on cube: Cube<Config>) throws {
        switch UInt32(packet.reason) {
        case ROUTER_REASON_ARP_MISS.rawValue:
            let hop = IPv4Address(networkOrder: packet.metadata.0)
            var waiting = pending[cube.name, default: [:]][hop] ?? Pending(port: Int(packet.metadata.1))
            if waiting.frames.count >= Self.heldPerHop { waiting.frames.removeFirst() }
            waiting.frames.append(packet.frame)
            pending[cube.name, default: [:]][hop] = waiting
            if try !release(hop, cube: cube) { ask(hop, cube: cube) }
        case ROUTER_REASON_ARP_REPLY.rawValue:
            _ = try release(IPv4Address(networkOrder: packet.metadata.0), cube: cube)
        case ROUTER_REASON_TTL_EXCEEDED.rawValue:
            timeExceeded(packet, cube: cube)
        default:
            cube.logger.debug("packet-in with unknown reason \(packet.reason) dropped")
        }
    }

    /// Sends an ARP request for `hop` out of the port that reaches it.
    private func ask(_ hop: IPv4Address, cube: Cube<Config>) {
        guard var waiting = pending[cube.name]?[hop], let port = cube.port(index: waiting.port), let config = cube.config,
              Date().timeIntervalSince(waiting.lastAsked) >= 1 else { return }
        guard let source = Self.source(on: port.name, towards: hop, in: config) else { return }
        cube.send(Frame.arpRequest(from: config.mac(of: port.name, cube: cube.name), ip: source.prefix.address, asking: hop), port: port.name)
        waiting.asked += 1
        waiting.lastAsked = Date()
        pending[cube.name]?[hop] = waiting
        cube.logger.debug("ARP request for \(hop) on \(port.name) (\(waiting.frames.count) packets wait)")
    }

    /// Forwards what waits for `hop` if its MAC is known now; false if it is not.
    private func release(_ hop: IPv4Address, cube: Cube<Config>) throws -> Bool {
        guard let waiting = pending[cube.name]?[hop] else { return true }
        guard let neighbour = try cube.table("router_arp").lookup(hop.networkOrder, as: router_arp_entry.self),
              let port = cube.port(index: waiting.port), let config = cube.config else { return false }
        pending[cube.name]?[hop] = nil
        let source = config.mac(of: port.name, cube: cube.name)
        for var frame in waiting.frames {
            guard let headerLength = ParsedFrame(frame).ipv4HeaderLength, frame.count >= 14 + headerLength else { continue }
            frame.replaceSubrange(0..<12, with: MACAddress(tuple: neighbour.mac).bytes + source.bytes)
            frame[22] -= 1 // TTL (above 1: the fast path sent the others to timeExceeded)
            frame[24] = 0
            frame[25] = 0
            let sum = Frame.checksum(frame[14..<(14 + headerLength)])
            frame[24] = UInt8(sum >> 8)
            frame[25] = UInt8(sum & 0xff)
            cube.send(frame, port: port.name)
        }
        cube.logger.debug("\(hop) resolved: \(waiting.frames.count) held packets sent")
        return true
    }

    /// ICMP time exceeded to the sender, from the address of the port the packet came in on.
    private func timeExceeded(_ packet: PacketIn, cube: Cube<Config>) {
        let frame = ParsedFrame(packet.frame)
        guard let headerLength = frame.ipv4HeaderLength, let sender = frame.ipv4Source, let senderMAC = frame.sourceMAC,
              let port = cube.port(index: packet.port), let config = cube.config,
              let source = Self.source(on: port.name, towards: sender, in: config) else { return }
        let quoted = Array(packet.frame[14..<min(packet.frame.count, 14 + headerLength + 8)])
        let icmp = Frame.icmp(type: 11, code: 0, body: quoted)
        let reply = Frame.ethernet(to: senderMAC, from: config.mac(of: port.name, cube: cube.name), type: Frame.etherIPv4)
            + Frame.ipv4(from: source.prefix.address, to: sender, protocol: 1, payload: icmp)
        cube.send(reply, port: port.name)
    }

    /// The port's address on the network of `peer`, else its first one: the source of what it sends.
    private static func source(on port: String, towards peer: IPv4Address, in config: Config) -> Address? {
        let mine = config.addresses.filter { $0.port == port }
        return mine.first { $0.prefix.contains(peer) } ?? mine.first
    }

    /// A learned neighbour being probed: the confirmation it had when probing began.
    struct Probe {
        var confirmed: UInt64
        var sent = 0
        var last = Date.distantPast
    }
    private var probes: [String: [UInt32: Probe]] = [:]

    /// Learned neighbours not heard from for arp-reachable-time get a unicast ARP request a second;
    /// after three unanswered they are forgotten (the next packet asks by broadcast). Those of a port
    /// whose netdev is gone are forgotten at once.
    private func ageNeighbours(_ cube: Cube<Config>) {
        guard let config = cube.config, let arp = try? cube.table("router_arp"), let keys = try? arp.keys(as: UInt32.self) else { return }
        let now = DatapathClock.nanoseconds
        let reachable = UInt64(config.arpReachableTime) * 1_000_000_000
        let gone = Set(cube.ports.filter { !$0.peer.isEmpty && !$0.peer.contains(":") && if_nametoindex($0.peer) == 0 }.map(\.index))
        var probing: [UInt32: Probe] = [:]
        for key in keys {
            guard let entry = try? arp.lookup(key, as: router_arp_entry.self), entry.flags & UInt32(ROUTER_ARP_STATIC) == 0 else { continue }
            let address = IPv4Address(networkOrder: key)
            if gone.contains(Int(entry.port)) {
                try? arp.delete(key)
                continue
            }
            guard now > entry.confirmed, now - entry.confirmed >= reachable, let port = cube.port(index: Int(entry.port)) else { continue }
            var probe = probes[cube.name]?[key].flatMap { $0.confirmed == entry.confirmed ? $0 : nil } ?? Probe(confirmed: entry.confirmed)
            if Date().timeIntervalSince(probe.last) >= 1 {
                if probe.sent >= Self.attempts {
                    try? arp.delete(key)
                    cube.logger.info("neighbour \(address) on \(port.name) did not answer \(probe.sent) ARP probes: forgotten")
                    continue
                }
                guard let source = Self.source(on: port.name, towards: address, in: config) else { continue }
                cube.send(Frame.arpRequest(from: config.mac(of: port.name, cube: cube.name), ip: source.prefix.address, asking: address,
                                           to: MACAddress(tuple: entry.mac)), port: port.name)
                probe.sent += 1
                probe.last = Date()
            }
            probing[key] = probe
        }
        probes[cube.name] = probing
    }

    /// Retries unanswered ARP requests (giving up, and dropping the held packets, after three) and
    /// ages the learned neighbours.
    public func tick(_ cube: Cube<Config>) {
        ageNeighbours(cube)
        for (hop, waiting) in pending[cube.name] ?? [:] {
            if (try? release(hop, cube: cube)) == true { continue }
            if waiting.asked >= Self.attempts && Date().timeIntervalSince(waiting.lastAsked) >= 1 {
                cube.logger.info("next hop \(hop) does not answer ARP: \(waiting.frames.count) packets dropped")
                pending[cube.name]?[hop] = nil
            } else {
                ask(hop, cube: cube)
            }
        }
    }

    public func removed(_ cube: Cube<Config>) {
        pending[cube.name] = nil
        probes[cube.name] = nil
    }
}

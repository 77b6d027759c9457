import ServiceKit

/// A bridge or port identity: priority in the high 16 bits, the MAC below (what BPDUs carry and
/// compare; the lowest wins).
public struct BridgeID: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(value: UInt64) { self.value = value }
    public init(priority: UInt16, mac: MACAddress) {
        value = mac.bytes.reduce(UInt64(priority)) { $0 << 8 | UInt64($1) }
    }
    public var priority: UInt16 { UInt16(truncatingIfNeeded: value >> 48) }
    public var mac: MACAddress { MACAddress(bytes: (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64($0))) }) }
    /// As Linux's bridge shows it: priority in hex, a dot, the MAC in hex.
    public var description: String {
        String(format: "%04x.", priority) + mac.bytes.map { String(format: "%02x", $0) }.joined()
    }
    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
}

/// An 802.1D BPDU: a configuration BPDU or a topology change notification. Times in seconds.
public struct BPDU: Equatable, Sendable {
    public enum Kind: UInt8, Sendable { case config = 0x00, topologyChange = 0x80 }
    public var kind: Kind
    public var topologyChange = false
    public var topologyChangeAck = false
    public var root = BridgeID(value: 0)
    public var rootPathCost: UInt32 = 0
    public var bridge = BridgeID(value: 0)
    public var port: UInt16 = 0
    public var messageAge: Double = 0
    public var maxAge: Double = 20
    public var helloTime: Double = 2
    public var forwardDelay: Double = 15

    public init(kind: Kind) { self.kind = kind }

    static let groupAddress: [UInt8] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]

    /// Parses an Ethernet frame (an 802.1Q tag allowed) holding an LLC BPDU; nil for anything else.
    public init?(frame: [UInt8]) {
        guard frame.count >= 14, Array(frame[0..<6]) == Self.groupAddress else { return nil }
        var at = 12
        if frame[12] == 0x81 && frame[13] == 0x00 { at += 4 }
        guard frame.count >= at + 2 + 3 + 4 else { return nil }
        let length = Int(frame[at]) << 8 | Int(frame[at + 1])
        guard length <= 1500, frame[at + 2] == 0x42, frame[at + 3] == 0x42, frame[at + 4] == 0x03 else { return nil }
        let bpdu = Array(frame[(at + 5)...])
        guard bpdu[0] == 0, bpdu[1] == 0, let kind = Kind(rawValue: bpdu[3]) else { return nil }
        self.kind = kind
        guard kind == .config else { return }
        guard bpdu.count >= 35 else { return nil }
        func word(_ i: Int, _ n: Int) -> UInt64 { bpdu[i..<(i + n)].reduce(0) { $0 << 8 | UInt64($1) } }
        func time(_ i: Int) -> Double { Double(word(i, 2)) / 256 }
        topologyChange = bpdu[4] & 0x01 != 0
        topologyChangeAck = bpdu[4] & 0x80 != 0
        root = BridgeID(value: word(5, 8))
        rootPathCost = UInt32(word(13, 4))
        bridge = BridgeID(value: word(17, 8))
        port = UInt16(word(25, 2))
        messageAge = time(27)
        maxAge = time(29)
        helloTime = time(31)
        forwardDelay = time(33)
    }

    /// The frame: to the bridge group address from `source`, tagged with `vlan` when given,
    /// padded to the Ethernet minimum.
    public func frame(source: MACAddress, vlan: UInt16?) -> [UInt8] {
        var body: [UInt8] = [0, 0, 0, kind.rawValue]
        if kind == .config {
            func append(_ value: UInt64, _ n: Int) { body += (0..<n).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(n - 1 - $0))) } }
            func time(_ seconds: Double) { append(UInt64(max(0, min(65535, (seconds * 256).rounded(.down)))), 2) }
            body.append((topologyChange ? 0x01 : 0) | (topologyChangeAck ? 0x80 : 0))
            append(root.value, 8)
            append(UInt64(rootPathCost), 4)
            append(bridge.value, 8)
            append(UInt64(port), 2)
            time(messageAge); time(maxAge); time(helloTime); time(forwardDelay)
        }
        let llc: [UInt8] = [0x42, 0x42, 0x03]
        let length = UInt16(llc.count + body.count)
        var frame = Self.groupAddress + source.bytes
        if let vlan { frame += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xff)] }
        frame += [UInt8(length >> 8), UInt8(length & 0xff)] + llc + body
        if frame.count < 60 { frame += Array(repeating: 0, count: 60 - frame.count) }
        return frame
    }
}

/// One 802.1D spanning-tree instance (the 1998 protocol, as Linux's bridge speaks it): root
/// election, port roles and states, BPDU relay, aging of received information and topology change
/// notification. Pure logic: the caller feeds BPDUs and the clock and carries out the outputs.
public final class SpanningTree {
    public enum PortState: String, Sendable { case disabled, blocking, listening, learning, forwarding }
    public enum PortRole: String, Sendable { case disabled, root, designated, alternate }

    public struct Timers: Equatable, Sendable {
        public var helloTime: Double
        public var maxAge: Double
        public var forwardDelay: Double
        public init(helloTime: Double = 2, maxAge: Double = 20, forwardDelay: Double = 15) {
            self.helloTime = helloTime
            self.maxAge = maxAge
            self.forwardDelay = forwardDelay
        }
    }

    /// A port as configured: its identity (priority << 8 | number), path cost, and whether it has a link.
    public struct PortSettings: Equatable, Sendable {
        public var id: UInt16
        public var pathCost: UInt32
        public var enabled: Bool
        public init(id: UInt16, pathCost: UInt32, enabled: Bool) {
            self.id = id
            self.pathCost = pathCost
            self.enabled = enabled
        }
    }

    public enum Output: Equatable, Sendable {
        case send(port: Int, BPDU)
        /// A topology change: learned addresses of this instance should go.
        case flush
    }

    /// What a port last heard from its segment's designated bridge.
    struct Received {
        var bpdu: BPDU
        var at: Double
        var vector: Vector { Vector(root: bpdu.root, cost: bpdu.rootPathCost, bridge: bpdu.bridge, port: bpdu.port) }
    }

    struct Vector: Comparable {
        var root: BridgeID
        var cost: UInt32
        var bridge: BridgeID
        var port: UInt16
        static func < (a: Self, b: Self) -> Bool {
            (a.root, a.cost, a.bridge, a.port) < (b.root, b.cost, b.bridge, b.port)
        }
    }

    public struct Port: Sendable {
        public internal(set) var settings: PortSettings
        public internal(set) var state: PortState = .blocking
        public internal(set) var role: PortRole = .designated
        var since: Double = 0
        var received: Received?
        /// The designated bridge of the port's segment (this bridge when the port is designated).
        public internal(set) var designatedBridge = BridgeID(value: 0)
    }

    public private(set) var bridge: BridgeID
    public private(set) var timers: Timers
    public private(set) var ports: [Int: Port] = [:]
    public private(set) var root: BridgeID
    public private(set) var rootPathCost: UInt32 = 0
    public private(set) var rootPort: Int?
    public private(set) var topologyChanges = 0
    /// The timers in use: the root's, as its BPDUs carry them.
    public var activeTimers: Timers {
        guard let port = rootPort, let heard = ports[port]?.received?.bpdu else { return timers }
        return Timers(helloTime: heard.helloTime, maxAge: heard.maxAge, forwardDelay: heard.forwardDelay)
    }

    private var lastHello: Double = -.infinity
    private var topologyChangeUntil: Double = -.infinity
    private var rootAnnouncesChange = false
    private var notificationPending = false
    private var lastNotification: Double = -.infinity
    /// After a restart: listen before speaking or changing a port's state.
    private var quietUntil: Double = -.infinity

    public init(bridge: BridgeID, timers: Timers) {
        self.bridge = bridge
        self.timers = timers
        root = bridge
    }

    public var isRoot: Bool { rootPort == nil }

    /// New settings: identity, timers, ports (by index). New ports start blocking.
    public func configure(bridge: BridgeID, timers: Timers, ports settings: [Int: PortSettings], now: Double) -> [Output] {
        self.bridge = bridge
        self.timers = timers
        for index in ports.keys where settings[index] == nil { ports[index] = nil }
        for (index, wanted) in settings {
            if var port = ports[index] {
                if port.settings.enabled && !wanted.enabled { port.received = nil }
                port.settings = wanted
                ports[index] = port
            } else {
                ports[index] = Port(settings: wanted, since: now)
            }
        }
        return update(now: now)
    }

    /// After the control plane restarted: ports resume in the states the datapath still enforces,
    /// and the instance listens for a hello time before it speaks or moves a port.
    public func resume(states: [Int: PortState], now: Double) {
        for (index, state) in states where ports[index] != nil {
            ports[index]!.state = state
            ports[index]!.since = now
        }
        quietUntil = now + timers.helloTime + 1
    }

    public func received(_ bpdu: BPDU, on index: Int, now: Double) -> [Output] {
        guard let port = ports[index], port.settings.enabled else { return [] }
        var outputs: [Output] = []
        switch bpdu.kind {
        case .topologyChange:
            guard port.role == .designated else { return [] }
            var ack = configuration(for: index, now: now)
            ack.topologyChangeAck = true
            if !quiet(now) { outputs.append(.send(port: index, ack)) }
            outputs += topologyChanged(now: now)
        case .config:
            let heard = Received(bpdu: bpdu, at: now)
            let ours = Vector(root: root, cost: rootPathCost, bridge: bridge, port: port.settings.id)
            let stored = port.received?.vector
            let sameSender = stored.map { $0.bridge == heard.vector.bridge && $0.port == heard.vector.port } ?? false
            if heard.vector < ours || sameSender || (stored.map { heard.vector < $0 } ?? false) {
                ports[index]!.received = heard
                outputs += update(now: now)
                if rootPort == index {
                    if bpdu.topologyChangeAck { notificationPending = false }
                    if bpdu.topologyChange && !rootAnnouncesChange {
                        topologyChanges += 1
                        outputs.append(.flush)
                    }
                    rootAnnouncesChange = bpdu.topologyChange
                    outputs += relay(now: now)
                }
            } else if port.role == .designated && !quiet(now) {
                // An inferior BPDU on our segment: tell its sender at once who is designated here.
                outputs.append(.send(port: index, configuration(for: index, now: now)))
            }
        }
        return outputs
    }

    /// Call about once a second.
    public func tick(now: Double) -> [Output] {
        var outputs: [Output] = []
        for (index, port) in ports {
            if let heard = port.received, heard.bpdu.messageAge + (now - heard.at) >= heard.bpdu.maxAge {
                ports[index]!.received = nil
            }
        }
        outputs += update(now: now)
        if quiet(now) { return outputs }
        let active = activeTimers
        for (index, port) in ports where port.role == .root || port.role == .designated {
            let next: PortState? = switch port.state {
            case .listening: .learning
            case .learning: .forwarding
            default: nil
            }
            if let next, now - port.since >= active.forwardDelay {
                ports[index]!.state = next
                ports[index]!.since = now
                if next == .forwarding { outputs += topologyChanged(now: now) }
            }
        }
        if isRoot && now - lastHello >= timers.helloTime {
            lastHello = now
            for (index, port) in ports where port.role == .designated {
                outputs.append(.send(port: index, configuration(for: index, now: now)))
            }
        }
        if notificationPending, let rootPort, now - lastNotification >= active.helloTime {
            lastNotification = now
            outputs.append(.send(port: rootPort, BPDU(kind: .topologyChange)))
        }
        return outputs
    }

    // MARK: - The protocol

    private func quiet(_ now: Double) -> Bool { now < quietUntil }

    /// Root, root port and every port's role from what the ports heard; states follow the roles.
    private func update(now: Double) -> [Output] {
        var best = Vector(root: bridge, cost: 0, bridge: bridge, port: 0)
        var bestPort: (index: Int, id: UInt16)?
        for (index, port) in ports where port.settings.enabled {
            guard let heard = port.received, heard.bpdu.bridge != bridge else { continue }
            let through = Vector(root: heard.bpdu.root, cost: heard.bpdu.rootPathCost &+ port.settings.pathCost,
                                 bridge: heard.bpdu.bridge, port: heard.bpdu.port)
            guard through.root < bridge else { continue }
            if through < best || (!(best < through) && bestPort.map { port.settings.id < $0.id } == true) {
                best = through
                bestPort = (index, port.settings.id)
            }
        }
        root = best.root
        rootPathCost = bestPort == nil ? 0 : best.cost
        rootPort = bestPort?.index
        var outputs: [Output] = []
        for (index, port) in ports {
            var role: PortRole
            if !port.settings.enabled {
                role = .disabled
            } else if index == rootPort {
                role = .root
            } else {
                let ours = Vector(root: root, cost: rootPathCost, bridge: bridge, port: port.settings.id)
                let heard = port.received?.vector
                role = heard.map { ours < $0 || ($0.bridge == bridge && $0.port == port.settings.id) } ?? true ? .designated : .alternate
            }
            ports[index]!.role = role
            ports[index]!.designatedBridge = role == .designated ? bridge : (port.received?.bpdu.bridge ?? bridge)
            let state = port.state
            let next: PortState? = switch role {
            case .disabled: state == .disabled ? nil : .disabled
            case .alternate: state == .blocking ? nil : .blocking
            case .root, .designated: (state == .blocking || state == .disabled) && !quiet(now) ? .listening : nil
            }
            if let next {
                ports[index]!.state = next
                ports[index]!.since = now
                if state == .forwarding { outputs += topologyChanged(now: now) }
            }
        }
        return outputs
    }

    /// The configuration BPDU this bridge sends on a designated port.
    private func configuration(for index: Int, now: Double) -> BPDU {
        var bpdu = BPDU(kind: .config)
        bpdu.root = root
        bpdu.rootPathCost = rootPathCost
        bpdu.bridge = bridge
        bpdu.port = ports[index]?.settings.id ?? 0
        let active = activeTimers
        bpdu.maxAge = active.maxAge
        bpdu.helloTime = active.helloTime
        bpdu.forwardDelay = active.forwardDelay
        if let rootPort, let heard = ports[rootPort]?.received {
            bpdu.messageAge = heard.bpdu.messageAge + (now - heard.at) + 1.0 / 256
            bpdu.topologyChange = heard.bpdu.topologyChange
        } else {
            bpdu.topologyChange = now < topologyChangeUntil
        }
        return bpdu
    }

    /// What the root said, passed on to every designated port.
    private func relay(now: Double) -> [Output] {
        guard !quiet(now) else { return [] }
        return ports.filter { $0.value.role == .designated }.keys.sorted().map { .send(port: $0, configuration(for: $0, now: now)) }
    }

    /// A port started or stopped forwarding: the root announces it for max age + forward delay;
    /// other bridges notify the root through their root port until it acknowledges.
    private func topologyChanged(now: Double) -> [Output] {
        if isRoot {
            let active = activeTimers
            let already = now < topologyChangeUntil
            topologyChangeUntil = now + active.maxAge + active.forwardDelay
            if already { return [] }
            topologyChanges += 1
            return [.flush]
        }
        guard !notificationPending, let rootPort, !quiet(now) else { return [] }
        notificationPending = true
        lastNotification = now
        return [.send(port: rootPort, BPDU(kind: .topologyChange))]
    }
}

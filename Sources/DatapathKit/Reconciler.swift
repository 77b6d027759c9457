import BPFKit
import Foundation
import PCNDatapathABI
import PCNProtocol
#if canImport(Glibc)
import Glibc
#endif

/// One program as the topology wants it.
struct StageSpec {
    enum Placement: Equatable {
        /// A patch-panel node (what other programs and netdevs jump to).
        case panel(Hook, UInt32)
        /// A SLAVE µCube: slot `index` of the cube's pinned prog array `map`.
        case ucubes(map: String, index: Int)
    }

    let key: String
    let cube: String
    let objectPath: String
    let program: String
    let config: pcn_cube_config
    let placement: Placement
    let pin: String
    /// Where this µCube's PRIVATE tables are pinned.
    let privateDirectory: String
    let what: String

    var fingerprint: String {
        var copy = config
        let bytes = withUnsafeBytes(of: &copy) { Array($0) }
        return objectPath + "|" + bytes.map { String($0, radix: 16) }.joined(separator: ".")
    }
}

/// A program loaded and placed.
final class LoadedStage {
    let fingerprint: String
    let placement: StageSpec.Placement
    let pin: String
    let cube: String
    let privateDirectory: String
    /// Its tables pinned outside the cube (SHARED and PUBLIC scopes).
    let sharedPins: [String]
    /// Its pcn_log formats by call-site id, and the source number its records carry.
    let logFormats: [UInt16: String]
    let logSource: UInt32
    /// The service's own drop reasons by number (section .rodata.pcn_drops, `PCN_DROP_REASON`).
    let dropReasons: [UInt32: String]
    let object: BPFObject

    init(spec: StageSpec, object: BPFObject, sharedPins: [String]) {
        fingerprint = spec.fingerprint
        placement = spec.placement
        pin = spec.pin
        cube = spec.cube
        privateDirectory = spec.privateDirectory
        self.sharedPins = sharedPins
        self.object = object
        logSource = spec.config.log_source
        var formats: [UInt16: String] = [:]
        for entry in object.sectionData(".rodata.pcn_log").split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            if let colon = text.firstIndex(of: ":"), let id = UInt16(text[..<colon]) {
                formats[id] = String(text[text.index(after: colon)...])
            }
        }
        logFormats = formats
        let record = MemoryLayout<pcn_drop_name>.size
        let declared = object.sectionData(".rodata.pcn_drops")
        var reasons: [UInt32: String] = [:]
        for offset in stride(from: 0, to: declared.count - record + 1, by: record) {
            let entry = declared[offset..<(offset + record)].withUnsafeBytes { $0.loadUnaligned(as: pcn_drop_name.self) }
            reasons[entry.reason] = withUnsafeBytes(of: entry.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        dropReasons = reasons
    }
}

/// The entry programs attached to one netdev.
final class LoadedNetdev {
    struct Entry {
        let fingerprint: String
        let object: BPFObject
        let type: CubeType
    }
    let ifindex: Int32
    var ingress: Entry?
    var egress: Entry?

    init(ifindex: Int32) { self.ifindex = ifindex }
}

extension Datapath {
    // MARK: - Desired programs

    /// `atIngress`: the program runs at TC ingress, where a veth's twin can be reached directly.
    private func hopEntry(_ hop: Topology.Hop, atIngress: Bool = false) -> pcn_port_peer {
        var entry = pcn_port_peer()
        switch hop {
        case .none:
            entry.kind = UInt32(PCN_PEER_NONE.rawValue)
        case .netdev(let device):
            let ifindex = if_nametoindex(device)
            entry.kind = UInt32(ifindex == 0 ? PCN_PEER_NONE.rawValue : PCN_PEER_NETDEV.rawValue)
            entry.target = ifindex
            // Straight into the twin's namespace when nothing of ours runs at the veth's egress.
            if ifindex != 0, atIngress, topology.entries(ofNetdev: device).egress == .none, twinElsewhere(Int32(ifindex)) {
                entry.kind = UInt32(PCN_PEER_VETH.rawValue)
            }
        case .node(let node, let port):
            entry.kind = UInt32(PCN_PEER_CUBE.rawValue)
            entry.target = node
            entry.peer_port = UInt32(port)
        case .stack:
            entry.kind = UInt32(PCN_PEER_STACK.rawValue)
        }
        return entry
    }

    private func config(of cube: Topology.Cube, _ role: Topology.Role) -> pcn_cube_config {
        var config = pcn_cube_config()
        config.cube_id = cube.node
        config.log_level = (cube.logLevel ?? .info).value
        let hook = topology.hook(of: cube, role)
        let atIngress = hook == .tc && topology.runsAtIngress(cube, role)
        if cube.transparent {
            config.port_count = 1
            config.peers.0 = hopEntry(topology.next(ofTransparent: cube, role), atIngress: atIngress)
            return config
        }
        // Only ports up to the highest index in use get forwarding code (the verifier drops the rest).
        config.port_count = UInt32((cube.ports.map(\.index).max() ?? -1) + 1)
        withUnsafeMutableBytes(of: &config.peers) { raw in
            guard role == .ingress else { return }
            let peers = raw.bindMemory(to: pcn_port_peer.self)
            for port in cube.ports { peers[port.index] = hopEntry(topology.exit(cube, port), atIngress: atIngress) }
        }
        withUnsafeMutableBytes(of: &config.egress_next) { raw in
            guard role.isEgress else { return }
            let next = raw.bindMemory(to: pcn_port_peer.self)
            for port in cube.ports { next[port.index] = hopEntry(topology.egressNext(cube, port, hook: hook)) }
        }
        if cube.shadow == true {
            config.shadow = 1
            config.span = cube.span == true ? 1 : 0
            withUnsafeMutableBytes(of: &config.shadow_ifindex) { raw in
                let twins = raw.bindMemory(to: UInt32.self)
                for port in cube.ports { twins[port.index] = if_nametoindex(Topology.twinName(cube: cube.name, port: port.name)) }
            }
        }
        return config
    }

    /// Every program the topology needs, compiled (through the cache) but not loaded.
    private func desiredStages() throws -> [StageSpec] {
        var specs: [StageSpec] = []
        for cube in topology.cubes.values.sorted(by: { $0.node < $1.node }) {
            let source = try sourceOf(service: cube.service)
            for role in topology.roles(of: cube) {
                let hook = topology.hook(of: cube, role)
                let codes: [Int: String?]
                switch role {
                case .ingress: codes = [0: cube.code[0]].merging(cube.code.filter { $0.key > 0 }.mapValues { $0 }) { a, _ in a }
                case .egress, .egressTC: codes = cube.egressCode.mapValues { $0 }
                default: codes = [0: cube.code[0]]
                }
                let roleConfig = config(of: cube, role)
                for (index, code) in codes.sorted(by: { $0.key < $1.key }) {
                    var defines = ["PCN_UCUBE_INDEX=\(index)"]
                    if hook == .xdp { defines.append("PCN_XDP=1") }
                    if role.isEgress { defines.append("PCN_EGRESS=1") }
                    if cube.transparent { defines.append("PCN_TRANSPARENT=1") }
                    let what = "cube '\(cube.name)' \(role.rawValue) program" + (index > 0 ? " µCube \(index)" : "")
                    let objectPath: String
                    do {
                        if let code {
                            objectPath = try compiler.compile(sourceText: code, name: "\(cube.name)-\(role.rawValue)-\(index)", defines: defines,
                                                              includes: [(source as NSString).deletingLastPathComponent])
                        } else {
                            objectPath = try compiler.compile(file: source, name: cube.service, defines: defines)
                        }
                    } catch {
                        throw DatapathError("\(what): \(error)")
                    }
                    // Names this program's table of log formats: stable for the same program and object,
                    // so records still in the ring when pcn-core restarts keep their meaning.
                    var config = roleConfig
                    var hasher = FNV1a()
                    hasher.add("\(cube.name)/\(role.rawValue)/\(index)")
                    hasher.add(objectPath)
                    config.log_source = UInt32(truncatingIfNeeded: hasher.value)
                    let placement: StageSpec.Placement
                    if index == 0 {
                        placement = .panel(hook, topology.node(cube.name, role))
                    } else {
                        let map = role == .ingress ? "pcn_ingress_programs" : (hook == .xdp ? "pcn_egress_programs_xdp" : "pcn_egress_programs")
                        placement = .ucubes(map: map, index: index)
                    }
                    let program = cube.transparent ? "pcn_transparent" : (role == .ingress ? "pcn_cube_ingress" : "pcn_cube_egress")
                    let pinName = index == 0 ? role.rawValue : "\(role.rawValue)-ucube\(index)" // bpffs names take no dot
                    specs.append(StageSpec(key: "\(cube.name)/\(role.rawValue)/\(index)", cube: cube.name, objectPath: objectPath,
                                           program: program, config: config, placement: placement,
                                           pin: "\(bpffsRoot)/cubes/\(cube.name)/\(pinName)",
                                           privateDirectory: "\(bpffsRoot)/cubes/\(cube.name)/private-\(role.rawValue)-\(index)", what: what))
                }
            }
        }
        return specs
    }

    // MARK: - Reconcile

    /// Makes the kernel match the topology: builds every changed program first (a compile or
    /// verifier error stops here, with nothing changed), then places new programs, then attaches
    /// netdev entries, then swaps changed programs, then removes what is no longer wanted.
    func reconcile() throws {
        try reconcileShadows()
        let specs = try desiredStages()
        var built: [(StageSpec, BPFObject, [String])] = []
        for spec in specs where stages[spec.key]?.fingerprint != spec.fingerprint || stages[spec.key]?.placement != spec.placement {
            let (object, sharedPins) = try load(spec)
            built.append((spec, object, sharedPins))
        }
        // New programs first: nothing jumps to them yet.
        for (spec, object, sharedPins) in built.sorted(by: { (stages[$0.0.key] == nil ? 0 : 1) < (stages[$1.0.key] == nil ? 0 : 1) }) {
            try place(spec, object, sharedPins: sharedPins)
        }
        try reconcileNetdevs()
        let wanted = Set(specs.map(\.key))
        for (key, stage) in stages where !wanted.contains(key) {
            switch stage.placement {
            case .panel(let hook, let node):
                try? panel(hook).delete(node)
            case .ucubes(let map, let index):
                try? BPFMap.openPinned("\(bpffsRoot)/cubes/\(stage.cube)/maps/\(map)").delete(UInt32(index))
            }
            unlink(stage.pin)
            try? FileManager.default.removeItem(atPath: stage.privateDirectory)
            stages.removeValue(forKey: key)
        }
        removeUnusedSharedTables()
    }

    /// Where each of the object's tables is pinned, by its scope (bpf/include/pcn/tables.h).
    private func tablePins(_ object: BPFObject, _ spec: StageSpec) throws -> [String: String] {
        var scopes: [String: String] = [:]
        for declaration in object.sectionData(".rodata.pcn_scopes").split(separator: 0) {
            let text = String(decoding: declaration, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            scopes[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        var pins: [String: String] = [:]
        for name in try object.instanceMapNames() {
            switch scopes[name] {
            case nil:
                pins[name] = "\(bpffsRoot)/cubes/\(spec.cube)/maps/\(name)"
            case "private":
                pins[name] = "\(spec.privateDirectory)/\(name)"
            case "public":
                pins[name] = "\(bpffsRoot)/public/\(name)"
            case let scope? where scope.hasPrefix("shared:"):
                let set = String(scope.dropFirst("shared:".count))
                guard !set.isEmpty, set.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                    throw DatapathError("\(spec.what): table '\(name)' names a shared set '\(set)' that is not a valid name")
                }
                pins[name] = "\(bpffsRoot)/shared/\(set)/\(name)"
            case let scope?:
                throw DatapathError("\(spec.what): table '\(name)' has an unknown scope '\(scope)'")
            }
        }
        return pins
    }

    /// SHARED and PUBLIC tables no loaded program uses any more.
    private func removeUnusedSharedTables() {
        let used = Set(stages.values.flatMap(\.sharedPins))
        for directory in ["\(bpffsRoot)/public"] + ((try? FileManager.default.contentsOfDirectory(atPath: "\(bpffsRoot)/shared")) ?? []).map({ "\(bpffsRoot)/shared/\($0)" }) {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where !used.contains("\(directory)/\(entry)") {
                unlink("\(directory)/\(entry)")
            }
            rmdir(directory)
        }
        rmdir("\(bpffsRoot)/shared")
    }

    /// Loads a program over its pinned tables; returns it with the pins it shares outside its cube.
    private func load(_ spec: StageSpec) throws -> (BPFObject, [String]) {
        let object = try BPFObject(path: spec.objectPath, pinRoot: bpffsRoot)
        try object.setSection(".rodata.pcn", to: spec.config)
        // Tables and counters are pinned: every reload, and a restarted pcn-core, keeps them.
        let pins = try tablePins(object, spec)
        for (name, pin) in pins where try object.reuseMap(name, pinnedAt: pin) == .incompatible {
            // New code with another layout for this table (an upgrade): a new, empty table replaces
            // the pinned one; the running program keeps the old one until the swap.
            logger.warning("\(spec.what): table '\(name)' changed its layout; a new, empty table replaces the one pinned at \(pin)")
            unlink(pin)
        }
        do {
            try object.load()
        } catch {
            throw DatapathError("\(spec.what) was rejected by the verifier: \(error.summary)")
        }
        for (name, pin) in pins.sorted(by: { $0.key < $1.key }) {
            try FileManager.default.createDirectory(atPath: (pin as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try object.pinMap(name, at: pin)
        }
        let cubeDirectory = "\(bpffsRoot)/cubes/\(spec.cube)/"
        return (object, pins.values.filter { !$0.hasPrefix(cubeDirectory) }.sorted())
    }

    private func place(_ spec: StageSpec, _ object: BPFObject, sharedPins: [String]) throws {
        let fd = UInt32(bitPattern: try object.programFD(spec.program))
        switch spec.placement {
        case .panel(let hook, let node):
            try panel(hook).update(node, fd)
        case .ucubes(let map, let index):
            try BPFMap.openPinned("\(bpffsRoot)/cubes/\(spec.cube)/maps/\(map)").update(UInt32(index), fd)
        }
        try object.pinProgram(spec.program, at: spec.pin)
        stages[spec.key] = LoadedStage(spec: spec, object: object, sharedPins: sharedPins)
    }

    func panel(_ hook: Hook) throws -> BPFMap {
        if let map = panels[hook] { return map }
        let path = "\(bpffsRoot)/pcn_nodes_\(hook.rawValue)"
        if !FileManager.default.fileExists(atPath: path) {
            // No program of this hook was loaded yet: load a netdev entry to create (and pin) the panel.
            _ = try entryObject(hook: hook, node: 0, port: 0)
        }
        let map = try BPFMap.openPinned(path)
        panels[hook] = map
        return map
    }

    // MARK: - Netdevs

    private func entryObject(hook: Hook, node: UInt32, port: Int) throws -> BPFObject {
        let name = "netdev_\(hook.rawValue)"
        let object = try BPFObject(path: try compiler.compile(file: "\(bpfDirectory)/core/\(name).c", name: name), pinRoot: bpffsRoot)
        try object.setSection(".rodata.pcn", to: pcn_netdev_config(target_node: node, target_port: UInt32(port)))
        do {
            try object.load()
        } catch {
            throw DatapathError("the netdev entry program was rejected: \(error.summary)")
        }
        return object
    }

    private func reconcileNetdevs() throws {
        let wanted = topology.netdevsInUse()
        for device in wanted.sorted() {
            let ifindex = Int32(if_nametoindex(device))
            guard ifindex > 0 else { continue }
            let attached = netdevs[device] ?? LoadedNetdev(ifindex: ifindex)
            netdevs[device] = attached
            let entries = topology.entries(ofNetdev: device)
            let directory = "\(bpffsRoot)/netdevs/\(device)"
            for path in ["\(bpffsRoot)/netdevs", directory] { mkdir(path, 0o700) }

            // Ingress: TC ingress or XDP, as the netdev's users are.
            if case .node(let node, let port) = entries.ingress {
                let type = entries.ingressType
                let fingerprint = "\(type.rawValue)/\(node)/\(port)"
                if attached.ingress?.fingerprint != fingerprint {
                    let object = try entryObject(hook: type.hook, node: node, port: port)
                    let fd = try object.programFD("pcn_netdev_entry")
                    if let old = attached.ingress, old.type != type { try detachIngress(ifindex, old.type) }
                    switch type {
                    case .tc: try TrafficControl.attach(ifindex: ifindex, direction: .ingress, programFD: fd)
                    case .xdpSKB: try XDPAttachment.attach(ifindex: ifindex, programFD: fd, mode: .generic)
                    case .xdpDRV: try XDPAttachment.attach(ifindex: ifindex, programFD: fd, mode: .driver)
                    }
                    try object.pinProgram("pcn_netdev_entry", at: directory + "/ingress")
                    attached.ingress = .init(fingerprint: fingerprint, object: object, type: type)
                }
            } else if let old = attached.ingress {
                try detachIngress(ifindex, old.type)
                unlink(directory + "/ingress")
                attached.ingress = nil
            }

            // Egress: the TC egress hook sees what the cubes redirect there and what the stack sends.
            if case .node(let node, let port) = entries.egress {
                let fingerprint = "egress/\(node)/\(port)"
                if attached.egress?.fingerprint != fingerprint {
                    let object = try entryObject(hook: .tc, node: node, port: port)
                    try TrafficControl.attach(ifindex: ifindex, direction: .egress, programFD: try object.programFD("pcn_netdev_entry"))
                    try object.pinProgram("pcn_netdev_entry", at: directory + "/egress")
                    attached.egress = .init(fingerprint: fingerprint, object: object, type: .tc)
                }
            } else if attached.egress != nil {
                try? TrafficControl.detach(ifindex: ifindex, direction: .egress)
                unlink(directory + "/egress")
                attached.egress = nil
            }
        }
        for (device, attached) in netdevs where !wanted.contains(device) {
            if let old = attached.ingress { try? detachIngress(attached.ifindex, old.type) }
            if attached.egress != nil { try? TrafficControl.detach(ifindex: attached.ifindex, direction: .egress) }
            removePins(ofNetdev: device)
            netdevs.removeValue(forKey: device)
        }
    }

    private func detachIngress(_ ifindex: Int32, _ type: CubeType) throws {
        switch type {
        case .tc: try TrafficControl.detach(ifindex: ifindex, direction: .ingress)
        case .xdpSKB: try XDPAttachment.detach(ifindex: ifindex, mode: .generic)
        case .xdpDRV: try XDPAttachment.detach(ifindex: ifindex, mode: .driver)
        }
    }

    // MARK: - Pins

    func removePins(ofNetdev device: String) {
        let directory = "\(bpffsRoot)/netdevs/\(device)"
        unlink(directory + "/ingress")
        unlink(directory + "/egress")
        rmdir(directory)
    }

    func removePins(ofCube name: String) {
        try? FileManager.default.removeItem(atPath: "\(bpffsRoot)/cubes/\(name)")
    }
}

import Foundation
import Logging

/// The CNI operations for one invocation.
struct Plugin {
    let invocation: Invocation
    let config: NetworkConfig
    let logger: Logger

    private var store: AttachmentStore { AttachmentStore(dataDir: config.dataDir, network: config.name) }
    private var ipam: Delegate { Delegate(type: config.ipamType, invocation: invocation) }
    private var key: String { Attachment.key(network: config.name, containerID: invocation.containerID, ifname: invocation.ifname) }

    // MARK: ADD

    /// Leases an address, makes the veth, configures the pod's end (a /32 with the gateway as a
    /// link route and the default route: every frame goes to the node's router, through the lbrp)
    /// and gives the lbrp a FRONTEND port for it. Anything that fails undoes what came before.
    func add() throws -> [String: Any] {
        let host = Attachment.hostInterface(key: key), port = Attachment.portName(key: key)
        let netns = invocation.netns, ifname = invocation.ifname
        guard Links.isNetworkNamespace(netns) else {
            throw CNIError(.unknownContainer, "CNI_NETNS \(netns) is not a network namespace")
        }
        if try Links.link(ifname, netns: netns) != nil {
            throw CNIError(.interfaceExists, "\(ifname) already exists in \(netns) (ADD twice without a DEL?)")
        }
        if try Links.link(host) != nil {
            throw CNIError(.interfaceExists, "the host interface \(host) of container \(invocation.containerID), \(ifname) already exists (ADD twice without a DEL?)")
        }
        let api = try PodPorts(config)
        guard let cube = try api.cube() else { throw api.missingCube() }
        if let existing = try api.port(port) {
            throw CNIError(.interfaceExists, "lbrp \(config.lbrp) already has the port \(port) of this attachment (peer \(existing["peer"] as? String ?? "none"))")
        }

        let ipam = self.ipam
        let ipamVersion = try ipam.version(for: config)
        let leased = CNIResult(json: try ipam.call(.add, config.forDelegate(version: ipamVersion), environment: [:]) ?? [:])
        var undo: [(String, () throws -> Void)] = [("release the address", { try ipam.call(.del, config.forDelegate(version: ipamVersion), environment: [:]) })]
        do {
            guard let lease = leased.ips.first(where: { ($0["address"] as? String)?.contains(".") == true }),
                  let address = lease["address"] as? String, let podIP = address.split(separator: "/").first.map(String.init) else {
                throw CNIError(.delegateFailure, "the IPAM plugin \(config.ipamType) gave no IPv4 address (pcn-cni's pods are IPv4)")
            }
            guard let gateway = lease["gateway"] as? String else {
                throw CNIError(.delegateFailure, "the IPAM plugin \(config.ipamType) gave no gateway for \(address) (the node router's address on the pods' side)")
            }
            let mtu = config.mtu.map { ["mtu", String($0)] } ?? []
            try Links.ip(["link", "add", host] + mtu + ["type", "veth", "peer", "name", ifname] + mtu + ["netns", netns])
            undo.append(("delete \(host)", { try Links.delete(host) }))
            try Links.ip(["link", "set", host, "up"])
            var commands = ["addr add \(podIP)/32 dev \(ifname)", "link set \(ifname) up",
                            "route add \(gateway) dev \(ifname) scope link", "route add default via \(gateway) dev \(ifname)"]
            for route in leased.routes {
                guard let destination = route["dst"] as? String, destination != "0.0.0.0/0", destination.contains(".") else { continue }
                commands.append("route add \(destination) via \(route["gw"] as? String ?? gateway) dev \(ifname)")
            }
            try Links.ip(["-batch", "-"], netns: netns, input: commands.joined(separator: "\n") + "\n")
            if cube["type"] as? String != "TC" { try Links.disableTxChecksum(ifname, netns: netns) }
            guard let podLink = try Links.link(ifname, netns: netns), let hostLink = try Links.link(host) else {
                throw CNIError(.linkFailure, "the veth \(host) / \(ifname) vanished while it was configured")
            }
            try api.add(port: port, ip: podIP, peer: host)
            undo.append(("delete the lbrp port \(port)", { try api.delete(port: port) }))
            try store.save(Attachment(network: config.name, containerID: invocation.containerID, ifname: ifname, netns: netns,
                                      hostInterface: host, lbrp: config.lbrp, port: port, address: podIP))

            var result = config.prevResult.map { CNIResult(json: $0) } ?? CNIResult()
            result.interfaces.append(["name": host, "mac": hostLink["address"] as? String ?? ""])
            var podInterface: [String: Any] = ["name": ifname, "mac": podLink["address"] as? String ?? "", "sandbox": netns]
            if let linkMTU = podLink["mtu"] as? Int { podInterface["mtu"] = linkMTU }
            result.interfaces.append(podInterface)
            result.ips.append(["address": podIP + "/32", "gateway": gateway, "interface": result.interfaces.count - 1])
            result.routes.append(["dst": "0.0.0.0/0", "gw": gateway])
            result.routes += leased.routes.filter { ($0["dst"] as? String).map { $0 != "0.0.0.0/0" && $0.contains(".") } ?? false }
            for (key, value) in leased.dns { result.dns[key] = value }
            return result.json(version: config.cniVersion)
        } catch {
            for (what, step) in undo.reversed() {
                do { try step() } catch { logger.warning("after a failed ADD, could not \(what): \(error)") }
            }
            throw error
        }
    }

    // MARK: DEL

    /// Removes whatever is left of the attachment; nothing left is success. Works from the names
    /// alone, so no prevResult, a failed ADD or a gone netns change nothing.
    func del() throws {
        let record = store.load(containerID: invocation.containerID, ifname: invocation.ifname, network: config.name)
        let ipam = self.ipam
        let ipamVersion = try ipam.version(for: config)   // a missing IPAM plugin is found before anything goes
        var portsConfig = config
        if let record { portsConfig.lbrp = record.lbrp }
        try PodPorts(portsConfig).delete(port: Attachment.portName(key: key))
        try Links.delete(Attachment.hostInterface(key: key))   // its pod end goes with it
        try ipam.call(.del, config.forDelegate(version: ipamVersion), environment: [:])
        store.remove(containerID: invocation.containerID, ifname: invocation.ifname, network: config.name)
    }

    // MARK: CHECK

    /// Fails if anything ADD made is gone or changed: the pod's interface, its address and default
    /// route, the host end, the lbrp port and its peer, the address lease (the IPAM plugin's CHECK).
    func check() throws {
        guard CNIVersion.atLeast(config.cniVersion, "0.4.0") else {
            throw CNIError(.incompatibleVersion, "CHECK needs cniVersion 0.4.0 or later (the configuration says \(config.cniVersion))")
        }
        guard let previous = config.prevResult else { throw CNIError(.invalidConfig, "CHECK needs prevResult (the result of ADD)") }
        let result = CNIResult(json: previous)
        let netns = invocation.netns, ifname = invocation.ifname
        guard let index = result.interfaceIndex(name: ifname, sandbox: netns) else {
            throw CNIError(.checkFailed, "prevResult has no interface \(ifname) in \(netns)")
        }
        guard let podLink = try Links.link(ifname, netns: netns) else {
            throw CNIError(.checkFailed, "\(ifname) is gone from \(netns)")
        }
        if let mac = result.interfaces[index]["mac"] as? String, !mac.isEmpty, (podLink["address"] as? String)?.lowercased() != mac.lowercased() {
            throw CNIError(.checkFailed, "\(ifname) in \(netns) has the MAC \(podLink["address"] as? String ?? "none"), not \(mac)")
        }
        if let mtu = config.mtu, podLink["mtu"] as? Int != mtu {
            throw CNIError(.checkFailed, "\(ifname) in \(netns) has the MTU \(podLink["mtu"] as? Int ?? 0), not \(mtu)")
        }
        let present = Set(Links.addresses(of: podLink))
        let expected = result.ips.filter { $0["interface"] as? Int == index }.compactMap { $0["address"] as? String }
        for address in expected where !present.contains(address) {
            throw CNIError(.checkFailed, "the address \(address) is missing from \(ifname) in \(netns)")
        }
        if let gateway = result.ips.first(where: { $0["interface"] as? Int == index })?["gateway"] as? String {
            let routes = try Links.ip(["route", "show", "default"], netns: netns)
            guard routes.contains("via \(gateway) dev \(ifname)") else {
                throw CNIError(.checkFailed, "\(netns) has no default route via \(gateway) on \(ifname)")
            }
        }
        let host = Attachment.hostInterface(key: key), port = Attachment.portName(key: key)
        guard try Links.link(host) != nil else { throw CNIError(.checkFailed, "the host interface \(host) is gone") }
        let record = store.load(containerID: invocation.containerID, ifname: ifname, network: config.name)
        var portsConfig = config
        if let record { portsConfig.lbrp = record.lbrp }
        guard let lbrpPort = try PodPorts(portsConfig).port(port) else {
            throw CNIError(.checkFailed, "lbrp \(portsConfig.lbrp) has no port \(port) for this pod")
        }
        guard lbrpPort["peer"] as? String == host else {
            throw CNIError(.checkFailed, "lbrp \(portsConfig.lbrp) port \(port) has the peer '\(lbrpPort["peer"] as? String ?? "")', not \(host)")
        }
        if let podIP = expected.first?.split(separator: "/").first.map(String.init), lbrpPort["ip"] as? String != podIP {
            throw CNIError(.checkFailed, "lbrp \(portsConfig.lbrp) port \(port) has the ip '\(lbrpPort["ip"] as? String ?? "")', not \(podIP)")
        }
        let ipam = self.ipam
        let ipamVersion = try ipam.version(for: config)
        if CNIVersion.atLeast(ipamVersion, "0.4.0") {
            var delegated = config.forDelegate(version: ipamVersion)
            // The IPAM plugin checks its own lease; it is given it as it gave it.
            delegated["prevResult"] = CNIResult(json: previous).json(version: ipamVersion)
            try ipam.call(.check, delegated, environment: [:])
        }
    }

    // MARK: STATUS

    /// Ready when pcn-api answers, pcn-core (behind it) answers, and the lbrp pods attach to exists;
    /// each asked with a short timeout, so a stopped daemon is reported, not waited for.
    func status() throws {
        do {
            let api = try PodPorts(config)
            _ = try api.datapathCubes(timeout: 3)
            guard try api.cube(timeout: 3) != nil else { throw api.missingCube() }
        } catch let error as CNIError where [.apiUnreachable, .apiRefused, .tryAgainLater].contains(error.code) {
            throw CNIError(.notAvailable, "not ready for ADD: \(error.msg)")
        }
        let ipam = self.ipam
        if try ipam.supportedVersions().contains("1.1.0") {
            try ipam.call(.status, config.forDelegate(version: "1.1.0"), environment: [:])
        }
    }

    // MARK: GC

    /// Removes every attachment of this network not in the valid list: its lbrp port, host veth,
    /// lease and record; then lbrp ports of pods whose veth is gone (a record lost). Goes on past
    /// failures and reports them all at the end.
    func gc() throws {
        let valid = Set((config.validAttachments ?? []).map { Attachment.key(network: config.name, containerID: $0.containerID, ifname: $0.ifname) })
        var failures: [String] = []
        let ipam = self.ipam
        let ipamVersions = (try? ipam.supportedVersions()) ?? []
        let api = try PodPorts(config)
        var removed: Set<String> = []
        for record in store.all() {
            let key = Attachment.key(network: record.network, containerID: record.containerID, ifname: record.ifname)
            guard !valid.contains(key) else { continue }
            do {
                var portsConfig = config
                portsConfig.lbrp = record.lbrp
                try PodPorts(portsConfig).delete(port: record.port)
                try Links.delete(record.hostInterface)
                if let version = CNIVersion.highestCommon(ipamVersions, ceiling: config.cniVersion) {
                    try ipam.call(.del, config.forDelegate(version: version),
                                  environment: ["CNI_CONTAINERID": record.containerID, "CNI_IFNAME": record.ifname, "CNI_NETNS": record.netns])
                }
                store.remove(containerID: record.containerID, ifname: record.ifname, network: record.network)
                removed.insert(key)
            } catch {
                failures.append("\(record.containerID)/\(record.ifname): \(error)")
            }
        }
        do {
            for port in try api.ports() {
                guard let name = port["name"] as? String, name.hasPrefix("pod"), name.count == 15 else { continue }
                let key = String(name.dropFirst(3))
                guard !valid.contains(key), !removed.contains(key), try Links.link(Attachment.hostInterface(key: key)) == nil else { continue }
                do { try api.delete(port: name) } catch { failures.append("lbrp port \(name): \(error)") }
            }
        } catch {
            failures.append("lbrp \(config.lbrp)'s ports: \(error)")
        }
        if ipamVersions.contains("1.1.0") {
            do { try ipam.call(.gc, config.forDelegate(version: "1.1.0"), environment: [:]) } catch { failures.append("\(error)") }
        }
        guard failures.isEmpty else {
            throw CNIError(.ioFailure, "GC could not remove everything", details: failures.joined(separator: "; "))
        }
    }
}

import Foundation
import PCNProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Runs iproute2 (and ethtool) for what netlink calls would only repeat: veth pairs, namespaces, addresses.
enum NetworkCommand {
    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        try run(FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip", arguments)
    }

    /// A command inside a network namespace (what has no `ip -n` form, such as ethtool).
    @discardableResult
    static func inNamespace(_ namespace: String, _ command: [String]) throws -> String {
        try ip(["netns", "exec", namespace] + command)
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let why = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw DatapathError("ip \(arguments.joined(separator: " ")): \(why)")
        }
        return String(decoding: printed, as: UTF8.self)
    }
}

/// Shadow namespaces (DESIGN: a shadow cube's ports have twins in `pcn-<cube>`): pcn-core owns the
/// namespaces and veth pairs; the cube's service says what addresses the twins carry.
extension Datapath {
    /// Makes the namespaces and twins match the topology: created where missing (also when someone
    /// deleted them), removed with their ports and cubes. Runs before the programs are built, which
    /// need the twins' ifindexes.
    func reconcileShadows() throws {
        var wanted: [String: [String: String]] = [:] // cube → twin → port
        for cube in topology.cubes.values where cube.shadow == true {
            wanted[cube.name] = Dictionary(uniqueKeysWithValues: cube.ports.map { (Topology.twinName(cube: cube.name, port: $0.name), $0.name) })
        }
        for (cube, twins) in wanted.sorted(by: { $0.key < $1.key }) {
            let namespace = Topology.shadowNamespace(cube)
            if !FileManager.default.fileExists(atPath: "/run/netns/\(namespace)") {
                try NetworkCommand.ip(["netns", "add", namespace])
                try NetworkCommand.ip(["-n", namespace, "link", "set", "lo", "up"])
                logger.info("created shadow namespace", metadata: ["cube": "\(cube)", "namespace": "\(namespace)"])
            }
            for (twin, port) in twins.sorted(by: { $0.key < $1.key }) where if_nametoindex(twin) == 0 {
                try NetworkCommand.ip(["link", "add", twin, "type", "veth", "peer", "name", port, "netns", namespace])
                // The host end carries only what the cube sends the namespace: no host traffic of its own.
                try? "1".write(toFile: "/proc/sys/net/ipv6/conf/\(twin)/disable_ipv6", atomically: false, encoding: .utf8)
                try NetworkCommand.ip(["link", "set", twin, "up"])
                try NetworkCommand.ip(["-n", namespace, "link", "set", port, "up"])
                // What the namespace sends leaves through a real port as it is: checksums must be
                // complete (veth leaves them to the device), and GRO lets XDP redirects in.
                _ = try? NetworkCommand.inNamespace(namespace, ["ethtool", "-K", port, "tx", "off", "gro", "on"])
                if let interface = topology.cubes[cube]?.shadowInterfaces?[port] {
                    try setUp(interface, namespace: namespace)
                }
            }
            shadows[cube, default: []].formUnion(twins.keys)
        }
        for (cube, twins) in shadows {
            guard let keep = wanted[cube] else {
                // Deleting the namespace takes its veth ends along, unless a process still runs in it.
                _ = try? NetworkCommand.ip(["netns", "del", Topology.shadowNamespace(cube)])
                for twin in twins where if_nametoindex(twin) > 0 { _ = try? NetworkCommand.ip(["link", "del", twin]) }
                shadows[cube] = nil
                logger.info("removed shadow namespace", metadata: ["cube": "\(cube)"])
                continue
            }
            for twin in twins where keep[twin] == nil {
                _ = try? NetworkCommand.ip(["link", "del", twin])
                shadows[cube]!.remove(twin)
            }
        }
    }

    /// Gives a shadow cube's twins the MACs and exactly the addresses the service says.
    public func configureShadow(_ request: ShadowConfigure) throws {
        let cube = try topology.standard(request.cube)
        guard cube.shadow == true else { throw DatapathError("cube '\(request.cube)' has no shadow namespace (it was not created with shadow=true)") }
        let namespace = Topology.shadowNamespace(cube.name)
        for interface in request.interfaces {
            guard cube.port(interface.name) != nil else {
                throw DatapathError("cube '\(cube.name)' has no port '\(interface.name)'", path: "ports[name='\(interface.name)']")
            }
            if let mac = interface.mac {
                guard MACAddressText.isValid(mac) else {
                    throw DatapathError("'\(mac)' is not a MAC address", path: "ports[name='\(interface.name)']/mac")
                }
            }
            for address in interface.addresses where !IPv4PrefixText.isValid(address) {
                throw DatapathError("'\(address)' is not an IPv4 address with a prefix length", path: "ports[name='\(interface.name)']")
            }
        }
        for interface in request.interfaces { try setUp(interface, namespace: namespace) }
        var kept = cube.shadowInterfaces ?? [:]
        for interface in request.interfaces { kept[interface.name] = interface }
        topology.cubes[cube.name]!.shadowInterfaces = kept.filter { cube.port($0.key) != nil }
        try saveRegistry()
    }

    private func setUp(_ interface: ShadowConfigure.Interface, namespace: String) throws {
        if let mac = interface.mac {
            try NetworkCommand.ip(["-n", namespace, "link", "set", "dev", interface.name, "address", mac.lowercased()])
        }
        let current = try shadowAddresses(namespace: namespace, interface: interface.name)
        for address in current where !interface.addresses.contains(address) {
            try NetworkCommand.ip(["-n", namespace, "addr", "del", address, "dev", interface.name])
        }
        for address in interface.addresses where !current.contains(address) {
            try NetworkCommand.ip(["-n", namespace, "addr", "add", address, "dev", interface.name])
        }
    }

    /// The IPv4 addresses of an interface in a namespace, as `a.b.c.d/len`.
    private func shadowAddresses(namespace: String, interface: String) throws -> [String] {
        let text = try NetworkCommand.ip(["-n", namespace, "-j", "-4", "addr", "show", "dev", interface])
        guard let links = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else { return [] }
        return links.flatMap { link in
            (link["addr_info"] as? [[String: Any]] ?? []).compactMap { info in
                guard let local = info["local"] as? String, let length = info["prefixlen"] as? Int else { return nil }
                return "\(local)/\(length)"
            }
        }
    }
}

/// Text forms the bus carries, checked before they reach a command line.
enum MACAddressText {
    static func isValid(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy { $0.isASCII && $0.isHexDigit } }
    }
}

enum IPv4PrefixText {
    static func isValid(_ text: String) -> Bool {
        let halves = text.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, let length = Int(halves[1]), (0...32).contains(length) else { return false }
        let octets = halves[0].split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy { $0.isASCII && $0.isNumber } && Int($0).map { $0 <= 255 } == true }
    }
}

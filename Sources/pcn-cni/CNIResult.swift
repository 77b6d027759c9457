import Foundation

/// An ADD result (or a prevResult, or an IPAM plugin's answer), kept as the objects it holds so that
/// what other plugins put there passes through; written out in the shape of a given version.
struct CNIResult {
    var interfaces: [[String: Any]] = []
    var ips: [[String: Any]] = []
    var routes: [[String: Any]] = []
    var dns: [String: Any] = [:]

    init() {}

    init(json: [String: Any]) {
        interfaces = json["interfaces"] as? [[String: Any]] ?? []
        ips = json["ips"] as? [[String: Any]] ?? []
        routes = json["routes"] as? [[String: Any]] ?? []
        dns = json["dns"] as? [String: Any] ?? [:]
    }

    /// 0.3.x and 0.4.0 carry `ips[].version`; 1.0.0 dropped it. `interfaces[].mtu`, `socketPath`,
    /// `pciID` and the routes' `mtu`, `advmss`, `priority`, `table`, `scope` came with 1.1.0.
    func json(version: String) -> [String: Any] {
        let modern = CNIVersion.atLeast(version, "1.0.0"), v110 = CNIVersion.atLeast(version, "1.1.0")
        let shapedIPs = ips.map { ip -> [String: Any] in
            var ip = ip
            if modern {
                ip.removeValue(forKey: "version")
            } else if ip["version"] == nil, let address = ip["address"] as? String {
                ip["version"] = address.contains(":") ? "6" : "4"
            }
            return ip
        }
        let shapedInterfaces = interfaces.map { interface -> [String: Any] in
            var interface = interface
            if !v110 { ["mtu", "socketPath", "pciID"].forEach { interface.removeValue(forKey: $0) } }
            return interface
        }
        let shapedRoutes = routes.map { route -> [String: Any] in
            var route = route
            if !v110 { ["mtu", "advmss", "priority", "table", "scope"].forEach { route.removeValue(forKey: $0) } }
            return route
        }
        var object: [String: Any] = ["cniVersion": version, "ips": shapedIPs]
        if !shapedInterfaces.isEmpty { object["interfaces"] = shapedInterfaces }
        if !shapedRoutes.isEmpty { object["routes"] = shapedRoutes }
        object["dns"] = dns
        return object
    }

    /// The index of the interface `name` in `sandbox`, if the result holds it.
    func interfaceIndex(name: String, sandbox: String) -> Int? {
        interfaces.firstIndex { $0["name"] as? String == name && $0["sandbox"] as? String == sandbox }
    }
}

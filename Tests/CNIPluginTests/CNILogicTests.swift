@testable import pcn_cni
import Foundation
import XCTest

/// pcn-cni's pure parts: versions, the result's shape per version, configuration checks, names.
final class CNILogicTests: XCTestCase {
    func testVersionsCompareAndNegotiate() {
        XCTAssertTrue(CNIVersion.less("0.4.0", "1.0.0"))
        XCTAssertTrue(CNIVersion.less("0.3.1", "0.4.0"))
        XCTAssertFalse(CNIVersion.less("1.1.0", "1.0.0"))
        XCTAssertNil(CNIVersion.parse("1.0"))
        XCTAssertNil(CNIVersion.parse("1.x.0"))
        // Debian's host-local speaks up to 1.0.0: a 1.1.0 configuration talks to it in 1.0.0.
        let hostLocal = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
        XCTAssertEqual(CNIVersion.highestCommon(hostLocal, ceiling: "1.1.0"), "1.0.0")
        XCTAssertEqual(CNIVersion.highestCommon(hostLocal, ceiling: "0.4.0"), "0.4.0")
        XCTAssertNil(CNIVersion.highestCommon(["0.1.0"], ceiling: "1.1.0"))
    }

    func testResultShapePerVersion() {
        var result = CNIResult()
        result.interfaces = [["name": "pcn1", "mac": "02:00:00:00:00:01"],
                             ["name": "eth0", "mac": "02:00:00:00:00:02", "mtu": 1450, "sandbox": "/run/netns/p"]]
        result.ips = [["address": "10.1.0.5/32", "gateway": "10.1.0.254", "interface": 1]]
        result.routes = [["dst": "0.0.0.0/0", "gw": "10.1.0.254", "priority": 5]]
        let old = result.json(version: "0.4.0")
        XCTAssertEqual((old["ips"] as? [[String: Any]])?.first?["version"] as? String, "4")
        XCTAssertNil((old["interfaces"] as? [[String: Any]])?.last?["mtu"])
        XCTAssertNil((old["routes"] as? [[String: Any]])?.first?["priority"])
        let v100 = result.json(version: "1.0.0")
        XCTAssertNil((v100["ips"] as? [[String: Any]])?.first?["version"])
        XCTAssertNil((v100["interfaces"] as? [[String: Any]])?.last?["mtu"])
        let v110 = result.json(version: "1.1.0")
        XCTAssertEqual((v110["interfaces"] as? [[String: Any]])?.last?["mtu"] as? Int, 1450)
        XCTAssertEqual((v110["routes"] as? [[String: Any]])?.first?["priority"] as? Int, 5)
        XCTAssertEqual(v110["cniVersion"] as? String, "1.1.0")
        XCTAssertEqual(result.interfaceIndex(name: "eth0", sandbox: "/run/netns/p"), 1)
        XCTAssertNil(result.interfaceIndex(name: "eth0", sandbox: "/run/netns/q"))
        // An IPv6 address read from an older result keeps its family.
        var six = CNIResult()
        six.ips = [["address": "fd00::5/64"]]
        XCTAssertEqual((six.json(version: "0.3.1")["ips"] as? [[String: Any]])?.first?["version"] as? String, "6")
    }

    func testConfigurationChecksNameTheKey() throws {
        func parse(_ object: [String: Any], _ command: Invocation.Command = .add) throws -> NetworkConfig {
            try NetworkConfig.parse(try JSONSerialization.data(withJSONObject: object), command: command)
        }
        let base: [String: Any] = ["cniVersion": "1.1.0", "name": "net", "type": "pcn-cni", "ipam": ["type": "host-local"]]
        let config = try parse(base)
        XCTAssertEqual(config.api, "http://127.0.0.1:9000")
        XCTAssertEqual(config.lbrp, "ilb0")
        XCTAssertEqual(config.ipamType, "host-local")
        var slash = base
        slash["api"] = "http://10.0.0.1:9000/"
        XCTAssertEqual(try parse(slash).api, "http://10.0.0.1:9000")
        for (key, value) in [("mtu", true as Any), ("mtu", 1.5 as Any), ("ipam", ["type": "../x"] as Any), ("prevResult", "x" as Any)] {
            var bad = base
            bad[key] = value
            XCTAssertThrowsError(try parse(bad), key) { XCTAssertEqual(($0 as? CNIError)?.code, .invalidConfig, "\(key): \($0)") }
        }
        // GC needs its list, under either key libcni writes.
        XCTAssertThrowsError(try parse(base, .gc)) { XCTAssertTrue("\($0)".contains("valid-attachments")) }
        var gc = base
        gc["cni.dev/attachments"] = [["containerID": "a", "ifname": "eth0"]]
        XCTAssertEqual(try parse(gc, .gc).validAttachments?.first?.containerID, "a")
        gc["cni.dev/valid-attachments"] = [["containerID": 5]]
        XCTAssertThrowsError(try parse(gc, .gc)) { XCTAssertTrue("\($0)".contains("valid-attachments[0]")) }
        // What a delegate is given: the same object at its version, prevResult shaped for it.
        var chained = base
        chained["prevResult"] = ["cniVersion": "1.1.0", "ips": [["address": "10.0.0.1/32"]]]
        chained["extra"] = ["kept": true]
        let delegated = try parse(chained).forDelegate(version: "0.4.0")
        XCTAssertEqual(delegated["cniVersion"] as? String, "0.4.0")
        XCTAssertNotNil(delegated["extra"])
        XCTAssertEqual(((delegated["prevResult"] as? [String: Any])?["ips"] as? [[String: Any]])?.first?["version"] as? String, "4")
    }

    func testEnvironmentChecks() throws {
        let base = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/a:/b"]
        let invocation = try Invocation.parse(base.merging(["CNI_ARGS": "K8S_POD_NAME=p;IgnoreUnknown=1"]) { $1 })
        XCTAssertEqual(invocation.path, ["/a", "/b"])
        XCTAssertEqual(invocation.args["K8S_POD_NAME"], "p")
        XCTAssertThrowsError(try Invocation.parse(base.merging(["CNI_ARGS": "novalue"]) { $1 })) { XCTAssertTrue("\($0)".contains("CNI_ARGS")) }
        XCTAssertThrowsError(try Invocation.parse(base.merging(["CNI_IFNAME": "a/b"]) { $1 })) { XCTAssertEqual(($0 as? CNIError)?.code, .invalidEnvironment) }
        // VERSION needs nothing else; GC only CNI_PATH.
        XCTAssertNoThrow(try Invocation.parse(["CNI_COMMAND": "VERSION"]))
        XCTAssertThrowsError(try Invocation.parse(["CNI_COMMAND": "GC"])) { XCTAssertTrue("\($0)".contains("CNI_PATH")) }
    }

    func testNamesAreStableAndFitInterfaceNames() {
        let key = Attachment.key(network: "net", containerID: "0123456789abcdef", ifname: "eth0")
        XCTAssertEqual(key.count, 12)
        XCTAssertEqual(key, Attachment.key(network: "net", containerID: "0123456789abcdef", ifname: "eth0"))
        XCTAssertNotEqual(key, Attachment.key(network: "net", containerID: "0123456789abcdef", ifname: "eth1"))
        XCTAssertNotEqual(key, Attachment.key(network: "other", containerID: "0123456789abcdef", ifname: "eth0"))
        XCTAssertEqual(Attachment.hostInterface(key: key).utf8.count, 15)
        XCTAssertNil(Invocation.interfaceNameProblem(Attachment.hostInterface(key: key)))
    }
}

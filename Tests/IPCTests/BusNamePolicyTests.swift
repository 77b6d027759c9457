import IPC
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Which peer may register which name, as pure logic.
final class BusNamePolicyTests: XCTestCase {
    private let policy = BusNamePolicy(hubUID: 0)
    private let dead: Int32 = 0x3fff_fff0 // no such pid

    func testDaemonNamesNeedRootTheHubsUserOrTheDaemonsUnit() {
        let pcn = BusPeer(pid: getpid(), uid: 998, unit: nil)
        XCTAssertNotNil(policy.refusal(name: "api", peer: pcn, holder: nil))
        XCTAssertNotNil(policy.refusal(name: "cube-host/router", peer: pcn, holder: nil))
        XCTAssertNil(policy.refusal(name: "probe-x", peer: pcn, holder: nil), "an ordinary name is anyone's")
        let router = BusPeer(pid: getpid(), uid: 998, unit: "cube-host@router.service")
        XCTAssertNil(policy.refusal(name: "cube-host/router", peer: router, holder: nil))
        XCTAssertNotNil(policy.refusal(name: "cube-host/lbrp", peer: router, holder: nil), "another service's name")
        XCTAssertNotNil(policy.refusal(name: "api", peer: router, holder: nil))
        XCTAssertNil(policy.refusal(name: "api", peer: BusPeer(pid: getpid(), uid: 998, unit: "pcn-api.service"), holder: nil))
        XCTAssertNil(policy.refusal(name: "logd", peer: BusPeer(pid: getpid(), uid: 0, unit: nil), holder: nil), "root")
        XCTAssertNotNil(policy.refusal(name: "core", peer: BusPeer(pid: getpid(), uid: 0, unit: nil), holder: nil), "the hub's own")
        XCTAssertEqual(BusNamePolicy.unit(for: "cube-host/router"), "cube-host@router.service")
    }

    func testALiveHolderKeepsItsName() {
        let root = BusPeer(pid: 1, uid: 0, unit: nil)
        XCTAssertNotNil(policy.refusal(name: "api", peer: BusPeer(pid: getpid(), uid: 0, unit: nil), holder: root), "pid 1 runs")
        XCTAssertNil(policy.refusal(name: "api", peer: BusPeer(pid: getpid(), uid: 0, unit: nil), holder: BusPeer(pid: dead, uid: 0, unit: nil)))
        XCTAssertNil(policy.refusal(name: "api", peer: BusPeer(pid: getpid(), uid: 0, unit: nil), holder: BusPeer(pid: getpid(), uid: 0, unit: nil)),
                     "the same process reconnecting")
    }
}

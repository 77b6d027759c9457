import BPFKit
import CBPF
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class BPFMapTests: XCTestCase {
    func testCreateUpdateLookupDelete() throws {
        let map = try BPFMap.create(type: BPF_MAP_TYPE_HASH, name: "pcn_kit_test", keySize: 4, valueSize: 8, maxEntries: 16)
        XCTAssertEqual(map.name, "pcn_kit_test")
        XCTAssertEqual(map.keySize, 4)
        XCTAssertEqual(map.valueSize, 8)
        XCTAssertNil(try map.lookup(UInt32(1), as: UInt64.self))
        try map.update(UInt32(1), UInt64(99))
        XCTAssertEqual(try map.lookup(UInt32(1), as: UInt64.self), 99)
        try map.delete(UInt32(1))
        XCTAssertNil(try map.lookup(UInt32(1), as: UInt64.self))
    }

    func testWrongSizesAreErrorsNotCorruption() throws {
        let map = try BPFMap.create(type: BPF_MAP_TYPE_ARRAY, name: "pcn_kit_sizes", keySize: 4, valueSize: 8, maxEntries: 2)
        XCTAssertThrowsError(try map.update(UInt64(0), UInt64(1))) { error in
            XCTAssertTrue("\(error)".contains("key 8/4"), "\(error)")
        }
        XCTAssertThrowsError(try map.lookup(UInt32(0), as: UInt32.self))
        XCTAssertThrowsError(try map.update(UInt32(5), UInt64(1))) { error in
            XCTAssertEqual((error as? BPFError)?.errno, E2BIG)
        }
    }

    func testPinAndReopen() throws {
        let root = "/sys/fs/bpf/pcntest-kit-\(getpid())"
        XCTAssertEqual(mkdir(root, 0o700), 0, "bpffs must be mounted at /sys/fs/bpf")
        defer {
            unlink(root + "/counts")
            rmdir(root)
        }
        let map = try BPFMap.create(type: BPF_MAP_TYPE_ARRAY, name: "pcn_kit_pin", keySize: 4, valueSize: 4, maxEntries: 1)
        try map.update(UInt32(0), UInt32(7))
        try map.pin(at: root + "/counts")
        let reopened = try BPFMap.openPinned(root + "/counts")
        XCTAssertEqual(reopened.id, map.id)
        XCTAssertEqual(try reopened.lookup(UInt32(0), as: UInt32.self), 7)
        XCTAssertThrowsError(try BPFMap.openPinned(root + "/missing")) { error in
            XCTAssertEqual((error as? BPFError)?.errno, ENOENT)
        }
    }

    func testAdoptingSomethingThatIsNotAMapFails() throws {
        let fd = open("/dev/null", O_RDONLY)
        XCTAssertThrowsError(try BPFMap(adopting: fd)) { error in
            XCTAssertTrue("\(error)".contains("not a BPF map"), "\(error)")
        }
    }
}

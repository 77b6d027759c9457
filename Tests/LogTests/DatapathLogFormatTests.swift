import PCNProtocol
import XCTest

final class DatapathLogFormatTests: XCTestCase {
    func testAddressesAndPortsInNetworkOrder() {
        // 10.0.1.2 as the IP header holds it, read as a little-endian u32.
        let ip: UInt64 = 0x0201000a
        // 02:42:ac:11:00:05 as pcn_mac() leaves it in a u64.
        let mac: UInt64 = 0x050011ac4202
        // port 8080 (0x1f90) as the TCP header holds it, read as a little-endian u16.
        let port: UInt64 = 0x901f
        XCTAssertEqual(DatapathLogFormat.render("src %I mac %M port %P", [ip, mac, port]),
                       "src 10.0.1.2 mac 02:42:ac:11:00:05 port 8080")
    }

    func testIntegerConversions() {
        XCTAssertEqual(DatapathLogFormat.render("%d %i %u %x %X %o %c %%", [UInt64(bitPattern: -5), 7, 42, 255, 255, 8, 65]),
                       "-5 7 42 ff FF 10 A %")
        XCTAssertEqual(DatapathLogFormat.render("[%5d] [%-4u] [%04x] [%#x] [%+d] [%.3u] [%lu] [%llx]", [42, 7, 0xab, 16, 3, 5, 9, 10]),
                       "[   42] [7   ] [00ab] [0x10] [+3] [005] [9] [a]")
    }

    func testMissingArgumentsAndUnknownConversionsShow() {
        XCTAssertEqual(DatapathLogFormat.render("a %d b %d", [1]), "a 1 b %d?")
        XCTAssertEqual(DatapathLogFormat.render("%s", [1]), "%s?")
        XCTAssertEqual(DatapathLogFormat.render("end %", []), "end %?")
    }
}

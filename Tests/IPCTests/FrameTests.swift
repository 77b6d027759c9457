import IPC
import XCTest

final class FrameTests: XCTestCase {
    func testRoundTrip() throws {
        let frame = Frame(kind: .request, id: 0xDEAD_BEEF_0102, source: "api", destination: "cube-host/router",
                          method: "config.apply", payload: Array(0..<200).map { UInt8($0) })
        let bytes = try frame.encode()
        XCTAssertEqual(bytes.count, frame.encodedSize)
        XCTAssertEqual(try Frame.decode(bytes), frame)
    }

    func testEmptyPayloadAndNames() throws {
        let frame = Frame(kind: .event, id: 7, destination: "*")
        XCTAssertEqual(try Frame.decode(try frame.encode()), frame)
    }

    func testTruncatedHeader() {
        XCTAssertThrowsError(try Frame.decode([1, 2, 3])) { XCTAssertEqual($0 as? FrameError, .truncatedHeader(received: 3)) }
    }

    func testWrongVersionUnknownKindReserved() throws {
        var bytes = try Frame(kind: .event, id: 1, destination: "x").encode()
        bytes[0] = 9
        XCTAssertThrowsError(try Frame.decode(bytes)) { XCTAssertEqual($0 as? FrameError, .wrongVersion(9)) }
        bytes[0] = FrameHeader.version
        bytes[1] = 77
        XCTAssertThrowsError(try Frame.decode(bytes)) { XCTAssertEqual($0 as? FrameError, .unknownKind(77)) }
        bytes[1] = FrameKind.event.rawValue
        bytes[6] = 1
        XCTAssertThrowsError(try Frame.decode(bytes)) { XCTAssertEqual($0 as? FrameError, .reservedBitsSet) }
    }

    func testLengthMismatchBothWays() throws {
        let bytes = try Frame(kind: .event, id: 1, destination: "x", payload: [1, 2, 3]).encode()
        XCTAssertThrowsError(try Frame.decode(Array(bytes.dropLast()))) {
            XCTAssertEqual($0 as? FrameError, .lengthMismatch(declared: bytes.count, received: bytes.count - 1))
        }
        XCTAssertThrowsError(try Frame.decode(bytes + [0])) {
            XCTAssertEqual($0 as? FrameError, .lengthMismatch(declared: bytes.count, received: bytes.count + 1))
        }
    }

    func testOversizedPayloadIsRefusedOnBothSides() throws {
        let big = Frame(kind: .event, id: 1, destination: "x", payload: [UInt8](repeating: 0, count: FrameHeader.maxPayload + 1))
        XCTAssertThrowsError(try big.encode()) { XCTAssertEqual($0 as? FrameError, .oversized(limit: FrameHeader.maxFrameSize)) }
        var header = try Frame(kind: .event, id: 1, destination: "x").encode()
        let declared = UInt32(FrameHeader.maxPayload + 1).littleEndian
        withUnsafeBytes(of: declared) { header.replaceSubrange(8..<12, with: $0) }
        XCTAssertThrowsError(try Frame.decode(header)) { XCTAssertEqual($0 as? FrameError, .oversized(limit: FrameHeader.maxFrameSize)) }
    }

    func testInvalidNames() throws {
        XCTAssertThrowsError(try Frame.decode(try Frame(kind: .event, id: 1, destination: "bad name").encode())) {
            XCTAssertEqual($0 as? FrameError, .invalidName(field: "destination"))
        }
        let long = String(repeating: "a", count: FrameHeader.maxNameLength + 1)
        XCTAssertThrowsError(try Frame(kind: .event, id: 1, destination: long).encode()) {
            XCTAssertEqual($0 as? FrameError, .nameTooLong(field: "destination", length: long.count))
        }
    }

    func testRandomBytesNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        var rejected = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0..<300, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if count > 0 && Bool.random() { bytes[0] = FrameHeader.version }
            if (try? Frame.decode(bytes)) == nil { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 19_000)
    }
}

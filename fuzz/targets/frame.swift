// libFuzzer target: the bus frame decoder (Sources/IPC/Frame.swift). Whatever the bytes, decoding
// returns a frame or a FrameError, never crashes; a decoded frame encodes back to a frame that
// decodes to itself.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let frame = try? Frame.decode(bytes) else { return 0 }
    guard let encoded = try? frame.encode() else { return 0 }
    guard let again = try? Frame.decode(encoded), again == frame else { fatalError("a decoded frame does not survive encode and decode") }
    return 0
}

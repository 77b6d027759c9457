import Foundation

// libFuzzer target: JSONText, the JSON writer every component answers with. Any JSON that
// Foundation reads is written back as JSON that reads as the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Data(bytes: data, count: size)
    guard let value = try? JSONSerialization.jsonObject(with: input, options: [.fragmentsAllowed]) else { return 0 }
    guard let written = try? JSONText.data(value) else { fatalError("JSONText cannot write what JSONSerialization read") }
    guard let back = try? JSONSerialization.jsonObject(with: written, options: [.fragmentsAllowed]), JSONText.equal(value, back) else {
        fatalError("JSONText wrote \(String(decoding: written, as: UTF8.self)) for \(String(decoding: input, as: UTF8.self))")
    }
    return 0
}

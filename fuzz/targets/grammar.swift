// libFuzzer target: pcnctl's grammar (Sources/pcnctl/Grammar.swift). Words (the input split at NUL
// bytes) become one REST request or a CommandFailure with a message, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGrammar(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let words = Array(UnsafeBufferPointer(start: data, count: size)).split(separator: 0, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    do {
        let request = try CommandLineRequest(words: words)
        if request.method.isEmpty { fatalError("no method for \(words)") }
    } catch let failure as CommandFailure {
        if failure.message.isEmpty { fatalError("a refusal without a message for \(words)") }
    } catch {
        fatalError("an error that is not a CommandFailure: \(error)")
    }
    return 0
}

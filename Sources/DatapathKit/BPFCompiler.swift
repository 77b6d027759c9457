import Foundation
import Logging

/// Compiles datapath C with `clang -target bpf`, caching objects by a hash of everything that goes
/// into them (the source, every framework header, the flags and the compiler), so a cube reload or a
/// restart reuses the object instead of compiling again.
public struct BPFCompiler: Sendable {
    public let clang: String
    public let includeDirectory: String
    public let cacheDirectory: String
    let logger: Logger

    public init(clang: String, includeDirectory: String, cacheDirectory: String, logger: Logger) {
        self.clang = clang
        self.includeDirectory = includeDirectory
        self.cacheDirectory = cacheDirectory
        self.logger = logger
    }

    public struct CompileError: Error, CustomStringConvertible {
        let source: String
        let output: String
        public var description: String { "compiling \(source) failed:\n\(output)" }
    }

    private static let flags = ["-O2", "-g", "-Wall", "-Werror=implicit-function-declaration", "-target", "bpf",
                                "-I/usr/include/x86_64-linux-gnu"]

    /// Compiles C source text, returning the path of the object file. `includes` are searched for
    /// `#include "..."` (a service's own headers, next to its source).
    public func compile(sourceText: String, name: String, defines: [String] = [], includes: [String] = []) throws -> String {
        var hasher = FNV1a()
        hasher.add(sourceText)
        hasher.add(clang)
        for flag in Self.flags + defines { hasher.add(flag) }
        for header in headerFiles(in: includeDirectory) + includes.flatMap({ headerFiles(in: $0) }) {
            hasher.add(header)
            hasher.add((try? String(contentsOfFile: header, encoding: .utf8)) ?? "")
        }
        let objectPath = "\(cacheDirectory)/\(name)-\(String(hasher.value, radix: 16)).o"
        if FileManager.default.fileExists(atPath: objectPath) { return objectPath }
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let sourcePath = "\(cacheDirectory)/\(name)-\(String(hasher.value, radix: 16)).c"
        try sourceText.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        let temporary = objectPath + ".tmp\(getpid())"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: clang)
        process.arguments = Self.flags + defines.map { "-D\($0)" } + ["-I", includeDirectory] + includes.flatMap { ["-iquote", $0] } + ["-c", sourcePath, "-o", temporary]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CompileError(source: name, output: String(decoding: output, as: UTF8.self)
                .replacingOccurrences(of: sourcePath, with: name + ".c"))
        }
        guard rename(temporary, objectPath) == 0 else { throw CompileError(source: name, output: "cannot store \(objectPath)") }
        logger.debug("compiled \(name) -> \(objectPath)")
        return objectPath
    }

    /// Compiles a source file; headers next to it are found with `#include "..."`.
    public func compile(file: String, name: String, defines: [String] = []) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CompileError(source: name, output: "cannot read \(file)")
        }
        return try compile(sourceText: text, name: name, defines: defines, includes: [(file as NSString).deletingLastPathComponent])
    }

    private func headerFiles(in directory: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".h") }.sorted().map { "\(directory)/\($0)" }
    }

    /// Finds clang: $PCN_CLANG, else `clang` on PATH.
    public static func locateClang() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["PCN_CLANG"], !explicit.isEmpty { return explicit }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(directory)/clang"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// 64-bit FNV-1a: a stable content hash for the compile cache (not for security).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
        value ^= 0xff
        value = value &* 0x100_0000_01b3
    }
}

import Foundation
import Logging

/// Compiles datapath C with `clang -target bpf`, caching objects by a hash of everything that goes
/// into them (the source, every framework header, the flags and the compiler), so a cube reload or a
/// restart reuses the object instead of compiling again. Code can come from a REST client (dynmon,
/// a reload), so clang runs in a jail (`bpf/core/sandboxed-clang`: its own user, mount, network and
/// pid namespaces; only the framework's, the service's, the kernel's and libbpf's headers visible;
/// CPU, memory and file limits) and its output is cut at 64 KiB.
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

    private static let flags = ["-O2", "-g", "-Wall", "-Werror=implicit-function-declaration", "-target", "bpf"]
    /// Wall-clock limit of one compile (the jail limits CPU time too).
    static let timeout: TimeInterval = 120
    static let longestOutput = 64 << 10

    /// The jail's entry, next to the framework headers.
    var sandbox: String { (includeDirectory as NSString).deletingLastPathComponent + "/core/sandboxed-clang" }

    /// Refuses includes that name a file by an absolute path or climb out with `..`: only the
    /// framework's headers (`<pcn/...>`), the kernel's and libbpf's (`<linux/...>`, `<bpf/...>`) and
    /// the service's own (`"..."`) are there (the jail would not find the others either; this says why).
    static func checkIncludes(_ source: String, name: String) throws {
        for (number, line) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.drop { $0 == " " || $0 == "\t" }
            guard text.hasPrefix("#") else { continue }
            let directive = text.dropFirst().drop { $0 == " " || $0 == "\t" }
            guard directive.hasPrefix("include") || directive.hasPrefix("import") || directive.hasPrefix("embed") else { continue }
            let target = directive.drop { $0.isLetter }.drop { $0 == " " || $0 == "\t" }.dropFirst().prefix { $0 != ">" && $0 != "\"" }
            if target.hasPrefix("/") || target.split(separator: "/").contains("..") {
                throw CompileError(source: name, output: "\(name).c:\(number + 1): #include of '\(target)' is not allowed: only the framework's headers "
                                   + "(<pcn/...>), the kernel's and libbpf's (<linux/...>, <bpf/...>) and the service's own (\"...\") can be included")
            }
        }
    }

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
        try Self.checkIncludes(sourceText, name: name)
        guard includes.count <= 1 else { throw CompileError(source: name, output: "one folder of the service's own headers at most (given \(includes.count))") }
        // The jail sees this folder alone (as /work): the source in, the object out.
        let work = "\(cacheDirectory)/work-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try sourceText.write(toFile: "\(work)/\(name).c", atomically: false, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child", "--",
                             "/bin/bash", sandbox, clang, work, includeDirectory, includes.first ?? "/nonexistent", "--"]
            + Self.flags + defines.map { "-D\($0)" } + ["-c", "/work/\(name).c", "-o", "/work/\(name).o"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = errors
        try process.run()
        let deadline = DispatchWorkItem { [process] in process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.timeout, execute: deadline)
        var output = Data()
        while let chunk = try? errors.fileHandleForReading.read(upToCount: 65536), !chunk.isEmpty {
            if output.count < Self.longestOutput { output += chunk.prefix(Self.longestOutput - output.count) }
        }
        process.waitUntilExit()
        deadline.cancel()
        guard process.terminationStatus == 0, process.terminationReason == .exit else {
            var text = String(decoding: output, as: UTF8.self).replacingOccurrences(of: "/work/\(name).c", with: name + ".c")
            if process.terminationReason == .uncaughtSignal { text += "\nthe compiler was stopped (signal \(process.terminationStatus)): over its time or memory limit" }
            if output.count >= Self.longestOutput { text += "\n(output cut at \(Self.longestOutput) bytes)" }
            throw CompileError(source: name, output: text)
        }
        guard rename("\(work)/\(name).o", objectPath) == 0 else { throw CompileError(source: name, output: "cannot store \(objectPath)") }
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

import CYang
import CYangShims
#if canImport(Glibc)
import Glibc
#endif

/// One validation problem, as libyang reports it: what is wrong and where in the data tree.
public struct YangIssue: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    /// The data path (`/module:container/list[key='v']/leaf`) when libyang names one.
    public let path: String?

    public var description: String { path.map { "\($0): \(message)" } ?? message }
}

/// A libyang context holding the models of the services. Not thread-safe: own one per thread or
/// serialise access (libyang contexts are not shared across threads for writes).
public final class YangContext {
    let context: OpaquePointer

    /// `searchDirectory` is where imported modules (our base groupings) are found.
    public init(searchDirectory: String? = nil) throws {
        // Errors are collected per call and returned to the caller; nothing is printed.
        ly_log_options(UInt32(LY_LOSTORE))
        var created: OpaquePointer?
        // Keep the parsed schema reachable from the compiled one: it has the type names as written.
        let result = ly_ctx_new(searchDirectory, UInt16(LY_CTX_SET_PRIV_PARSED), &created)
        guard result == LY_SUCCESS, let created else {
            throw YangIssue(message: "cannot create a libyang context (error \(result.rawValue))", path: nil)
        }
        context = created
    }

    deinit { ly_ctx_destroy(context) }

    /// Parses and adds a YANG module given as text; returns its name.
    @discardableResult
    public func addModule(yang text: String) throws -> String {
        ly_err_clean(context, nil)
        var module: UnsafeMutablePointer<lys_module>?
        let result = lys_parse_mem(context, text, LYS_IN_YANG, &module)
        guard result == LY_SUCCESS, let module else { throw firstIssue(fallback: "module does not parse") }
        return String(cString: module.pointee.name)
    }

    /// Loads a module by name from the search directory.
    @discardableResult
    public func loadModule(named name: String) throws -> String {
        ly_err_clean(context, nil)
        guard let module = ly_ctx_load_module(context, name, nil, nil) else {
            throw firstIssue(fallback: "module '\(name)' not found")
        }
        return String(cString: module.pointee.name)
    }

    /// Parses RFC 7951 JSON strictly (unknown members are errors) and validates the whole tree.
    public func validate(json: String) throws {
        ly_err_clean(context, nil)
        var tree: UnsafeMutablePointer<lyd_node>?
        let result = lyd_parse_data_mem(context, json, LYD_JSON, UInt32(LYD_PARSE_STRICT), UInt32(LYD_VALIDATE_PRESENT), &tree)
        defer { lyd_free_all(tree) }
        guard result == LY_SUCCESS else { throw firstIssue(fallback: "data does not validate") }
    }

    /// Parses config data strictly, validates the whole tree (must, when, leafref, unique, min/max…)
    /// and returns it as JSON with every default filled in.
    public func normalize(json: String) throws -> String {
        ly_err_clean(context, nil)
        var out: UnsafeMutablePointer<CChar>?
        let result = pcn_ly_normalize(context, json, &out)
        defer { free(out) }
        guard result == 0, let out else { throw firstIssue(fallback: "data does not validate") }
        return String(cString: out)
    }

    private func firstIssue(fallback: String) -> YangIssue {
        guard let item = ly_err_first(context) else { return YangIssue(message: fallback, path: nil) }
        let message = item.pointee.msg.map { String(cString: $0) } ?? fallback
        let path = item.pointee.path.map { String(cString: $0) }
        ly_err_clean(context, nil)
        return YangIssue(message: message, path: path)
    }
}

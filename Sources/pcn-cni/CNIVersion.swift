/// The specification versions pcn-cni speaks, and how they compare.
enum CNIVersion {
    static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    static let latest = "1.1.0"

    /// `a.b.c` as comparable numbers; nil if it is not of that form.
    static func parse(_ text: String) -> [Int]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        return parts.map { $0! }
    }

    static func less(_ a: String, _ b: String) -> Bool {
        guard let x = parse(a), let y = parse(b) else { return a < b }
        return x.lexicographicallyPrecedes(y)
    }

    static func atLeast(_ version: String, _ minimum: String) -> Bool { !less(version, minimum) }

    /// The highest version both sides speak that is not above `ceiling`.
    static func highestCommon(_ theirs: [String], ceiling: String) -> String? {
        supported.filter { theirs.contains($0) && !less(ceiling, $0) }.max(by: less)
    }
}

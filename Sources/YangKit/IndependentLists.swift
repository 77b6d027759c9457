/// The lists of a model whose entries stand alone: no rule of the model relates an entry to its
/// siblings or to anything outside it, so a write of one entry can be validated with that entry
/// and the rest of the tree without the other entries, and give what validating everything gives.
///
/// A list is independent when
///   - it has no must, when, unique, min-elements or max-elements of its own;
///   - nothing below it has a must, when or leafref (conservatively: one that stays inside an entry
///     would do no harm, but telling that apart is parsing XPath);
///   - no expression elsewhere in the tree may reach it: none names it, and none uses `*`, `//`,
///     `deref` or an instance-identifier (which may reach anything);
///   - it is not inside another independent list (entries are whole units: the outermost list is the one).
/// Lists that fail are validated whole, as before.
public struct IndependentLists: Sendable {
    private let lists: Set<ObjectIdentifier>

    public init(top: SchemaNode) {
        var everywhere: [(node: SchemaNode, expression: String)] = []
        func collect(_ node: SchemaNode) {
            everywhere += node.expressions.map { (node, $0) }
            node.children.filter { $0.kind != .action }.forEach(collect)
        }
        collect(top)
        let unbounded = everywhere.contains { Self.reachesAnything($0.expression) }

        var found = Set<ObjectIdentifier>()
        func visit(_ node: SchemaNode) {
            for child in node.children where child.kind != .action && child.config {
                if child.kind == .list, !unbounded, Self.standsAlone(child, among: everywhere) {
                    found.insert(ObjectIdentifier(child))
                } else {
                    visit(child)
                }
            }
        }
        visit(top)
        lists = found
    }

    /// None: every list validated whole.
    public init() { lists = [] }

    public func contains(_ node: SchemaNode) -> Bool { lists.contains(ObjectIdentifier(node)) }
    public var isEmpty: Bool { lists.isEmpty }

    private static func standsAlone(_ list: SchemaNode, among expressions: [(node: SchemaNode, expression: String)]) -> Bool {
        guard list.expressions.isEmpty, list.uniqueCount == 0, list.minElements == 0, list.maxElements == 0 else { return false }
        func quiet(_ node: SchemaNode) -> Bool {
            node.expressions.isEmpty && node.children.filter { $0.kind != .action }.allSatisfy(quiet)
        }
        guard list.children.filter({ $0.kind != .action }).allSatisfy(quiet) else { return false }
        return !expressions.contains { names($0.expression, list.name) }
    }

    static func reachesAnything(_ expression: String) -> Bool {
        expression.contains("*") || expression.contains("//") || expression.contains("deref")
    }

    /// True if `expression` has a step named `name` (with or without a module prefix).
    static func names(_ expression: String, _ name: String) -> Bool {
        var token = ""
        func matches() -> Bool { token == name || token.hasSuffix(":" + name) }
        for character in expression {
            if character.isLetter || character.isNumber || "_-.:".contains(character) {
                token.append(character)
            } else {
                if matches() { return true }
                token = ""
            }
        }
        return matches()
    }
}

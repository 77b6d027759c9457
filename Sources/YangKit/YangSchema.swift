import CYang
import CYangShims

/// A node of a module's compiled schema, as the REST layer and pcnctl need it. Choices and cases
/// are flattened into their parent (they have no member of their own in JSON data).
public final class SchemaNode: @unchecked Sendable {
    public enum Kind: String, Codable, Sendable {
        case container, list, leaf, leafList = "leaf-list", action
    }

    public let name: String
    public let module: String
    public let kind: Kind
    /// config true (false: state, read-only).
    public let config: Bool
    public let mandatory: Bool
    public let isKey: Bool
    /// List keys, in order.
    public let keys: [String]
    public let type: YangType?
    /// The type as the model names it, without prefix (`ipv4-prefix`, `uint16`).
    public let typeName: String?
    public let enums: [String]
    public let defaultValue: String?
    public let description: String?
    public let minElements: Int
    /// 0: unbounded.
    public let maxElements: Int
    /// Settable when the list entry or container is created, never changed afterwards.
    public let initOnly: Bool
    /// What the model exports of this node as an OpenMetrics family (polycube-base's `*-metric`).
    public let metric: Metric?
    /// The content type of the byte stream the node also names (polycube-base's `stream`).
    public let stream: String?
    /// A config-false string leaf holding OpenMetrics families the service renders (polycube-base's `metrics-text`).
    public let metricsText: Bool
    /// The XPath expressions its validity depends on (must, when, leafref paths; those of the
    /// choices and cases it sits in too); "*" for an instance-identifier, which may point anywhere.
    public let expressions: [String]
    /// How many `unique` statements a list has.
    public let uniqueCount: Int

    /// Present when any of the three extensions is (a model that gives a type or help but no name
    /// is refused when it registers).
    public struct Metric: Sendable {
        public let name: String?
        /// As the model writes it (`counter`, `gauge`); nil: not given.
        public let type: String?
        public let help: String?
    }
    public private(set) var children: [SchemaNode] = []
    /// For an action: its input parameters.
    public private(set) var input: [SchemaNode] = []
    public private(set) weak var parent: SchemaNode?
    let raw: UnsafePointer<lysc_node>

    init(_ raw: UnsafePointer<lysc_node>, context: OpaquePointer, parent: SchemaNode?, inherited: [String] = []) {
        self.raw = raw
        expressions = inherited + Self.expressions(of: raw)
        uniqueCount = Int(pcn_ly_unique_count(raw))
        self.parent = parent
        let node = raw.pointee
        name = String(cString: node.name)
        module = String(cString: node.module.pointee.name)
        let flags = UInt32(node.flags)
        config = flags & UInt32(LYS_CONFIG_R) == 0 && (parent?.config ?? true)
        isKey = flags & UInt32(LYS_KEY) != 0
        description = node.dsc.map { String(cString: $0) }
        switch UInt32(node.nodetype) {
        case UInt32(LYS_CONTAINER): kind = .container
        case UInt32(LYS_LIST): kind = .list
        case UInt32(LYS_LEAFLIST): kind = .leafList
        case UInt32(LYS_ACTION), UInt32(LYS_RPC): kind = .action
        default: kind = .leaf
        }
        mandatory = flags & UInt32(LYS_MAND_TRUE) != 0
        type = kind == .leaf || kind == .leafList ? YangType(rawValue: pcn_ly_basetype(raw)) : nil
        typeName = pcn_ly_type_name(raw).map { String(cString: $0) }.map { $0.split(separator: ":").last.map(String.init) ?? $0 }
        enums = (0..<pcn_ly_enum_count(raw)).compactMap { pcn_ly_enum_name(raw, $0).map { String(cString: $0) } }
        defaultValue = pcn_ly_leaf_default(context, raw).map { String(cString: $0) }
        minElements = Int(pcn_ly_min_elements(raw))
        maxElements = Int(pcn_ly_max_elements(raw))
        initOnly = pcn_ly_has_extension(raw, "polycube-base", "init-only") == 1
        func extensionArgument(_ name: String) -> String? {
            pcn_ly_extension_argument(raw, "polycube-base", name).map { String(cString: $0) }
        }
        let metric = Metric(name: extensionArgument("name-metric"), type: extensionArgument("type-metric"), help: extensionArgument("help-metric"))
        self.metric = (metric.name ?? metric.type ?? metric.help) == nil ? nil : metric
        stream = extensionArgument("stream")
        metricsText = pcn_ly_has_extension(raw, "polycube-base", "metrics-text") == 1
        var keys: [String] = []
        if kind == .list {
            var child = pcn_ly_child(raw)
            while let current = child {
                if UInt32(current.pointee.flags) & UInt32(LYS_KEY) != 0 { keys.append(String(cString: current.pointee.name)) }
                child = UnsafePointer(current.pointee.next)
            }
        }
        self.keys = keys
        if kind == .action {
            input = Self.dataNodes(from: pcn_ly_action_input(raw), context: context, parent: self)
        } else if kind == .container || kind == .list {
            children = Self.dataNodes(from: pcn_ly_child(raw), context: context, parent: self)
            var action = pcn_ly_actions(raw)
            while let current = action {
                children.append(SchemaNode(current, context: context, parent: self))
                action = UnsafePointer(current.pointee.next)
            }
        }
    }

    static func expressions(of raw: UnsafePointer<lysc_node>) -> [String] {
        let count = pcn_ly_expressions(raw, nil, 0)
        guard count > 0 else { return [] }
        var texts = [UnsafePointer<CChar>?](repeating: nil, count: Int(count))
        _ = pcn_ly_expressions(raw, &texts, count)
        return texts.compactMap { $0.map { String(cString: $0) } }
    }

    /// The data nodes of a sibling chain, with choices and cases flattened (their conditions go
    /// to the nodes in them).
    static func dataNodes(from first: UnsafePointer<lysc_node>?, context: OpaquePointer, parent: SchemaNode?, inherited: [String] = []) -> [SchemaNode] {
        var nodes: [SchemaNode] = []
        var current = first
        while let node = current {
            let type = UInt32(node.pointee.nodetype)
            if type == UInt32(LYS_CHOICE) || type == UInt32(LYS_CASE) {
                nodes += dataNodes(from: pcn_ly_child(node), context: context, parent: parent, inherited: inherited + expressions(of: node))
            } else if type & UInt32(LYS_CONTAINER | LYS_LIST | LYS_LEAF | LYS_LEAFLIST) != 0 {
                nodes.append(SchemaNode(node, context: context, parent: parent, inherited: inherited))
            }
            current = UnsafePointer(node.pointee.next)
        }
        return nodes
    }

    public func child(_ name: String) -> SchemaNode? {
        // A member may carry its module prefix (RFC 7951) at a module boundary.
        let local = name.split(separator: ":").last.map(String.init) ?? name
        return children.first { $0.name == local }
    }

    /// Checks a value (as text) against this leaf's type: nil if valid, else libyang's reason.
    public func check(_ value: String, in context: YangContext) -> String? {
        ly_err_clean(context.context, nil)
        guard pcn_ly_check_value(context.context, raw, value) != 0 else { return nil }
        let message = ly_err_first(context.context).flatMap { $0.pointee.msg.map { String(cString: $0) } }
        ly_err_clean(context.context, nil)
        return message ?? "invalid value"
    }

    /// The enum name matching `value` case-insensitively (Polycube accepts `tc` for `TC`).
    public func canonicalEnum(_ value: String) -> String? {
        enums.first { $0 == value } ?? enums.first { $0.caseInsensitiveCompare(value) == .orderedSame }
    }
}

/// The built-in type a leaf's value has (after typedefs).
public enum YangType: Int32, Sendable {
    case binary = 1, uint8, uint16, uint32, uint64, string, bits, boolean, decimal64, empty, enumeration,
         identityref, instanceIdentifier, leafref, union, int8, int16, int32, int64

    public var name: String {
        switch self {
        case .instanceIdentifier: "instance-identifier"
        default: "\(self)"
        }
    }

    /// RFC 7951: these integers are JSON numbers; 64-bit ones and decimal64 are strings.
    public var isJSONNumber: Bool { [.uint8, .uint16, .uint32, .int8, .int16, .int32].contains(self) }

    /// Integers of any width and decimal64.
    public var isNumeric: Bool { isJSONNumber || [.uint64, .int64, .decimal64].contains(self) }
}

extension YangContext {
    /// The top-level data nodes of an implemented module.
    public func schema(module: String) -> [SchemaNode] {
        SchemaNode.dataNodes(from: pcn_ly_module_data(context, module), context: context, parent: nil)
    }
}

import Foundation

// The part of the Kubernetes API's objects the agent reads, in their own JSON schema (core/v1 Node,
// Pod, Service; discovery.k8s.io/v1 EndpointSlice; networking.k8s.io/v1 NetworkPolicy). Every field
// is optional where Kubernetes allows it to be absent; unknown fields are ignored.

struct ObjectMeta: Codable, Equatable {
    var name: String
    var namespace: String?
    var uid: String?
    var resourceVersion: String?
    var labels: [String: String]?
    var deletionTimestamp: String?
}

struct Node: Codable, Equatable {
    struct Spec: Codable, Equatable {
        var podCIDR: String?
        var podCIDRs: [String]?
    }
    struct Address: Codable, Equatable {
        var type: String
        var address: String
    }
    struct Status: Codable, Equatable {
        var addresses: [Address]?
    }
    var metadata: ObjectMeta
    var spec: Spec?
    var status: Status?

    /// The node's IPv4 pod network.
    var podCIDR: String? { ([spec?.podCIDR].compactMap { $0 } + (spec?.podCIDRs ?? [])).first { $0.contains(".") } }
    /// The address the other nodes reach it on (InternalIP, else ExternalIP).
    var internalIP: String? {
        let addresses = (status?.addresses ?? []).filter { $0.address.contains(".") }
        return (addresses.first { $0.type == "InternalIP" } ?? addresses.first { $0.type == "ExternalIP" })?.address
    }
}

struct Pod: Codable, Equatable {
    struct Spec: Codable, Equatable {
        var nodeName: String?
        var hostNetwork: Bool?
    }
    struct PodIP: Codable, Equatable { var ip: String }
    struct Status: Codable, Equatable {
        var podIP: String?
        var podIPs: [PodIP]?
        var phase: String?
    }
    var metadata: ObjectMeta
    var spec: Spec?
    var status: Status?

    var ipv4: String? { ([status?.podIP].compactMap { $0 } + (status?.podIPs ?? []).map(\.ip)).first { $0.contains(".") } }
}

/// A port as Kubernetes writes it: a number or a name.
enum IntOrString: Codable, Equatable {
    case int(Int)
    case string(String)

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) { self = .int(number) } else { self = .string(try container.decode(String.self)) }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        }
    }
}

struct KubeService: Codable, Equatable {
    struct Port: Codable, Equatable {
        var name: String?
        var `protocol`: String?
        var port: Int
        var targetPort: IntOrString?
        var nodePort: Int?
    }
    struct Spec: Codable, Equatable {
        var type: String?
        var clusterIP: String?
        var clusterIPs: [String]?
        var ports: [Port]?
        var selector: [String: String]?
    }
    var metadata: ObjectMeta
    var spec: Spec?

    var clusterIPv4: String? {
        ([spec?.clusterIP].compactMap { $0 } + (spec?.clusterIPs ?? [])).first { $0.contains(".") }
    }
}

struct EndpointSlice: Codable, Equatable {
    struct Conditions: Codable, Equatable {
        var ready: Bool?
        var serving: Bool?
        var terminating: Bool?
    }
    struct Endpoint: Codable, Equatable {
        var addresses: [String]
        var conditions: Conditions?
        var nodeName: String?
    }
    struct Port: Codable, Equatable {
        var name: String?
        var `protocol`: String?
        var port: Int?
    }
    var metadata: ObjectMeta
    var addressType: String?
    var endpoints: [Endpoint]?
    var ports: [Port]?

    /// The Service it belongs to (label `kubernetes.io/service-name`).
    var serviceName: String? { metadata.labels?["kubernetes.io/service-name"] }
}

struct LabelSelector: Codable, Equatable {
    struct Requirement: Codable, Equatable {
        var key: String
        var `operator`: String
        var values: [String]?
    }
    var matchLabels: [String: String]?
    var matchExpressions: [Requirement]?

    /// True if `labels` satisfy the selector (an empty selector selects everything).
    func matches(_ labels: [String: String]) -> Bool {
        for (key, value) in matchLabels ?? [:] where labels[key] != value { return false }
        for requirement in matchExpressions ?? [] {
            let value = labels[requirement.key]
            switch requirement.operator {
            case "In": if !(value.map { requirement.values?.contains($0) ?? false } ?? false) { return false }
            case "NotIn": if let value, requirement.values?.contains(value) ?? false { return false }
            case "Exists": if value == nil { return false }
            case "DoesNotExist": if value != nil { return false }
            default: return false
            }
        }
        return true
    }
}

struct NetworkPolicy: Codable, Equatable {
    struct IPBlock: Codable, Equatable {
        var cidr: String
        var except: [String]?
    }
    struct Peer: Codable, Equatable {
        var podSelector: LabelSelector?
        var namespaceSelector: LabelSelector?
        var ipBlock: IPBlock?
    }
    struct Port: Codable, Equatable {
        var `protocol`: String?
        var port: IntOrString?
    }
    struct IngressRule: Codable, Equatable {
        var from: [Peer]?
        var ports: [Port]?
    }
    struct Spec: Codable, Equatable {
        var podSelector: LabelSelector
        var policyTypes: [String]?
        var ingress: [IngressRule]?
    }
    var metadata: ObjectMeta
    var spec: Spec

    /// Whether it restricts ingress: `policyTypes` says so, or (absent) always, as Kubernetes reads it.
    var coversIngress: Bool { spec.policyTypes.map { $0.contains("Ingress") } ?? true }
}

/// A namespace's labels (for namespaceSelector).
struct Namespace: Codable, Equatable {
    var metadata: ObjectMeta
}

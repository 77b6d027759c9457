import ServiceKit

/// The services cube-host can host. Adding one: its YANG model in yang/, its datapath in
/// bpf/services/<name>/, its control plane in a folder here, and a line below.
public enum ServiceCatalog {
    public static var all: [any CubeService.Type] {
        [Helloworld.self, TransparentHelloworld.self, SimpleForwarder.self, SimpleBridge.self, Router.self, DDoSMitigator.self]
    }

    public static var names: [String] { all.map { $0.name } }

    public static func service(named name: String) -> (any CubeService.Type)? {
        all.first { $0.name == name }
    }
}

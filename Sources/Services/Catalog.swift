import ServiceKit

/// The services cube-host can host: every `public final class X: CubeService` of this target
/// (`all` is written at build time by Plugins/ServiceCatalog). Adding a service: its YANG model in
/// yang/, its datapath in bpf/services/<name>/, its control plane in a folder here.
public enum ServiceCatalog {
    public static var names: [String] { all.map { $0.name } }

    public static func service(named name: String) -> (any CubeService.Type)? {
        all.first { $0.name == name }
    }
}

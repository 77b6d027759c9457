// swift-tools-version:6.0
import PackageDescription

// Layers, bottom up: C bindings (CBPF, CYang, CSystemd, CShims) -> wrappers (IPC, BPFKit,
// YangKit, DaemonKit) -> the daemons and pcnctl. Nothing below imports anything above it.
let package = Package(
    name: "polycube-swift",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pcn-core", targets: ["pcn-core"]),
        .executable(name: "pcn-api", targets: ["pcn-api"]),
        .executable(name: "pcn-logd", targets: ["pcn-logd"]),
        .executable(name: "cube-host", targets: ["cube-host"]),
        .executable(name: "pcnctl", targets: ["pcnctl"]),
        .executable(name: "pcn-cni", targets: ["pcn-cni"]),
        .executable(name: "pcn-k8s-agent", targets: ["pcn-k8s-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C bindings
        .systemLibrary(name: "CBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev", "libelf-dev"])]),
        .systemLibrary(name: "CYang", pkgConfig: "libyang", providers: [.apt(["libyang2-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CShims", linkerSettings: [.linkedLibrary("systemd")]),
        .target(name: "CLibbpfShims", dependencies: ["CBPF"]),
        .target(name: "CYangShims", dependencies: ["CYang"]),
        .target(name: "CCurlShims", linkerSettings: [.linkedLibrary("curl")]),
        // pcn-api's HTTP(S) clients' transport (libcurl).
        .target(name: "PCNHTTP", dependencies: ["CCurlShims", "JSONText"]),
        // Running host commands (ip, ethtool, CNI plugins) from pcn-cni and the node agent.
        .target(name: "HostCommands"),
        .systemLibrary(name: "CPcap", providers: [.apt(["libpcap-dev"])]),
        // The structs the datapath and Swift share, from bpf/include/pcn/shared.h.
        .target(name: "PCNDatapathABI"),
        // Every service's datapath header (bpf/services/<svc>/<svc>.h), for its control plane.
        .target(name: "ServiceABI"),

        // Wrappers shared by the daemons
        .target(name: "IPC", dependencies: [
            "CShims",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The contract between the processes: every bus method as a typed request/answer pair, the
        // records they carry, the datapath log types. Nothing heavier than IPC and the ABI headers.
        .target(name: "PCNProtocol", dependencies: ["IPC", "PCNDatapathABI", "JSONText"]),
        .target(name: "BPFKit", dependencies: ["CBPF", "CLibbpfShims"]),
        // JSON text of [String: Any] trees without Foundation's bridging (the cost of large configurations).
        .target(name: "JSONText"),
        .target(name: "YangKit", dependencies: ["CYang", "CYangShims", "JSONText"]),
        // libpcap's filters as datapath C (classic BPF to C) and its pcap files.
        .target(name: "CaptureKit", dependencies: ["CPcap"]),
        // The datapath engine pcn-core runs: cubes, ports, peers, the patch panel, pins, adoption.
        .target(name: "DatapathKit", dependencies: ["BPFKit", "PCNDatapathABI", "PCNProtocol", "CBPF", "CShims",
            .product(name: "Logging", package: "swift-log")]),
        // The service SDK: what a service's control plane is written against, and the host that runs it.
        .target(name: "ServiceKit", dependencies: ["IPC", "PCNProtocol", "BPFKit", "PCNDatapathABI", "JSONText",
            .product(name: "Logging", package: "swift-log")]),
        // The services: one folder each (their YANG models are in yang/, their datapaths in bpf/services/).
        .target(name: "Services", dependencies: ["ServiceKit", "ServiceABI", "PCNDatapathABI", "BPFKit", "CBPF", "CaptureKit"],
                plugins: ["ServiceCatalog"]),
        // Writes the catalog of the services (every CubeService class of Sources/Services) at build time.
        .plugin(name: "ServiceCatalog", capability: .buildTool(), path: "Plugins/ServiceCatalog"),
        .target(name: "DaemonKit", dependencies: [
            "CSystemd", "CShims", "IPC", "PCNProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // The processes
        .executableTarget(name: "pcn-core", dependencies: ["DaemonKit", "IPC", "PCNProtocol", "DatapathKit", "BPFKit", "PCNDatapathABI"]),
        .executableTarget(name: "pcn-api", dependencies: ["YangKit", "JSONText", "PCNProtocol",
            "DaemonKit", "IPC",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .executableTarget(name: "pcn-logd", dependencies: ["DaemonKit", "IPC", "PCNProtocol", "BPFKit", "PCNDatapathABI", "CShims"]),
        .executableTarget(name: "cube-host", dependencies: ["DaemonKit", "IPC", "PCNProtocol", "ServiceKit", "Services"]),
        // The CNI plugin: pods on a node's cubes, through that node's pcn-api.
        .executableTarget(name: "pcn-cni", dependencies: ["PCNHTTP", "HostCommands", "JSONText", .product(name: "Logging", package: "swift-log")]),
        // The Kubernetes node agent: builds a node's cubes and keeps them in step with the cluster.
        .executableTarget(name: "pcn-k8s-agent", dependencies: ["PCNHTTP", "HostCommands", "JSONText", "DaemonKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams")]),
        .executableTarget(name: "pcnctl", dependencies: [
            "PCNHTTP", "JSONText",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),

        // A scriptable bus client the tests run as separate processes (registration, echo, fd passing).
        .executableTarget(name: "pcn-bus-peer", dependencies: [
            "IPC", "PCNProtocol", "BPFKit", "JSONText",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/Support/pcn-bus-peer"),

        .executableTarget(name: "bench-datapath", dependencies: ["BenchSupport", "DatapathKit", "BPFKit", "CLibbpfShims",
            .product(name: "Logging", package: "swift-log")], path: "bench/datapath", exclude: ["bpf"]),
        .executableTarget(name: "bench-log", dependencies: ["BenchSupport", "DatapathKit", "BPFKit", "CBPF", "CLibbpfShims", "IPC",
            .product(name: "Logging", package: "swift-log")], path: "bench/log", exclude: ["bpf"]),
        .target(name: "BenchSupport", path: "bench/support"),
        .executableTarget(name: "bench-api", dependencies: ["BenchSupport"], path: "bench/api"),
        .executableTarget(name: "bench-firewall", dependencies: ["BenchSupport"], path: "bench/firewall"),
        .executableTarget(name: "bench-bridge", dependencies: ["BenchSupport"], path: "bench/bridge"),
        .executableTarget(name: "bench-capture", dependencies: ["BenchSupport", "DatapathKit", "BPFKit", "CLibbpfShims",
            .product(name: "Logging", package: "swift-log")], path: "bench/capture"),
        .executableTarget(name: "bench-loadbalancer", dependencies: ["BenchSupport", "Services"], path: "bench/loadbalancer"),
        .executableTarget(name: "bench-ipc", dependencies: ["IPC", "CShims",
            .product(name: "Logging", package: "swift-log")], path: "bench/ipc"),

        .target(name: "TestSupport", dependencies: [.product(name: "Logging", package: "swift-log")],
                path: "Tests/TestSupport"),
        .testTarget(name: "IPCTests", dependencies: ["IPC", "CShims", "BPFKit", "CBPF", "TestSupport",
            "pcn-bus-peer", "pcn-core", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "BPFKitTests", dependencies: ["BPFKit"]),
        .testTarget(name: "CaptureKitTests", dependencies: ["CaptureKit", "DatapathKit", "BPFKit", "CLibbpfShims",
            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PcnctlTests", dependencies: ["pcnctl"]),
        .testTarget(name: "CNIPluginTests", dependencies: ["pcn-cni"]),
        .testTarget(name: "K8sAgentTests", dependencies: ["pcn-k8s-agent", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "ServiceKitTests", dependencies: ["ServiceKit", "IPC", "PCNProtocol"]),
        .testTarget(name: "ServicesTests", dependencies: ["Services"]),
        .testTarget(name: "DatapathKitTests", dependencies: ["DatapathKit", "PCNProtocol", "PCNDatapathABI", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "DatapathTests", dependencies: ["IPC", "PCNProtocol", "DatapathKit", "BPFKit", "TestSupport", "PCNDatapathABI", "pcn-core", "pcn-bus-peer", "pcn-logd"]),
        .testTarget(name: "LogTests", dependencies: ["PCNProtocol", "PCNDatapathABI"]),
        .testTarget(name: "APITests", dependencies: ["IPC", "PCNProtocol", "YangKit", "TestSupport", "pcn-core", "pcn-api", "pcn-bus-peer"]),
        .testTarget(name: "YangKitTests", dependencies: ["YangKit"]),
        .testTarget(name: "JSONTextTests", dependencies: ["JSONText"]),
        .testTarget(name: "ServiceTests", dependencies: ["TestSupport", "pcn-core", "pcn-api", "pcn-logd", "cube-host", "pcn-cni", "pcn-k8s-agent"]),
        .testTarget(name: "SystemdTests", dependencies: ["TestSupport", "pcn-core", "pcn-api", "pcn-logd", "cube-host", "pcnctl"]),
        .testTarget(name: "DaemonTests", dependencies: ["IPC", "CShims", "TestSupport",
            "pcn-core", "pcn-api", "pcn-logd", "cube-host", "pcnctl"]),
    ]
)

import Foundation
import PackagePlugin

/// Writes the service catalog from the services' folders at build time: every class of the
/// `Services` target declared `public final class X: CubeService`. Adding a service is its YANG
/// model, its datapath folder and its Swift folder; no list to edit.
@main
struct ServiceCatalogPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let sources = target.sourceFiles(withSuffix: "swift").map(\.url).sorted { $0.path < $1.path }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("ServiceCatalog.swift")
        let script = #"""
            out=$1; shift
            {
              echo '// Written at build time by Plugins/ServiceCatalog: every CubeService class of Sources/Services.'
              echo 'import ServiceKit'
              echo 'extension ServiceCatalog {'
              printf '    public static var all: [any CubeService.Type] { ['
              sed -n 's/^public final class \([A-Za-z0-9_]*\): CubeService.*/\1.self, /p' "$@" | tr -d '\n'
              echo '] }'
              echo '}'
            } >"$out"
            """#
        return [.buildCommand(displayName: "Writing the service catalog", executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: ["-c", script, "sh", output.path] + sources.map(\.path),
                              inputFiles: sources, outputFiles: [output])]
    }
}

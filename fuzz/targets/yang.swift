import Foundation
import JSONText
import YangKit

// libFuzzer target: the YANG value checks every write goes through in pcn-api (ConfigCheck against the
// services' models, then libyang's whole-tree validation). The first input byte picks a service model,
// the rest is a JSON body for its top list (an object is one cube, an array the whole list).
// Oracles besides "no crash": an accepted body is accepted again as it was typed, to the same value;
// what libyang returns with the defaults filled in passes ConfigCheck too.

struct Models {
    let context: YangContext
    let tops: [(module: String, node: SchemaNode)]

    init() {
        let yang = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("yang")
        do {
            let context = try YangContext(searchDirectory: yang.path)
            self.context = context
            try context.loadModule(named: "polycube-base")
            let files = try FileManager.default.contentsOfDirectory(atPath: yang.path).filter { $0.hasSuffix(".yang") && !$0.hasPrefix("polycube-") }.sorted()
            let modules = try files.map { try context.addModule(yang: String(contentsOf: yang.appendingPathComponent($0), encoding: .utf8)) }
            // Schema nodes are read once every module is in: adding a module may recompile the others.
            tops = modules.map { module in
                guard let top = context.schema(module: module).first(where: { $0.name == module }) else { fatalError("\(module) has no top list") }
                return (module, top)
            }
        } catch {
            fatalError("the models do not load: \(error)")
        }
    }
}

let models = Models()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzYang(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let (module, top) = models.tops[Int(data[0]) % models.tops.count]
    guard let body = try? JSONSerialization.jsonObject(with: Data(bytes: data + 1, count: size - 1), options: [.fragmentsAllowed]) else { return 0 }
    let entries = body as? [Any] ?? [body]
    let check = ConfigCheck(context: models.context)
    let path = "/\(module):\(module)"

    var errors: [RestconfError] = []
    let typed = check.list(entries, node: top, path: path, existing: nil, errors: &errors)
    for error in errors where error.message.isEmpty || error.message.count > RestconfError.longestMessage + 10 || !(error.path ?? path).hasPrefix(path) {
        fatalError("an error without a readable message or outside the body's path: \(error)")
    }
    guard errors.isEmpty else { return 0 }

    var again: [RestconfError] = []
    let retyped = check.list(typed, node: top, path: path, existing: nil, errors: &again)
    guard again.isEmpty, JSONText.equal(typed, retyped) else {
        fatalError("accepted \(typed) once but not as typed: \(again)")
    }

    guard let candidate = try? JSONText.data(["\(module):\(module)": typed]),
          let normalized = try? models.context.normalize(json: String(decoding: candidate, as: UTF8.self)) else { return 0 }
    guard let tree = try? JSONSerialization.jsonObject(with: Data(normalized.utf8)) as? [String: Any] else {
        fatalError("libyang's normalized tree is not a JSON object: \(normalized)")
    }
    var filled: [RestconfError] = []
    _ = check.list(tree["\(module):\(module)"] as? [Any] ?? [], node: top, path: path, existing: nil, errors: &filled)
    guard filled.isEmpty else { fatalError("the tree with defaults filled in fails the checks: \(filled) for \(normalized)") }
    return 0
}

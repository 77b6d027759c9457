import Foundation
import IPC
import JSONText
import PCNProtocol
import YangKit

extension ConfigEngine {
    // MARK: - Actions

    /// A YANG action: its input is checked against the model and handed to the cube-host
    /// (`cube.action {cube, path, action, input}`); its answer is the action's output. An answer that
    /// carries a `write` (a rule appended) is carried out as a write, in the same turn: the action
    /// answers its output once the write is done, or the write's refusal with nothing changed.
    func call(_ target: Target, input bodyData: Data?) async throws -> Data {
        try await exclusively { try await callNow(target, input: bodyData) }
    }

    func callNow(_ target: Target, input bodyData: Data?) async throws -> Data {
        guard let context, let top = tops[target.service], let endpoint = services[target.service]?.endpoint, let cubeName = target.cube else {
            throw RestFailure(404, tag: "invalid-value", "no service '\(target.service)' is registered")
        }
        let member = "\(target.service):\(target.service)"
        let list = store.document[member] as? [Any] ?? []
        guard list.contains(where: { ConfigTree.matches($0, ["name": cubeName]) }) else {
            throw RestFailure(404, tag: "data-missing", path: target.dataPath, "cube '\(cubeName)' does not exist")
        }
        var input: [String: Any] = [:]
        if let bodyData, !bodyData.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: bodyData) as? [String: Any] else {
                throw RestFailure(400, tag: "malformed-message", path: target.dataPath, "an action's input is a JSON object")
            }
            // RFC 8040 wraps it in "<module>:input".
            input = object.count == 1 ? (object.first { $0.key.hasSuffix("input") }?.value as? [String: Any] ?? object) : object
        }
        // Check the input as the members of a container whose children are the action's input.
        var errors: [RestconfError] = []
        var typed: [String: Any] = [:]
        for (name, value) in input {
            guard let parameter = target.node.input.first(where: { $0.name == name }) else {
                errors.append(.init(tag: "unknown-element", path: target.dataPath + "/" + name,
                                    message: "action '\(target.node.name)' has no input '\(name)' (it has \(target.node.input.map(\.name).joined(separator: ", ")))"))
                continue
            }
            let checked = ConfigCheck(context: context).check(value, node: parameter, path: target.dataPath + "/" + name, existing: nil)
            errors += checked.errors
            typed[name] = checked.value
        }
        for parameter in target.node.input where typed[parameter.name] == nil {
            if let value = parameter.defaultValue { typed[parameter.name] = value }
            else if parameter.mandatory { errors.append(.init(tag: "missing-element", path: target.dataPath + "/" + parameter.name, message: "'\(parameter.name)' is mandatory")) }
        }
        if !errors.isEmpty { throw RestFailure(400, errors) }
        let path = target.steps.dropLast().map { step -> String in
            switch step {
            case .member(let name): name
            case .entry(let keys): keys.sorted { $0.key < $1.key }.map(\.value).joined(separator: "/")
            }
        }
        let reply: [String: Any]
        do {
            reply = try await CubeHostBus(bus, endpoint: endpoint).call(
                CubeAction(cube: cubeName, path: path, action: target.node.name, input: typed), timeout: .seconds(30)).object
        } catch let error as BusError where error.code == .noRoute || error.code == .disconnected {
            throw RestFailure(503, tag: "resource-denied", path: target.dataPath, "\(endpoint) is not running")
        } catch let error as BusError {
            throw RestFailure(409, tag: "operation-failed", path: target.dataPath, "\(endpoint): \(error.message)")
        }
        if let asked = reply["write"] {
            let write: ActionWrite
            do {
                write = try ActionWrite(object: asked)
            } catch {
                throw RestFailure(500, tag: "operation-failed", path: target.dataPath, "\(endpoint) answered a write pcn-api cannot read: \(error)")
            }
            let writeTarget: Target
            do {
                writeTarget = try Target.resolve(service: target.service, top: top, segments: [cubeName] + write.path)
            } catch Target.ResolveError.notInModel(let why) {
                throw RestFailure(500, tag: "operation-failed", path: target.dataPath, "\(endpoint) asked for a write outside the model: \(why)")
            }
            guard let method = Method(rawValue: write.method.rawValue) else { throw RestFailure(500, tag: "operation-failed", "unknown method") }
            _ = try await writeNow(method, writeTarget, body: try write.body.map { try JSONText.data($0) }, ifMatch: nil)
        }
        let output = reply["output"] ?? [String: Any]()
        return try JSONText.data(output)
    }
}

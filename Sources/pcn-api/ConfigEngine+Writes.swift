import Foundation
import JSONText
import PCNProtocol
import YangKit

extension ConfigEngine {
    // MARK: - Writes

    enum Method: String { case post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE" }

    /// One write. Returns true when it created the target.
    func write(_ method: Method, _ target: Target, body bodyData: Data?, ifMatch: String?) async throws -> Bool {
        try await exclusively { try await writeNow(method, target, body: bodyData, ifMatch: ifMatch) }
    }

    func writeNow(_ method: Method, _ target: Target, body bodyData: Data?, ifMatch: String?) async throws -> Bool {
        var body: Any?
        if let bodyData {
            do {
                body = try JSONSerialization.jsonObject(with: bodyData, options: [.fragmentsAllowed])
            } catch {
                throw RestFailure(400, tag: "malformed-message", "the body is not JSON: \(error.localizedDescription)")
            }
        }
        if let ifMatch, ifMatch != "*", ifMatch != store.etag {
            throw RestFailure(412, tag: "operation-failed", "If-Match \(ifMatch) does not match the datastore's ETag \(store.etag)")
        }
        guard let context, let top = tops[target.service], let endpoint = services[target.service]?.endpoint else {
            throw RestFailure(404, tag: "invalid-value", "no service '\(target.service)' is registered")
        }
        guard let cubeName = target.cube else {
            throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "\(method.rawValue) needs a cube: /polycube/v1/\(target.service)/<cube>")
        }
        if !target.node.config {
            throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "'\(target.node.name)' is read-only (state, config false)")
        }
        if target.isCollection && method != .post {
            throw RestFailure(405, tag: "operation-not-supported", path: target.dataPath, "\(method.rawValue) needs an entry of '\(target.node.name)': give its key in the path")
        }
        let member = "\(target.service):\(target.service)"
        let list = store.document[member] as? [Any] ?? []
        let oldCube = list.first { ConfigTree.matches($0, ["name": cubeName]) } as? [String: Any]
        let cubePath = "/\(member)[name='\(cubeName)']"
        let current = oldCube.flatMap { ConfigTree.get($0, target.steps[...]) }

        var newCube: [String: Any]?
        // What the write touches, for validating and sending only that of the cube's large lists.
        var scope = CubeSlice.Scope(steps: target.steps, patch: nil, replaces: method == .put || method == .post)
        // A POST into an independent list whose candidate holds the new entry alone.
        var entryAlone = false
        switch method {
        case .delete:
            if target.node.isKey, !target.steps.isEmpty {
                throw RestFailure(400, tag: "invalid-value", path: target.dataPath, "'\(target.node.name)' is a key of its entry: delete the entry instead")
            }
            guard oldCube != nil, current != nil else {
                throw RestFailure(404, tag: "data-missing", path: target.dataPath, "nothing is configured at \(target.dataPath)")
            }
            newCube = target.steps.isEmpty ? nil : ConfigTree.set(oldCube, target.steps[...], to: nil) as? [String: Any]
        case .post, .put, .patch:
            // POST of a named entry without a body creates it with its defaults (`pcnctl ddosmitigator add d1`).
            let given: Any? = body ?? (method == .post && !target.isCollection ? [String: Any]() : nil)
            guard let body = given else { throw RestFailure(400, tag: "malformed-message", "\(method.rawValue) needs a JSON body") }
            let content = try unwrap(body, target: target)
            // A key leaf names its entry (its value comes from the path): it is never changed.
            if target.node.isKey, let key = Self.pathKey(of: target, cube: cubeName), ConfigCheck.text(content) != key {
                throw RestFailure(400, tag: "invalid-value", path: target.dataPath,
                                  "'\(target.node.name)' is the key of this entry ('\(key)', from the path) and cannot change to \(RestconfError.quoted(ConfigCheck.text(content))): create another entry")
            }
            var value: Any
            switch method {
            case .post:
                if target.isCollection {
                    // POST to a list: the body is a new entry, its keys inside.
                    guard let entry = content as? [String: Any] else {
                        throw RestFailure(400, tag: "invalid-value", path: target.dataPath, "POST to '\(target.node.name)' needs an object for the new entry")
                    }
                    let keys = Dictionary(uniqueKeysWithValues: target.node.keys.compactMap { key in entry[key].map { (key, ConfigCheck.text($0)) } })
                    guard keys.count == target.node.keys.count else {
                        throw RestFailure(400, tag: "missing-element", path: target.dataPath, "the new entry of '\(target.node.name)' needs its keys \(target.node.keys.joined(separator: ", "))")
                    }
                    if EntryIndex.shared.position(of: keys, in: current as? [Any] ?? []) != nil {
                        throw RestFailure(409, tag: "data-exists", path: target.dataPath, "'\(target.node.name)' already has an entry \(keys.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","))")
                    }
                    // An independent list is validated with its written entries only (`CubeSlice`): its
                    // candidate needs no copy of the entries already there.
                    entryAlone = slicing && oldCube != nil && independence[target.service]?.contains(target.node) == true
                    value = entryAlone ? [entry] as [Any] : (current as? [Any] ?? []) + [entry as Any]
                    scope = CubeSlice.Scope(steps: target.steps + [.entry(keys)], patch: nil, replaces: true)
                } else {
                    if current != nil || (target.steps.isEmpty && oldCube != nil) {
                        throw RestFailure(409, tag: "data-exists", path: target.dataPath, target.steps.isEmpty ? "cube '\(cubeName)' already exists" : "\(target.dataPath) already exists: use PATCH or PUT to change it")
                    }
                    value = try withPathKeys(content, target: target, cubeName: cubeName)
                }
            case .put:
                value = try withPathKeys(content, target: target, cubeName: cubeName)
            default:
                guard current != nil, oldCube != nil else {
                    throw RestFailure(404, tag: "data-missing", path: target.dataPath, "nothing is configured at \(target.dataPath): create it with POST")
                }
                let patch = try withPathKeys(content, target: target, cubeName: cubeName)
                scope.patch = patch
                value = try ConfigTree.merge(current, patch, node: target.node, path: target.dataPath)
            }
            if !target.steps.isEmpty && oldCube == nil {
                throw RestFailure(404, tag: "data-missing", path: cubePath, "cube '\(cubeName)' does not exist: create it first (POST /polycube/v1/\(target.service)/\(cubeName))")
            }
            newCube = target.steps.isEmpty ? value as? [String: Any] : ConfigTree.set(oldCube, target.steps[...], to: value) as? [String: Any]
            if newCube == nil { throw RestFailure(400, tag: "invalid-value", path: cubePath, "a cube is an object") }
        }

        // Validate, apply, commit. A write that leaves entries without their reason to be (the routes
        // through an address it removes) removes them too: the service names them, and the write is
        // validated and checked again without them, as a whole candidate.
        func validateApplyCommit(_ newCube: [String: Any]?, scope: CubeSlice.Scope, entryAlone: Bool, whole: Bool) async throws {
            // Validate: every node of the new cube, then the rules across it (must, when, leafref,
            // unique) and its defaults. A cube's configuration does not refer to another cube's, and the
            // entries of its independent lists that the write does not touch are left out (they were
            // valid when written and no rule relates them to anything): the cost of a write follows
            // what it changed, not the size of its cube nor of the datastore.
            var committedCube: [String: Any]?
            var edit: ConfigEdit?
            if let newCube {
                let slice = CubeSlice(new: newCube, old: oldCube, top: top, independent: slicing && !whole ? independence[target.service] ?? IndependentLists(top: top) : IndependentLists(), scope: scope)
                if entryAlone && !slice.cuts(target.steps) {
                    // Never expected: committing the candidate uncut would lose the list's other entries.
                    throw RestFailure(500, tag: "operation-failed", path: target.dataPath, "pcn-api could not cut \(target.dataPath) for this write: nothing was changed")
                }
                let candidate = slice.cutNew(newCube)
                let checked = ConfigCheck(context: context).check([candidate], node: top, path: "/\(member)", existing: slice.cutOld(oldCube).map { [$0] })
                if !checked.errors.isEmpty { throw RestFailure(400, checked.errors) }
                let typed = (checked.value as? [Any])?.first as? [String: Any] ?? candidate
                let base: [String: Any]
                do {
                    let text = try context.normalize(json: String(decoding: try JSONText.data([member: [typed]]), as: UTF8.self))
                    let normalized = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
                    base = (normalized[member] as? [Any])?.first as? [String: Any] ?? [:]
                } catch let issue as YangIssue {
                    throw RestFailure(400, tag: "invalid-value", path: Self.restPath(issue.path) ?? cubePath, issue.message)
                }
                let cubeEdit = slice.edit(base: base)
                committedCube = slice.isEmpty ? base : cubeEdit.applied(to: oldCube)
                edit = cubeEdit
            }
            var normalized = store.document
            var committedList = list.filter { !ConfigTree.matches($0, ["name": cubeName]) }
            if let committedCube {
                if let index = list.firstIndex(where: { ConfigTree.matches($0, ["name": cubeName]) }) {
                    committedList.insert(committedCube, at: index)
                } else {
                    committedList.append(committedCube)
                }
            }
            normalized[member] = committedList.isEmpty ? nil : committedList
            var document = normalized
            let mirrored = Self.mirrorPeers(of: cubeName, old: oldCube, new: committedCube, in: &document)
            let changes = [Datastore.CubeChange(member: member, cube: cubeName, edit: edit)] + mirrored.map { hit in
                Datastore.CubeChange(member: hit.member, cube: hit.cube, edit: Self.cube(hit.cube, of: hit.member, in: document).map { ConfigEdit(base: $0) })
            }

            // Apply, then commit; a refusal undoes what was applied.
            try await applier.apply(service: target.service, endpoint: endpoint, top: top, old: oldCube, new: committedCube, edit: edit, replaying: false)
            do {
                try store.commit(document, changes: changes)
            } catch {
                try? await applier.apply(service: target.service, endpoint: endpoint, top: top, old: committedCube, new: oldCube, replaying: false)
                throw storageFailure(error)
            }
            forgetAttachments(toPortsOf: cubeName, old: oldCube, new: committedCube)
        }
        var removed: [String] = []
        while true {
            do {
                try await validateApplyCommit(newCube, scope: scope, entryAlone: entryAlone, whole: !removed.isEmpty)
                break
            } catch let dependents as Applier.DependentEntries {
                let fresh = dependents.paths.filter { !removed.contains($0) }
                guard !fresh.isEmpty, let cube = newCube else {
                    throw RestFailure(409, tag: "operation-failed", path: cubePath, "\(target.service) keeps asking to remove \(dependents.paths.joined(separator: ", ")): nothing was changed")
                }
                newCube = try ConfigTree.removing(fresh, from: cube, top: top, path: cubePath)
                removed += fresh
                scope = CubeSlice.Scope(steps: [], patch: nil, replaces: true)
                entryAlone = false
            }
        }
        // A POST always creates; a PUT creates when nothing was there.
        return method == .post || (method == .put && current == nil)
    }

    /// pcn-core detached the transparent cubes of the ports this write removed (they stay, as in
    /// Polycube); their stored attachments go too, so a restart does not re-attach them.
    private func forgetAttachments(toPortsOf cube: String, old: [String: Any]?, new: [String: Any]?) {
        func ports(_ config: [String: Any]?) -> Set<String> {
            Set((config?["ports"] as? [Any] ?? []).compactMap { ($0 as? [String: Any])?["name"] as? String })
        }
        let removed = ports(old).subtracting(ports(new)).map { "\(cube):\($0)" }
        let kept = store.attachments.filter { !removed.contains($0["to"] ?? "") }
        guard kept.count != store.attachments.count else { return }
        do {
            try store.commit(store.document, changed: [], attachments: kept)
        } catch {
            // pcn-core has them detached; a stale record only makes replay try, fail and log once.
            logger.error("cannot forget the attachments to removed ports", metadata: ["cube": "\(cube)", "error": "\(error)"])
        }
    }

    static func cube(_ name: String, of member: String, in document: [String: Any]) -> [String: Any]? {
        (document[member] as? [Any])?.first { ConfigTree.matches($0, ["name": name]) } as? [String: Any]
    }

    /// A link between two cube ports is one fact with two ends: when a port's peer becomes (or stops
    /// being) `other:port`, the other end's peer leaf follows (pcn-core links both ends at once).
    /// Returns the cubes it changed.
    @discardableResult
    static func mirrorPeers(of cube: String, old: [String: Any]?, new: [String: Any]?, in document: inout [String: Any]) -> [(member: String, cube: String)] {
        var touched: [(member: String, cube: String)] = []
        func peers(_ config: [String: Any]?) -> [String: String] {
            var result: [String: String] = [:]
            for case let port as [String: Any] in config?["ports"] as? [Any] ?? [] {
                if let name = port["name"] as? String { result[name] = port["peer"] as? String ?? "" }
            }
            return result
        }
        let before = peers(old), after = peers(new)
        for port in Set(before.keys).union(after.keys) where before[port] != after[port] {
            if let old = before[port], old.contains(":"), let hit = setPeer(old, to: nil, unlessNot: "\(cube):\(port)", in: &document) { touched.append(hit) }
            if let new = after[port], new.contains(":"), let hit = setPeer(new, to: "\(cube):\(port)", unlessNot: nil, in: &document) { touched.append(hit) }
        }
        return touched
    }

    /// Sets the peer leaf of `end` (cube:port) in whichever service holds that cube; with `unlessNot`,
    /// only if it currently names that peer.
    static func setPeer(_ end: String, to value: String?, unlessNot expected: String?, in document: inout [String: Any]) -> (member: String, cube: String)? {
        let parts = end.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        for (member, list) in document {
            guard var entries = list as? [Any], let index = entries.firstIndex(where: { ConfigTree.matches($0, ["name": parts[0]]) }),
                  var cube = entries[index] as? [String: Any], var ports = cube["ports"] as? [Any],
                  let portIndex = ports.firstIndex(where: { ConfigTree.matches($0, ["name": parts[1]]) }),
                  var port = ports[portIndex] as? [String: Any] else { continue }
            if let expected, port["peer"] as? String != expected { return nil }
            port["peer"] = value
            ports[portIndex] = port
            cube["ports"] = ports
            entries[index] = cube
            document[member] = entries
            return (member, parts[0])
        }
        return nil
    }

    /// RFC 8040 bodies wrap the value in its name (`{"mtu": 1500}` for .../mtu); Polycube's carry the
    /// bare value. Both are accepted.
    func unwrap(_ body: Any, target: Target) throws -> Any {
        if let object = body as? [String: Any], object.count == 1, let (key, value) = object.first,
           key == target.node.name || key == "\(target.node.module):\(target.node.name)",
           target.node.kind != .container || target.node.child(key) == nil {
            return target.isCollection || target.node.kind != .list ? value : ((value as? [Any])?.first ?? value)
        }
        return body
    }

    /// A list entry's body gets the keys of its path (a different key in the body is an error).
    func withPathKeys(_ content: Any, target: Target, cubeName: String) throws -> Any {
        let keys: [String: String]
        if target.steps.isEmpty {
            keys = ["name": cubeName]
        } else if case .entry(let entryKeys)? = target.steps.last {
            keys = entryKeys
        } else {
            return content
        }
        guard var object = content as? [String: Any] else {
            throw RestFailure(400, tag: "invalid-value", path: target.dataPath, "'\(target.node.name)' entries are objects")
        }
        for (key, value) in keys {
            if let given = object[key], ConfigCheck.text(given) != value {
                throw RestFailure(400, tag: "invalid-value", path: target.dataPath + "/" + key, "the body's \(key) '\(ConfigCheck.text(given))' differs from the path's '\(value)'")
            }
            if object[key] == nil { object[key] = value }
        }
        return object
    }

    /// libyang's `Data location "/m:a/b", line number 1.` (or a plain path) as a data path.
    static func restPath(_ location: String?) -> String? {
        guard let location else { return nil }
        if let start = location.range(of: "\"")?.upperBound, let end = location[start...].firstIndex(of: "\"") {
            return String(location[start..<end])
        }
        return location.hasPrefix("/") ? location : nil
    }

    /// The value the path gives the key leaf `target` names: the cube's name, or its entry's key.
    static func pathKey(of target: Target, cube: String) -> String? {
        if target.steps.count == 1 { return cube }
        guard case .entry(let keys)? = target.steps.dropLast().last else { return nil }
        return keys[target.node.name]
    }

    /// A commit that failed, logged once and told to the client as what it is (507 for a full disk).
    func storageFailure(_ error: Error) -> RestFailure {
        logger.error("a write was refused: the datastore could not be written", metadata: ["error": "\(error)"])
        return (error as? StorageFailure)?.restFailure ?? RestFailure(500, tag: "operation-failed", "\(error): nothing was changed")
    }
}

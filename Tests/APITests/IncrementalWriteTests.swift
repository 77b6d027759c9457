import Foundation
import IPC
import JSONText
@testable import pcn_api
import PCNProtocol
import TestSupport
import XCTest
import YangKit

extension ConfigEngine {
    func documentText() throws -> String { try JSONText.string(store.document) }
}

/// Writes that send and validate only what changed, in-process: two engines take the same writes,
/// one cutting the cubes' independent lists, one validating every write whole; their datastores,
/// answers and what the cube-host rebuilt must be the same after every write.
final class IncrementalWriteTests: XCTestCase {
    /// What a cube-host does with cuts: the configuration it applied last, edited.
    actor Host {
        var applied: [String: [String: Any]] = [:]
        var checked: [String: [String: Any]] = [:]
        var sent: [Int] = []
        var cutChecks = 0

        func check(_ request: CubeCheck) throws {
            if let edit = request.edit {
                guard let previous = applied[request.cube] else { throw BusError(code: .needsWhole, message: "not applied here") }
                cutChecks += 1
                checked[request.cube] = edit.applied(to: previous)
            } else {
                checked[request.cube] = request.config
            }
            sent.append((request.config?["items"] as? [Any])?.count ?? 0)
        }

        func apply(_ request: CubeApply) {
            applied[request.cube] = request.checked ? checked.removeValue(forKey: request.cube) : request.config
        }

        func appliedText() throws -> String { try JSONText.string(applied) }

        func take() -> (sent: [Int], cuts: Int) {
            defer { sent = []; cutChecks = 0 }
            return (sent, cutChecks)
        }
    }

    private var directory = ""
    private var hub: BusHub!
    private var tasks: [Task<Void, Never>] = []
    private var clients: [BusClient] = []

    override func tearDown() {
        tasks.forEach { $0.cancel() }
        clients.forEach { $0.stop() }
        hub?.stop()
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// A hub with stand-ins for pcn-core and the `testfwd` cube-host `name`.
    private func serve(host: Host, name: String) {
        let core = hub.localEndpoint(name: BusName.core), endpoint = hub.localEndpoint(name: name)
        tasks.append(Task {
            for await message in core.messages where message.kind == .request {
                if let request = try? message.request(CubeConfigure.self) {
                    core.reply(to: message, try! .answer(CubeConfigure.self, CubeDescription(
                        name: request.name, service: request.service, type: request.type, transparent: request.transparent, node: 1,
                        parent: nil, loglevel: request.loglevel, ports: [])))
                } else {
                    core.reply(to: message, try! .json(Done()))
                }
            }
        })
        tasks.append(Task {
            for await message in endpoint.messages where message.kind == .request {
                do {
                    if message.method == Method.cubeCheck.rawValue {
                        try await host.check(try CubeCheck(message: message))
                    } else if message.method == Method.cubeApply.rawValue {
                        await host.apply(try CubeApply(message: message))
                    }
                    endpoint.reply(to: message, BusReply(payload: Array("{}".utf8)))
                } catch let error as BusError {
                    endpoint.fail(message, error)
                } catch {
                    endpoint.fail(message, BusError(code: .failed, message: "\(error)"))
                }
            }
        })
    }

    private func engine(_ name: String, endpoint: String) async throws -> ConfigEngine {
        let client = BusClient(socketPath: directory + "/bus.sock", name: name, logger: quietLogger)
        client.start()
        clients.append(client)
        let registered = await client.waitUntilRegistered(timeout: .seconds(10))
        XCTAssertTrue(registered)
        let engine = try ConfigEngine(yangDirectory: repositoryRoot.appendingPathComponent("yang").path,
                                      datastorePath: "\(directory)/\(name)/datastore.json", bus: client, logger: quietLogger)
        let yang = try String(contentsOf: repositoryRoot.appendingPathComponent("Tests/Fixtures/testfwd.yang"), encoding: .utf8)
        try await engine.register(service: "testfwd", yang: yang, endpoint: endpoint)
        return engine
    }

    func testCutWritesEqualWholeWrites() async throws {
        directory = makeTemporaryDirectory()
        hub = BusHub(socketPath: directory + "/bus.sock", logger: quietLogger)
        try hub.start()
        let cutHost = Host(), wholeHost = Host()
        serve(host: cutHost, name: "cut-host")
        serve(host: wholeHost, name: "whole-host")
        let cut = try await engine("api-cut", endpoint: "cut-host")
        let whole = try await engine("api-whole", endpoint: "whole-host")
        await whole.setSlicing(false)
        let independent = await cut.independence["testfwd"]
        let tops = await cut.tops
        let top = try XCTUnwrap(tops["testfwd"])
        XCTAssertEqual(top.children.filter { $0.kind == .list && independent?.contains($0) == true }.map(\.name), ["items"],
                       "items is independent; ports (a leafref names them), rules (unique, max-elements) and chains (max-elements) are not")
        let rule = try XCTUnwrap(top.child("chains")?.child("rule"))
        XCTAssertTrue(independent?.contains(rule) == true, "a list inside a list validated whole can be independent")

        /// The same write to both engines: the same answer (status, or error path and text).
        func write(_ method: ConfigEngine.Method, _ path: String, _ body: String? = nil, file: StaticString = #filePath, line: UInt = #line) async throws -> String {
            var answers: [String] = []
            for engine in [cut, whole] {
                let segments = path.split(separator: "/").map(String.init)
                let target = try Target.resolve(service: "testfwd", top: top, segments: Array(segments.dropFirst()))
                do {
                    let created = try await engine.write(method, target, body: body.map { Data($0.utf8) }, ifMatch: nil)
                    answers.append(created ? "201" : "204")
                } catch let failure as RestFailure {
                    answers.append("\(failure.status) \(failure.errors.map(\.description).joined(separator: "; "))")
                }
            }
            XCTAssertEqual(answers[0], answers[1], "\(method) \(path)", file: file, line: line)
            let cutDocument = try await cut.documentText(), wholeDocument = try await whole.documentText()
            XCTAssertEqual(cutDocument, wholeDocument, "after \(method) \(path)", file: file, line: line)
            let cutApplied = try await cutHost.appliedText(), wholeApplied = try await wholeHost.appliedText()
            XCTAssertEqual(cutApplied, wholeApplied, "the cube-host rebuilt what it would have been sent whole, after \(method) \(path)", file: file, line: line)
            return answers[0]
        }

        let entries = (0..<60).map { #"{"id":\#($0),"note":"n\#($0)"}"# }.joined(separator: ",")
        var answer = try await write(.post, "testfwd/t1", #"{"items":[\#(entries)],"chains":[{"name":"in","rule":[{"id":1},{"id":2,"action":"DROP"}]},{"name":"out"}],"ports":[{"name":"p1"}]}"#)
        XCTAssertEqual(answer, "201")
        _ = await cutHost.take()

        // One entry: created, changed, taken away; the cube-host is sent that entry only.
        answer = try await write(.post, "testfwd/t1/items", #"{"id":100,"note":"new"}"#)
        XCTAssertEqual(answer, "201")
        answer = try await write(.patch, "testfwd/t1/items/5", #"{"note":"changed"}"#)
        answer = try await write(.put, "testfwd/t1/items/6", #"{"id":6,"weight":50}"#)
        answer = try await write(.delete, "testfwd/t1/items/7")
        XCTAssertEqual(answer, "204")
        var taken = await cutHost.take()
        XCTAssertEqual(taken.sent, [1, 1, 1, 0], "each write sent the entry it wrote, not the list")
        XCTAssertEqual(taken.cuts, 4)

        // The cube's own leaves, and a PATCH naming entries: the others are not sent.
        answer = try await write(.patch, "testfwd/t1", #"{"mtu":1400}"#)
        answer = try await write(.patch, "testfwd/t1", #"{"items":[{"id":8,"note":"patched"},{"id":200}]}"#)
        taken = await cutHost.take()
        XCTAssertEqual(taken.sent, [0, 2])

        // Inside the bounded list: a rule of one chain; a chain removed moves the one after it.
        answer = try await write(.post, "testfwd/t1/chains/out/rule", #"{"id":9,"action":"drop"}"#)
        XCTAssertEqual(answer, "201")
        answer = try await write(.delete, "testfwd/t1/chains/in/rule/1")
        answer = try await write(.post, "testfwd/t1/chains", #"{"name":"third","rule":[{"id":3}]}"#)
        answer = try await write(.delete, "testfwd/t1/chains/in")
        answer = try await write(.post, "testfwd/t1/chains/third/rule", #"{"id":4}"#)

        // Refusals: the same status and message from both, nothing changed (compared above).
        answer = try await write(.post, "testfwd/t1/items", #"{"id":300,"weight":101}"#)
        XCTAssertTrue(answer.hasPrefix("400 /testfwd:testfwd[name='t1']/items[id='300']/weight"), answer)
        answer = try await write(.post, "testfwd/t1/items", #"{"id":5}"#)
        XCTAssertTrue(answer.hasPrefix("409"), answer)
        answer = try await write(.patch, "testfwd/t1", #"{"default-port":"nosuch"}"#)
        XCTAssertTrue(answer.hasPrefix("400"), answer)
        answer = try await write(.patch, "testfwd/t1", #"{"low":9,"high":3}"#)
        XCTAssertTrue(answer.contains("low must be below high"), answer)

        // The cube replaced whole, and deleted.
        answer = try await write(.put, "testfwd/t1", #"{"name":"t1","items":[{"id":1}]}"#)
        answer = try await write(.post, "testfwd/t1/items", #"{"id":2}"#)
        answer = try await write(.delete, "testfwd/t1")
        XCTAssertEqual(answer, "204")
    }

    /// The journal: every acknowledged write survives a restart, a torn last line is skipped, and
    /// the file is rewritten once the journal has grown.
    func testJournalKeepsEveryWrite() throws {
        directory = makeTemporaryDirectory()
        let path = directory + "/datastore.json"
        var store = try Datastore(path: path)
        let member = "testfwd:testfwd"
        var cube: [String: Any] = ["name": "t1", "items": (0..<50).map { ["id": $0] as [String: Any] }]
        try store.commit([member: [cube]], changes: [.init(member: member, cube: "t1", edit: ConfigEdit(base: cube))])
        for id in 50..<60 {
            let base: [String: Any] = ["name": "t1", "items": [["id": id, "note": "x"]]]
            let edit = ConfigEdit(base: base, cuts: [ConfigCut(path: ["items"], previousPath: ["items"], keys: ["id"])])
            cube = edit.applied(to: cube)
            try store.commit([member: [cube]], changes: [.init(member: member, cube: "t1", edit: edit)])
        }
        let removal = ConfigEdit(base: ["name": "t1"], cuts: [ConfigCut(path: ["items"], previousPath: ["items"], keys: ["id"], removed: [["id": 3]])])
        cube = removal.applied(to: cube)
        try store.commit([member: [cube]], changes: [.init(member: member, cube: "t1", edit: removal)])
        XCTAssertEqual((cube["items"] as? [Any])?.count, 59)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "writes went to the journal only")

        // A crash in the middle of an append leaves a torn line.
        let journal = FileHandle(forWritingAtPath: path + ".journal")!
        journal.seekToEndOfFile()
        journal.write(Data(#"{"version":99,"changes":[{"member":"#.utf8))
        journal.closeFile()

        let reopened = try Datastore(path: path)
        XCTAssertEqual(reopened.version, store.version)
        XCTAssertTrue(JSONText.equal(reopened.document, [member: [cube]]), "the journal replays to what was committed")
        XCTAssertEqual(try String(contentsOfFile: path + ".journal", encoding: .utf8), "", "folded into the file at start")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
    }
}

import Foundation
import Logging
import PCNHTTP

/// Where the agent reads the cluster from.
protocol ClusterSource: Sendable {
    /// Changes whenever the cluster may have changed.
    func generation() -> String
    /// The cluster now; throws while it cannot be known (not read yet, unreadable).
    func read() throws -> ClusterState
}

extension DirectorySource: ClusterSource {
    func generation() -> String {
        fingerprint().sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value.timeIntervalSince1970)" }.joined(separator: ",")
    }
}

/// The Kubernetes API (list + watch of each kind, resumed from the last resourceVersion; listed
/// again when the server says it is too old), with the in-cluster service account's configuration.
final class KubernetesSource: ClusterSource, @unchecked Sendable {
    struct Settings: Sendable {
        var server: String
        var token: String
        var caFile: String?

        /// The pod's own: KUBERNETES_SERVICE_HOST/PORT and the service account's token and CA.
        static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                              accountDirectory: String = "/var/run/secrets/kubernetes.io/serviceaccount") throws -> Settings {
            guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"] else {
                throw ResourceWatch.Failure(description: "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (give --cluster-dir instead)")
            }
            guard let token = FileManager.default.contents(atPath: accountDirectory + "/token") else {
                throw ResourceWatch.Failure(description: "the service account token \(accountDirectory)/token cannot be read")
            }
            let server = "https://" + (host.contains(":") ? "[\(host)]" : host) + ":" + port
            let ca = accountDirectory + "/ca.crt"
            return Settings(server: server, token: String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                            caFile: FileManager.default.fileExists(atPath: ca) ? ca : nil)
        }
    }

    private let settings: Settings
    private let logger: Logger
    private let lock = NSLock()
    private var state = ClusterState()
    private var synced = Set<String>()
    private var changes = 0
    private var stopping = false
    private var following = 0

    init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    func start() {
        lock.lock(); following = ResourceWatch.all.count; lock.unlock()
        for watch in ResourceWatch.all {
            Thread.detachNewThread {
                self.follow(watch)
                self.lock.lock(); self.following -= 1; self.lock.unlock()
            }
        }
    }

    /// Ends the watches: each stops when its current stream ends (the server ends a watch after
    /// `timeoutSeconds`); `isStopped` tells when all have.
    func stop() {
        lock.lock(); stopping = true; lock.unlock()
    }

    var isStopped: Bool {
        lock.lock(); defer { lock.unlock() }
        return following == 0
    }

    private var isStopping: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopping
    }

    func generation() -> String {
        lock.lock(); defer { lock.unlock() }
        return String(changes)
    }

    func read() throws -> ClusterState {
        lock.lock(); defer { lock.unlock() }
        let missing = ResourceWatch.all.map(\.kind).filter { !synced.contains($0) }
        guard missing.isEmpty else {
            throw ResourceWatch.Failure(description: "not listed yet from \(settings.server): \(missing.joined(separator: ", "))")
        }
        return state
    }

    /// How long the server keeps one watch open (client-go picks 5 to 10 minutes).
    static let watchSeconds = 300

    private var headers: [String] { ["Accept: application/json", "Authorization: Bearer " + settings.token] }

    /// One kind, forever: list, then watch from the list's version; a stream that ends is resumed
    /// from the last version seen; "too old" lists again.
    private func follow(_ initial: ResourceWatch) {
        let box = WatchBox(initial)
        while !isStopping {
            do {
                if box.watch.resourceVersion == nil {
                    let response = try HTTPTransport.perform(method: "GET", url: settings.server + box.watch.path, body: nil, headers: headers,
                                                             caFile: settings.caFile, timeoutSeconds: 30)
                    guard response.status == 200 else {
                        throw ResourceWatch.Failure(description: "GET \(box.watch.path): HTTP \(response.status) \(String(decoding: response.body.prefix(300), as: UTF8.self))")
                    }
                    try update { state in try box.watch.applyList(response.body, to: &state) }
                    lock.lock(); synced.insert(box.watch.kind); changes += 1; lock.unlock()
                }
                try stream(box)
            } catch {
                guard !isStopping else { return }
                logger.warning("\(box.watch.kind): \(error); again in 1 s")
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    /// Applies a list or an event in place (each replaces whole objects, or fails before changing
    /// any) and counts it as a change: a reconcile it starts for nothing writes nothing.
    private func update(_ body: (inout ClusterState) throws -> Void) throws {
        lock.lock(); defer { lock.unlock() }
        try body(&state)
        changes += 1
    }

    /// A watch's body through a pipe, one event a line, until the server ends it (after
    /// `timeoutSeconds`, as Kubernetes' clients ask). After a "too old" the rest is read and dropped:
    /// the pipe stays open until the transfer ends, so curl never writes into a closed one.
    private func stream(_ box: WatchBox) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw ResourceWatch.Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        let done = DispatchSemaphore(value: 0)
        let readEnd = fds[0], writeEnd = fds[1]
        Thread.detachNewThread {
            defer { close(readEnd); done.signal() }
            let handle = FileHandle(fileDescriptor: readEnd, closeOnDealloc: false)
            var pending = Data()
            var relisting = false
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0a) {
                    let line = pending[pending.startIndex..<newline]
                    pending = Data(pending[pending.index(after: newline)...])
                    guard !line.isEmpty, !relisting else { continue }
                    do {
                        var outcome = ResourceWatch.Outcome.applied
                        try self.update { state in outcome = try box.watch.applyEvent(Data(line), to: &state) }
                        if outcome == .relist { relisting = true }
                    } catch {
                        self.logger.warning("\(box.watch.kind): \(error)")
                    }
                }
            }
        }
        let response = try? HTTPTransport.perform(method: "GET", url: settings.server + box.watch.watchPath + "&timeoutSeconds=\(Self.watchSeconds)",
                                                  body: nil, headers: headers,
                                                  caFile: settings.caFile, timeoutSeconds: 30, streamTo: writeEnd)
        close(writeEnd)
        done.wait()
        if let response, response.status != 200 {
            if response.status == 410 { box.watch.resourceVersion = nil }   // list again
            throw ResourceWatch.Failure(description: "watch \(box.watch.path): HTTP \(response.status)")
        }
    }
}

/// A watch shared by the thread that streams it and the one that reads its events.
final class WatchBox: @unchecked Sendable {
    var watch: ResourceWatch
    init(_ watch: ResourceWatch) { self.watch = watch }
}

import Foundation
import JSONText
import Logging

// pcn-cni: a CNI 1.1.0 plugin putting pods on a node's Polycube-Swift cubes. The runtime gives the
// operation in CNI_* variables and the network configuration on stdin; the answer (a result, a
// version list, or an error object) goes to stdout, as libcni reads it. Logs go to stderr.

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
let logger = Logger(label: "pcn-cni")
// A peer that closes its end (pcn-api, a delegate) is an error to report, not a reason to die.
signal(SIGPIPE, SIG_IGN)
let input = FileHandle.standardInput.readDataToEndOfFile()
var answerVersion = CNIVersion.latest

func write(_ object: [String: Any]) {
    var text = (try? JSONText.string(object)) ?? "{}"
    text += "\n"
    FileHandle.standardOutput.write(Data(text.utf8))
}

do {
    let invocation = try Invocation.parse(ProcessInfo.processInfo.environment)
    if invocation.command == .version {
        // The runtime's own version comes back as given (it may be one pcn-cni does not speak).
        let asked = (try? JSONSerialization.jsonObject(with: input) as? [String: Any])?["cniVersion"] as? String
        write(["cniVersion": asked.flatMap { CNIVersion.parse($0) != nil ? $0 : nil } ?? CNIVersion.latest,
               "supportedVersions": CNIVersion.supported])
        exit(0)
    }
    if let asked = (try? JSONSerialization.jsonObject(with: input) as? [String: Any])?["cniVersion"] as? String,
       CNIVersion.supported.contains(asked) {
        answerVersion = asked
    }
    let config = try NetworkConfig.parse(input, command: invocation.command)
    let plugin = Plugin(invocation: invocation, config: config, logger: logger)
    switch invocation.command {
    case .add: write(try plugin.add())
    case .del: try plugin.del()
    case .check: try plugin.check()
    case .status: try plugin.status()
    case .gc: try plugin.gc()
    case .version: break
    }
    exit(0)
} catch let error as CNIError {
    write(error.json(cniVersion: answerVersion))
    exit(1)
} catch {
    write(CNIError(.ioFailure, "\(error)").json(cniVersion: answerVersion))
    exit(1)
}

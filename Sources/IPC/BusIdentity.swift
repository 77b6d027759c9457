import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who a connection is, as the kernel says (SO_PEERCRED), and the systemd unit it runs in.
public struct BusPeer: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    /// `pcn-api.service`, `cube-host@router.service`: the unit of the peer's cgroup; nil outside a service.
    public var unit: String?

    public init(pid: Int32, uid: UInt32, unit: String?) {
        self.pid = pid
        self.uid = uid
        self.unit = unit
    }

    /// The service unit a process runs in, from its cgroup (`0::/system.slice/pcn-api.service`).
    public static func unit(ofPID pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return line.split(separator: "/").last.map(String.init).flatMap { $0.hasSuffix(".service") ? $0 : nil }
        }
        return nil
    }
}

/// Which peers may register which names: the names of the stack's own daemons are proven by who the
/// peer is, not claimed. `api`, `logd` and `cube-host/<service>` need root, the hub's own user, or
/// (under systemd) the daemon's own unit (`pcn-api.service`, `cube-host@router.service`); `core` is
/// the hub's own; any other name is anyone's. A name a live process holds is not taken from it (a
/// second `cube-host/router` is refused, not let in to push the first one out).
public struct BusNamePolicy: Sendable {
    public var hubUID: UInt32

    public init(hubUID: UInt32 = geteuid()) { self.hubUID = hubUID }

    /// The unit whose processes may hold `name`; nil for a name anyone may take.
    public static func unit(for name: String) -> String? {
        switch name {
        case "core": return "pcn-core.service"
        case "api": return "pcn-api.service"
        case "logd": return "pcn-logd.service"
        case let name where name.hasPrefix("cube-host/"): return "cube-host@\(name.dropFirst("cube-host/".count)).service"
        default: return nil
        }
    }

    /// Why `peer` may not register `name` (nil: it may). `holder` is the peer that has it now.
    public func refusal(name: String, peer: BusPeer, holder: BusPeer?) -> String? {
        if name == "core" { return "'core' is the hub's own name" }
        if let unit = Self.unit(for: name), peer.uid != 0, peer.uid != hubUID, peer.unit != unit {
            return "'\(name)' belongs to \(unit); pid \(peer.pid) (uid \(peer.uid)\(peer.unit.map { ", \($0)" } ?? "")) is not it"
        }
        if let holder, holder.pid != peer.pid, Self.isAlive(holder.pid) {
            return "'\(name)' is held by pid \(holder.pid), which still runs"
        }
        return nil
    }

    /// Running (a zombie, ended but not yet reaped, is not).
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }
}

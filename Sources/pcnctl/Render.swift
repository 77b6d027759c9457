import Yams
import Foundation
import JSONText

enum Render {
    static func output(_ data: Data, format: OutputFormat) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            return String(decoding: data, as: UTF8.self)
        }
        if let list = object as? [Any], list.isEmpty { return "[]" }
        switch format {
        case .json, .text:
            guard let text = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]) else {
                return String(decoding: data, as: UTF8.self)
            }
            return String(decoding: text, as: UTF8.self)
        case .yaml:
            return ((try? Yams.dump(object: plain(object), sortKeys: true)) ?? String(decoding: data, as: UTF8.self)).trimmingCharacters(in: .newlines)
        case .brief:
            return brief(object)
        }
    }

    /// Leaves only, one `name: value` per line; lists and containers as their size.
    static func brief(_ object: Any) -> String {
        if let list = object as? [Any] {
            return list.map { entry in ((entry as? [String: Any])?["name"]).map { "\($0)" } ?? "\(entry)" }.joined(separator: "\n")
        }
        guard let dictionary = object as? [String: Any] else { return "\(object)" }
        return dictionary.keys.sorted().map { key in
            switch dictionary[key] {
            case let list as [Any]: return "\(key): \(list.count) entries"
            case let inner as [String: Any]: return "\(key): \(inner.count) members"
            case let value?: return "\(key): \(value)"
            default: return key
            }
        }.joined(separator: "\n")
    }

    /// Foundation's JSON values as plain Swift values Yams can write.
    static func plain(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]: return dictionary.mapValues(plain)
        case let list as [Any]: return list.map(plain)
        case let number as NSNumber:
            if JSONText.isBoolean(number) { return number.boolValue }
            return number.doubleValue == Double(number.int64Value) ? number.int64Value as Any : number.doubleValue as Any
        default: return value
        }
    }

    /// RFC 8040 errors as one line each, for people: the error path as the words one would type
    /// (`/router:router[name='r1']/ports[name='p1']/ip` is `r1 ports p1 ip`).
    static func error(status: Int, body: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
           let errors = (object["ietf-restconf:errors"] as? [String: Any])?["error"] as? [[String: Any]] {
            return errors.map { e in
                let path = (e["error-path"] as? String).map { words(ofPath: $0) }.map { $0.isEmpty ? "" : "\($0): " } ?? ""
                return "\(path)\(e["error-message"] as? String ?? "error")"
            }.joined(separator: "\n")
        }
        let text = String(decoding: body, as: UTF8.self)
        return "HTTP \(status)" + (text.isEmpty ? "" : ": \(text)")
    }

    static func words(ofPath path: String) -> String {
        if path.hasPrefix("/polycube/v1/") { return path.dropFirst("/polycube/v1/".count).split(separator: "/").joined(separator: " ") }
        // Split at the slashes outside quotes: key values may hold one (10.0.0.0/24).
        var segments: [String] = [], current = "", quoted = false
        for character in path {
            if character == "'" { quoted.toggle() }
            if character == "/" && !quoted {
                if !current.isEmpty { segments.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { segments.append(current) }
        var words: [String] = []
        for (index, segment) in segments.enumerated() {
            let name = segment.prefix { $0 != "[" }
            // Each predicate is [key='value']; values are taken whole, in order.
            var keys: [String] = []
            var rest = segment.dropFirst(name.count)
            while let open = rest.range(of: "='"), let close = rest[open.upperBound...].range(of: "']") {
                keys.append(String(rest[open.upperBound..<close.lowerBound]))
                rest = rest[close.upperBound...]
            }
            // The first segment is the service's list: the cube's name says enough.
            if index > 0 { words.append(String(name.split(separator: ":").last ?? name)) }
            words += keys
        }
        return words.joined(separator: " ")
    }
}

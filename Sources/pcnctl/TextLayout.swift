import Foundation
import JSONText

/// polycubectl's text layout, which Polycube users' scripts cut with `awk` and `grep`: a leaf as its
/// bare value; an object as its leaves (`key: value`), then its containers (`key:`, members one
/// space further in), then its lists (a blank line, `key:`, a table one space in); a list as a
/// table: a header row of member names, columns two spaces apart, no blanks at a row's end. In a
/// table an entry's nested list becomes columns `member (list)` with one row per nested entry, a
/// leaf-list one column with a row per value; nested containers are left out (`-json` shows all).
/// Members come in the model's order (`order`, given the member names from the shown node down),
/// those the model does not name after them by name.
struct TextLayout {
    var order: ([String]) -> [String]
    /// polycubectl's `-hide=ports,ports.mac`: members left out, by their dotted path from the shown node.
    var hidden: Set<String> = []

    private func isHidden(_ path: [String], _ key: String) -> Bool { hidden.contains((path + [key]).joined(separator: ".")) }

    func render(_ value: Any) -> String {
        var lines: [String] = []
        switch value {
        case let list as [Any]:
            lines = table(list, path: [], indent: 0)
        case let object as [String: Any]:
            lines = self.object(object, path: [], indent: 0)
        default:
            lines = [Self.scalar(value)]
        }
        return lines.joined(separator: "\n")
    }

    private func object(_ object: [String: Any], path: [String], indent: Int) -> [String] {
        let prefix = String(repeating: " ", count: indent)
        // `_links` (HATEOAS) is for programs; -json shows it.
        let keys = sorted(object.keys.filter { !$0.hasPrefix("_") && !isHidden(path, $0) }, path)
        var lines: [String] = []
        for key in keys where !Self.isNested(object[key]!) {
            lines.append("\(prefix)\(key): \(Self.scalar(object[key]!))")
        }
        for key in keys {
            guard let inner = object[key] as? [String: Any] else { continue }
            lines.append("\(prefix)\(key):")
            lines += self.object(inner, path: path + [key], indent: indent + 1)
        }
        for key in keys {
            guard let list = object[key] as? [Any], !list.isEmpty else { continue }
            lines += ["", "\(prefix)\(key):"]
            lines += table(list, path: path + [key], indent: indent + 1)
        }
        return lines
    }

    /// The rows of `list` under one header; a list of plain values is one column without a header.
    private func table(_ list: [Any], path: [String], indent: Int) -> [String] {
        let prefix = String(repeating: " ", count: indent)
        guard list.contains(where: { $0 is [String: Any] }) else {
            return list.map { prefix + Self.scalar($0) }
        }
        var columns: [String] = []
        var cells: [[String: String]] = []
        for case let entry as [String: Any] in list {
            let rows = self.rows(of: entry, path: path)
            for row in rows { for name in row.keys where !columns.contains(name) { columns.append(name) } }
            cells += rows
        }
        columns = sortedColumns(columns, path).filter { column in
            let (member, list) = Self.parts(of: column)
            guard let list else { return !isHidden(path, member) }
            return !isHidden(path, list) && !isHidden(path + [list], member)
        }
        // A nested list's extra rows go with its hidden columns.
        let grid = [columns] + cells.map { row in columns.map { row[$0] ?? "" } }.filter { $0.contains { !$0.isEmpty } }
        var widths = columns.map(\.count)
        for row in grid { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return grid.map { row in
            var line = prefix
            for (index, cell) in row.enumerated() {
                line += index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) + "  "
            }
            // Trailing blanks only get in the way of `awk` and `diff`.
            while line.last == " " && line.count > prefix.count { line.removeLast() }
            return line
        }
    }

    /// One entry of a table as rows of cells: its leaves on the first row, each nested list's
    /// values down their own columns.
    private func rows(of entry: [String: Any], path: [String]) -> [[String: String]] {
        var rows: [[String: String]] = [[:]]
        func put(_ column: String, _ row: Int, _ value: String) {
            while rows.count <= row { rows.append([:]) }
            rows[row][column] = value
        }
        for (key, value) in entry {
            switch value {
            case is [String: Any]:
                continue
            case let list as [Any]:
                for (index, item) in list.enumerated() {
                    if let inner = item as? [String: Any] {
                        for (member, leaf) in inner where !Self.isNested(leaf) { put("\(member) (\(key))", index, Self.scalar(leaf)) }
                    } else {
                        put(key, index, Self.scalar(item))
                    }
                }
            default:
                put(key, 0, Self.scalar(value))
            }
        }
        return rows
    }

    private func sorted<S: Sequence<String>>(_ keys: S, _ path: [String]) -> [String] {
        let model = order(path)
        return keys.sorted { a, b in
            switch (model.firstIndex(of: a), model.firstIndex(of: b)) {
            case let (x?, y?): return x < y
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a < b
            }
        }
    }

    /// Columns as members: `ip (secondaryip)` sits where `secondaryip` is in the model, in the
    /// order of the nested list's own members.
    private func sortedColumns(_ columns: [String], _ path: [String]) -> [String] {
        let outer = sorted(Set(columns.map { Self.parts(of: $0).list ?? Self.parts(of: $0).member }), path)
        var result: [String] = []
        for name in outer {
            if columns.contains(name) { result.append(name) }
            let nested = columns.filter { Self.parts(of: $0).list == name }.map { Self.parts(of: $0).member }
            result += sorted(nested, path + [name]).map { "\($0) (\(name))" }
        }
        return result
    }

    /// `ip (secondaryip)` is the member `ip` of the nested list `secondaryip`; `peer` is a leaf.
    private static func parts(of column: String) -> (member: String, list: String?) {
        guard column.hasSuffix(")"), let open = column.range(of: " (") else { return (column, nil) }
        return (String(column[..<open.lowerBound]), String(column[open.upperBound...].dropLast()))
    }

    private static func isNested(_ value: Any) -> Bool { value is [String: Any] || value is [Any] }

    static func scalar(_ value: Any) -> String {
        switch value {
        case let number as NSNumber:
            if JSONText.isBoolean(number) { return number.boolValue ? "true" : "false" }
            return "\(number)"
        case is NSNull:
            return ""
        default:
            return "\(value)"
        }
    }
}

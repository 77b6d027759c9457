/// The most recent records, numbered from 0 in arrival order; bounded by count and bytes, the
/// oldest going first.
public struct RecordBuffer: Sendable {
    public let maxRecords: Int
    public let maxBytes: Int
    private var records: [[UInt8]] = []
    private var head = 0
    private var bytes = 0
    /// The number of the record at `head`.
    public private(set) var first: UInt64 = 0

    public init(maxRecords: Int, maxBytes: Int) {
        self.maxRecords = maxRecords
        self.maxBytes = maxBytes
    }

    public var next: UInt64 { first + UInt64(records.count - head) }

    public mutating func append(_ record: [UInt8]) {
        records.append(record)
        bytes += record.count
        while records.count - head > maxRecords || bytes > maxBytes {
            bytes -= records[head].count
            records[head] = []
            head += 1
            first += 1
        }
        if head > 4096 && head * 2 > records.count {
            records.removeFirst(head)
            head = 0
        }
    }

    /// Whole records from `cursor` (nil: from now on), at most `limit` bytes (at least one record);
    /// `dropped`: records the cursor had not reached before they turned over.
    public func read(from cursor: UInt64?, limit: Int, maxRecords: Int = .max) -> (data: [UInt8], records: Int, next: UInt64, dropped: UInt64) {
        var position = cursor ?? next
        var dropped: UInt64 = 0
        if position < first {
            dropped = first - position
            position = first
        }
        position = min(position, next)
        var data: [UInt8] = []
        var count = 0
        while position < next && count < maxRecords {
            let record = records[head + Int(position - first)]
            if count > 0 && data.count + record.count > limit { break }
            data.append(contentsOf: record)
            count += 1
            position += 1
        }
        return (data, count, position, dropped)
    }
}

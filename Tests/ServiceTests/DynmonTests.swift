import Foundation
import TestSupport
import XCTest

/// dynmon with real packets: the user's code counts, its maps come back as JSON shaped by their BTF
/// types and as OpenMetrics, exactly.
final class DynmonTests: ServiceStackTestCase {
    static let ingressCode = #"""
        #include <bpf/bpf_endian.h>
        #include <linux/if_ether.h>
        #include <linux/in.h>
        #include <linux/ip.h>

        struct source { __u32 saddr; };
        struct traffic { __u64 packets; __u64 bytes; };

        BPF_ARRAY(icmp_counter, u64, 1);
        BPF_HASH(by_source, struct source, struct traffic, 1024);
        BPF_PERCPU_ARRAY(seen, u64, 1);
        BPF_PERCPU_HASH(flows, struct source, u64, 1024);
        BPF_ARRAY(all_ip, u64, 1);
        BPF_QUEUE(lengths, u32, 64);
        BPF_PERCPU_ARRAY(ip_swapped, u64, 1);

        static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
            void *data = pcn_data(ctx), *end = pcn_data_end(ctx);
            struct ethhdr *eth = data;
            if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
                return RX_OK;
            struct iphdr *ip = (void *)(eth + 1);
            if ((void *)(ip + 1) > end)
                return RX_OK;
            u32 zero = 0;
            struct source key = { .saddr = ip->saddr };
            u64 *all = bpf_map_lookup_elem(&all_ip, &zero);
            if (all)
                __sync_fetch_and_add(all, 1);
            u64 *swapped = bpf_map_lookup_elem(&ip_swapped, &zero);
            if (swapped)
                (*swapped)++;
            u64 *flow = bpf_map_lookup_elem(&flows, &key);
            if (!flow) {
                u64 none = 0;
                bpf_map_update_elem(&flows, &key, &none, BPF_NOEXIST);
                flow = bpf_map_lookup_elem(&flows, &key);
            }
            if (flow)
                (*flow)++;
            if (ip->protocol != IPPROTO_ICMP)
                return RX_OK;
            u64 *count = bpf_map_lookup_elem(&icmp_counter, &zero);
            if (count)
                __sync_fetch_and_add(count, 1);
            u32 length = pcn_len(ctx);
            bpf_map_push_elem(&lengths, &length, BPF_EXIST);
            u64 *mine = bpf_map_lookup_elem(&seen, &zero);
            if (mine)
                (*mine)++;
            struct traffic *seen_from = bpf_map_lookup_elem(&by_source, &key);
            if (seen_from) {
                __sync_fetch_and_add(&seen_from->packets, 1);
                __sync_fetch_and_add(&seen_from->bytes, pcn_len(ctx));
            } else {
                struct traffic first = { 1, pcn_len(ctx) };
                bpf_map_update_elem(&by_source, &key, &first, BPF_NOEXIST);
            }
            return RX_OK;
        }
        """#

    static let egressCode = #"""
        #include <bpf/bpf_endian.h>
        #include <linux/if_ether.h>
        #include <linux/in.h>
        #include <linux/ip.h>
        #define ICMP_ECHOREPLY 0
        BPF_ARRAY(replies, u64, 1);
        static __always_inline int handle_rx(struct CTXTYPE *ctx, struct pkt_metadata *md) {
            void *data = pcn_data(ctx), *end = pcn_data_end(ctx);
            struct ethhdr *eth = data;
            struct iphdr *ip = (void *)(eth + 1);
            __u8 *icmp_type = (void *)(ip + 1);
            if ((void *)(icmp_type + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_ICMP || *icmp_type != ICMP_ECHOREPLY)
                return RX_OK;
            u32 zero = 0;
            u64 *count = bpf_map_lookup_elem(&replies, &zero);
            if (count)
                __sync_fetch_and_add(count, 1);
            return RX_OK;
        }
        """#

    static func body(ingress: String) throws -> String {
        let config: [String: Any] = ["dataplane-config": [
            "ingress-path": ["name": "counters", "code": ingress, "metric-configs": [
                ["name": "icmp_packets", "map-name": "icmp_counter",
                 "open-metrics-metadata": ["help": "ICMP packets in", "type": "Counter", "labels": [["name": "site", "value": "lab"]]]],
                ["name": "icmp_by_source", "map-name": "by_source", "open-metrics-metadata": ["type": "Counter"]],
                ["name": "seen_since_read", "map-name": "seen", "extraction-options": ["empty-on-read": true]],
                ["name": "flows_swapped", "map-name": "flows", "extraction-options": ["swap-on-read": true]],
                ["name": "all_ip", "map-name": "all_ip"],
                ["name": "icmp_lengths", "map-name": "lengths"],
                ["name": "ip_swapped", "map-name": "ip_swapped", "extraction-options": ["swap-on-read": true]],
            ]],
            "egress-path": ["name": "replies", "code": egressCode, "metric-configs": [
                ["name": "echo_replies", "map-name": "replies", "open-metrics-metadata": ["type": "Gauge"]],
            ]],
        ]]
        return String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
    }

    /// The metric `name` of `list` (ingress-metrics / egress-metrics), its value decoded.
    private func metric(_ list: String, _ name: String) async throws -> Any? {
        let rows = try await must("GET", "/dynmon/d1/metrics/\(list)") as? [[String: Any]] ?? []
        guard let text = rows.first(where: { $0["name"] as? String == name })?["value"] as? String else { return nil }
        return try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    /// The same, nil while the cube-host is not back (a restart): for `eventually`.
    private func arrayValueWhenBack(_ list: String, _ name: String) async -> Int? {
        guard let answer = try? await rest.call("GET", "/dynmon/d1/metrics/\(list)"), answer.status == 200,
              let text = (answer.json as? [[String: Any]])?.first(where: { $0["name"] as? String == name })?["value"] as? String,
              let rows = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else { return nil }
        return (rows.first?["value"] as? NSNumber)?.intValue
    }

    private func arrayValue(_ list: String, _ name: String) async throws -> Int {
        let rows = try await metric(list, name) as? [[String: Any]] ?? []
        return (rows.first?["value"] as? NSNumber)?.intValue ?? -1
    }

    /// The same code in an XDP_SKB cube on a netdev (ingress in XDP, egress in its TC twin).
    func testCountersInXDP() async throws {
        let a = try network.host("a", address: "10.238.0.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.238.0.2/24", "dev", a.interface])
        var config = try JSONSerialization.jsonObject(with: Data(try Self.body(ingress: Self.ingressCode).utf8)) as! [String: Any]
        config["type"] = "XDP_SKB"
        try await must("POST", "/dynmon/d1", String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self))
        try await must("POST", "/attach", #"{"cube":"d1","port":"\#(a.interface)"}"#)
        let result = try network.exec(a.namespace, ["ping", "-c", "4", "-i", "0.05", "-W", "2", "10.238.0.2"])
        XCTAssertEqual(result.status, 0, result.stdout)
        let counted = try await arrayValue("ingress-metrics", "icmp_packets")
        XCTAssertEqual(counted, 4)
        let replies = try await arrayValue("egress-metrics", "echo_replies")
        XCTAssertEqual(replies, 4, "the egress code (TC twin of the XDP cube) saw the host's replies")
    }

    func testCountersAsJSONAndOpenMetrics() async throws {
        let a = try network.host("a", address: "10.237.0.1/24")
        _ = try runCommand("/usr/bin/ip", ["addr", "add", "10.237.0.2/24", "dev", a.interface])
        try await must("POST", "/dynmon/d1", try Self.body(ingress: Self.ingressCode))
        try await must("POST", "/attach", #"{"cube":"d1","port":"\#(a.interface)"}"#)
        func ping(_ count: Int) throws {
            let result = try network.exec(a.namespace, ["ping", "-c", "\(count)", "-i", "0.05", "-W", "2", "10.237.0.2"])
            XCTAssertEqual(result.status, 0, result.stdout)
        }
        try ping(5)
        // A queue is read by taking its elements out, oldest first.
        let queue = try await metric("ingress-metrics", "icmp_lengths")
        XCTAssertEqual(queue as? [NSNumber], Array(repeating: 98, count: 5), "\(String(describing: queue))")
        let source = UInt64(10) | UInt64(237) << 8 | UInt64(0) << 16 | UInt64(1) << 24  // 10.237.0.1 as the datapath's __u32
        let counted = try await arrayValue("ingress-metrics", "icmp_packets")
        XCTAssertEqual(counted, 5)
        let bySource = try await metric("ingress-metrics", "icmp_by_source") as? [[String: Any]] ?? []
        XCTAssertEqual(bySource.count, 1, "\(bySource)")
        XCTAssertEqual((bySource.first?["key"] as? [String: Any])?["saddr"] as? NSNumber, NSNumber(value: source), "a struct key by its BTF member names: \(bySource)")
        XCTAssertEqual(bySource.first?["value"] as? [String: NSNumber], ["packets": 5, "bytes": 490], "\(bySource)")
        let replies = try await arrayValue("egress-metrics", "echo_replies")
        XCTAssertEqual(replies, 5, "the egress code saw the replies")

        let metrics = try await rest.call("GET", "/metrics").text
        for line in [#"icmp_packets_total{cube="d1",service="dynmon",site="lab",index="0"} 5"#,
                     #"icmp_by_source_total{cube="d1",service="dynmon",saddr="\#(source)",value="bytes"} 490"#,
                     #"icmp_by_source_total{cube="d1",service="dynmon",saddr="\#(source)",value="packets"} 5"#,
                     #"echo_replies{cube="d1",service="dynmon",index="0"} 5"#, "# TYPE icmp_packets_total counter", "# HELP icmp_packets_total ICMP packets in"] {
            XCTAssertTrue(metrics.contains(line), "\(line) in:\n\(metrics)")
        }

        // empty-on-read (a per-CPU array, summed): each read takes what came since the last.
        try ping(3)
        let first = try await arrayValue("ingress-metrics", "seen_since_read")
        XCTAssertEqual(first, 3, "every read before emptied it")
        let drained = try await arrayValue("ingress-metrics", "seen_since_read")
        XCTAssertEqual(drained, 0, "emptied by the read before")
        try ping(2)
        let again = try await arrayValue("ingress-metrics", "seen_since_read")
        XCTAssertEqual(again, 2)

        // swap-on-read under an iperf3 flow: the snapshots add up to every packet counted, none lost.
        // One read gives both the swapped-out map and the plain counter read just after it.
        func snapshot() async throws -> (flows: Int, array: Int, all: Int) {
            let rows = try await must("GET", "/dynmon/d1/metrics/ingress-metrics") as? [[String: Any]] ?? []
            func value(_ name: String) throws -> Any? {
                (rows.first { $0["name"] as? String == name }?["value"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
            }
            let flows = (try value("flows_swapped") as? [[String: Any]] ?? []).reduce(0) { $0 + (($1["value"] as? NSNumber)?.intValue ?? 0) }
            let all = ((try value("all_ip") as? [[String: Any]])?.first?["value"] as? NSNumber)?.intValue ?? -1
            let array = ((try value("ip_swapped") as? [[String: Any]])?.first?["value"] as? NSNumber)?.intValue ?? -1
            return (flows, array, all)
        }
        let baseline = try await snapshot()
        let port = Int.random(in: 30_000...39_000)
        let server = try BackgroundCommand("/usr/bin/iperf3", ["-s", "-1", "-B", "10.237.0.2", "-p", "\(port)"])
        defer { server.stop() }
        try await Task.sleep(for: .milliseconds(500))
        let namespace = a.namespace
        async let flow = onThread {
            try runCommand("/usr/bin/ip", ["netns", "exec", namespace, "iperf3", "-c", "10.237.0.2", "-p", "\(port)", "-t", "3", "-u", "-b", "50M", "-l", "200"], timeout: 60)
        }
        var swapped = 0, swappedArray = 0
        for _ in 0..<20 {
            let taken = try await snapshot()
            swapped += taken.flows
            swappedArray += taken.array
            try await Task.sleep(for: .milliseconds(150))
        }
        let client = try await flow
        XCTAssertEqual(client.status, 0, client.stdout + client.stderr)
        try await Task.sleep(for: .milliseconds(500))
        let last = try await snapshot()
        swapped += last.flows
        swappedArray += last.array
        XCTAssertGreaterThan(last.all - baseline.all, 10_000, "the flow passed")
        XCTAssertEqual(swapped, last.all - baseline.all, "the swapped snapshots of a per-CPU hash add up to every IPv4 packet counted")
        XCTAssertEqual(swappedArray, last.all - baseline.all, "and those of a per-CPU array")

        // Bad code: the compiler's message with the user's line; the old code goes on counting.
        let broken = Self.ingressCode.replacingOccurrences(of: "struct traffic { __u64 packets; __u64 bytes; };", with: "struct traffic { __u64 packets __u64 bytes; };")
        let refused = try await rest.call("PUT", "/dynmon/d1", try Self.body(ingress: broken))
        XCTAssertEqual(refused.status, 400, refused.text)
        XCTAssertTrue(refused.text.contains("ingress-path/code:7"), refused.text)
        // swap-on-read of a map that cannot have a second copy (a queue): refused before anything changes.
        var config = try JSONSerialization.jsonObject(with: Data(try Self.body(ingress: Self.ingressCode).utf8)) as! [String: Any]
        var dataplane = config["dataplane-config"] as! [String: Any], ingressPath = dataplane["ingress-path"] as! [String: Any]
        ingressPath["metric-configs"] = (ingressPath["metric-configs"] as! [[String: Any]]) + [["name": "q", "map-name": "lengths", "extraction-options": ["swap-on-read": true]]]
        dataplane["ingress-path"] = ingressPath
        config["dataplane-config"] = dataplane
        let unswappable = try await rest.call("PUT", "/dynmon/d1", String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self))
        XCTAssertEqual(unswappable.status, 400, unswappable.text)
        XCTAssertTrue(unswappable.text.contains("swap-on-read of 'lengths' needs it declared with one of"), unswappable.text)
        let kept = try await arrayValue("ingress-metrics", "icmp_packets")
        try ping(2)
        let counting = try await arrayValue("ingress-metrics", "icmp_packets")
        XCTAssertEqual(counting, kept + 2)

        // kill -9 of the cube-host, then of pcn-core: the counters live on in the kernel.
        kill9("cube-host/dynmon")
        try ping(2)
        try startCubeHost("dynmon")
        try await eventually(timeout: 20) { await self.arrayValueWhenBack("ingress-metrics", "icmp_packets") == kept + 4 }
        kill9("pcn-core")
        try ping(2)
        try start("pcn-core", ["--bpf-dir", repositoryRoot.appendingPathComponent("bpf").path])
        try ping(1)
        try await eventually(timeout: 30) { await self.arrayValueWhenBack("ingress-metrics", "icmp_packets") == kept + 7 }
        let repliesNow = try await arrayValue("egress-metrics", "echo_replies")
        XCTAssertEqual(repliesNow, 5 + 3 + 2 + 2 + 2 + 2 + 1, "every echo reply, across both restarts")
    }
}

import { deepEqual, equal } from "node:assert/strict";
import { BpfObject, struct, u64 } from "../bpf/mod.ts";
import type { StructCodec } from "../bpf/mod.ts";
import { connectEventsObject } from "./bpf/connect_events.bpf.ts";
import { xdpCountObject } from "./bpf/xdp_count.bpf.ts";
import { countKey, countValue } from "../plugins/count/mod.ts";
import { countObject } from "../plugins/count/count.bpf.ts";
import { connectEvent } from "./bpf/connect_event.ts";
import {
  mirrorCollector,
  mirrorCollectorStats,
  mirrorRecord,
  mirrorStatsCodec,
} from "../plugins/mirror/mod.ts";
import { mirrorObject } from "../plugins/mirror/mirror.bpf.ts";
import { beltRule } from "../plugins/rules.ts";
import { matchRuleObject } from "./bpf/match_rule.bpf.ts";
import { ctEvent, ctFilter } from "../plugins/connect/mod.ts";
import { connectObject } from "../plugins/connect/connect.bpf.ts";
import { sniffStats } from "../plugins/sniff/layout.ts";
import { sniffObject } from "../plugins/sniff/sniff.bpf.ts";

/** Every member's offset and size, and the total size, equal the compiled BTF. */
function assertMatchesBtf(codec: StructCodec<unknown>, object: Uint8Array, name: string): void {
  using obj = BpfObject.open(object);
  const btf = obj.btfStruct(name);
  deepEqual(
    { size: codec.size, members: codec.layout.filter((f) => !f.name.startsWith("_")) },
    { size: btf.size, members: btf.members },
  );
}

Deno.test("connectEvent codec matches struct connect_event in the object's BTF", () => {
  assertMatchesBtf(connectEvent as StructCodec<unknown>, connectEventsObject, "connect_event");
});

Deno.test("proto_count codec matches struct proto_count in the object's BTF", () => {
  assertMatchesBtf(
    struct({ packets: u64, bytes: u64 }) as StructCodec<unknown>,
    xdpCountObject,
    "proto_count",
  );
});

Deno.test("count plugin codecs match struct count_key and count_value", () => {
  assertMatchesBtf(countKey as StructCodec<unknown>, countObject, "count_key");
  assertMatchesBtf(countValue as StructCodec<unknown>, countObject, "count_value");
});

Deno.test("mirror codecs match the structs of plugins/mirror/mirror.h and belt_match.h", () => {
  for (
    const [codec, name] of [
      [mirrorCollector, "mirror_collector"],
      [mirrorRecord, "mirror_record"],
      [mirrorStatsCodec, "mirror_stats"],
      [mirrorCollectorStats, "mirror_collector_stats"],
      [beltRule, "belt_rule"],
    ] as const
  ) {
    assertMatchesBtf(codec as StructCodec<unknown>, mirrorObject, name);
  }
});

Deno.test("beltRule is the 104-byte struct belt_rule with MACs and ICMP type/code", () => {
  assertMatchesBtf(beltRule as StructCodec<unknown>, matchRuleObject, "belt_rule");
  equal(beltRule.size, 104);
  using obj = BpfObject.open(mirrorObject);
  const btf = obj.btfStruct("belt_rule");
  const tail = ["src_mac", "dst_mac", "any_mac", "icmp_type", "icmp_code", "pad2"];
  const want = [
    { name: "src_mac", offset: 80, size: 6 },
    { name: "dst_mac", offset: 86, size: 6 },
    { name: "any_mac", offset: 92, size: 6 },
    { name: "icmp_type", offset: 98, size: 1 },
    { name: "icmp_code", offset: 99, size: 1 },
    { name: "pad2", offset: 100, size: 4 },
  ];
  const pick = (ms: readonly { name: string; offset: number; size: number }[]) =>
    ms.filter((m) => tail.includes(m.name)).map(({ name, offset, size }) => ({
      name,
      offset,
      size,
    }));
  deepEqual(pick(btf.members), want, "BTF of mirror.bpf.o");
  deepEqual(pick(beltRule.layout), want, "the codec");
});

Deno.test("ctEvent and ctFilter codecs match struct ct_event and ct_filter in connect.bpf.o's BTF", () => {
  assertMatchesBtf(ctEvent as StructCodec<unknown>, connectObject, "ct_event");
  assertMatchesBtf(ctFilter as StructCodec<unknown>, connectObject, "ct_filter");
});

Deno.test("sniffStats codec matches struct sniff_stats in sniff.bpf.o's BTF", () => {
  assertMatchesBtf(sniffStats as StructCodec<unknown>, sniffObject, "sniff_stats");
});

/**
 * The firewall's structs: codecs against the object's BTF, and the fast
 * byte-level encoders of plugins/firewall/wire.ts against the codecs.
 */
import { deepEqual } from "node:assert/strict";
import { BpfObject } from "../bpf/mod.ts";
import type { StructCodec } from "../bpf/mod.ts";
import {
  fwConfig,
  fwCounter,
  fwHostKey,
  fwNetKey,
  fwRule,
  fwSlots,
  fwTotals,
  parseFirewallRule,
  ruleToStruct,
} from "../plugins/mod.ts";
import { firewallObject } from "../plugins/firewall/firewall.bpf.ts";
import { readRule, writeIndexKey, writeIndexValue, writeRule } from "../plugins/firewall/wire.ts";
import type { IndexEntry } from "../plugins/firewall/wire.ts";

const STRUCTS: [StructCodec<unknown>, string][] = [
  [fwRule as StructCodec<unknown>, "fw_rule"],
  [fwHostKey as StructCodec<unknown>, "fw_host_key"],
  [fwNetKey as StructCodec<unknown>, "fw_net_key"],
  [fwSlots as StructCodec<unknown>, "fw_slots"],
  [fwCounter as StructCodec<unknown>, "fw_counter"],
  [fwTotals as StructCodec<unknown>, "fw_totals"],
  [fwConfig as StructCodec<unknown>, "fw_config"],
];

for (const [codec, name] of STRUCTS) {
  Deno.test(`firewall: ${name} codec matches plugins/firewall/firewall.h (BTF)`, () => {
    using obj = BpfObject.open(firewallObject);
    const btf = obj.btfStruct(name);
    deepEqual(
      { size: codec.size, members: codec.layout.filter((f) => !f.name.startsWith("_")) },
      { size: btf.size, members: btf.members },
    );
  });
}

const RULES = [
  "deny src 203.0.113.0/24",
  "allow src 198.18.0.0/15 tcp dport 22",
  "deny tcp:23",
  "limit 1000/s burst 200 udp dport 53",
  "limit 7/s icmp",
  "deny out dst 192.0.2.0/24 udp sport 1000-2000",
  "deny ether src 02:00:00:00:00:66 vlan 12",
  "allow icmp6 type neighbor-solicit",
  "deny host fd00:beef::1 port 80-90",
  "deny ether host 02:00:5e:00:53:01 ip6",
  "allow arp",
];

Deno.test("firewall: writeRule and readRule agree with the fw_rule codec", () => {
  RULES.forEach((text, i) => {
    const rule = parseFirewallRule(text);
    const record = { ...rule, order: 1000 + i, id: 7 + i, origin: i % 3 };
    const fast = new Uint8Array(fwRule.size);
    writeRule(new DataView(fast.buffer), 0, record);
    const interval = rule.action === "limit" ? BigInt(Math.round(1e9 / rule.rate)) : 0n;
    const viaCodec = fwRule.pack({
      match: ruleToStruct(rule.match),
      order: record.order,
      id: record.id,
      action: { allow: 1, deny: 2, limit: 3 }[rule.action],
      in_use: 1,
      origin: record.origin,
      pad: undefined,
      rate: rule.rate,
      interval_ns: interval,
      tolerance_ns: interval * BigInt(rule.burst || 1),
    });
    deepEqual(fast, viaCodec, text);
    const back = readRule(new DataView(fast.buffer), 0)!;
    deepEqual(
      { ...back, match: ruleToStruct(back.match) },
      { ...record, match: ruleToStruct(rule.match) },
      text,
    );
  });
  deepEqual(readRule(new DataView(new ArrayBuffer(fwRule.size)), 0), undefined, "a free slot");
});

Deno.test("firewall: index keys and values agree with their codecs", () => {
  const addr = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 198, 18, 0, 0]);
  const host: IndexEntry = { kind: "host", dir: 2, side: 1, len: 128, addr, slots: [9] };
  const net: IndexEntry = { kind: "net", dir: 1, side: 0, len: 111, addr, slots: [3, 1, 4] };
  const buf = new Uint8Array(fwSlots.size), view = new DataView(buf.buffer);
  writeIndexKey(view, 0, host, 1);
  deepEqual(
    buf.slice(0, fwHostKey.size),
    fwHostKey.pack({ gen: 1, dir: 2, side: 1, pad: undefined, addr }),
  );
  writeIndexKey(view, 0, net, 0);
  deepEqual(
    buf.slice(0, fwNetKey.size),
    fwNetKey.pack({ prefixlen: 24 + 111, gen: 0, dir: 1, side: 0, addr, pad: undefined }),
  );
  writeIndexValue(view, 0, net);
  const slots = [3, 1, 4, ...Array(29).fill(0)];
  deepEqual(buf, fwSlots.pack({ len: 111, count: 3, pad: undefined, slots }));
});

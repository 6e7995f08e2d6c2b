/**
 * Fast byte-level encoding of fw_rule and the index entries, for batches
 * of 100k rules: the generic struct codecs allocate a typed array per
 * member, which costs seconds at that size. Offsets come from the codecs
 * in layout.ts (checked against BTF by tests/layout_test.ts), and
 * tests/firewall_table_test.ts checks that these functions write and read
 * exactly what the codecs do.
 *
 * @module
 */
import { beltRule } from "../rules.ts";
import type { Rule } from "../rules.ts";
import { FIREWALL, fwHostKey, fwNetKey, fwRule, fwSlots } from "./layout.ts";
import type { FirewallAction } from "./rule.ts";

const at = (layout: readonly { name: string; offset: number }[], name: string) =>
  layout.find((f) => f.name === name)!.offset;

const M = Object.fromEntries(
  beltRule.layout.map((f) => [f.name, f.offset + at(fwRule.layout, "match")]),
);
const R = Object.fromEntries(fwRule.layout.map((f) => [f.name, f.offset]));
const S = Object.fromEntries(fwSlots.layout.map((f) => [f.name, f.offset]));
const H = Object.fromEntries(fwHostKey.layout.map((f) => [f.name, f.offset]));
const N = Object.fromEntries(fwNetKey.layout.map((f) => [f.name, f.offset]));

const ACTION_CODE: Record<FirewallAction, number> = {
  allow: FIREWALL.pass,
  deny: FIREWALL.drop,
  limit: FIREWALL.limit,
};
const ACTION_NAME: Record<number, FirewallAction> = { 1: "allow", 2: "deny", 3: "limit" };

/** The fw_rule members user space writes, decoded. */
export interface RuleRecord {
  /** The conditions. */
  match: Rule;
  /** allow, deny or limit. */
  action: FirewallAction;
  /** limit: packets/s per source. */
  rate: number;
  /** limit: burst in packets. */
  burst: number;
  /** Place in the order. */
  order: number;
  /** Unique id. */
  id: number;
  /** Origin code (0 command, 1 file, 2 added). */
  origin: number;
}

const ZERO16 = new Uint8Array(16);
const ZERO6 = new Uint8Array(6);

function putBytes(v: DataView, off: number, src: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) v.setUint8(off + i, src[i] ?? 0);
}

/** Bytes at off, or a shared zero array when they are all zero (rules are never changed). */
function getBytes(v: DataView, off: number, n: number): Uint8Array {
  let any = 0;
  for (let i = 0; i < n; i++) any |= v.getUint8(off + i);
  if (!any) return n === 16 ? ZERO16 : ZERO6;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = v.getUint8(off + i);
  return out;
}

/**
 * Writes a whole struct fw_rule at `off` (in_use = 1), every byte.
 *
 * @example
 * ```ts ignore
 * writeRule(view, 0, { match, action: "deny", rate: 0, burst: 0, order: 1, id: 1, origin: 0 });
 * ```
 */
export function writeRule(v: DataView, off: number, r: RuleRecord): void {
  for (let i = 0; i < fwRule.size; i++) v.setUint8(off + i, 0);
  const m = r.match;
  v.setUint32(off + M.fields!, m.fields, true);
  v.setUint16(off + M.eth_proto!, m.ethProto, true);
  v.setUint8(off + M.l4_proto!, m.l4Proto);
  v.setUint8(off + M.direction!, m.direction);
  v.setUint16(off + M.vlan!, m.vlan, true);
  v.setUint16(off + M.sport_lo!, m.sportLo, true);
  v.setUint16(off + M.sport_hi!, m.sportHi, true);
  v.setUint16(off + M.dport_lo!, m.dportLo, true);
  v.setUint16(off + M.dport_hi!, m.dportHi, true);
  v.setUint16(off + M.port_lo!, m.portLo, true);
  v.setUint16(off + M.port_hi!, m.portHi, true);
  v.setUint8(off + M.src_len!, m.srcLen);
  v.setUint8(off + M.dst_len!, m.dstLen);
  v.setUint8(off + M.any_len!, m.anyLen);
  putBytes(v, off + M.src!, m.src, 16);
  putBytes(v, off + M.dst!, m.dst, 16);
  putBytes(v, off + M.any!, m.any, 16);
  putBytes(v, off + M.src_mac!, m.srcMac, 6);
  putBytes(v, off + M.dst_mac!, m.dstMac, 6);
  putBytes(v, off + M.any_mac!, m.anyMac, 6);
  v.setUint8(off + M.icmp_type!, m.icmpType);
  v.setUint8(off + M.icmp_code!, m.icmpCode);
  const interval = r.action === "limit" ? BigInt(Math.round(1e9 / r.rate)) : 0n;
  v.setUint32(off + R.order!, r.order, true);
  v.setUint32(off + R.id!, r.id, true);
  v.setUint8(off + R.action!, ACTION_CODE[r.action]);
  v.setUint8(off + R.in_use!, 1);
  v.setUint8(off + R.origin!, r.origin);
  v.setUint32(off + R.rate!, r.rate, true);
  v.setBigUint64(off + R.interval_ns!, interval, true);
  v.setBigUint64(off + R.tolerance_ns!, interval * BigInt(r.burst || 1), true);
}

/**
 * Reads the struct fw_rule at `off`, or undefined for a free slot.
 *
 * @example
 * ```ts ignore
 * const r = readRule(view, 0);
 * ```
 */
export function readRule(v: DataView, off: number): RuleRecord | undefined {
  if (v.getUint8(off + R.in_use!) !== 1) return undefined;
  const action = ACTION_NAME[v.getUint8(off + R.action!)] ?? "deny";
  const interval = v.getBigUint64(off + R.interval_ns!, true);
  const limit = action === "limit";
  return {
    action,
    rate: limit ? v.getUint32(off + R.rate!, true) : 0,
    burst: limit && interval ? Number(v.getBigUint64(off + R.tolerance_ns!, true) / interval) : 0,
    order: v.getUint32(off + R.order!, true),
    id: v.getUint32(off + R.id!, true),
    origin: v.getUint8(off + R.origin!),
    match: {
      text: "",
      fields: v.getUint32(off + M.fields!, true),
      ethProto: v.getUint16(off + M.eth_proto!, true),
      l4Proto: v.getUint8(off + M.l4_proto!),
      direction: v.getUint8(off + M.direction!),
      vlan: v.getUint16(off + M.vlan!, true),
      sportLo: v.getUint16(off + M.sport_lo!, true),
      sportHi: v.getUint16(off + M.sport_hi!, true),
      dportLo: v.getUint16(off + M.dport_lo!, true),
      dportHi: v.getUint16(off + M.dport_hi!, true),
      portLo: v.getUint16(off + M.port_lo!, true),
      portHi: v.getUint16(off + M.port_hi!, true),
      srcLen: v.getUint8(off + M.src_len!),
      dstLen: v.getUint8(off + M.dst_len!),
      anyLen: v.getUint8(off + M.any_len!),
      src: getBytes(v, off + M.src!, 16),
      dst: getBytes(v, off + M.dst!, 16),
      any: getBytes(v, off + M.any!, 16),
      srcMac: getBytes(v, off + M.src_mac!, 6),
      dstMac: getBytes(v, off + M.dst_mac!, 6),
      anyMac: getBytes(v, off + M.any_mac!, 6),
      icmpType: v.getUint8(off + M.icmp_type!),
      icmpCode: v.getUint8(off + M.icmp_code!),
    },
  };
}

/** One entry of an index: a prefix on one side, in one direction, and its slots by order. */
export interface IndexEntry {
  /** fw_hosts (whole address) or fw_nets. */
  kind: "host" | "net";
  /** 1 in, 2 out. */
  dir: number;
  /** FW_SIDE_SRC or FW_SIDE_DST. */
  side: number;
  /** Prefix length in the 128-bit form. */
  len: number;
  /** The prefix, 16 bytes. */
  addr: Uint8Array;
  /** Rule slots, by order. */
  slots: number[];
}

/**
 * Writes the key of an index entry for generation `gen` (fw_host_key or fw_net_key).
 *
 * @example
 * ```ts ignore
 * writeIndexKey(view, 0, entry, 1);
 * ```
 */
export function writeIndexKey(v: DataView, off: number, e: IndexEntry, gen: number): void {
  if (e.kind === "host") {
    for (let i = 0; i < fwHostKey.size; i++) v.setUint8(off + i, 0);
    v.setUint8(off + H.gen!, gen);
    v.setUint8(off + H.dir!, e.dir);
    v.setUint8(off + H.side!, e.side);
    putBytes(v, off + H.addr!, e.addr, 16);
    return;
  }
  for (let i = 0; i < fwNetKey.size; i++) v.setUint8(off + i, 0);
  v.setUint32(off + N.prefixlen!, FIREWALL.netKeyBits + e.len, true);
  v.setUint8(off + N.gen!, gen);
  v.setUint8(off + N.dir!, e.dir);
  v.setUint8(off + N.side!, e.side);
  putBytes(v, off + N.addr!, e.addr, 16);
}

/**
 * Writes the fw_slots value of an index entry.
 *
 * @example
 * ```ts ignore
 * writeIndexValue(view, 0, entry);
 * ```
 */
export function writeIndexValue(v: DataView, off: number, e: IndexEntry): void {
  for (let i = 0; i < fwSlots.size; i++) v.setUint8(off + i, 0);
  v.setUint8(off + S.len!, e.len);
  v.setUint8(off + S.count!, e.slots.length);
  e.slots.forEach((slot, i) => v.setUint32(off + S.slots! + 4 * i, slot, true));
}

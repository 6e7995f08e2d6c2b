/**
 * The firewall's XDP and egress programs against the TypeScript reference
 * (plugins/firewall/reference.ts) on random rule sets and random frames.
 *
 * The kernel finds candidate rules through indexes (an exact-address hash and
 * an LPM trie walked from the longest prefix to /0, per side, in two
 * generations that FirewallTable flips); the reference simply tries every rule
 * in order. So the rule sets here are built from a few nested and overlapping
 * prefixes per round (IPv4 and IPv6, /0 to /32 and /0 to /128, src, dst and
 * either side, often several rules on one prefix), mixed with ports, ranges,
 * protocols, ICMP types, VLANs, MACs and ARP, and the frames mostly carry
 * addresses inside those prefixes. Rules come from the command line, the rules
 * file and `add`, and change between rounds by replace, add, remove and
 * reordering, so the order and origin bookkeeping and the index updates are
 * exercised as well.
 *
 * Each frame is parsed by the kernel itself (tests/bpf/packet_cursor.bpf.c:
 * parse_xdp for ingress, parse_tc for egress), and that parse is what the
 * reference decides on. After every round the per-rule counters and fw_totals
 * must equal what the reference attributes.
 *
 * `limit` rules: "limit 1000000000/s burst 1000000000" never limits; strict
 * ones ("limit 1/s [burst N]") are modelled as "the first N packets of a
 * source pass, the rest are dropped", which holds while a round lasts under a
 * second (fw_buckets is emptied before each round).
 */
import { fail, ok } from "node:assert/strict";
import { BeltError, BpfObject, bytes, u32 } from "../bpf/mod.ts";
import {
  BELT_M_ANY,
  BELT_M_DMAC,
  BELT_M_DPORT,
  BELT_M_DST,
  BELT_M_ICMP_CODE,
  BELT_M_ICMP_TYPE,
  BELT_M_MAC,
  BELT_M_PORT,
  BELT_M_SMAC,
  BELT_M_SPORT,
  BELT_M_SRC,
  BELT_M_VLAN,
  beltPacket,
  ruleMatches,
} from "../plugins/rules.ts";
import type { BeltPacket, ParsedPacket } from "../plugins/rules.ts";
import { firewallObject } from "../plugins/firewall/firewall.bpf.ts";
import { fwTotals } from "../plugins/firewall/layout.ts";
import { firewall, firewallMaps } from "../plugins/firewall/mod.ts";
import type { FirewallOptions } from "../plugins/firewall/mod.ts";
import { firewallDecision } from "../plugins/firewall/reference.ts";
import type { FirewallDecision, FirewallPolicy } from "../plugins/firewall/reference.ts";
import { formatFirewallRule, parseFirewallRule, ruleDirection } from "../plugins/firewall/rule.ts";
import type { FirewallRule } from "../plugins/firewall/rule.ts";
import { FirewallTable } from "../plugins/firewall/table.ts";
import type { InstalledRule, RuleOrigin } from "../plugins/firewall/table.ts";
import { packetCursorObject } from "./bpf/packet_cursor.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { cat, hex, n16, n32 } from "./harness/frames.ts";
import type { Bytes } from "./harness/frames.ts";

const SEED = 0xf1e3_2a11;
const ROUNDS = 40;
const FRAMES_PER_ROUND = 2600;
/** Share of the frames also run through the egress program (TC test runs cost more). */
const EGRESS_SHARE = 0.4;
const CAPACITY = 1024;
const SLOTS_PER_ENTRY = 32; // FW_SLOTS
const XDP_DROP = 1, XDP_PASS = 2;
const TC_NEXT = -1, TC_DROP = 2;
const F_FRAGMENT = 1 << 5, F_FIRST_FRAG = 1 << 6;
const F_STOPPED = (1 << 9) | (1 << 10) | (1 << 11); // TRUNCATED | MALFORMED | EXT_LIMIT
/** Strict limit rules are modelled as "first `burst` packets pass": true within 1 s of the first. */
const LIMIT_WINDOW_MS = 900;

// ---------------------------------------------------------------------------------------------
// Randomness

/** mulberry32: the same rule sets and frames on every run. */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    int,
    chance: (p: number) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!,
    bytes: (n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(int(256));
      return out;
    },
  };
}
type Rand = ReturnType<typeof prng>;

function shuffle<T>(r: Rand, xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Addresses (belt_packet's 16-byte form) and the prefixes of a round

const TCP = 6, UDP = 17, ICMP = 1, ICMPV6 = 58;
const HOP = 0, RTG = 43, FRG = 44, DST = 60;

const mapped = (a: readonly number[]): Bytes => cat(new Uint8Array(10), [0xff, 0xff], a);
const isMapped = (a: Uint8Array) =>
  a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff;

/** `a` with the bits past `len` cleared (keep) or random (random). */
function bitsAfter(a: Uint8Array, len: number, r?: Rand): Bytes {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = len - 8 * i;
    const mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff;
    out[i] = (a[i]! & mask) | (r && mask !== 0xff ? r.int(256) & ~mask : 0);
  }
  return out;
}

function v4Base(r: Rand): Bytes {
  const x = r.int(100);
  if (x < 35) return mapped([198, 18, r.int(2), 1 + r.int(4)]);
  if (x < 60) return mapped([198, 19, r.int(3), r.int(256)]);
  if (x < 85) return mapped([198, 18, r.int(256), r.int(256)]);
  return mapped(r.bytes(4));
}

function v6Base(r: Rand): Bytes {
  const x = r.int(100);
  const a = new Uint8Array(16);
  a.set([0xfd, 0x00, 0xbe, 0xef]);
  if (x < 30) a[15] = 1 + r.int(4);
  else if (x < 55) a.set([0, 1, ...r.bytes(8)], 6);
  else if (x < 80) a.set([...r.bytes(2), 0, 0, ...r.bytes(8)], 4);
  else return cat(r.bytes(16));
  return a;
}

interface Prefix {
  addr: Bytes;
  len: number;
}

/** Addresses the round's rules are built around, and prefixes of them (nested, overlapping). */
interface Pool {
  anchors: Bytes[];
  prefixes: Prefix[];
}

function roundPool(r: Rand): Pool {
  const anchors: Bytes[] = [];
  const prefixes: Prefix[] = [];
  const n = 3 + r.int(5);
  for (let i = 0; i < n; i++) {
    const six = r.chance(0.5);
    const a = six ? v6Base(r) : v4Base(r);
    anchors.push(a);
    if (r.chance(0.5)) prefixes.push({ addr: a, len: 128 });
    for (let k = 1 + r.int(4); k > 0; k--) {
      const len = six
        ? r.chance(0.7) ? r.pick([0, 8, 16, 32, 48, 64, 96, 112, 120, 126, 127, 128]) : r.int(129)
        : 96 + (r.chance(0.7) ? r.pick([0, 1, 8, 15, 16, 23, 24, 25, 30, 31, 32]) : r.int(33));
      prefixes.push({ addr: bitsAfter(a, len), len });
    }
  }
  if (r.chance(0.3)) prefixes.push({ addr: new Uint8Array(16), len: 0 }); // ::/0
  if (r.chance(0.3)) prefixes.push({ addr: mapped([0, 0, 0, 0]), len: 96 }); // 0.0.0.0/0
  if (r.chance(0.2)) prefixes.push({ addr: mapped([0, 0, 0, 0]), len: 80 }); // ::ffff:0:0/80
  return { anchors, prefixes };
}

/** An address for a frame: mostly inside the round's prefixes, at various depths. */
function frameAddr(r: Rand, pool: Pool, six: boolean): Bytes {
  const wantMapped = !six || r.chance(0.05); // IPv4-mapped on the wire: matched as IPv4
  const anchors = pool.anchors.filter((a) => isMapped(a) === wantMapped);
  const x = r.int(100);
  if (anchors.length && x < 30) return r.pick(anchors).slice();
  if (anchors.length && x < 75) {
    const a = r.pick(anchors);
    const min = wantMapped ? 96 : 0;
    const inside = pool.prefixes.filter((p) => p.len >= min && sameBits(a, p.addr, p.len));
    const len = inside.length && r.chance(0.7) ? r.pick(inside).len : min + r.int(129 - min);
    return bitsAfter(a, len, r);
  }
  return wantMapped ? v4Base(r) : v6Base(r);
}

/** The first `len` bits of `a` equal `prefix` (whose later bits are zero). */
function sameBits(a: Uint8Array, prefix: Uint8Array, len: number): boolean {
  for (let i = 0; i < 16; i++) {
    const bits = len - 8 * i;
    const mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff;
    if ((a[i]! & mask) !== prefix[i]) return false;
  }
  return true;
}

function prefixText(p: Prefix): string {
  if (p.len >= 96 && isMapped(p.addr)) {
    const dotted = Array.from(p.addr.subarray(12)).join(".");
    return p.len === 128 ? dotted : `${dotted}/${p.len - 96}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => (p.addr[2 * i]! << 8 | p.addr[2 * i + 1]!))
    .map((g) => g.toString(16)).join(":");
  return p.len === 128 ? groups : `${groups}/${p.len}`;
}

// ---------------------------------------------------------------------------------------------
// Random frames

const PORTS = [0, 22, 53, 80, 443, 1023, 1024, 5353, 8000, 8080, 65535];
const framePort = (r: Rand) => r.chance(0.6) ? r.pick(PORTS) : r.int(65536);
const rulePort = (r: Rand) => r.chance(0.85) ? r.pick(PORTS) : r.int(65536);
const MACS = ["02:00:5e:10:00:01", "02:00:5e:10:00:02", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff"];
const macBytes = (s: string) => new Uint8Array(s.split(":").map((x) => parseInt(x, 16)));
const frameMac = (r: Rand) => r.chance(0.85) ? macBytes(r.pick(MACS)) : cat(r.bytes(6));
const ICMP4_TYPES = [0, 3, 5, 8, 11];
const ICMP6_TYPES = [1, 3, 128, 129, 133, 134, 135, 136, 137, 135, 136];
const CODES = [0, 0, 0, 1, 3];
const VIDS = [0, 10, 100, 4094];

function l4(r: Rand, proto: number, icmpProto: number): { bytes: Bytes; hdr: number } {
  const payload = r.bytes(r.int(24));
  if (proto === TCP) {
    const doff = r.chance(0.02) ? r.int(5) : 5 + (r.chance(0.3) ? r.int(11) : 0);
    const opts = Array(Math.max(0, doff - 5) * 4).fill(1);
    return {
      bytes: cat(
        n16(framePort(r)),
        n16(framePort(r)),
        n32(r.int(2 ** 32)),
        n32(0),
        [doff << 4, r.int(256)],
        n16(65535),
        [0, 0, 0, 0],
        opts,
        payload,
      ),
      hdr: Math.max(20, doff * 4),
    };
  }
  if (proto === UDP) {
    return {
      bytes: cat(n16(framePort(r)), n16(framePort(r)), n16(8 + payload.length), [0, 0], payload),
      hdr: 8,
    };
  }
  if (proto === icmpProto) {
    const six = icmpProto === ICMPV6;
    const type = r.chance(0.85) ? r.pick(six ? ICMP6_TYPES : ICMP4_TYPES) : r.int(256);
    const code = r.chance(0.85) ? r.pick(CODES) : r.int(256);
    return { bytes: cat([type, code, 0, 0], r.bytes(4), payload), hdr: 8 };
  }
  return { bytes: cat(payload), hdr: 0 };
}

function l4Proto(r: Rand, six: boolean): number {
  const own = six ? ICMPV6 : ICMP, other = six ? ICMP : ICMPV6;
  const p = r.pick([TCP, TCP, TCP, UDP, UDP, UDP, own, own, own, other, 47, 0, 59, r.int(256)]);
  return six && [HOP, RTG, FRG, DST].includes(p) ? 59 : p;
}

/** IPv4 packet: [bytes, header bytes up to the end of L4]. */
function ipv4(r: Rand, pool: Pool): [Bytes, number] {
  const proto = l4Proto(r, false);
  const optLen = r.chance(0.2) ? 4 * (1 + r.int(10)) : 0;
  const ihl = 5 + optLen / 4;
  const kind = r.int(100); // <75 whole, <87 first fragment, else a later one
  const fragOff = kind < 87 ? 0 : 1 + r.int(8191);
  const mf = kind >= 75 && kind < 87 ? 1 : fragOff ? r.int(2) : 0;
  const frag = (r.chance(0.3) ? 0x4000 : 0) | (mf << 13) | fragOff;
  const upper = fragOff ? { bytes: cat(r.bytes(r.int(40))), hdr: 0 } : l4(r, proto, ICMP);
  const bad = r.int(100) < 3 ? r.pick(["ihl", "version", "totlen"]) : "";
  const tot = bad === "totlen"
    ? 1 + r.int(ihl * 4 - 1)
    : r.chance(0.05)
    ? r.int(65536)
    : ihl * 4 + upper.bytes.length;
  const head = cat(
    [(bad === "version" ? r.pick([0, 6, 15]) : 4) << 4 | (bad === "ihl" ? r.int(5) : ihl), 0],
    n16(tot),
    n16(r.int(65536)),
    n16(frag),
    [1 + r.int(255), proto, 0, 0],
    frameAddr(r, pool, false).subarray(12),
    frameAddr(r, pool, false).subarray(12),
    Array(optLen).fill(1),
  );
  return [cat(head, upper.bytes), ihl * 4 + upper.hdr];
}

/** IPv6 packet with an extension header chain: [bytes, header bytes up to the end of L4]. */
function ipv6(r: Rand, pool: Pool): [Bytes, number] {
  const n = r.chance(0.5) ? 0 : r.chance(0.92) ? 1 + r.int(3) : 4 + r.int(4);
  const kinds: number[] = [];
  for (let i = 0; i < n; i++) kinds.push(i === 0 && r.chance(0.4) ? HOP : r.pick([DST, RTG]));
  let fragAt = -1, fragOff = 0, mf = 0;
  if (n && r.chance(0.45)) {
    fragAt = r.int(n);
    if (kinds[fragAt] === HOP) fragAt = Math.min(n - 1, fragAt + 1);
    kinds[fragAt] = FRG;
    const k = r.int(3); // atomic, first, later
    fragOff = k === 2 ? 1 + r.int(8191) : 0;
    mf = k === 0 ? 0 : k === 1 ? 1 : r.int(2);
  }
  if (n >= 2 && r.int(100) < 3) kinds[1 + r.int(n - 1)] = r.pick([HOP, FRG]); // out of order
  const proto = l4Proto(r, true);
  const later = fragAt >= 0 && fragOff > 0;
  const upper = later ? { bytes: cat(r.bytes(r.int(40))), hdr: 0 } : l4(r, proto, ICMPV6);
  let inner: Bytes = upper.bytes;
  let extLen = 0;
  for (let i = n - 1; i >= 0; i--) {
    const nh = i === n - 1 ? proto : kinds[i + 1]!;
    if (kinds[i] === FRG) {
      inner = cat(
        [nh, 0],
        n16(fragOff << 3 | (r.chance(0.2) ? 6 : 0) | mf),
        n32(r.int(2 ** 32)),
        inner,
      );
      extLen += 8;
    } else {
      const units = r.chance(0.7) ? 0 : 1 + r.int(3);
      inner = cat([nh, units], Array(6 + 8 * units).fill(0), inner);
      extLen += 8 + 8 * units;
    }
  }
  const version = r.int(100) < 2 ? r.pick([0, 4, 7]) : 6;
  const head = cat(
    n32((version << 28 | r.int(1 << 28)) >>> 0),
    n16(r.chance(0.05) ? r.int(65536) : inner.length),
    [n ? kinds[0]! : proto, 1 + r.int(255)],
    frameAddr(r, pool, true),
    frameAddr(r, pool, true),
  );
  return [cat(head, inner), 40 + extLen + upper.hdr];
}

function randomFrame(r: Rand, pool: Pool): Bytes {
  const t = r.int(100);
  const tags = t < 68 ? 0 : t < 86 ? 1 : t < 97 ? 2 : 3;
  const k = r.int(100);
  const ethType = k < 42
    ? 0x0800
    : k < 84
    ? 0x86dd
    : k < 93
    ? 0x0806
    : r.pick([0x88cc, 0x8847, 0x0000, 0x05dc, 0x9000]);
  const l2 = cat(
    frameMac(r),
    frameMac(r),
    ...Array.from({ length: tags }, () =>
      cat(
        n16(r.pick([0x8100, 0x88a8])),
        n16(r.int(16) << 12 | (r.chance(0.7) ? r.pick(VIDS) : r.int(4096))),
      )),
    n16(ethType),
  );
  let l3: Bytes, need = 8;
  if (ethType === 0x0800) [l3, need] = ipv4(r, pool);
  else if (ethType === 0x86dd) [l3, need] = ipv6(r, pool);
  else l3 = cat(r.bytes(ethType === 0x0806 ? 28 : r.int(46)));
  const frame = cat(l2, l3);
  if (!r.chance(0.22)) return frame;
  // Cut, mostly inside the headers; XDP test runs need the 14-byte Ethernet header.
  const end = l2.length + need + 8;
  return frame.slice(0, Math.min(frame.length, 14 + r.int(Math.max(1, end - 13))));
}

/** The TC test run refuses (EINVAL) IPv4/IPv6 frames too short for the bare IP header. */
function tcRefuses(frame: Uint8Array): boolean {
  const type = (frame[12]! << 8) | frame[13]!;
  return frame.length < 14 + (type === 0x0800 ? 20 : type === 0x86dd ? 40 : 0);
}

// ---------------------------------------------------------------------------------------------
// Random rules

const ALLOW = ["allow", "allow", "allow", "pass", "accept"];
const DENY = ["deny", "deny", "deny", "drop", "block"];
const NEVER_LIMITS = "limit 1000000000/s burst 1000000000";

function addressTerms(r: Rand, pool: Pool): string {
  const p = () => r.pick(pool.prefixes);
  const side = (s: string, q: Prefix) =>
    r.chance(0.5)
      ? `${s} ${prefixText(q)}`
      : `${s} ${q.len === 128 ? "host" : "net"} ${prefixText(q)}`;
  const q = p();
  switch (r.int(9)) {
    case 0:
    case 1:
      return side("src", q);
    case 2:
    case 3:
      return side("dst", q);
    case 4:
    case 5:
      return `${q.len === 128 ? "host" : "net"} ${prefixText(q)}`;
    case 6:
      return prefixText(q); // the firewall's shorthand: the remote side
    case 7:
      return `${side("src", q)} ${side("dst", p())}`;
    default:
      return `${side(r.pick(["src", "dst"]), q)} ${q.len === 128 ? "host" : "net"} ${
        prefixText(p())
      }`;
  }
}

function protoTerms(r: Rand): string {
  const x = r.int(16);
  if (x < 3) return r.pick(["tcp", "udp"]);
  if (x < 7) {
    const six = r.chance(0.55);
    const out = [six ? "icmp6" : "icmp"];
    if (r.chance(0.7)) out.push(`type ${r.pick(six ? ICMP6_TYPES : ICMP4_TYPES)}`);
    if (r.chance(0.25)) out.push(`code ${r.pick(CODES)}`);
    return out.join(" ");
  }
  if (x < 9) return `${r.pick(["tcp", "udp"])}:${rulePort(r)}`;
  return r.pick(["arp", "ip", "ip6", "proto 47", "proto 58", "proto 1", "ether proto 0x88cc"]);
}

function portTerms(r: Rand): string {
  const kw = r.pick(["port", "sport", "dport", "dst port", "src port"]);
  if (r.chance(0.5)) return `${kw} ${rulePort(r)}`;
  const [a, b] = [rulePort(r), rulePort(r)];
  return `${kw} ${
    r.chance(0.5)
      ? r.pick(["1-1023", "1024-65535", "80-443", "0-65535"])
      : `${Math.min(a, b)}-${Math.max(a, b)}`
  }`;
}

function randomRule(r: Rand, pool: Pool, strictLimits: boolean): FirewallRule {
  for (;;) {
    const terms: string[] = [];
    if (r.chance(0.72)) terms.push(addressTerms(r, pool));
    if (r.chance(0.5)) terms.push(protoTerms(r));
    if (r.chance(0.25)) terms.push(portTerms(r));
    if (r.chance(0.08)) terms.push(r.pick(["vlan", "vlan 10", "vlan 0", "vlan 100"]));
    if (r.chance(0.08)) terms.push(`ether ${r.pick(["src", "dst", "host"])} ${r.pick(MACS)}`);
    const dir = r.int(100);
    if (dir < 8) terms.push(r.pick(["in", "inbound"]));
    else if (dir < 22) terms.push(r.pick(["out", "outbound"]));
    if (!terms.length) terms.push(protoTerms(r));
    const a = r.int(100);
    const action = a < 40
      ? r.pick(ALLOW)
      : a < 82
      ? r.pick(DENY)
      : a < 91 || !strictLimits
      ? NEVER_LIMITS
      : r.pick(["limit 1/s", "limit 1/s burst 2", "limit 1 burst 3"]);
    try {
      return parseFirewallRule(
        `${action} ${shuffle(r, terms).join(r.chance(0.3) ? " and " : " ")}`,
      );
    } catch (e) {
      if (!(e instanceof BeltError)) throw e; // conflicting terms (e.g. 'arp port 80'): again
    }
  }
}

/** The index entries a rule sits in (as FirewallTable lays them out), to stay under FW_SLOTS. */
function entriesOf(rule: FirewallRule): string[] {
  const m = rule.match, dir = ruleDirection(rule);
  const key = (side: number, a: Uint8Array, len: number) => `${dir}|${side}|${len}|${hex(a)}`;
  if (m.fields & BELT_M_SRC) return [key(0, m.src, m.srcLen)];
  if (m.fields & BELT_M_DST) return [key(1, m.dst, m.dstLen)];
  if (m.fields & BELT_M_ANY) return [key(0, m.any, m.anyLen), key(1, m.any, m.anyLen)];
  return [key(0, new Uint8Array(16), 0)];
}

function fits(rules: FirewallRule[]): boolean {
  const n = new Map<string, number>();
  for (const r of rules) for (const k of entriesOf(r)) n.set(k, (n.get(k) ?? 0) + 1);
  return [...n.values()].every((c) => c <= SLOTS_PER_ENTRY);
}

/** `count` random rules that, with `others`, fit the index; none with a text in `avoid`. */
function randomRules(
  r: Rand,
  pool: Pool,
  count: number,
  others: FirewallRule[],
  strictLimits: boolean,
  avoid?: Set<string>,
): FirewallRule[] {
  const out: FirewallRule[] = [];
  for (let tries = 0; out.length < count && tries < count * 20; tries++) {
    const rule = randomRule(r, pool, strictLimits);
    if (avoid?.has(formatFirewallRule(rule))) continue;
    if (!fits([...others, ...out, rule])) continue;
    avoid?.add(formatFirewallRule(rule));
    out.push(rule);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reporting

const describe = (p: BeltPacket) =>
  JSON.stringify({
    ...p,
    srcAddr: hex(p.srcAddr),
    dstAddr: hex(p.dstAddr),
    srcMac: hex(p.srcMac),
    dstMac: hex(p.dstMac),
  });

/** The length of the longest index entry of `rule` that holds `pkt` (-1: none; 0: generic). */
function indexDepth(rule: FirewallRule, pkt: ParsedPacket): number {
  const m = rule.match;
  if (m.fields & BELT_M_SRC) return m.srcLen;
  if (m.fields & BELT_M_DST) return m.dstLen;
  if (m.fields & BELT_M_ANY) {
    // Indexed on both sides; the deeper of the two is where the kernel finds it first.
    const inSrc = sameBits(pkt.srcAddr, m.any, m.anyLen),
      inDst = sameBits(pkt.dstAddr, m.any, m.anyLen);
    return inSrc || inDst ? m.anyLen : -1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The test

interface Tally {
  packets: bigint;
  bytes: bigint;
  limited: bigint;
}

kernelTest(
  "firewall_xdp and firewall_egress decide like firewallVerdict() on random rule sets and frames",
  () => {
    const r = prng(SEED);
    using parser = BpfObject.open(packetCursorObject);
    parser.load();
    const parsed = parser.map("result").typed(u32, beltPacket);
    const parseXdp = parser.program("parse_xdp"), parseTc = parser.program("parse_tc");

    using obj = BpfObject.open(firewallObject);
    const base: FirewallOptions = {
      rules: [],
      fileRules: [],
      defaultIn: "allow",
      keepNd: true,
      capacity: CAPACITY,
      egress: true,
    };
    firewall.configure!(obj, base);
    obj.load();
    const maps = firewallMaps(obj);
    const table = new FirewallTable(maps);
    const totalsMap = obj.map("fw_totals").typed(u32, fwTotals);
    const buckets = obj.map("fw_buckets").typed(bytes(20), bytes(8));
    const xdp = obj.program("firewall_xdp"), egress = obj.program("firewall_egress");

    // The model: rules by origin, in order.
    const model: Record<RuleOrigin, FirewallRule[]> = { command: [], file: [], added: [] };
    const expected = () => [...model.command, ...model.file, ...model.added];
    const origins = () => [
      ...model.command.map(() => "command"),
      ...model.file.map(() => "file"),
      ...model.added.map(() => "added"),
    ];

    let xdpFrames = 0, tcFrames = 0, rulesTotal = 0, maxRules = 0, overflowChecks = 0;
    const ops = new Map<string, number>();
    const reasons = new Map<string, number>();
    const depth = { generic: 0, trie: 0, host: 0, dstSide: 0, bothSides: 0, orderOverDepth: 0 };
    // Decisions by rules with each kind of term: every kind must take part.
    const TERMS = {
      MAC: BELT_M_SMAC | BELT_M_DMAC | BELT_M_MAC,
      ICMP: BELT_M_ICMP_TYPE | BELT_M_ICMP_CODE,
      VLAN: BELT_M_VLAN,
      port: BELT_M_SPORT | BELT_M_DPORT | BELT_M_PORT,
    };
    const byTerm = new Map(Object.keys(TERMS).map((k) => [k, 0]));
    let limitedSeen = 0, loose = 0;
    const t0 = performance.now();

    for (let round = 0; round < ROUNDS; round++) {
      const pool = roundPool(r);
      const strict = r.chance(0.6);
      const policy: FirewallPolicy = {
        defaultIn: r.chance(0.5) ? "deny" : "allow",
        keepNd: r.chance(0.7),
        defaultOut: r.chance(0.75) ? "allow" : "deny",
      };
      const size = r.chance(0.15) ? 80 + r.int(120) : 1 + r.int(40);

      // 1. Change the rule set, the way this round says.
      let op: string;
      if (round === 0) {
        op = "fill";
        const cmd = randomRules(r, pool, size, [], strict);
        const file = randomRules(r, pool, r.int(10), cmd, strict);
        firewall.fill!(obj, {
          ...base,
          rules: cmd,
          fileRules: file,
          defaultIn: policy.defaultIn,
          keepNd: policy.keepNd,
        });
        model.command = cmd;
        model.file = file;
      } else {
        const kind = r.int(100);
        if (kind < 30) {
          op = "replace command";
          model.command = randomRules(r, pool, size, [...model.file, ...model.added], strict);
          table.replace("command", model.command);
        } else if (kind < 45) {
          op = "fresh";
          model.command = randomRules(r, pool, size, [], strict);
          model.file = [];
          model.added = [];
          table.remove((x) => x.origin === "added");
          table.replace("file", []);
          table.replace("command", model.command);
        } else if (kind < 60) {
          op = "replace file, add";
          model.file = randomRules(
            r,
            pool,
            1 + r.int(size),
            [...model.command, ...model.added],
            strict,
          );
          table.replace("file", model.file);
          const avoid = new Set(expected().map(formatFirewallRule));
          const more = randomRules(r, pool, 1 + r.int(12), expected(), strict, avoid);
          table.add(more);
          model.added.push(...more);
        } else if (kind < 78) {
          op = "remove, add";
          const all = expected(), from = origins();
          const gone = new Set(all.map((_, i) => i).filter(() => r.chance(0.3)));
          table.remove((_x, i) => gone.has(i));
          for (const o of ["command", "file", "added"] as const) {
            model[o] = all.filter((_, i) => !gone.has(i) && from[i] === o);
          }
          const avoid = new Set(expected().map(formatFirewallRule));
          const more = randomRules(r, pool, r.int(15), expected(), strict, avoid);
          if (more.length) table.add(more);
          model.added.push(...more);
        } else if (kind < 90) {
          op = "reorder";
          model.command = shuffle(r, model.command);
          model.file = shuffle(r, model.file);
          table.replace("command", model.command);
          table.replace("file", model.file);
        } else {
          op = "overflow refused, then add";
          // One prefix shared by more rules than an index entry holds: refused, nothing changes.
          const before = table.installed().map((x) =>
            `${x.slot} ${x.order} ${formatFirewallRule(x)}`
          );
          const p = prefixText(r.pick(pool.prefixes));
          const many = Array.from(
            { length: SLOTS_PER_ENTRY + 1 },
            (_, i) => parseFirewallRule(`deny dst ${p} udp dport ${i}`),
          );
          let refused = false;
          try {
            table.replace("command", [...model.command, ...many]);
          } catch (e) {
            if (!(e instanceof BeltError) || !/more than 32 /.test(e.message)) throw e;
            refused = true;
          }
          ok(refused, `round ${round}: ${many.length} rules on dst ${p} were accepted`);
          const after = table.installed().map((x) =>
            `${x.slot} ${x.order} ${formatFirewallRule(x)}`
          );
          ok(
            before.join("\n") === after.join("\n"),
            `round ${round}: a refused replace changed the rules`,
          );
          overflowChecks++;
          const avoid = new Set(expected().map(formatFirewallRule));
          const more = randomRules(r, pool, 1 + r.int(8), expected(), strict, avoid);
          table.add(more);
          model.added.push(...more);
        }
        const config = maps.config.get(0)!;
        maps.config.set(0, {
          ...config, // keeps `gen`: the live index generation
          default_in: policy.defaultIn === "deny" ? 2 : 1,
          default_out: policy.defaultOut === "deny" ? 2 : 1,
          keep_nd: policy.keepNd ? 1 : 0,
        });
      }
      if (round === 0) policy.defaultOut = "allow"; // what fill() writes
      ops.set(op, (ops.get(op) ?? 0) + 1);

      // 2. The kernel holds the model's rules, in the model's order.
      const rules = expected();
      const installed: InstalledRule[] = table.installed();
      const want = rules.map((x, i) => `${origins()[i]} ${formatFirewallRule(x)}`);
      const got = installed.map((x) => `${x.origin} ${formatFirewallRule(x)}`);
      if (want.join("\n") !== got.join("\n")) {
        fail(
          `round ${round} (${op}): installed rules differ\n  want:\n    ${
            want.join("\n    ")
          }\n  got:\n    ${got.join("\n    ")}`,
        );
      }
      const slotOf = installed.map((x) => x.slot);
      rulesTotal += rules.length;
      maxRules = Math.max(maxRules, rules.length);

      // 3. Frames.
      buckets.clear();
      const countersBefore = table.counters();
      const totalsBefore = totalsMap.getSum(0)!;
      const perRule: Tally[] = rules.map(() => ({ packets: 0n, bytes: 0n, limited: 0n }));
      const totals = {
        packets: [0n, 0n],
        bytes: [0n, 0n],
        dropped: [0n, 0n],
        defaultPassed: [0n, 0n],
        defaultDropped: [0n, 0n],
        keptNd: 0n,
        fragments: 0n,
        malformed: 0n,
      };
      const buckets_: Map<string, number> = new Map();
      const roundStart = performance.now();
      let roundLoose = false;
      const overRate = (rule: FirewallRule, i: number, pkt: ParsedPacket) => {
        if (rule.rate >= 1e6) return false;
        const key = `${i}|${hex(pkt.srcAddr)}`;
        const n = buckets_.get(key) ?? 0;
        buckets_.set(key, n + 1);
        return n >= rule.burst;
      };
      const mismatches: string[] = [];

      const check = (frame: Bytes, pkt: BeltPacket, dir: 1 | 2, kernel: "pass" | "drop") => {
        const d: FirewallDecision = firewallDecision(rules, policy, pkt, dir, overRate);
        const di = dir - 1, len = BigInt(frame.length);
        totals.packets[di]! += 1n;
        totals.bytes[di]! += len;
        if (pkt.flags & F_STOPPED) totals.malformed += 1n;
        if ((pkt.flags & F_FRAGMENT) && !(pkt.flags & F_FIRST_FRAG)) totals.fragments += 1n;
        if (d.verdict === "drop") totals.dropped[di]! += 1n;
        if (d.rule < 0) {
          if (d.reason === "kept-nd") totals.keptNd += 1n;
          if (d.verdict === "pass") totals.defaultPassed[di]! += 1n;
          else totals.defaultDropped[di]! += 1n;
        } else {
          const t = perRule[d.rule]!;
          t.packets += 1n;
          t.bytes += len;
          if (d.reason === "limited") {
            t.limited += 1n;
            limitedSeen++;
          }
        }
        reasons.set(
          `${dir === 1 ? "in" : "out"} ${d.reason}`,
          (reasons.get(`${dir === 1 ? "in" : "out"} ${d.reason}`) ?? 0) + 1,
        );
        if (d.rule >= 0) {
          const w = rules[d.rule]!, wDepth = indexDepth(w, pkt), m = w.match;
          if (wDepth === 0) depth.generic++;
          else if (wDepth === 128) depth.host++;
          else depth.trie++;
          for (const [k, bits] of Object.entries(TERMS)) {
            if (m.fields & bits) byTerm.set(k, byTerm.get(k)! + 1);
          }
          if (!(m.fields & BELT_M_SRC) && (m.fields & BELT_M_DST)) depth.dstSide++;
          if (m.fields & BELT_M_ANY && !(m.fields & (BELT_M_SRC | BELT_M_DST))) depth.bothSides++;
          // A later rule sitting at a longer prefix also matched: order, not depth, decided.
          for (let j = d.rule + 1; j < rules.length; j++) {
            const o = rules[j]!;
            if (
              ruleDirection(o) === dir && indexDepth(o, pkt) > wDepth &&
              ruleMatches(o.match, pkt, dir)
            ) {
              depth.orderOverDepth++;
              break;
            }
          }
        }
        if (d.verdict === kernel) return;
        const strictLimit = d.rule >= 0 && rules[d.rule]!.action === "limit" &&
          rules[d.rule]!.rate < 1e6;
        if (strictLimit && performance.now() - roundStart > LIMIT_WINDOW_MS) {
          roundLoose = true; // a token came back: the "first N pass" model no longer holds
          return;
        }
        if (mismatches.length >= 5) return;
        const matching = rules.map((x, i) => [x, i] as const)
          .filter(([x]) => ruleDirection(x) === dir && ruleMatches(x.match, pkt, dir))
          .map(([x, i]) => `#${i} slot ${slotOf[i]} '${formatFirewallRule(x)}'`);
        mismatches.push(
          `round ${round} (${op}, seed ${SEED}) ${
            dir === 1 ? "XDP ingress" : "TC egress"
          }: kernel ${kernel}, ` +
            `reference ${d.verdict} (${d.reason}${d.rule >= 0 ? ` #${d.rule}` : ""})\n` +
            `  frame ${hex(frame)}\n  kernel parse ${describe(pkt)}\n  policy ${
              JSON.stringify(policy)
            }\n` +
            `  matching rules: ${matching.join("; ") || "none"}\n` +
            `  rule set (${rules.length}):\n    ${
              rules.map((x, i) =>
                `#${i} slot ${slotOf[i]} ${origins()[i]} '${formatFirewallRule(x)}'`
              ).join("\n    ")
            }`,
        );
      };

      for (let f = 0; f < FRAMES_PER_ROUND; f++) {
        const frame = randomFrame(r, pool);
        parseXdp.testRun(frame);
        const pin = parsed.get(0)!;
        const rin = xdp.testRun(frame).retval;
        if (rin !== XDP_PASS && rin !== XDP_DROP) {
          fail(`firewall_xdp returned ${rin} for ${hex(frame)}`);
        }
        check(frame, pin, 1, rin === XDP_PASS ? "pass" : "drop");
        xdpFrames++;
        if (!r.chance(EGRESS_SHARE) || tcRefuses(frame)) continue;
        parseTc.testRun(frame);
        const pout = parsed.get(0)!;
        const rout = egress.testRun(frame).retval;
        if (rout !== TC_NEXT && rout !== TC_DROP) {
          fail(`firewall_egress returned ${rout} for ${hex(frame)}`);
        }
        check(frame, pout, 2, rout === TC_NEXT ? "pass" : "drop");
        tcFrames++;
      }
      if (mismatches.length) {
        fail(`${mismatches.length}+ verdicts differ:\n${mismatches.join("\n\n")}`);
      }
      if (roundLoose) loose++;

      // 4. Counters: each rule's, by slot, and the totals.
      const countersAfter = table.counters();
      const wantBySlot = new Map<number, Tally>();
      perRule.forEach((t, i) => wantBySlot.set(slotOf[i]!, t));
      const counterDiffs: string[] = [];
      for (const [slot, after] of countersAfter) {
        const before = countersBefore.get(slot) ?? { packets: 0n, bytes: 0n, limited: 0n };
        const w = wantBySlot.get(slot) ?? { packets: 0n, bytes: 0n, limited: 0n };
        const d = {
          packets: after.packets - before.packets,
          bytes: after.bytes - before.bytes,
          limited: after.limited - before.limited,
        };
        if (
          d.packets !== w.packets || d.bytes !== w.bytes || (!roundLoose && d.limited !== w.limited)
        ) {
          const i = slotOf.indexOf(slot);
          counterDiffs.push(
            `slot ${slot} ${i >= 0 ? `#${i} '${formatFirewallRule(rules[i]!)}'` : "(no rule)"}: ` +
              `kernel ${d.packets} packets ${d.bytes} bytes ${d.limited} limited, ` +
              `reference ${w.packets} / ${w.bytes} / ${w.limited}`,
          );
        }
      }
      if (counterDiffs.length) {
        fail(
          `round ${round} (${op}): per-rule counters differ\n  ${
            counterDiffs.slice(0, 20).join("\n  ")
          }`,
        );
      }
      const ta = totalsMap.getSum(0)!, tb = totalsBefore;
      const sub = (a: bigint[], b: bigint[]) => a.map((x, i) => x - b[i]!);
      const gotTotals = {
        packets: sub(ta.packets, tb.packets),
        bytes: sub(ta.bytes, tb.bytes),
        dropped: roundLoose ? totals.dropped : sub(ta.dropped, tb.dropped),
        defaultPassed: sub(ta.default_passed, tb.default_passed),
        defaultDropped: sub(ta.default_dropped, tb.default_dropped),
        keptNd: ta.kept_nd - tb.kept_nd,
        fragments: ta.fragments - tb.fragments,
        malformed: ta.malformed - tb.malformed,
      };
      const show = (x: unknown) =>
        JSON.stringify(x, (_k, v) => typeof v === "bigint" ? Number(v) : v);
      if (show(gotTotals) !== show(totals)) {
        fail(
          `round ${round} (${op}): fw_totals differ\n  kernel    ${show(gotTotals)}\n  reference ${
            show(totals)
          }`,
        );
      }
      // Per-rule packets add up to what no default decided.
      const sum = perRule.reduce((s, t) => s + t.packets, 0n);
      ok(
        sum ===
          totals.packets[0]! + totals.packets[1]! - totals.defaultPassed[0]! -
            totals.defaultPassed[1]! -
            totals.defaultDropped[0]! - totals.defaultDropped[1]!,
      );
    }
    const ms = performance.now() - t0;

    console.log(
      `firewall differential: ${xdpFrames} frames on XDP + ${tcFrames} on TC egress, ${ROUNDS} rule sets ` +
        `(${rulesTotal} rules in all, up to ${maxRules}; ${
          [...ops].map(([k, v]) => `${k} ${v}`).join(", ")
        }; ` +
        `${overflowChecks} refused overflows), all verdicts, per-rule counters and fw_totals equal, ` +
        `in ${(ms / 1000).toFixed(1)} s\n  decisions: ${
          [...reasons].sort().map(([k, v]) => `${k} ${v}`).join(", ")
        }\n  winning rule found at: generic/0 ${depth.generic}, trie ${depth.trie}, host ${depth.host}; ` +
        `dst side only ${depth.dstSide}, either side ${depth.bothSides}; a deeper later rule also matched ` +
        `${depth.orderOverDepth}; decided by rules with ${
          [...byTerm].map(([k, v]) => `${k} ${v}`).join(", ")
        }; strict limits dropped ${limitedSeen}` +
        (loose ? `; ${loose} rounds outlasted the limit window` : ""),
    );
    ok(xdpFrames >= 100_000, `${xdpFrames} frames`);
    ok(depth.trie > 1000 && depth.host > 200 && depth.generic > 1000, "index walk exercised");
    ok(depth.dstSide > 200 && depth.bothSides > 200, "both sides exercised");
    ok(depth.orderOverDepth > 200, "order beats prefix depth");
    ok([...byTerm.values()].every((n) => n > 100), "every kind of term decided");
    ok(limitedSeen > 50, "strict limits dropped something");
    ok((reasons.get("in kept-nd") ?? 0) > 50, "ND kept");
    ok((reasons.get("in default") ?? 0) > 1000, "defaults");
  },
);

/**
 * belt_packet.h in the real kernel. tests/bpf/packet_cursor.bpf.c runs belt_parse() from XDP
 * (parse_xdp) and TC (parse_tc) and stores its struct belt_packet in map `result`; these tests
 * feed it hand-built frames through BPF_PROG_TEST_RUN and read the struct back:
 *   - the TypeScript codec matches the C layout recorded in BTF;
 *   - every case of a table parses to exactly the expected struct on both hooks;
 *   - every cut of every case leaves each field zero or right, and says TRUNCATED;
 *   - seeded random mutations keep invariants checked against the frame bytes.
 */
import { deepEqual, equal, fail, ok } from "node:assert/strict";
import { BpfObject, bytes, struct, u16, u32, u8 } from "../bpf/mod.ts";
import type { Decoded } from "../bpf/mod.ts";
import { packetCursorObject } from "./bpf/packet_cursor.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { cat, hex, n16, n32 } from "./harness/frames.ts";
import type { Bytes, Part } from "./harness/frames.ts";

// ---------------------------------------------------------------------------------------------
// struct belt_packet

/** struct belt_packet (bpf/include/belt_packet.h). C also marks it aligned(8); that only matters
 * for the stack copy in BPF, so the codec's natural alignment (4) is enough here. */
export const beltPacket = struct({
  flags: u32,
  ip_len: u32,
  eth_proto: u16,
  vlan_outer: u16,
  vlan_inner: u16,
  l3_off: u16,
  l4_off: u16,
  frag_off: u16,
  dst_mac: bytes(6),
  src_mac: bytes(6),
  src_addr: bytes(16),
  dst_addr: bytes(16),
  frag_id: u32,
  src_port: u16,
  dst_port: u16,
  ip_version: u8,
  l4_proto: u8,
  l4_hdr_len: u8,
  tcp_flags: u8,
  icmp_type: u8,
  icmp_code: u8,
  ttl: u8,
  vlan_count: u8,
});
/** One decoded struct belt_packet. */
export type BeltPacket = Decoded<typeof beltPacket>;
type Field = keyof BeltPacket;

const words = (s: string) => s.trim().split(/\s+/);

// BELT_F_* bits, in header order.
const FLAG_NAMES = words(
  `L2 VLAN QINQ L3 L3_EXT FRAGMENT FIRST_FRAG MORE_FRAGS L4 TRUNCATED MALFORMED
  EXT_LIMIT SHORT`,
);
const [L2, VLAN, QINQ, L3, L3_EXT, FRAG, FIRST, MF, L4, TRUNC, MALF, EXTLIM, SHORT] = FLAG_NAMES
  .map((_, i) => 1 << i);
const ALL_FLAGS = (1 << FLAG_NAMES.length) - 1;
const STOPPED = TRUNC | MALF | EXTLIM;

const XDP_PASS = 2;
const BELT_NEXT = -1; // TC_ACT_UNSPEC
const TCP = 6, UDP = 17, ICMP = 1, ICMPV6 = 58;

const ZERO: BeltPacket = beltPacket.unpack(new Uint8Array(beltPacket.size));
const FIELDS = Object.keys(ZERO) as Field[];
// Fields only an IP header (or what follows it) fills.
const L3_FIELDS = words(`ip_len l4_off frag_off src_addr dst_addr frag_id src_port dst_port
  ip_version l4_proto l4_hdr_len tcp_flags icmp_type icmp_code ttl`) as Field[];
const L4_FIELDS = words(`src_port dst_port l4_hdr_len tcp_flags icmp_type icmp_code`) as Field[];

const flagNames = (f: number) => FLAG_NAMES.filter((_, i) => f >> i & 1).join("|") || "0";
const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);
const isZero = (v: number | Uint8Array) =>
  typeof v === "number" ? v === 0 : v.every((x) => x === 0);
const same = (a: number | Uint8Array, b: number | Uint8Array) =>
  typeof a === "number" ? a === b : sameBytes(a, b as Uint8Array);

/** Non-zero fields, flags by name, bytes in hex: equal iff the structs are, and diffs read well. */
function show(p: BeltPacket): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const k of FIELDS) {
    const v = p[k];
    if (isZero(v)) continue;
    out[k] = k === "flags" ? flagNames(v as number) : typeof v === "number" ? v : hex(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Frame builders (wire order). IPv4 checksums stay 0: neither belt_parse nor the test run checks.

const zeros = (n: number) => new Uint8Array(n);
const text = (s: string) => new TextEncoder().encode(s);

const ip4 = (s: string) => s.split(".").map(Number);
function ip6(s: string): number[] {
  const groups = (x: string | undefined) => x ? x.split(":").map((g) => parseInt(g, 16)) : [];
  const [head, tail] = s.split("::");
  const h = groups(head), t = groups(tail);
  return [...h, ...Array(8 - h.length - t.length).fill(0), ...t].flatMap(n16);
}
/** ::ffff:a.b.c.d, the form belt_packet stores IPv4 addresses in. */
const mapped4 = (a: Part) => cat(zeros(10), [0xff, 0xff], a);

const MAC_D = cat([2, 0, 0, 0, 0, 2]);
const MAC_S = cat([2, 0, 0, 0, 0, 1]);
const BCAST = cat(Array(6).fill(0xff));
const ECHO = [0, 1, 0, 2]; // ICMP echo identifier 1, sequence 2
const DF4 = 0x4000, MF4 = 0x2000; // IPv4 flag bits above the fragment offset
const HOP = 0, RTG = 43, FRG = 44, DST = 60; // IPv6 extension headers
/** Fragment payload that would read as a UDP header (ports 0x1122, 0x3344) if parsed as one. */
const FAKE_L4 = cat([0x11, 0x22, 0x33, 0x44], zeros(20));

const eth = (type: number, dst: Part = MAC_D, src: Part = MAC_S) => cat(dst, src, n16(type));
const vlan = (tci: number, type: number) => cat(n16(tci), n16(type));

interface Ipv4Options {
  opts?: Part;
  ident?: number;
  frag?: number; // flags << 13 | offset in 8-byte units
  ttl?: number;
  ihl?: number;
  totLen?: number;
  version?: number;
}
function ipv4(src: string, dst: string, proto: number, payload: Part, o: Ipv4Options = {}) {
  const opts = o.opts ?? [];
  const ihl = o.ihl ?? 5 + opts.length / 4;
  const tot = o.totLen ?? 20 + opts.length + payload.length;
  return cat(
    [(o.version ?? 4) << 4 | ihl, 0],
    n16(tot),
    n16(o.ident ?? 0x1234),
    n16(o.frag ?? 0),
    [o.ttl ?? 64, proto, 0, 0],
    ip4(src),
    ip4(dst),
    opts,
    payload,
  );
}

interface Ipv6Options {
  hlim?: number;
  plen?: number;
  version?: number;
}
function ipv6(src: string, dst: string, nh: number, payload: Part, o: Ipv6Options = {}) {
  const first = n32(((o.version ?? 6) << 28 | 0x12345) >>> 0); // version, class, flow label
  const plen = o.plen ?? payload.length;
  return cat(first, n16(plen), [nh, o.hlim ?? 64], ip6(src), ip6(dst), payload);
}
/** Hop-by-hop, routing or destination options header; body is 6 + 8k bytes. */
function ext6(nh: number, body: Part, payload: Part) {
  if ((body.length + 2) % 8) throw new Error("extension header body must be 6 + 8k bytes");
  return cat([nh, (body.length + 2) / 8 - 1], body, payload);
}
const frag6 = (nh: number, offset: number, more: boolean, ident: number, payload: Part) =>
  cat([nh, 0], n16(offset | (more ? 1 : 0)), n32(ident), payload);
/** PadN options filling n >= 2 bytes of an options header. */
function pad6(n: number): number[] {
  const out: number[] = [];
  while (n) {
    let k = Math.min(n, 257);
    if (n - k === 1) k--; // never leave a single byte
    out.push(1, k - 2, ...Array(k - 2).fill(0));
    n -= k;
  }
  return out;
}
/** A chain of 8-byte option headers with these next-header values, then payload. */
const chain = (nhs: number[], payload: Part) =>
  nhs.reduceRight((inner: Part, nh) => ext6(nh, pad6(6), inner), payload);

interface TcpOptions {
  opts?: Part;
  doff?: number;
  payload?: Part;
}
function tcp(sport: number, dport: number, flags: number, o: TcpOptions = {}) {
  const opts = o.opts ?? [];
  const doff = o.doff ?? 5 + opts.length / 4;
  return cat(
    n16(sport),
    n16(dport),
    n32(1000),
    n32(2000),
    [doff << 4, flags],
    n16(65535),
    n16(0),
    n16(0),
    opts,
    o.payload ?? [],
  );
}
const udp = (sport: number, dport: number, payload: Part = []) =>
  cat(n16(sport), n16(dport), n16(8 + payload.length), n16(0), payload);
const icmp = (type: number, code: number, rest: Part = ECHO, payload: Part = []) =>
  cat([type, code, 0, 0], rest, payload);
/** n bytes of IPv4 options: NOPs, then End of List. */
const nopOpts = (n: number) => [...Array(n - 1).fill(1), 0];
const TS_OPTS = [1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]; // NOP NOP timestamp: 12 bytes

// ---------------------------------------------------------------------------------------------
// Cases: a frame and the exact struct belt_parse() must produce from it. Fields not named are 0;
// the MACs default to MAC_D/MAC_S.

const S4 = "10.0.0.1", D4 = "10.0.0.2", S6 = "2001:db8::1", D6 = "2001:db8::2";
const ETH4 = { eth_proto: 0x0800, l3_off: 14 };
const ETH6 = { eth_proto: 0x86dd, l3_off: 14 };
const IP4 = {
  ...ETH4,
  ip_version: 4,
  src_addr: mapped4(ip4(S4)),
  dst_addr: mapped4(ip4(D4)),
  ttl: 64,
};
const IP6 = { ...ETH6, ip_version: 6, src_addr: cat(ip6(S6)), dst_addr: cat(ip6(D6)), ttl: 64 };
const tcpWant = (sport: number, dport: number, flags: number, hdrLen = 20) => ({
  l4_proto: TCP,
  src_port: sport,
  dst_port: dport,
  tcp_flags: flags,
  l4_hdr_len: hdrLen,
});
const udpWant = (sport: number, dport: number) => ({
  l4_proto: UDP,
  src_port: sport,
  dst_port: dport,
  l4_hdr_len: 8,
});
const icmpWant = (proto: number, type: number, code = 0) => ({
  l4_proto: proto,
  icmp_type: type,
  icmp_code: code,
  l4_hdr_len: 8,
});
const SYN = 0x02, FIN_ACK = 0x11, PSH_ACK = 0x18, ACK = 0x10, RST = 0x04;

interface Case {
  title: string;
  frame: Bytes;
  want: Partial<BeltPacket>;
}
const table: Case[] = [
  // Ethernet and VLAN tags
  {
    title: "reads ARP at L2 only",
    frame: cat(eth(0x0806, BCAST), [0, 1, 8, 0, 6, 4, 0, 1], MAC_S, ip4(S4), zeros(6), ip4(D4)),
    want: { flags: L2, eth_proto: 0x0806, l3_off: 14, dst_mac: BCAST },
  },
  {
    title: "flags a bare Ethernet header claiming IPv4 as truncated",
    frame: eth(0x0800),
    want: { flags: L2 | TRUNC, ...ETH4 },
  },
  {
    title: "reads 802.1Q + IPv4 ICMP",
    frame: cat(
      eth(0x8100),
      vlan(0x2064, 0x0800),
      ipv4(S4, D4, ICMP, icmp(8, 0, ECHO, text("ping"))),
    ),
    want: {
      flags: L2 | VLAN | L3 | L4,
      ...IP4,
      vlan_outer: 100,
      vlan_count: 1,
      l3_off: 18,
      l4_off: 38,
      ip_len: 32,
      ...icmpWant(ICMP, 8),
    },
  },
  {
    title: "reads QinQ + IPv6 TCP",
    frame: cat(
      eth(0x88a8),
      vlan(0xe0c8, 0x8100),
      vlan(0x312c, 0x86dd),
      ipv6(S6, D6, TCP, tcp(443, 50000, PSH_ACK, { opts: TS_OPTS, payload: zeros(12) }), {
        hlim: 255,
      }),
    ),
    want: {
      flags: L2 | VLAN | QINQ | L3 | L4,
      ...IP6,
      vlan_outer: 200,
      vlan_inner: 300,
      vlan_count: 2,
      l3_off: 22,
      l4_off: 62,
      ip_len: 84,
      ttl: 255,
      ...tcpWant(443, 50000, PSH_ACK, 32),
    },
  },
  {
    title: "reads 802.1Q-in-802.1Q + IPv4 UDP, masking PCP/DEI out of the ids",
    frame: cat(
      eth(0x8100),
      vlan(0xf001, 0x8100),
      vlan(0x1ffe, 0x0800),
      ipv4(S4, D4, UDP, udp(53, 5353, text("a"))),
    ),
    want: {
      flags: L2 | VLAN | QINQ | L3 | L4,
      ...IP4,
      vlan_outer: 1,
      vlan_inner: 4094,
      vlan_count: 2,
      l3_off: 22,
      l4_off: 42,
      ip_len: 29,
      ...udpWant(53, 5353),
    },
  },
  {
    title: "stops at a third VLAN tag",
    frame: cat(
      eth(0x8100),
      vlan(10, 0x8100),
      vlan(20, 0x8100),
      vlan(30, 0x0800),
      ipv4(S4, D4, UDP, udp(1, 2)),
    ),
    want: {
      flags: L2 | VLAN | QINQ,
      eth_proto: 0x8100,
      vlan_outer: 10,
      vlan_inner: 20,
      vlan_count: 2,
      l3_off: 22,
    },
  },
  {
    title: "reads a single 802.1ad tag",
    frame: cat(eth(0x88a8), vlan(4095, 0x0806), zeros(28)),
    want: { flags: L2 | VLAN, eth_proto: 0x0806, vlan_outer: 4095, vlan_count: 1, l3_off: 18 },
  },

  // IPv4
  {
    title: "reads IPv4 TCP",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(12345, 80, SYN, { payload: text("hello") }))),
    want: { flags: L2 | L3 | L4, ...IP4, l4_off: 34, ip_len: 45, ...tcpWant(12345, 80, SYN) },
  },
  {
    title: "reads IPv4 with options + UDP",
    frame: cat(
      eth(0x0800),
      ipv4(S4, D4, UDP, udp(5353, 53, text("query")), { opts: nopOpts(8), ttl: 1 }),
    ),
    want: {
      flags: L2 | L3 | L3_EXT | L4,
      ...IP4,
      ttl: 1,
      l4_off: 42,
      ip_len: 41,
      ...udpWant(5353, 53),
    },
  },
  {
    title: "reads IPv4 and TCP with 40 bytes of options each",
    frame: cat(
      eth(0x0800),
      ipv4(S4, D4, TCP, tcp(1, 2, FIN_ACK, { opts: nopOpts(40) }), { opts: nopOpts(40) }),
    ),
    want: {
      flags: L2 | L3 | L3_EXT | L4,
      ...IP4,
      l4_off: 74,
      ip_len: 120,
      ...tcpWant(1, 2, FIN_ACK, 60),
    },
  },
  {
    title: "reads ICMP type and code",
    frame: cat(eth(0x0800), ipv4(S4, D4, ICMP, icmp(3, 3, zeros(4)))),
    want: { flags: L2 | L3 | L4, ...IP4, l4_off: 34, ip_len: 28, ...icmpWant(ICMP, 3, 3) },
  },
  {
    title: "gives the L4 offset of a protocol it does not read (GRE)",
    frame: cat(eth(0x0800), ipv4(S4, D4, 47, zeros(8))),
    want: { flags: L2 | L3, ...IP4, l4_off: 34, ip_len: 28, l4_proto: 47 },
  },
  {
    title: "does not read protocol 58 over IPv4 as ICMP",
    frame: cat(eth(0x0800), ipv4(S4, D4, ICMPV6, icmp(128, 0))),
    want: { flags: L2 | L3, ...IP4, l4_off: 34, ip_len: 28, l4_proto: ICMPV6 },
  },
  {
    title: "reads an IPv4 first fragment's UDP header",
    frame: cat(eth(0x0800), ipv4(S4, D4, UDP, udp(7, 9, zeros(16)), { frag: MF4, ident: 0xabcd })),
    want: {
      flags: L2 | L3 | FRAG | FIRST | MF | L4,
      ...IP4,
      l4_off: 34,
      ip_len: 44,
      frag_id: 0xabcd,
      ...udpWant(7, 9),
    },
  },
  {
    // The payload looks like a UDP header (ports 0x1122, 0x3344): it must not be read as one.
    title: "stops at an IPv4 later fragment",
    frame: cat(eth(0x0800), ipv4(S4, D4, UDP, FAKE_L4, { frag: MF4 | 185, ident: 0xabcd })),
    want: {
      flags: L2 | L3 | FRAG | MF,
      ...IP4,
      ip_len: 44,
      l4_proto: UDP,
      frag_id: 0xabcd,
      frag_off: 1480,
    },
  },
  {
    title: "flags an IPv4 last fragment (offset, no MF)",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, zeros(24), { frag: 10, ident: 0x0102 })),
    want: {
      flags: L2 | L3 | FRAG,
      ...IP4,
      ip_len: 44,
      l4_proto: TCP,
      frag_id: 0x0102,
      frag_off: 80,
    },
  },
  {
    title: "does not call a DF packet a fragment",
    frame: cat(eth(0x0800), ipv4(S4, D4, UDP, udp(7, 9), { frag: DF4 })),
    want: { flags: L2 | L3 | L4, ...IP4, l4_off: 34, ip_len: 28, ...udpWant(7, 9) },
  },
  {
    title: "ignores Ethernet padding after IPv4",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2, RST)), zeros(6)),
    want: { flags: L2 | L3 | L4, ...IP4, l4_off: 34, ip_len: 40, ...tcpWant(1, 2, RST) },
  },
  {
    title: "flags an IPv4 total length past the frame as SHORT",
    frame: cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2, text("zz")), { totLen: 100 })),
    want: { flags: L2 | L3 | L4 | SHORT, ...IP4, l4_off: 34, ip_len: 100, ...udpWant(1, 2) },
  },
  {
    // IPv4 BIG TCP GSO packets carry total length 0 in TC.
    title: "accepts IPv4 total length 0 (BIG TCP)",
    frame: cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2), { totLen: 0 })),
    want: { flags: L2 | L3 | L4, ...IP4, l4_off: 34, ...udpWant(1, 2) },
  },
  {
    title: "flags TCP data offset < 5 as malformed",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(12345, 80, SYN, { doff: 4 }))),
    want: { flags: L2 | L3 | MALF, ...IP4, l4_off: 34, ip_len: 40, l4_proto: TCP },
  },
  {
    title: "flags IPv4 IHL < 5 as malformed",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2, 0), { ihl: 4 })),
    want: { flags: L2 | MALF, ...ETH4 },
  },
  {
    title: "flags an IPv4 total length under the header length as malformed",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2, 0), { totLen: 10 })),
    want: { flags: L2 | MALF, ...ETH4 },
  },
  {
    title: "flags version 6 under EtherType IPv4 as malformed",
    frame: cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2, 0), { version: 6 })),
    want: { flags: L2 | MALF, ...ETH4 },
  },

  // IPv6
  {
    title: "reads ICMPv6 echo",
    frame: cat(eth(0x86dd), ipv6(S6, D6, ICMPV6, icmp(128, 0, ECHO, text("abc")))),
    want: { flags: L2 | L3 | L4, ...IP6, l4_off: 54, ip_len: 51, ...icmpWant(ICMPV6, 128) },
  },
  {
    title: "reads ICMPv6 type and code",
    frame: cat(eth(0x86dd), ipv6(S6, D6, ICMPV6, icmp(1, 4, zeros(4)))),
    want: { flags: L2 | L3 | L4, ...IP6, l4_off: 54, ip_len: 48, ...icmpWant(ICMPV6, 1, 4) },
  },
  {
    title: "does not read protocol 1 over IPv6 as ICMP",
    frame: cat(eth(0x86dd), ipv6(S6, D6, ICMP, icmp(8, 0))),
    want: { flags: L2 | L3, ...IP6, l4_off: 54, ip_len: 48, l4_proto: ICMP },
  },
  {
    title: "reads IPv6 with no next header",
    frame: cat(eth(0x86dd), ipv6(S6, D6, 59, [])),
    want: { flags: L2 | L3, ...IP6, l4_off: 54, ip_len: 40, l4_proto: 59 },
  },
  {
    title: "reads IPv6 hop-by-hop + destination options + UDP",
    frame: cat(
      eth(0x86dd),
      ipv6(S6, D6, HOP, ext6(DST, pad6(6), ext6(UDP, pad6(14), udp(1000, 2000, zeros(10))))),
    ),
    want: { flags: L2 | L3 | L3_EXT | L4, ...IP6, l4_off: 78, ip_len: 82, ...udpWant(1000, 2000) },
  },
  {
    title: "reads IPv6 routing header + TCP",
    frame: cat(
      eth(0x86dd),
      ipv6(
        S6,
        D6,
        RTG,
        ext6(TCP, cat([4, 1, 0, 0, 0, 0], ip6("2001:db8::9")), tcp(22, 40000, ACK)),
      ),
    ),
    want: {
      flags: L2 | L3 | L3_EXT | L4,
      ...IP6,
      l4_off: 78,
      ip_len: 84,
      ...tcpWant(22, 40000, ACK),
    },
  },
  {
    title: "reads an IPv6 first fragment's UDP header",
    frame: cat(
      eth(0x86dd),
      ipv6(S6, D6, FRG, frag6(UDP, 0, true, 0xdeadbeef, udp(4000, 4001, zeros(16)))),
    ),
    want: {
      flags: L2 | L3 | L3_EXT | FRAG | FIRST | MF | L4,
      ...IP6,
      l4_off: 62,
      ip_len: 72,
      frag_id: 0xdeadbeef,
      ...udpWant(4000, 4001),
    },
  },
  {
    title: "stops at an IPv6 later fragment",
    frame: cat(eth(0x86dd), ipv6(S6, D6, FRG, frag6(UDP, 1232, false, 0xdeadbeef, FAKE_L4))),
    want: {
      flags: L2 | L3 | L3_EXT | FRAG,
      ...IP6,
      ip_len: 72,
      l4_proto: UDP,
      frag_id: 0xdeadbeef,
      frag_off: 1232,
    },
  },
  {
    title: "stops at an IPv6 middle fragment behind hop-by-hop",
    frame: cat(eth(0x86dd), ipv6(S6, D6, HOP, ext6(FRG, pad6(6), frag6(TCP, 8, true, 7, FAKE_L4)))),
    want: {
      flags: L2 | L3 | L3_EXT | FRAG | MF,
      ...IP6,
      ip_len: 80,
      l4_proto: TCP,
      frag_id: 7,
      frag_off: 8,
    },
  },
  {
    // RFC 6946: offset 0 without M is a whole datagram that merely carries a fragment header.
    title: "treats an IPv6 atomic fragment as a whole datagram",
    frame: cat(eth(0x86dd), ipv6(S6, D6, FRG, frag6(ICMPV6, 0, false, 9, icmp(128, 0)))),
    want: {
      flags: L2 | L3 | L3_EXT | L4,
      ...IP6,
      l4_off: 62,
      ip_len: 56,
      ...icmpWant(ICMPV6, 128),
    },
  },
  {
    // Bits 1-2 of the offset field are reserved: neither M nor part of the offset.
    title: "ignores the reserved bits of an IPv6 fragment header",
    frame: cat(eth(0x86dd), ipv6(S6, D6, FRG, cat([UDP, 0], n16(0x0006), n32(9), udp(1, 2)))),
    want: { flags: L2 | L3 | L3_EXT | L4, ...IP6, l4_off: 62, ip_len: 56, ...udpWant(1, 2) },
  },
  {
    title: "keeps the reserved bits out of an IPv6 fragment's offset and M flag",
    frame: cat(eth(0x86dd), ipv6(S6, D6, FRG, cat([UDP, 0], n16(1232 | 0x0006), n32(9), FAKE_L4))),
    want: {
      flags: L2 | L3 | L3_EXT | FRAG,
      ...IP6,
      ip_len: 72,
      l4_proto: UDP,
      frag_id: 9,
      frag_off: 1232,
    },
  },
  {
    // RFC 8200 allows one fragment header. Found by fuzzing: a second (later) one used to leave
    // FIRST_FRAG|MORE_FRAGS of the first next to the second's offset.
    title: "flags a second IPv6 fragment header as malformed",
    frame: cat(
      eth(0x86dd),
      ipv6(S6, D6, FRG, frag6(FRG, 0, true, 5, frag6(UDP, 264, false, 6, FAKE_L4))),
    ),
    want: {
      flags: L2 | L3_EXT | FRAG | FIRST | MF | MALF,
      ...IP6,
      ip_len: 80,
      frag_id: 5,
    },
  },
  {
    // HOP, RTG, DST, FRG (first fragment), DST, DST with 2 KiB of padding, then UDP.
    title: "follows 6 IPv6 extension headers over 2 KiB",
    frame: cat(
      eth(0x86dd),
      ipv6(
        S6,
        D6,
        HOP,
        chain(
          [RTG, DST, FRG],
          frag6(DST, 0, true, 5, ext6(DST, pad6(14), ext6(UDP, pad6(2046), udp(1, 2)))),
        ),
      ),
    ),
    want: {
      flags: L2 | L3 | L3_EXT | FRAG | FIRST | MF | L4,
      ...IP6,
      l4_off: 14 + 40 + 3 * 8 + 8 + 16 + 2048,
      ip_len: 40 + 3 * 8 + 8 + 16 + 2048 + 8,
      frag_id: 5,
      ...udpWant(1, 2),
    },
  },
  {
    title: "stops after 6 IPv6 extension headers (EXT_LIMIT)",
    frame: cat(
      eth(0x86dd),
      ipv6(S6, D6, DST, chain([DST, DST, DST, DST, DST, DST, UDP], udp(1, 2))),
    ),
    want: { flags: L2 | L3_EXT | EXTLIM, ...IP6, ip_len: 40 + 7 * 8 + 8 },
  },
  {
    // RFC 8200: hop-by-hop options may only follow the IPv6 header itself.
    title: "flags hop-by-hop after another extension header as malformed",
    frame: cat(eth(0x86dd), ipv6(S6, D6, DST, chain([HOP, UDP], udp(1, 2)))),
    want: { flags: L2 | L3_EXT | MALF, ...IP6, ip_len: 64 },
  },
  {
    title: "flags version 4 under EtherType IPv6 as malformed",
    frame: cat(eth(0x86dd), ipv6(S6, D6, TCP, tcp(1, 2, 0), { version: 4 })),
    want: { flags: L2 | MALF, ...ETH6 },
  },
  {
    // Jumbograms (RFC 2675) state payload length 0.
    title: "accepts IPv6 payload length 0 (jumbogram)",
    frame: cat(eth(0x86dd), ipv6(S6, D6, UDP, udp(1, 2), { plen: 0 })),
    want: { flags: L2 | L3 | L4, ...IP6, l4_off: 54, ip_len: 40, ...udpWant(1, 2) },
  },
  {
    title: "flags IPv6 payload length past the frame as SHORT, ip_len above 65535",
    frame: cat(eth(0x86dd), ipv6(S6, D6, UDP, udp(1, 2), { plen: 65535 })),
    want: { flags: L2 | L3 | L4 | SHORT, ...IP6, l4_off: 54, ip_len: 65575, ...udpWant(1, 2) },
  },
];
const cases = table.map(({ title, frame, want }) => ({
  title,
  frame,
  want: { ...ZERO, dst_mac: MAC_D, src_mac: MAC_S, ...want } as BeltPacket,
}));

// ---------------------------------------------------------------------------------------------
// Running the parser

function loaded(): BpfObject {
  const obj = BpfObject.open(packetCursorObject);
  obj.load();
  return obj;
}

/**
 * The TC test run builds a real skb, and this kernel refuses (EINVAL) a frame shorter than an
 * Ethernet header, or one whose EtherType says IPv4/IPv6 but that cannot hold a bare IPv4 (20
 * bytes) or IPv6 (40 bytes) header. XDP takes all of them, so those frames run on XDP only.
 */
function tcRefuses(frame: Uint8Array): boolean {
  const type = frame.length >= 14 ? (frame[12]! << 8) | frame[13]! : 0;
  return frame.length < 14 + (type === 0x0800 ? 20 : type === 0x86dd ? 40 : 0);
}

interface Parser {
  xdp(frame: Uint8Array): BeltPacket;
  /** undefined when the kernel refuses to test-run this frame on TC (see tcRefuses). */
  tc(frame: Uint8Array): BeltPacket | undefined;
}

function parser(obj: BpfObject): Parser {
  const result = obj.map("result").typed(u32, beltPacket);
  const raw = obj.map("result").typed(u32, bytes(beltPacket.size));
  const poison = new Uint8Array(beltPacket.size).fill(0xa5);
  const run = (prog: string, frame: Uint8Array, verdict: number): BeltPacket => {
    raw.set(0, poison); // a field the parser forgot to write would read 0xa5
    const { retval, dataOut } = obj.program(prog).testRun(frame);
    equal(retval, verdict, `${prog} verdict`);
    ok(sameBytes(dataOut, frame), `${prog} changed the packet`);
    return result.get(0)!;
  };
  return {
    xdp: (frame) => run("parse_xdp", frame, XDP_PASS),
    tc: (frame) => tcRefuses(frame) ? undefined : run("parse_tc", frame, BELT_NEXT),
  };
}

// ---------------------------------------------------------------------------------------------
// Invariants: what any result must satisfy, checked against the frame's own bytes.

const isTag = (type: number) => type === 0x8100 || type === 0x88a8;
const isExt6 = (nh: number) => nh === HOP || nh === RTG || nh === FRG || nh === DST;
const popcount = (x: number) => x.toString(2).replaceAll("0", "").length;

function checkInvariants(f: Uint8Array, p: BeltPacket, where: string): void {
  const must = (cond: boolean, what: string) => {
    if (!cond) fail(`${where}: ${what}\n  got ${JSON.stringify(show(p))}\n  frame ${hex(f)}`);
  };
  const has = (bit: number) => (p.flags & bit) !== 0;
  const be16 = (at: number) => (f[at]! << 8) | f[at + 1]!;
  const zero = (keys: Field[]) => keys.every((k) => isZero(p[k]));
  const len = f.length;

  must((p.flags & ~ALL_FLAGS) === 0, "unknown flag bits");
  must(popcount(p.flags & STOPPED) <= 1, "more than one reason to stop");
  if (!has(L2)) {
    // Frames hold >= 14 bytes here, so only a cut VLAN tag can keep L2 from being read.
    const cutTag = isTag(be16(12)) && (len < 18 || (isTag(be16(16)) && len < 22));
    must(
      cutTag && JSON.stringify(show(p)) === JSON.stringify(show({ ...ZERO, flags: TRUNC })),
      "no L2",
    );
    return;
  }

  // L2, straight from the frame.
  const tags = p.vlan_count, l3 = p.l3_off, l2Flags = p.flags & (L2 | VLAN | QINQ);
  must(tags <= 2 && l3 === 14 + 4 * tags, "l3_off counts the tags");
  must(has(VLAN) === tags > 0 && has(QINQ) === (tags === 2), "VLAN/QINQ flags match vlan_count");
  for (let i = 0; i < tags; i++) must(isTag(be16(12 + 4 * i)), "a counted tag is a tag");
  must(tags === 2 || !isTag(p.eth_proto), "a tag under the limit was left unread");
  must(sameBytes(p.dst_mac, f.subarray(0, 6)) && sameBytes(p.src_mac, f.subarray(6, 12)), "MACs");
  must(p.vlan_outer === (tags > 0 ? be16(14) & 0xfff : 0), "vlan_outer");
  must(p.vlan_inner === (tags > 1 ? be16(18) & 0xfff : 0), "vlan_inner");
  must(p.eth_proto === be16(l3 - 2), "eth_proto is the EtherType after the tags");
  if (p.eth_proto !== 0x0800 && p.eth_proto !== 0x86dd) {
    must(p.flags === l2Flags && zero(L3_FIELDS), "not IP: nothing past L2");
    return;
  }

  // L3. `stop` is the reason the base IP header must stop parsing, if any.
  const v4 = p.eth_proto === 0x0800;
  const ihl = (f[l3]! & 15) * 4, tot = be16(l3 + 2);
  const stop = v4
    ? (l3 + 20 > len
      ? TRUNC
      : f[l3]! >> 4 !== 4 || ihl < 20 || (tot && tot < ihl)
      ? MALF
      : l3 + ihl > len
      ? TRUNC
      : 0)
    : (l3 + 40 > len ? TRUNC : f[l3]! >> 4 !== 6 ? MALF : 0);
  if (stop) {
    must(p.flags === (l2Flags | stop) && zero(L3_FIELDS), `IP header stops: ${flagNames(stop)}`);
    return;
  }
  if (v4) {
    must(has(L3) && p.ip_version === 4 && has(L3_EXT) === ihl > 20, "IPv4 read");
    must(p.ip_len === tot && p.ttl === f[l3 + 8] && p.l4_proto === f[l3 + 9], "IPv4 fields");
    must(sameBytes(p.src_addr, mapped4(f.subarray(l3 + 12, l3 + 16))), "IPv4 source");
    must(sameBytes(p.dst_addr, mapped4(f.subarray(l3 + 16, l3 + 20))), "IPv4 destination");
    must(has(SHORT) === (tot > 0 && l3 + tot > len), "SHORT iff total length passes the end");
    const frag = be16(l3 + 6);
    must(has(FRAG) === ((frag & 0x3fff) !== 0), "FRAGMENT iff MF or an offset");
    if (has(FRAG)) {
      must(p.frag_id === be16(l3 + 4) && p.frag_off === (frag & 0x1fff) * 8, "IPv4 fragment");
      must(has(MF) === ((frag & 0x2000) !== 0), "MORE_FRAGS iff MF");
    }
    must(p.l4_off === (p.frag_off ? 0 : l3 + ihl), "l4_off after the options");
  } else {
    must(p.ip_version === 6 && p.ttl === f[l3 + 7], "IPv6 read");
    must(p.ip_len === 40 + be16(l3 + 4), "ip_len = 40 + payload length");
    must(sameBytes(p.src_addr, f.subarray(l3 + 8, l3 + 24)), "IPv6 source");
    must(sameBytes(p.dst_addr, f.subarray(l3 + 24, l3 + 40)), "IPv6 destination");
    must(has(SHORT) === (p.ip_len > 40 && l3 + p.ip_len > len), "SHORT iff payload passes the end");
    const nh = f[l3 + 6]!;
    if (!isExt6(nh)) {
      must(has(L3) && !has(L3_EXT) && p.l4_proto === nh && p.l4_off === l3 + 40, "no ext header");
    }
    // L3_EXT comes with the first extension header read whole, so a cut one may lack it.
    must(isExt6(nh) ? has(L3_EXT) || has(TRUNC) : !has(L3_EXT), "L3_EXT iff extension headers");
    if (has(L3)) {
      // Extension headers come in 8-byte units; only a later fragment has no L4 offset.
      must(p.l4_off ? (p.l4_off - l3 - 40) % 8 === 0 && p.l4_off <= len : has(FRAG), "l4_off");
      must(!p.l4_off || !isExt6(p.l4_proto), "l4_proto past the extension headers");
    } else {
      must((p.flags & STOPPED) !== 0 && !p.l4_off && !p.l4_proto, "unfinished chain says why");
    }
    must(p.frag_off % 8 === 0, "IPv6 fragment offset in 8-byte units");
  }

  // Fragments, both families.
  must(!has(MF) || has(FRAG), "MORE_FRAGS without FRAGMENT");
  if (has(FRAG)) must(has(FIRST) === (p.frag_off === 0), "FIRST_FRAG iff offset 0");
  else must(!has(FIRST) && !p.frag_id && !p.frag_off, "fragment fields without FRAGMENT");

  // L4: read iff a header belt_parse knows is there whole; fields from the frame.
  const l4 = p.l4_off, proto = p.l4_proto, icmpProto = v4 ? ICMP : ICMPV6;
  if (!has(L3)) {
    must(!has(L4) && zero(L4_FIELDS), "L4 without L3");
    return;
  }
  const known = l4 > 0 && (proto === TCP || proto === UDP || proto === icmpProto);
  const doff = (f[l4 + 12]! >> 4) * 4;
  const l4Stop = !known
    ? 0
    : proto !== TCP
    ? (l4 + 8 > len ? TRUNC : 0)
    : l4 + 20 > len
    ? TRUNC
    : doff < 20
    ? MALF
    : l4 + doff > len
    ? TRUNC
    : 0;
  must((p.flags & STOPPED) === l4Stop, `L4 stop reason should be ${flagNames(l4Stop)}`);
  must(has(L4) === (known && !l4Stop), "L4 iff a known header is whole");
  if (!has(L4)) {
    must(zero(L4_FIELDS), "L4 fields without L4");
  } else if (proto === TCP) {
    must(p.l4_hdr_len === doff && p.tcp_flags === f[l4 + 13], "TCP length and flags");
    must(p.src_port === be16(l4) && p.dst_port === be16(l4 + 2), "TCP ports");
    must(!p.icmp_type && !p.icmp_code, "ICMP fields on TCP");
  } else if (proto === UDP) {
    must(p.l4_hdr_len === 8 && p.src_port === be16(l4) && p.dst_port === be16(l4 + 2), "UDP");
    must(!p.tcp_flags && !p.icmp_type && !p.icmp_code, "TCP/ICMP fields on UDP");
  } else {
    must(p.l4_hdr_len === 8 && p.icmp_type === f[l4] && p.icmp_code === f[l4 + 1], "ICMP");
    must(!p.src_port && !p.dst_port && !p.tcp_flags, "port fields on ICMP");
  }
}

// ---------------------------------------------------------------------------------------------
// Tests

kernelTest("struct belt_packet codec matches the BTF layout of packet_cursor.bpf.o", () => {
  using obj = loaded();
  const btf = obj.btfStruct("belt_packet");
  deepEqual(
    beltPacket.layout.map(({ name, offset, size }) => ({ name, offset, size })),
    btf.members.map(({ name, offset, size }) => ({ name, offset, size })),
  );
  equal(beltPacket.size, btf.size);
  equal(btf.size, 80);
});

for (const { title, frame, want } of cases) {
  kernelTest(`belt_parse() ${title}`, () => {
    using obj = loaded();
    const parse = parser(obj);
    const xdp = parse.xdp(frame);
    deepEqual(show(xdp), show(want), "parse_xdp");
    deepEqual(xdp, want); // show() hides nothing, but compare the raw struct too
    const tc = parse.tc(frame);
    if (tc) deepEqual(show(tc), show(want), "parse_tc");
    else ok(tcRefuses(frame));
    checkInvariants(frame, xdp, title);
  });
}

/** Where the headers of a full parse end: cuts below say TRUNCATED, cuts from here on do not. */
function headerEnd(want: BeltPacket): number | undefined {
  if (want.flags & L4) return want.l4_off + want.l4_hdr_len;
  if (want.flags & STOPPED) return undefined;
  if (want.l4_off) return want.l4_off; // a protocol belt_parse does not read
  if (!(want.flags & L3)) return want.l3_off; // not IP
  return undefined; // later fragment: the IP header end is not in the struct
}

kernelTest("belt_parse() on every cut of every case: each field zero or right", () => {
  using obj = loaded();
  const parse = parser(obj);
  for (const { title, frame, want } of cases) {
    let whole: number | undefined; // first cut without TRUNCATED
    for (let cut = 14; cut <= frame.length; cut++) { // shorter frames: EINVAL on both hooks
      const part = frame.subarray(0, cut);
      const where = `${title}, cut at ${cut} of ${frame.length}`;
      const got = parse.xdp(part);
      const tc = parse.tc(part);
      if (tc) deepEqual(show(tc), show(got), `${where}: parse_tc differs from parse_xdp`);
      checkInvariants(part, got, where);

      const wrong = FIELDS.filter((k) =>
        k !== "flags" && !isZero(got[k]) && !same(got[k], want[k])
      );
      deepEqual(wrong, [], `${where}: neither 0 nor the full frame's value`);
      const extra = got.flags & ~(want.flags | TRUNC | SHORT);
      equal(extra, 0, `${where}: unexpected flags ${flagNames(extra)}`);
      if (got.flags & TRUNC) {
        ok(whole === undefined, `${where}: TRUNCATED again after cut ${whole} was whole`);
      } else {
        whole ??= cut;
        // Nothing cut from the headers: all of the full result, at most SHORT added.
        const full = { ...want, flags: want.flags | (got.flags & SHORT) };
        deepEqual(show(got), show(full), `${where}: not TRUNCATED, so the full result`);
      }
      if ((want.flags & L3) && want.ip_len && cut < want.l3_off + want.ip_len) {
        ok(got.flags & (TRUNC | SHORT), `${where}: a cut IP datagram says TRUNCATED or SHORT`);
      }
    }
    const end = headerEnd(want);
    if (end !== undefined) equal(whole, end, `${title}: TRUNCATED exactly below the header end`);
  }
});

/** A small seeded PRNG (mulberry32): the same packets on every run. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

// Byte values that steer parsing: version/IHL, EtherType halves, IP protocols, ext headers.
const INTERESTING = words(`00 01 05 06 08 0f 11 20 2b 2c 3a 3b 3c 40 45 4f 50 60 81 86 88 a8 dd ff`)
  .map((x) => parseInt(x, 16));

/** One to four mutations of a case's frame, mostly in its first 96 bytes (the headers). */
function mutate(base: Uint8Array, rand: (n: number) => number): Bytes {
  let f = new Uint8Array(base);
  for (let n = 1 + rand(4); n > 0; n--) {
    const at = rand(8) ? rand(Math.min(f.length, 96)) : rand(f.length);
    switch (rand(5)) {
      case 0:
        f[at] = rand(256);
        break;
      case 1:
        f[at] = INTERESTING[rand(INTERESTING.length)]!;
        break;
      case 2:
        f[at]! ^= 1 << rand(8);
        break;
      case 3: // cut, keeping the Ethernet header
        f = f.slice(0, 14 + rand(f.length - 13));
        break;
      case 4: // push a VLAN tag
        f = cat(f.subarray(0, 12), [0x81, 0x00, rand(256), rand(256)], f.subarray(12));
        break;
    }
  }
  return f;
}

// Fixed, so a failure repeats; its message names the packet and prints its bytes. Other seeds
// (and 100x the packets) are a cheap way to look harder: that is how the double IPv6 fragment
// header case above was found.
const FUZZ_SEED = 0xbe17;
const FUZZ_PACKETS = 10_000;

kernelTest(`belt_parse() keeps its invariants on ${FUZZ_PACKETS} mutated packets (seeded)`, () => {
  using obj = loaded();
  const parse = parser(obj);
  const rand = prng(FUZZ_SEED);
  for (let i = 0; i < FUZZ_PACKETS; i++) {
    const frame = mutate(cases[rand(cases.length)]!.frame, rand);
    const where = `fuzz packet ${i} (seed ${FUZZ_SEED})`;
    const got = parse.xdp(frame);
    const tc = parse.tc(frame);
    if (tc) deepEqual(show(tc), show(got), `${where}: parse_tc differs from parse_xdp`);
    checkInvariants(frame, got, where);
  }
});

/**
 * belt_parse() as a socket filter (BELT_CURSOR_LOAD_BYTES) and the L7 parsers of belt_l7.h, in the
 * real kernel. tests/bpf/sniff_parse.bpf.c is a SEC("socket") program that writes struct
 * sniff_result (struct belt_packet, struct belt_l7, skb->len, VLAN metadata) for every skb.
 *
 * How frames reach it:
 *   - BPF_PROG_TEST_RUN. For a socket filter the kernel runs eth_type_trans() on the input and
 *     leaves skb->data past its Ethernet header (where a UDP socket's filter would see it), not
 *     at it as on an AF_PACKET socket. So every frame runs behind a 14-byte dummy header that the
 *     kernel consumes: the program then sees exactly the frame from offset 0, skb->len = its
 *     length, as on a packet socket (and frames shorter than 14 bytes can run too). Test runs
 *     cannot put a VLAN tag in skb metadata.
 *   - Real delivery: frames sent from host a over a veth reach a filtered PacketSocket on host b
 *     (the stack has moved their outer VLAN tag to skb metadata by then) and one on host a (tags
 *     still in the data), plus TCP/UDP the stack itself builds (paged skbs).
 *
 * What is proven:
 *   a. the socket-filter parse equals the XDP and TC parse (tests/bpf/packet_cursor.bpf.c) of the
 *      same frame: crafted frames (tags, IPv4 options, IPv6 extension headers, fragments, bad
 *      headers), every cut of them, and seeded mutations; on real delivery, the VLAN fields equal
 *      those of the wire frame, offsets being those of the delivered bytes;
 *   b. L7: HTTP request lines, DNS queries and TLS ClientHellos give exactly the expected fields,
 *      malformed ones give nothing, every cut (of the frame, or of the IP length) gives either
 *      nothing or the full frame's fields, exactly from the byte where they become complete
 *      (l7End()), and seeded mutations of the payloads;
 *   c. user space reads every frame of a. and b. the same way from its bytes alone:
 *      readFrameHeaders() (plugins/sniff/frame.ts) reports exactly the fields belt_parse() flags
 *      as parsed, with the same values, and readL7Fields() (plugins/sniff/l7.ts) on those
 *      headers gives exactly struct belt_l7; on real delivery, the same holds for the frame with
 *      its tag put back (what PacketRing hands out), offsets 4 bytes later.
 */
import { deepEqual, equal, fail, ok } from "node:assert/strict";
import {
  BpfObject,
  bytes,
  i32,
  PacketSocket,
  RingBuffer,
  struct,
  u16,
  u32,
  u8,
  withNetns,
} from "../bpf/mod.ts";
import type { Decoded } from "../bpf/mod.ts";
import { formatIp } from "../plugins/addr.ts";
import { beltPacket } from "../plugins/rules.ts";
import type { BeltPacket } from "../plugins/rules.ts";
import { readFrameHeaders } from "../plugins/sniff/frame.ts";
import type { FrameHeaders } from "../plugins/sniff/frame.ts";
import {
  HTTP_METHODS,
  L7_DNS,
  L7_HTTP,
  L7_TLS,
  l7End,
  readL7,
  readL7Fields,
} from "../plugins/sniff/l7.ts";
import { packetCursorObject } from "./bpf/packet_cursor.bpf.ts";
import { sniffParseObject } from "./bpf/sniff_parse.bpf.ts";
import { eventually, kernelTest } from "./harness/kernel.ts";
import { cat, hex, macOf, n16, n32 } from "./harness/frames.ts";
import type { Bytes, Part } from "./harness/frames.ts";
import { Topology } from "./harness/netns.ts";

// ---------------------------------------------------------------------------------------------
// Structs

/** struct belt_l7 (bpf/include/belt_l7.h). */
const beltL7 = struct({
  proto: u8,
  method: u8,
  version: u8,
  pad0: u8,
  qtype: u16,
  qclass: u16,
  targetOff: u32,
  targetLen: u16,
  nameLen: u16,
  nameOff: u32,
  nameWire: u16,
  pad1: u16,
  payloadOff: u32,
  pad2: u32,
  name: bytes(256),
});
type BeltL7 = Decoded<typeof beltL7>;

/** struct sniff_result (tests/bpf/sniff_parse.bpf.c). */
const sniffResult = struct({
  pkt: beltPacket,
  l7: beltL7,
  len: u32,
  ret: i32,
  vlanTci: u32,
  vlanPresent: u32,
});
type SniffResult = Decoded<typeof sniffResult>;

// The library's constants: the cases below check them against the kernel's results.
const HTTP = L7_HTTP, DNS = L7_DNS, TLS = L7_TLS;
const METHODS: readonly string[] = HTTP_METHODS;
// Limits of belt_l7.h.
const LINE_MAX = 512, WINDOW = 2048;

const F_L2 = 1 << 0, F_VLAN = 1 << 1, F_L3 = 1 << 3, F_FRAGMENT = 1 << 5, F_FIRST_FRAG = 1 << 6;
const F_L4 = 1 << 8, F_TRUNC = 1 << 9, F_MALFORMED = 1 << 10, F_EXT_LIMIT = 1 << 11;
const TCP = 6, UDP = 17, ICMP = 1, ICMPV6 = 58;
const HOP = 0, RTG = 43, FRG = 44, DST = 60;

const enc = new TextEncoder();
const dec = new TextDecoder("latin1");
const text = (s: string) => enc.encode(s);
const ascii = (b: Uint8Array) => dec.decode(b);
const zeros = (n: number) => new Uint8Array(n);

// ---------------------------------------------------------------------------------------------
// Frame builders (wire order); IPv4 checksums stay 0, nothing here checks them.

const ip4 = (s: string) => s.split(".").map(Number);
function ip6(s: string): number[] {
  const groups = (x: string | undefined) => x ? x.split(":").map((g) => parseInt(g, 16)) : [];
  const [head, tail] = s.split("::");
  const h = groups(head), t = groups(tail);
  return [...h, ...Array(8 - h.length - t.length).fill(0), ...t].flatMap(n16);
}
const MAC_D = [2, 0, 0, 0, 0, 2], MAC_S = [2, 0, 0, 0, 0, 1];
const eth = (type: number, dst: Part = MAC_D, src: Part = MAC_S) => cat(dst, src, n16(type));
const vlan = (tci: number, type: number) => cat(n16(tci), n16(type));

interface Ipv4Options {
  opts?: Part;
  ident?: number;
  frag?: number;
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
    [64, proto, 0, 0],
    ip4(src),
    ip4(dst),
    opts,
    payload,
  );
}
function ipv6(src: string, dst: string, nh: number, payload: Part, plen = payload.length) {
  return cat(n32(0x60012345), n16(plen), [nh, 64], ip6(src), ip6(dst), payload);
}
function ext6(nh: number, body: Part, payload: Part) {
  return cat([nh, (body.length + 2) / 8 - 1], body, payload);
}
const pad6 = (n: number) => [1, n - 2, ...Array(n - 2).fill(0)]; // one PadN option, n >= 2
const frag6 = (nh: number, offset: number, more: boolean, ident: number, payload: Part) =>
  cat([nh, 0], n16(offset | (more ? 1 : 0)), n32(ident), payload);
/** TCP header with these options (a multiple of 4 bytes), then payload. */
function tcp(sport: number, dport: number, payload: Part = [], opts: Part = [], flags = 0x18) {
  const doff = 5 + opts.length / 4;
  return cat(
    n16(sport),
    n16(dport),
    n32(1000),
    n32(2000),
    [doff << 4, flags],
    n16(65535),
    [
      0,
      0,
      0,
      0,
    ],
    opts,
    payload,
  );
}
const udp = (sport: number, dport: number, payload: Part = []) =>
  cat(n16(sport), n16(dport), n16(8 + payload.length), n16(0), payload);
const icmp = (type: number, code: number, payload: Part = []) =>
  cat([type, code, 0, 0, 0, 1, 0, 2], payload);
const nopOpts = (n: number) => [...Array(n - 1).fill(1), 0];
/** NOP NOP timestamp (12 bytes) + MSS (4): TCP options as a Linux peer sends them. */
const TCP_OPTS = [1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 5, 0xb4];

const S4 = "198.18.77.1", D4 = "198.18.77.2", S6 = "fd00:beef::77:1", D6 = "fd00:beef::77:2";

// ---------------------------------------------------------------------------------------------
// Running the programs

/** The dummy Ethernet header test runs consume before the socket filter sees the frame. */
const DUMMY = cat(Array(6).fill(0xff), [2, 0, 0, 0, 0, 9], n16(0x88b5));
const POISON = 0xa5;

interface Runner {
  /** The socket filter on a frame, as a packet socket hands it over. */
  sock(frame: Uint8Array): SniffResult;
  /** belt_parse() on XDP. */
  xdp(frame: Uint8Array): BeltPacket;
  /** belt_parse() on TC, or undefined where the TC test run refuses the frame. */
  tc(frame: Uint8Array): BeltPacket | undefined;
}

/** TC test runs refuse frames too short for the IP header their EtherType announces. */
function tcRefuses(frame: Uint8Array): boolean {
  const type = frame.length >= 14 ? (frame[12]! << 8) | frame[13]! : 0;
  return frame.length < 14 + (type === 0x0800 ? 20 : type === 0x86dd ? 40 : 0);
}

function runner(sniff: BpfObject, cursor: BpfObject): Runner {
  const result = sniff.map("result").typed(u32, bytes(sniffResult.size));
  const refRaw = cursor.map("result").typed(u32, bytes(beltPacket.size));
  const poison = new Uint8Array(sniffResult.size).fill(POISON);
  const refPoison = new Uint8Array(beltPacket.size).fill(POISON);
  const prog = sniff.program("sniff_parse");
  const ref = (name: string, frame: Uint8Array, verdict: number) => {
    refRaw.set(0, refPoison);
    equal(cursor.program(name).testRun(frame).retval, verdict, name);
    return beltPacket.unpack(refRaw.get(0)!);
  };
  return {
    sock(frame) {
      result.set(0, poison);
      const { retval } = prog.testRun(cat(DUMMY, frame));
      equal(retval, frame.length, "the filter keeps the whole frame (skb->len)");
      return sniffResult.unpack(result.get(0)!);
    },
    xdp: (frame) => ref("parse_xdp", frame, 2),
    tc: (frame) => tcRefuses(frame) ? undefined : ref("parse_tc", frame, -1),
  };
}

function loaded(object: Uint8Array, globals?: Record<string, number>): BpfObject {
  const obj = BpfObject.open(object, globals ? { globals } : {});
  obj.load();
  return obj;
}

/** Readable form of a struct belt_packet for failure messages. */
const showPkt = (p: BeltPacket) =>
  JSON.stringify(p, (_, v) => v instanceof Uint8Array ? hex(v) : v);

/** The L7 result as comparable plain data: the name as text, padding checked to be zero. */
function l7Plain(l: BeltL7) {
  const { name, pad0, pad1, pad2, ...rest } = l;
  ok(pad0 === 0 && pad1 === 0 && pad2 === 0, "padding is zero");
  ok(name.subarray(l.nameLen).every((b) => b === 0), "name is NUL-padded after name_len");
  return { ...rest, name: ascii(name.subarray(0, l.nameLen)) };
}
type L7 = ReturnType<typeof l7Plain>;
const NONE: L7 = l7Plain(beltL7.unpack(new Uint8Array(beltL7.size)));

// ---------------------------------------------------------------------------------------------
// a. The parse: socket filter = XDP = TC

/** Frames covering what belt_parse() distinguishes. */
const parseFrames: [string, Bytes][] = [
  ["ARP", cat(eth(0x0806), [0, 1, 8, 0, 6, 4, 0, 1], MAC_S, ip4(S4), zeros(6), ip4(D4))],
  ["bare IPv4 EtherType", eth(0x0800)],
  ["802.1Q ICMP", cat(eth(0x8100), vlan(0x2064, 0x0800), ipv4(S4, D4, ICMP, icmp(8, 0)))],
  [
    "QinQ IPv6 TCP with options",
    cat(
      eth(0x88a8),
      vlan(0xe0c8, 0x8100),
      vlan(0x312c, 0x86dd),
      ipv6(S6, D6, TCP, tcp(443, 5000, zeros(12), TCP_OPTS)),
    ),
  ],
  [
    "three tags",
    cat(
      eth(0x8100),
      vlan(10, 0x8100),
      vlan(20, 0x8100),
      vlan(30, 0x0800),
      ipv4(S4, D4, UDP, udp(1, 2)),
    ),
  ],
  ["802.1ad ARP", cat(eth(0x88a8), vlan(4095, 0x0806), zeros(28))],
  [
    "IPv4 options, TCP options",
    cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2, [], nopOpts(40)), { opts: nopOpts(40) })),
  ],
  [
    "IPv4 options, UDP",
    cat(eth(0x0800), ipv4(S4, D4, UDP, udp(5353, 53, text("q")), { opts: nopOpts(8) })),
  ],
  [
    "IPv4 first fragment",
    cat(eth(0x0800), ipv4(S4, D4, UDP, udp(7, 9, zeros(16)), { frag: 0x2000, ident: 0xabcd })),
  ],
  ["IPv4 later fragment", cat(eth(0x0800), ipv4(S4, D4, UDP, zeros(24), { frag: 0x2000 | 185 }))],
  ["IPv4 IHL 4", cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2), { ihl: 4 }))],
  ["IPv4 version 6", cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2), { version: 6 }))],
  [
    "IPv4 total length past the end",
    cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2), { totLen: 900 })),
  ],
  ["IPv4 GRE", cat(eth(0x0800), ipv4(S4, D4, 47, zeros(8)))],
  ["IPv6 ICMPv6", cat(eth(0x86dd), ipv6(S6, D6, ICMPV6, icmp(128, 0, zeros(8))))],
  [
    "IPv6 hop-by-hop, routing, destination options, UDP",
    cat(
      eth(0x86dd),
      ipv6(S6, D6, HOP, ext6(RTG, pad6(6), ext6(DST, pad6(14), ext6(UDP, pad6(6), udp(53, 53))))),
    ),
  ],
  [
    "IPv6 first fragment, TCP",
    cat(eth(0x86dd), ipv6(S6, D6, FRG, frag6(TCP, 0, true, 0x1234567, tcp(80, 81)))),
  ],
  [
    "IPv6 later fragment",
    cat(eth(0x86dd), ipv6(S6, D6, FRG, frag6(UDP, 1480, false, 9, zeros(24)))),
  ],
  [
    "IPv6 two fragment headers",
    cat(
      eth(0x86dd),
      ipv6(S6, D6, FRG, frag6(FRG, 0, false, 1, frag6(UDP, 0, false, 2, udp(1, 2)))),
    ),
  ],
  [
    "IPv6 seven extension headers",
    cat(
      eth(0x86dd),
      ipv6(
        S6,
        D6,
        HOP,
        [0, 1, 2, 3, 4, 5].reduceRight(
          (p: Part) => ext6(DST, pad6(6), p),
          ext6(UDP, pad6(6), udp(1, 2)),
        ),
      ),
    ),
  ],
  ["IPv6 payload length past the end", cat(eth(0x86dd), ipv6(S6, D6, UDP, udp(1, 2), 4000))],
  [
    "TCP doff 4",
    cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2).map((b, i) => i === 12 ? 0x40 : b))),
  ],
  // Corners of the rules readFrameHeaders() must follow too.
  [
    "IPv6 hop-by-hop after destination options",
    cat(eth(0x86dd), ipv6(S6, D6, DST, ext6(HOP, pad6(6), ext6(UDP, pad6(6), udp(1, 2))))),
  ],
  [
    "IPv6 six extension headers",
    cat(
      eth(0x86dd),
      ipv6(
        S6,
        D6,
        HOP,
        [0, 1, 2, 3, 4].reduceRight(
          (p: Part) => ext6(DST, pad6(6), p),
          ext6(TCP, pad6(6), tcp(1, 2)),
        ),
      ),
    ),
  ],
  [
    "IPv6 later fragment at offset 8",
    cat(eth(0x86dd), ipv6(S6, D6, DST, ext6(FRG, pad6(6), frag6(ICMPV6, 8, true, 5, zeros(16))))),
  ],
  [
    "IPv6 atomic fragment, UDP",
    cat(eth(0x86dd), ipv6(S6, D6, FRG, frag6(UDP, 0, false, 3, udp(1, 2)))),
  ],
  ["IPv6 AH is not followed", cat(eth(0x86dd), ipv6(S6, D6, 51, zeros(24)))],
  ["IPv6 payload length 0", cat(eth(0x86dd), ipv6(S6, D6, UDP, udp(1, 2, zeros(4)), 0))],
  ["ICMP (1) in IPv6 is not ICMPv6", cat(eth(0x86dd), ipv6(S6, D6, ICMP, icmp(8, 0)))],
  ["ICMPv6 (58) in IPv4 is not ICMP", cat(eth(0x0800), ipv4(S4, D4, ICMPV6, icmp(128, 0)))],
  ["IPv4 total length 0", cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2, zeros(8)), { totLen: 0 }))],
  ["IPv4 total length below IHL", cat(eth(0x0800), ipv4(S4, D4, UDP, udp(1, 2), { totLen: 19 }))],
  [
    "IPv4 total length ending in the TCP header",
    cat(eth(0x0800), ipv4(S4, D4, TCP, tcp(1, 2, zeros(6)), { totLen: 24 })),
  ],
  ["IPv4 later fragment at offset 8", cat(eth(0x0800), ipv4(S4, D4, TCP, zeros(24), { frag: 1 }))],
  [
    "IPv4 more fragments, offset 0",
    cat(eth(0x0800), ipv4(S4, D4, ICMP, icmp(0, 0), { frag: 0x2000 })),
  ],
];

/** The socket filter's parse of frame must be the XDP (and TC) parse, with no L7 surprise. */
function checkParse(run: Runner, frame: Uint8Array, where: string): SniffResult {
  const got = run.sock(frame);
  if (frame.length < 14) {
    // Too short for XDP/TC test runs: only a bare TRUNCATED is right.
    deepEqual(got.pkt, { ...beltPacket.unpack(zeros(80)), flags: F_TRUNC }, where);
  } else {
    const want = run.xdp(frame);
    if (showPkt(got.pkt) !== showPkt(want)) {
      fail(
        `${where}: socket filter ${showPkt(got.pkt)}\n  XDP ${showPkt(want)}\n  frame ${
          hex(frame)
        }`,
      );
    }
    const tc = run.tc(frame);
    if (tc) deepEqual(tc, got.pkt, `${where}: TC`);
  }
  equal(got.len, frame.length, `${where}: len`);
  equal(got.vlanPresent, 0, `${where}: test runs have no VLAN metadata`);
  equal(got.ret, got.l7.proto, `${where}: belt_l7_parse() returns proto`);
  checkUserspace(frame, got.pkt, l7Plain(got.l7), where);
  return got;
}

kernelTest("struct belt_l7 and sniff_result codecs match the BTF of sniff_parse.bpf.o", () => {
  using obj = BpfObject.open(sniffParseObject);
  for (const [codec, name] of [[beltL7, "belt_l7"], [sniffResult, "sniff_result"]] as const) {
    const btf = obj.btfStruct(name);
    const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    deepEqual(
      codec.layout.map(({ name, offset, size }) => ({ name: snake(name), offset, size })),
      btf.members.map(({ name, offset, size }) => ({ name, offset, size })),
      name,
    );
    equal(codec.size, btf.size, name);
  }
  equal(beltL7.size, 288);
});

kernelTest(
  "socket-filter belt_parse() equals XDP, TC and readFrameHeaders() on crafted frames and every cut",
  () => {
    using sniff = loaded(sniffParseObject);
    using cursor = loaded(packetCursorObject);
    const run = runner(sniff, cursor);
    const before = userspaceFrames;
    let runs = 0;
    for (const [title, frame] of parseFrames) {
      const full = checkParse(run, frame, title);
      ok(full.pkt.flags & F_L2, `${title}: L2 read`);
      for (let cut = 0; cut < frame.length; cut++) {
        checkParse(run, frame.subarray(0, cut), `${title}, cut at ${cut}`);
        runs++;
      }
    }
    ok(runs > 1000, `${runs} cuts`);
    console.log(`user space = kernel on ${userspaceFrames - before} frames`);
  },
);

/** A small seeded PRNG (mulberry32): the same frames on every run. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

// Byte values that steer parsing: version/IHL, EtherType halves, IP protocols, extension headers,
// TLS record type 22, port 53, a DNS compression pointer.
const INTERESTING = "00 01 05 06 08 0f 11 16 20 2b 2c 35 3a 3c 40 45 60 81 86 88 a8 c0 dd ff"
  .split(" ").map((x) => parseInt(x, 16));

/** One to four mutations: byte changes (mostly in the first `focus` bytes), cuts, pushed tags. */
function mutate(base: Uint8Array, rand: (n: number) => number, from = 0, focus = 96): Bytes {
  let f = new Uint8Array(base);
  for (let n = 1 + rand(4); n > 0; n--) {
    const span = Math.max(1, Math.min(f.length - from, focus));
    const at = from + (rand(8) ? rand(span) : rand(Math.max(1, f.length - from)));
    switch (rand(6)) {
      case 0:
        if (at < f.length) f[at] = rand(256);
        break;
      case 1:
        if (at < f.length) f[at] = INTERESTING[rand(INTERESTING.length)]!;
        break;
      case 2:
        if (at < f.length) f[at]! ^= 1 << rand(8);
        break;
      case 3:
        f = f.slice(0, rand(f.length + 1));
        break;
      case 4:
        if (!from) f = cat(f.subarray(0, 12), [0x81, 0x00, rand(256), rand(256)], f.subarray(12));
        break;
      case 5: // small numbers where lengths live
        if (at < f.length) f[at] = rand(4) ? rand(64) : 0;
        break;
    }
  }
  return f;
}

const FUZZ_SEED = 0x5eed_0007;
const FUZZ_FRAMES = 6000;

kernelTest(
  `socket-filter belt_parse() equals XDP, TC and readFrameHeaders() on ${FUZZ_FRAMES} mutated frames`,
  () => {
    using sniff = loaded(sniffParseObject);
    using cursor = loaded(packetCursorObject);
    const run = runner(sniff, cursor);
    const rand = prng(FUZZ_SEED);
    const bases = [...parseFrames.map(([, f]) => f), ...l7Cases().map((c) => c.frame)];
    const before = userspaceFrames;
    for (let i = 0; i < FUZZ_FRAMES; i++) {
      const frame = mutate(bases[rand(bases.length)]!, rand);
      checkParse(run, frame, `fuzz frame ${i} (seed ${FUZZ_SEED})`);
    }
    equal(userspaceFrames - before, FUZZ_FRAMES);
  },
);

// ---------------------------------------------------------------------------------------------
// c. User space (plugins/sniff/frame.ts, l7.ts) on the frame's bytes alone = the kernel

const printable = (b: Uint8Array) => b.every((x) => x >= 0x21 && x <= 0x7e);

/**
 * What readFrameHeaders() must say of a frame of `len` bytes that belt_parse() read as p: the
 * fields of each layer whose flag is set, as the kernel stored them, and nothing else.
 */
function expectedHeaders(p: BeltPacket, len: number): FrameHeaders {
  const h: FrameHeaders = { ethType: p.ethProto };
  if (p.flags & F_TRUNC) h.stopped = "truncated";
  else if (p.flags & F_MALFORMED) h.stopped = "malformed";
  else if (p.flags & F_EXT_LIMIT) h.stopped = "ext-limit";
  if (!(p.flags & F_L2)) return h;
  h.l3Off = p.l3Off;
  if (p.flags & F_VLAN) h.vlan = p.vlanOuter;
  if (!(p.flags & F_L3)) return h;
  const later = Boolean(p.flags & F_FRAGMENT) && !(p.flags & F_FIRST_FRAG);
  const ipEnd = p.l3Off + p.ipLen;
  Object.assign(h, {
    ipVersion: p.ipVersion,
    srcAddr: p.srcAddr,
    dstAddr: p.dstAddr,
    src: formatIp(p.srcAddr),
    dst: formatIp(p.dstAddr),
    ipLen: p.ipLen,
    proto: p.l4Proto,
    laterFragment: later,
    // belt_l7_end(pkt, skb->len)
    payloadEnd: p.ipLen > (p.ipVersion === 6 ? 40 : 0) && ipEnd < len ? ipEnd : len,
  });
  if (!later) h.l4Off = p.l4Off;
  if (!(p.flags & F_L4)) return h;
  h.l4HdrLen = p.l4HdrLen;
  h.payloadOff = p.l4Off + p.l4HdrLen;
  if (p.l4Proto === TCP || p.l4Proto === UDP) {
    h.sport = p.srcPort;
    h.dport = p.dstPort;
  }
  if (p.l4Proto === TCP) h.tcpFlags = p.tcpFlags;
  if (p.l4Proto === (p.ipVersion === 4 ? ICMP : ICMPV6)) {
    h.icmpType = p.icmpType;
    h.icmpCode = p.icmpCode;
  }
  return h;
}

/** An object as JSON with sorted keys and bytes in hex: equal texts, equal objects. */
const canon = (o: object) =>
  JSON.stringify(
    Object.entries(o).sort(([x], [y]) => x < y ? -1 : 1),
    (_, v) => v instanceof Uint8Array ? hex(v) : v,
  );

/** Where readFrameHeaders() + readL7Fields() on the frame alone differ from the kernel's p, l7. */
function userspaceDiff(frame: Uint8Array, p: BeltPacket, l7: L7): string | undefined {
  const h = readFrameHeaders(frame);
  const got = canon(h), want = canon(expectedHeaders(p, frame.length));
  if (got !== want) return `readFrameHeaders() ${got}\n  kernel ${want}`;
  const l7Got = canon(readL7Fields(frame, h) ?? NONE), l7Want = canon(l7);
  return l7Got === l7Want ? undefined : `readL7Fields() ${l7Got}\n  kernel ${l7Want}`;
}

let userspaceFrames = 0;

function checkUserspace(frame: Uint8Array, p: BeltPacket, l7: L7, where: string): void {
  // belt_parse() leaves what it did not flag at zero (L4 fields here), as its header says.
  if (!(p.flags & F_L4)) {
    ok(!(p.srcPort | p.dstPort | p.l4HdrLen | p.tcpFlags | p.icmpType | p.icmpCode), where);
  }
  const diff = userspaceDiff(frame, p, l7);
  if (diff) fail(`${where}: ${diff}\n  frame ${hex(frame)}\n  pkt ${showPkt(p)}`);
  userspaceFrames++;
}

/** What any reported field must satisfy, from the frame's own bytes (model-free). */
function checkL7Invariants(f: Uint8Array, l: L7, where: string): void {
  const must = (cond: boolean, what: string) => {
    if (!cond) fail(`${where}: ${what}\n  got ${JSON.stringify(l)}\n  frame ${hex(f)}`);
  };
  if (!l.proto) return must(JSON.stringify(l) === JSON.stringify(NONE), "no match, all zero");
  const at = (o: number, n: number) => ascii(f.subarray(o, o + n));
  if (l.proto === HTTP) {
    const method = METHODS[l.method - 1]!;
    must(at(l.payloadOff, method.length + 1) === `${method} `, "method at the payload start");
    must(l.targetOff === l.payloadOff + method.length + 1 && l.targetLen > 0, "target offset");
    const target = f.subarray(l.targetOff, l.targetOff + l.targetLen);
    must(target.every((b) => b > 0x20 && b !== 0x7f), "target has no space or control");
    must(at(l.targetOff + l.targetLen, 11) === ` HTTP/1.${l.version}\r\n`, "version and CRLF");
    if (l.nameLen) must(at(l.nameOff, l.nameLen) === l.name, "Host value at name_off");
  } else if (l.proto === TLS) {
    must(f[l.payloadOff] === 22 && at(l.nameOff, l.nameLen) === l.name, "SNI at name_off");
    must(l.nameLen === l.nameWire && l.nameLen > 0 && printable(text(l.name)), "SNI length");
  } else {
    let pos = l.nameOff;
    const labels: string[] = [];
    while (f[pos]) {
      labels.push(at(pos + 1, f[pos]!));
      pos += 1 + f[pos]!;
    }
    must(labels.join(".") === l.name && pos + 1 - l.nameOff === l.nameWire, "DNS name");
    must(l.qtype === ((f[pos + 1]! << 8) | f[pos + 2]!), "QTYPE after the name");
  }
}

// ---------------------------------------------------------------------------------------------
// L7 cases: each frame with the exact fields it must give, built from how it was made

interface L7Case {
  title: string;
  frame: Bytes;
  want: L7;
  /** Bytes of the frame needed for the match (the cut from which it is reported), if it matches. */
  need?: number;
  /** Bytes needed for the name too (HTTP Host), when it comes later than the match. */
  needName?: number;
}

type Wrap = (l4: Bytes, proto: number) => Bytes;
/** Link and IP layers around an L4 segment, with where the L4 header starts. */
const WRAPS: [string, Wrap][] = [
  ["IPv4", (l4, p) => cat(eth(0x0800), ipv4(S4, D4, p, l4))],
  [
    "IPv4 options, 802.1Q",
    (l4, p) => cat(eth(0x8100), vlan(77, 0x0800), ipv4(S4, D4, p, l4, { opts: nopOpts(12) })),
  ],
  ["IPv6", (l4, p) => cat(eth(0x86dd), ipv6(S6, D6, p, l4))],
  [
    "IPv6 extension headers, QinQ",
    (l4, p) =>
      cat(
        eth(0x88a8),
        vlan(7, 0x8100),
        vlan(8, 0x86dd),
        ipv6(S6, D6, HOP, ext6(DST, pad6(14), ext6(p, pad6(6), l4))),
      ),
  ],
];

/** Where the payload starts in a frame a wrap built (from the L4 header found by XDP). */
function payloadStart(frame: Uint8Array, run: Runner): number {
  const p = run.xdp(frame);
  return p.l4Off + p.l4HdrLen;
}

function httpCase(
  wrap: Wrap,
  request: string,
  want: { method: string; target: string; version: number; host?: string },
  opts: Part = TCP_OPTS,
): Omit<L7Case, "title"> & { payloadAt: (off: number) => L7 } {
  const payload = text(request);
  const frame = wrap(tcp(40000, 80, payload, opts), TCP);
  const t = want.method.length + 1;
  const lineEnd = t + want.target.length + 11;
  const hostAt = want.host === undefined ? -1 : request.search(/\r\nhost:[ \t]*/i);
  const hostStart = hostAt < 0 ? -1 : hostAt + /\r\nhost:[ \t]*/i.exec(request)![0].length;
  return {
    frame,
    want: NONE,
    payloadAt: (off) => ({
      ...NONE,
      proto: HTTP,
      method: METHODS.indexOf(want.method) + 1,
      version: want.version,
      payloadOff: off,
      targetOff: off + t,
      targetLen: want.target.length,
      ...(want.host === undefined ? {} : {
        nameOff: off + hostStart,
        nameLen: want.host.length,
        nameWire: want.host.length,
        name: want.host,
      }),
    }),
    need: lineEnd,
    needName: want.host === undefined ? undefined : request.indexOf("\r\n", hostStart) + 2,
  };
}

/** A DNS query: header (id, flags, counts), then a question. */
function dnsQuery(name: Part, qtype: number, o: { flags?: number; qd?: number } = {}): Bytes {
  return cat(
    n16(0xbe17),
    n16(o.flags ?? 0x0100),
    n16(o.qd ?? 1),
    n16(0),
    n16(0),
    n16(0),
    name,
    n16(qtype),
    n16(1),
  );
}
/** Wire form of a dotted name. */
const wireName = (s: string) =>
  cat(...(s ? s.split(".") : []).map((l) => cat([l.length], text(l))), [0]);

/** TLS extension. */
const ext = (type: number, body: Part) => cat(n16(type), n16(body.length), body);
const sniExt = (name: string, o: { type?: number; listDelta?: number } = {}) => {
  const entry = cat([o.type ?? 0], n16(name.length), text(name));
  return ext(0, cat(n16(entry.length + (o.listDelta ?? 0)), entry));
};
/** A ClientHello record: extensions as given; session id, suites, compression adjustable. */
function clientHello(
  exts: Part[],
  o: {
    sid?: number;
    suites?: Part;
    comp?: Part;
    recordLen?: number;
    hsType?: number;
    recType?: number;
  } = {},
): Bytes {
  const extBlock = cat(...exts);
  const body = cat(
    [3, 3],
    Array.from({ length: 32 }, (_, i) => i),
    [o.sid ?? 32],
    Array(o.sid ?? 32).fill(0x5a),
    n16((o.suites ?? [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]).length),
    o.suites ?? [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f],
    [(o.comp ?? [0]).length],
    o.comp ?? [0],
    n16(extBlock.length),
    extBlock,
  );
  const hs = cat([o.hsType ?? 1], n32(body.length).slice(1), body);
  return cat([o.recType ?? 22, 3, 1], n16(o.recordLen ?? hs.length), hs);
}
/** Extensions a browser sends before server_name, roughly. */
const filler = (k: number) =>
  Array.from({ length: k }, (_, i) => ext(0x0a00 + i, Array(i % 5).fill(i & 0xff)));

const LABEL63 = "a".repeat(63);
/** A 253-character name: 63.63.63.61. */
const NAME253 = [LABEL63, "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");

function l7Cases(run?: Runner): L7Case[] {
  const cases: L7Case[] = [];
  // Offsets come from XDP's parse of the built frame; without a runner (fuzz bases) they are not
  // needed.
  const start = (frame: Uint8Array) => run ? payloadStart(frame, run) : 0;
  const add = (title: string, c: Omit<L7Case, "title"> & { payloadAt?: (off: number) => L7 }) => {
    const off = start(c.frame);
    const want = c.payloadAt ? c.payloadAt(off) : c.want;
    cases.push({
      title,
      frame: c.frame,
      want,
      need: c.need === undefined ? undefined : off + c.need,
      needName: c.needName === undefined ? undefined : off + c.needName,
    });
  };

  // HTTP: every method on every wrap, paths with query strings, Host present or not.
  for (const [wname, wrap] of WRAPS) {
    for (const [i, method] of METHODS.entries()) {
      const target = method === "CONNECT"
        ? "b.belt.test:443"
        : method === "OPTIONS"
        ? "*"
        : `/p/${i}/index.html?q=${i}&x=%20y#frag`;
      const version = i % 2;
      const host = i % 3 === 0 ? undefined : `h${i}.belt.test`;
      const request = `${method} ${target} HTTP/1.${version}\r\n` +
        (host
          ? `User-Agent: belt\r\n${i % 2 ? "host" : "Host"}:${" ".repeat(i % 3)}${host}  \r\n`
          : "") +
        "Accept: */*\r\n\r\n";
      add(
        `HTTP ${method} over ${wname}`,
        httpCase(wrap, request, { method, target, version, host }, i % 4 ? TCP_OPTS : []),
      );
    }
  }
  const wrap4 = WRAPS[0]![1], wrap6 = WRAPS[3]![1];
  add(
    "HTTP Host as the first header",
    httpCase(wrap4, "GET / HTTP/1.1\r\nHost: a.b\r\n\r\n", {
      method: "GET",
      target: "/",
      version: 1,
      host: "a.b",
    }),
  );
  add(
    "HTTP Host with a port",
    httpCase(wrap6, "GET /x HTTP/1.1\r\nHOST:\tb.test:8080\t\r\n\r\n", {
      method: "GET",
      target: "/x",
      version: 1,
      host: "b.test:8080",
    }),
  );
  add(
    "HTTP X-Host is not Host",
    httpCase(wrap4, "GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", {
      method: "GET",
      target: "/",
      version: 1,
    }),
  );
  add(
    "HTTP Host in the body is not a header",
    httpCase(wrap4, "POST /f HTTP/1.0\r\nA: b\r\n\r\nHost: evil\r\n", {
      method: "POST",
      target: "/f",
      version: 0,
    }),
  );
  add(
    "HTTP Host with a space inside is not reported",
    httpCase(wrap4, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", {
      method: "GET",
      target: "/",
      version: 1,
    }),
  );
  add(
    "HTTP empty Host is not reported",
    httpCase(wrap4, "GET / HTTP/1.1\r\nHost:  \r\n\r\n", {
      method: "GET",
      target: "/",
      version: 1,
    }),
  );
  add(
    "HTTP a 255-byte Host",
    httpCase(wrap4, `GET / HTTP/1.1\r\nHost: ${"h".repeat(255)}\r\n\r\n`, {
      method: "GET",
      target: "/",
      version: 1,
      host: "h".repeat(255),
    }),
  );
  add(
    "HTTP a 256-byte Host is not reported",
    httpCase(wrap4, `GET / HTTP/1.1\r\nHost: ${"h".repeat(256)}\r\n\r\n`, {
      method: "GET",
      target: "/",
      version: 1,
    }),
  );
  {
    const target = "/" + "t".repeat(LINE_MAX - 4 - 9 - 1); // a line of exactly LINE_MAX bytes
    add(
      "HTTP a request line of exactly 512 bytes",
      httpCase(wrap4, `GET ${target} HTTP/1.1\r\n\r\n`, { method: "GET", target, version: 1 }),
    );
  }
  {
    // Request line 16 bytes, then "X-Pad: " + pad + CRLF, then the Host line (15 bytes).
    const padded = (pad: number) =>
      "GET / HTTP/1.1\r\nX-Pad: " + "p".repeat(pad) + "\r\nHost: in.test\r\n\r\n";
    equal(padded(2008).indexOf("in.test") + 9, WINDOW);
    add(
      "HTTP Host line ending at the last byte of the window",
      httpCase(wrap4, padded(2008), { method: "GET", target: "/", version: 1, host: "in.test" }),
    );
    add(
      "HTTP Host line ending one byte past the window",
      httpCase(wrap4, padded(2009), { method: "GET", target: "/", version: 1 }),
    );
  }
  const noHttp = (title: string, request: string, w = wrap4) =>
    add(title, { frame: w(tcp(40000, 80, text(request), TCP_OPTS), TCP), want: NONE });
  noHttp(
    "HTTP a 513-byte request line is not read",
    `GET /${"t".repeat(LINE_MAX - 4 - 9)} HTTP/1.1\r\n\r\n`,
  );
  noHttp("HTTP/1.2 is not HTTP/1.x", "GET / HTTP/1.2\r\n\r\n");
  noHttp("HTTP/2 preface is not HTTP/1.x", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  noHttp("HTTP two spaces: an empty target", "GET  / HTTP/1.1\r\n\r\n");
  noHttp("HTTP lower-case method", "get / HTTP/1.1\r\n\r\n");
  noHttp("HTTP unknown method", "GETS / HTTP/1.1\r\n\r\n");
  noHttp("HTTP a tab in the target", "GET /a\tb HTTP/1.1\r\n\r\n");
  noHttp("HTTP LF without CR", "GET / HTTP/1.1\n\n");
  noHttp("HTTP three words but not the version", "GET / HTTPS/1.1\r\n\r\n");
  noHttp("HTTP a response", "HTTP/1.1 200 OK\r\n\r\n");
  add("HTTP over UDP is not read", {
    frame: wrap4(udp(40000, 80, text("GET / HTTP/1.1\r\n\r\n")), UDP),
    want: NONE,
  });
  {
    // The IP datagram ends before the request line does; Ethernet padding after it would complete
    // it: the padding must not be read as payload.
    const req = "GET /a HTTP/1.1\r\n";
    const l4 = tcp(40000, 80, text(req));
    const frame = cat(eth(0x0800), ipv4(S4, D4, TCP, l4, { totLen: 20 + l4.length - 3 }));
    add("HTTP cut by the IP length, the rest in padding", { frame, want: NONE });
  }

  // DNS: names, qtypes, IPv4/IPv6, and malformed questions.
  for (const [wname, wrap] of WRAPS) {
    for (
      const [name, qtype] of [
        ["example.com", 1],
        [LABEL63 + ".test", 28],
        [NAME253, 15],
        ["txt.belt.test", 16],
        ["localhost", 255],
        ["", 2],
        ["_sip._tcp.a-b.c", 33],
      ] as const
    ) {
      const wire = wireName(name);
      add(
        `DNS ${
          name.length > 20 ? `${name.length}-char name` : name || "root"
        } type ${qtype} over ${wname}`,
        {
          frame: wrap(udp(33333, 53, dnsQuery(wire, qtype)), UDP),
          want: NONE,
          payloadAt: (off) => ({
            ...NONE,
            proto: DNS,
            qtype,
            qclass: 1,
            payloadOff: off,
            nameOff: off + 12,
            nameLen: name.length,
            nameWire: wire.length,
            name,
          }),
          need: 12 + wire.length + 4,
        },
      );
    }
  }
  const noDns = (title: string, payload: Part, dport = 53) =>
    add(`DNS ${title}`, { frame: wrap4(udp(33333, dport, payload), UDP), want: NONE });
  noDns("a label running past the end", cat(dnsQuery([], 1).subarray(0, 12), [10], text("abc")));
  noDns("a compression pointer in the question", dnsQuery(cat([3], text("www"), [0xc0, 0x0c]), 1));
  noDns("a compression pointer as the name", dnsQuery([0xc0, 0x0c], 1));
  noDns("label type 0x40", dnsQuery(cat([0x41], text("x"), [0]), 1));
  noDns("qdcount 0", dnsQuery(wireName("a.test"), 1, { qd: 0 }));
  noDns("a response (QR = 1)", dnsQuery(wireName("a.test"), 1, { flags: 0x8180 }));
  noDns("to port 5353", dnsQuery(wireName("a.test"), 1), 5353);
  noDns("a 254-character name (wire length 256)", dnsQuery(wireName(NAME253 + "e"), 1));
  noDns("a 64-byte label", dnsQuery(cat([64], text("x".repeat(64)), [0]), 1));
  noDns("a dot inside a label", dnsQuery(cat([3], text("a.b"), [4], text("test"), [0]), 1));
  noDns("a space inside a label", dnsQuery(cat([3], text("a b"), [0]), 1));
  noDns("no QTYPE/QCLASS after the name", dnsQuery(wireName("a.test"), 1).subarray(0, 12 + 8 + 3));
  noDns("header only", dnsQuery([], 1).subarray(0, 12));
  add("DNS from port 53 to port 53", {
    frame: wrap4(udp(53, 53, dnsQuery(wireName("a.test"), 1)), UDP),
    want: NONE,
    payloadAt: (off) => ({
      ...NONE,
      proto: DNS,
      qtype: 1,
      qclass: 1,
      payloadOff: off,
      nameOff: off + 12,
      nameLen: 6,
      nameWire: 8,
      name: "a.test",
    }),
    need: 12 + 8 + 4,
  });

  // TLS: ClientHellos with SNI first, after many extensions, absent, malformed.
  const tlsCase = (title: string, w: Wrap, hello: Bytes, sni?: string, opts: Part = TCP_OPTS) => {
    const at = sni === undefined ? -1 : findBytes(hello, text(sni));
    add(`TLS ${title}`, {
      frame: w(tcp(40001, 443, hello, opts), TCP),
      want: NONE,
      ...(sni === undefined ? {} : {
        payloadAt: (off: number) => ({
          ...NONE,
          proto: TLS,
          payloadOff: off,
          nameOff: off + at,
          nameLen: sni.length,
          nameWire: sni.length,
          name: sni,
        }),
        need: at + sni.length,
      }),
    });
  };
  for (const [wname, wrap] of WRAPS) {
    tlsCase(
      `SNI first over ${wname}`,
      wrap,
      clientHello([sniExt("www.belt.test"), ...filler(3)]),
      "www.belt.test",
    );
    tlsCase(
      `SNI after 20 extensions over ${wname}`,
      wrap,
      clientHello([...filler(20), sniExt("late.belt.test"), ext(21, zeros(100))]),
      "late.belt.test",
    );
    tlsCase(`no SNI over ${wname}`, wrap, clientHello(filler(6)));
  }
  tlsCase(
    "SNI as the 32nd extension",
    wrap4,
    clientHello([...filler(31), sniExt("x32.test")]),
    "x32.test",
  );
  tlsCase(
    "SNI as the 33rd extension is past the limit",
    wrap4,
    clientHello([...filler(32), sniExt("x33.test")]),
  );
  tlsCase(
    "no session id, one suite",
    wrap6,
    clientHello([sniExt("s.test")], { sid: 0, suites: [0x13, 0x01] }),
    "s.test",
    [],
  );
  tlsCase("a 255-byte SNI", wrap4, clientHello([sniExt("n".repeat(255))]), "n".repeat(255));
  tlsCase("a 256-byte SNI is not reported", wrap4, clientHello([sniExt("n".repeat(256))]));
  tlsCase("name type 1 is not host_name", wrap4, clientHello([sniExt("a.test", { type: 1 })]));
  tlsCase("list length one too long", wrap4, clientHello([sniExt("a.test", { listDelta: 1 })]));
  tlsCase("list length one too short", wrap4, clientHello([sniExt("a.test", { listDelta: -1 })]));
  tlsCase("an application data record", wrap4, clientHello([sniExt("a.test")], { recType: 23 }));
  tlsCase("a ServerHello", wrap4, clientHello([sniExt("a.test")], { hsType: 2 }));
  tlsCase(
    "an odd cipher suites length",
    wrap4,
    clientHello([sniExt("a.test")], { suites: [0x13, 0x01, 0x13] }),
  );
  tlsCase("no compression method", wrap4, clientHello([sniExt("a.test")], { comp: [] }));
  tlsCase("a 33-byte session id", wrap4, clientHello([sniExt("a.test")], { sid: 33 }));
  tlsCase("a NUL in the SNI", wrap4, clientHello([sniExt("a\0b.test")]));
  {
    // The record ends inside the hello (fragmented over records): SNI before the record end is
    // read, SNI after it is not (another record header would be in the way).
    const h = clientHello([sniExt("in.test"), ...filler(4)]);
    tlsCase(
      "SNI inside the first record of a fragmented hello",
      wrap4,
      cat(h.subarray(0, 3), n16(findBytes(h, text("in.test")) + 7 - 5), h.subarray(5)),
      "in.test",
    );
    const h2 = clientHello([...filler(4), sniExt("out.test")]);
    tlsCase(
      "SNI past the first record of a fragmented hello",
      wrap4,
      cat(h2.subarray(0, 3), n16(h2.length - 5 - 6), h2.subarray(5)),
    );
    // Extensions claiming more than the hello holds.
    const h3 = clientHello([sniExt("a.test")]);
    const extLenAt = findBytes(h3, [0x00, 0x00, 0x00, 0x0b]) - 2; // the extensions length
    h3[extLenAt + 1]! += 1;
    tlsCase("extensions longer than the hello", wrap4, h3);
  }
  {
    // A big hello in two TCP segments: the first segment alone matches iff the SNI is in it.
    const big = clientHello([ext(0x33, zeros(1300)), sniExt("second.test"), ext(21, zeros(400))]);
    tlsCase("SNI in the second segment of the hello", wrap4, big.subarray(0, 1200));
    const big2 = clientHello([sniExt("first.test"), ext(0x33, zeros(1300))]);
    tlsCase("SNI in the first segment of the hello", wrap4, big2.subarray(0, 1200), "first.test");
  }
  // Not first fragments, other transports: no L7.
  add("TLS in an IPv4 later fragment", {
    frame: cat(
      eth(0x0800),
      ipv4(S4, D4, TCP, clientHello([sniExt("a.test")]), { frag: 0x2000 | 10 }),
    ),
    want: NONE,
  });
  return cases;
}

function findBytes(hay: Uint8Array, needle: Part): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error("not found");
}

/** The frame with its IP length field saying the datagram ends at `end` (bytes after: padding). */
function ipEndsAt(frame: Uint8Array, p: BeltPacket, end: number): Bytes | undefined {
  const f = new Uint8Array(frame);
  const len = end - p.l3Off;
  if (p.ipVersion === 4) {
    if (len < 20) return;
    f.set(n16(len), p.l3Off + 2);
  } else {
    if (len <= 40) return; // a payload length of 0 says nothing
    f.set(n16(len - 40), p.l3Off + 4);
  }
  return f;
}

kernelTest(
  "L7 parsers give exactly the expected fields, and nothing for malformed payloads",
  () => {
    using sniff = loaded(sniffParseObject);
    using cursor = loaded(packetCursorObject);
    const run = runner(sniff, cursor);
    const cases = l7Cases(run);
    const counts = [0, 0, 0, 0];
    for (const { title, frame, want } of cases) {
      const got = checkParse(run, frame, title); // also: user space agrees with the kernel
      deepEqual(l7Plain(got.l7), want, title);
      checkL7Invariants(frame, l7Plain(got.l7), title);
      counts[want.proto]!++;
    }
    console.log(
      `${cases.length} cases: ${counts[HTTP]} HTTP, ${counts[DNS]} DNS, ${
        counts[TLS]
      } TLS matches, ` +
        `${counts[0]} without`,
    );
    ok(counts[HTTP]! > 40 && counts[DNS]! > 25 && counts[TLS]! > 10 && counts[0]! > 40);
  },
);

kernelTest(
  "L7: every cut of every case gives nothing or the full fields, from the exact byte",
  () => {
    using sniff = loaded(sniffParseObject);
    using cursor = loaded(packetCursorObject);
    const run = runner(sniff, cursor);
    let cuts = 0;
    let ends = 0;
    for (const { title, frame, want, need, needName } of l7Cases(run)) {
      const full = run.xdp(frame);
      if (want.proto) {
        // l7End() is the byte from which the kernel reports everything (checked below), and as a
        // snap length it keeps the record: cut there, the frame reads as the same record; one
        // byte earlier, as none (or the request without its Host).
        const end = l7End(want, frame);
        equal(end, needName ?? need, `${title}: l7End()`);
        const record = (n: number) => {
          const f = frame.subarray(0, n);
          return readL7(f, readFrameHeaders(f));
        };
        const whole = record(frame.length);
        ok(whole, title);
        deepEqual(record(end), whole, `${title}: cut at l7End()`);
        const { host: _, ...noHost } = whole as { host?: string };
        deepEqual(
          record(end - 1),
          needName === undefined ? undefined : noHost,
          `${title}: cut before`,
        );
        ends++;
      }
      const noName = { ...want, nameOff: 0, nameLen: 0, nameWire: 0, name: "" };
      for (let cut = full.l3Off; cut <= frame.length; cut++) {
        const variants: [string, Uint8Array | undefined][] = [
          [`${title}, frame cut at ${cut}`, frame.subarray(0, cut)],
          [
            `${title}, IP length ending at ${cut}`,
            cut < frame.length ? ipEndsAt(frame, full, cut) : undefined,
          ],
        ];
        for (const [where, f] of variants) {
          if (!f) continue;
          const got = l7Plain(checkParse(run, f, where).l7);
          cuts++;
          if (need === undefined || cut < need) {
            deepEqual(got, NONE, `${where}: nothing before byte ${need}`);
          } else if (needName !== undefined && cut < needName) {
            deepEqual(
              got,
              noName,
              `${where}: the request without its Host before byte ${needName}`,
            );
          } else {
            deepEqual(got, want, `${where}: the full fields`);
          }
        }
      }
    }
    console.log(`${cuts} cut frames checked; l7End() of ${ends} matches`);
    ok(ends > 80);
  },
);

const L7_FUZZ_SEED = 0x5eed_0717;
const L7_FUZZ_FRAMES = 6000;

kernelTest(`L7 parsers agree with user space on ${L7_FUZZ_FRAMES} mutated payloads`, () => {
  using sniff = loaded(sniffParseObject);
  using cursor = loaded(packetCursorObject);
  const run = runner(sniff, cursor);
  const rand = prng(L7_FUZZ_SEED);
  const bases = l7Cases(run).filter((c) => c.want.proto);
  const hits = [0, 0, 0, 0];
  for (let i = 0; i < L7_FUZZ_FRAMES; i++) {
    const base = bases[rand(bases.length)]!;
    const frame = mutate(base.frame, rand, base.want.payloadOff, 160);
    const where = `L7 fuzz frame ${i} (seed ${L7_FUZZ_SEED}) from '${base.title}'`;
    const got = l7Plain(checkParse(run, frame, where).l7); // kernel = user space
    checkL7Invariants(frame, got, where);
    hits[got.proto]!++;
  }
  console.log(
    `mutated payloads: ${hits[HTTP]} HTTP, ${hits[DNS]} DNS, ${hits[TLS]} TLS, ${hits[0]} no match`,
  );
  ok(
    hits[0]! > 500 && hits[HTTP]! > 300 && hits[DNS]! > 300 && hits[TLS]! > 300,
    "both outcomes seen",
  );
});

// ---------------------------------------------------------------------------------------------
// Real delivery: AF_PACKET sockets on a veth pair

const FAKE_MAC = [0x02, 0xbe, 0x17, 0x00, 0x07, 0x07];
const ALLOWED = (a: Uint8Array) =>
  (a.subarray(0, 12).every((b, i) => b === (i >= 10 ? 0xff : 0)) && a[12] === 198 &&
    (a[13] === 18 || a[13] === 19)) ||
  hex(a.subarray(0, 8)) === "fd00beef00000000";

/** The kernel's parse with its offsets `by` bytes later (where a tag was put back in front). */
function shiftPkt(p: BeltPacket, by: number): BeltPacket {
  return { ...p, l3Off: p.l3Off && p.l3Off + by, l4Off: p.l4Off && p.l4Off + by };
}
function shiftL7(l: L7, by: number): L7 {
  if (!l.proto) return l;
  const at = (o: number) => o && o + by; // 0 means none
  return {
    ...l,
    payloadOff: l.payloadOff + by,
    targetOff: at(l.targetOff),
    nameOff: at(l.nameOff),
  };
}

/** The frame as a receiving host's packet socket gets it: the outer tag moved to metadata. */
function untagged(frame: Uint8Array): { bytes: Bytes; tci?: number } {
  const type = (frame[12]! << 8) | frame[13]!;
  if (type !== 0x8100 && type !== 0x88a8) return { bytes: new Uint8Array(frame) };
  return {
    bytes: cat(frame.subarray(0, 12), frame.subarray(16)),
    tci: (frame[14]! << 8) | frame[15]!,
  };
}

kernelTest(
  "on AF_PACKET sockets: VLAN tags in metadata or data, paged skbs, stack traffic",
  async () => {
    await using topo = await Topology.pair(77);
    using refs = loaded(packetCursorObject);
    using refSock = loaded(sniffParseObject);
    using onB = loaded(sniffParseObject, { emit: 1 });
    using onA = loaded(sniffParseObject, { emit: 1 });
    const run = runner(refSock, refs);
    const ringB = RingBuffer.open(onB.map("events"));
    const ringA = RingBuffer.open(onA.map("events"));
    const macB = await macOf(topo, "b");
    await using rx = withNetns(
      topo.ns("b"),
      () => PacketSocket.open("eth0", { filter: onB.program("sniff_parse") }),
    );
    await using txSeen = withNetns(
      topo.ns("a"),
      () => PacketSocket.open("eth0", { filter: onA.program("sniff_parse") }),
    );
    await using tx = withNetns(topo.ns("a"), () => PacketSocket.open("eth0"));

    // Crafted frames from a made-up MAC, with test addresses only.
    const l2 = (type: number) => eth(type, macB, FAKE_MAC);
    const dns = udp(33333, 53, dnsQuery(wireName("tagged.belt.test"), 28));
    const http6 = tcp(
      40000,
      80,
      text("PUT /up?x=1 HTTP/1.1\r\nHost: b.belt.test\r\n\r\n"),
      TCP_OPTS,
    );
    const hello = tcp(40001, 443, clientHello([...filler(5), sniExt("qinq.belt.test")]), TCP_OPTS);
    const frames: [string, Bytes][] = [
      ["untagged DNS", cat(l2(0x0800), ipv4(S4, D4, UDP, dns))],
      [
        "802.1Q DNS",
        cat(l2(0x8100), vlan(0x2000 | 77, 0x0800), ipv4(S4, D4, UDP, dns, { opts: nopOpts(8) })),
      ],
      [
        "802.1Q IPv6 HTTP",
        cat(l2(0x8100), vlan(78, 0x86dd), ipv6(S6, D6, DST, ext6(TCP, pad6(6), http6))),
      ],
      ["QinQ TLS", cat(l2(0x88a8), vlan(100, 0x8100), vlan(200, 0x0800), ipv4(S4, D4, TCP, hello))],
      [
        "802.1ad ARP",
        cat(
          l2(0x88a8),
          vlan(4094, 0x0806),
          [0, 1, 8, 0, 6, 4, 0, 1],
          FAKE_MAC,
          ip4(S4),
          zeros(6),
          ip4(D4),
        ),
      ],
      [
        "priority tag (VID 0)",
        cat(l2(0x8100), vlan(0xe000, 0x0800), ipv4(S4, D4, UDP, udp(1, 2, text("x")))),
      ],
      [
        "three tags",
        cat(
          l2(0x8100),
          vlan(10, 0x8100),
          vlan(20, 0x8100),
          vlan(30, 0x0800),
          ipv4(S4, D4, UDP, udp(1, 2)),
        ),
      ],
      ["QinQ cut in the inner tag", cat(l2(0x88a8), vlan(5, 0x8100), [0, 6])],
    ];
    for (const [title, f] of frames) {
      const p = run.xdp(f);
      if (p.flags & F_L3) {
        ok(ALLOWED(p.srcAddr) && ALLOWED(p.dstAddr), `${title}: test addresses only`);
      }
      tx.send(f);
    }

    // Our frames by their source MAC; the cut QinQ frame has none in its parse (TRUNCATED before
    // the MACs are stored), but nothing else that short comes by.
    const ours = (r: SniffResult) =>
      hex(r.pkt.srcMac) === hex(new Uint8Array(FAKE_MAC)) ||
      (r.pkt.flags === F_TRUNC && r.len <= 20);
    const eventsB: SniffResult[] = [], eventsA: SniffResult[] = [];
    const collect = () => {
      eventsB.push(...ringB.drain().map((e) => sniffResult.unpack(e)));
      eventsA.push(...ringA.drain().map((e) => sniffResult.unpack(e)));
      return eventsB.filter(ours).length >= frames.length &&
        eventsA.filter(ours).length >= frames.length;
    };
    ok(
      await eventually(collect, 5000),
      `events: ${eventsB.filter(ours).length} on b, ${eventsA.filter(ours).length} on a: ` +
        eventsB.filter(ours).map((r) => showPkt(r.pkt)).join("\n"),
    );
    const received = (await rx.receive(1000, 500)).filter((f) =>
      hex(f.subarray(6, 12)) === hex(new Uint8Array(FAKE_MAC))
    );

    // The socket filter's view, as JSON, so that multisets compare whatever the order of arrival.
    const key = (r: SniffResult) =>
      JSON.stringify({
        pkt: showPkt(r.pkt),
        l7: l7Plain(r.l7),
        len: r.len,
        tci: r.vlanTci,
        present: r.vlanPresent,
      });
    const wantB: string[] = [], wantA: string[] = [], wantBytes: string[] = [];
    for (const [title, f] of frames) {
      const wire = run.xdp(f);
      const { bytes: got, tci } = untagged(f);
      wantBytes.push(hex(got));
      // On b: the outer tag is in metadata; VLAN fields as on the wire, offsets of the bytes received.
      const asReceived = run.sock(got);
      const shift = tci === undefined ? 0 : 4;
      const pkt: BeltPacket = {
        ...wire,
        l3Off: wire.l3Off ? wire.l3Off - shift : 0,
        l4Off: wire.l4Off ? wire.l4Off - shift : 0,
      };
      wantB.push(
        key({ ...asReceived, pkt, vlanTci: tci ?? 0, vlanPresent: tci === undefined ? 0 : 1 }),
      );
      // On a (outgoing): the tags are still in the data: exactly the test run on the wire frame.
      wantA.push(key(run.sock(f)));
      ok(wire.flags & F_L2 || wire.flags === F_TRUNC, title);
    }
    const sameSet = (got: string[], want: string[], what: string) => {
      const only = (a: string[], b: string[]) => a.filter((x) => !b.includes(x));
      deepEqual(
        [...got].sort(),
        [...want].sort(),
        `${what}\n  unexpected:\n${only(got, want).join("\n")}\n  missing:\n${
          only(want, got).join("\n")
        }`,
      );
    };
    sameSet(eventsB.filter(ours).map(key), wantB, "events on b (receiving)");
    sameSet(eventsA.filter(ours).map(key), wantA, "events on a (sending)");
    // User space reads the frame as PacketRing hands it out, the outer tag put back (so, here,
    // the wire frame) as the kernel read the delivered bytes and the metadata tag: offsets 4
    // bytes later where the tag had been moved. On a, the tags are in the data: no shift.
    for (const [i, [title, f]] of frames.entries()) {
      const evB = eventsB.find((e) => ours(e) && key(e) === wantB[i])!;
      const s = evB.vlanPresent ? 4 : 0;
      checkUserspace(f, shiftPkt(evB.pkt, s), shiftL7(l7Plain(evB.l7), s), `${title}: on b`);
      const evA = eventsA.find((e) => ours(e) && key(e) === wantA[i])!;
      checkUserspace(f, evA.pkt, l7Plain(evA.l7), `${title}: on a`);
    }
    deepEqual(received.map(hex).sort(), wantBytes.sort(), "frames received on b, whole");
    ok(txSeen.stats().packets >= frames.length, "a's socket saw a's frames go out");
    const l7s = eventsB.filter(ours).map((r) => l7Plain(r.l7));
    deepEqual(
      l7s.filter((l) => l.proto).map((l) => [l.proto, l.name]).sort(),
      [
        [DNS, "tagged.belt.test"],
        [DNS, "tagged.belt.test"],
        [HTTP, "b.belt.test"],
        [TLS, "qinq.belt.test"],
      ].sort(),
    );
    const vlans = eventsB.filter(ours).map((
      r,
    ) => [r.pkt.vlanCount, r.pkt.vlanOuter, r.pkt.vlanInner, r.pkt.ethProto]);
    for (
      const v of [[1, 77, 0, 0x0800], [2, 100, 200, 0x0800], [2, 10, 20, 0x8100], [1, 0, 0, 0x0800]]
    ) {
      ok(vlans.some((x) => JSON.stringify(x) === JSON.stringify(v)), `VLAN fields ${v} seen on b`);
    }

    // Stack traffic: a TCP connection carrying an HTTP request and one carrying a ClientHello (the
    // payload sits in page fragments of the skb), and a DNS query by UDP.
    const httpReq =
      "GET /index.html?q=belt&x=%20 HTTP/1.1\r\nUser-Agent: belt-test\r\nHost: b.belt.test\r\n\r\n";
    const helloBytes = clientHello([...filler(8), sniExt("stack.belt.test"), ext(21, zeros(600))]);
    const server = topo.spawn("b", [
      "timeout",
      "30",
      "deno",
      "eval",
      `
    const l = Deno.listen({ hostname: "${D4}", port: 8080 });
    for (let i = 0; i < 2; i++) {
      const c = await l.accept();
      const buf = new Uint8Array(65536);
      while ((await c.read(buf)) !== null) {}
      c.close();
    }
    l.close();`,
    ]);
    try {
      await topo.run("a", [
        "timeout",
        "20",
        "deno",
        "eval",
        `
      const payloads = [${JSON.stringify([...text(httpReq)])}, ${JSON.stringify([...helloBytes])}];
      for (const p of payloads) {
        let c;
        for (let i = 0; ; i++) {
          try { c = await Deno.connect({ hostname: "${D4}", port: 8080 }); break; }
          catch (e) { if (i > 100) throw e; await new Promise((r) => setTimeout(r, 50)); }
        }
        await c.write(new Uint8Array(p));
        await new Promise((r) => setTimeout(r, 100));
        c.close();
      }`,
      ]);
      const q = [...dnsQuery(wireName("stack.belt.test"), 16)].map((b) =>
        `\\x${b.toString(16).padStart(2, "0")}`
      ).join("");
      await topo.run("a", ["timeout", "10", "bash", "-c", `printf '${q}' > /dev/udp/${D4}/53`]);
    } finally {
      const out = await server.output();
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    const stack = () => {
      collect();
      return eventsB.filter((r) => r.l7.proto && !ours(r)).length >= 3;
    };
    ok(await eventually(stack, 5000), "L7 events of the stack's own traffic");
    const got = eventsB.filter((r) => r.l7.proto && !ours(r)).map((r) => ({ r, l: l7Plain(r.l7) }));
    // Each of these events' frames, as b's socket received it (whole, untagged), reads in user
    // space as the kernel read it: payloads in page fragments included.
    const stackFrames: Uint8Array[] = [];
    const readAlike = (r: SniffResult) =>
      stackFrames.some((f) => f.length === r.len && !userspaceDiff(f, r.pkt, l7Plain(r.l7)));
    ok(
      await eventually(() => {
        stackFrames.push(...rx.drain());
        return got.every((x) => readAlike(x.r));
      }, 3000),
      `received frames read as the kernel's events: ${got.map((x) => readAlike(x.r))}`,
    );
    const http = got.find((x) => x.l.proto === HTTP), tls = got.find((x) => x.l.proto === TLS);
    const dnsEv = got.find((x) => x.l.proto === DNS);
    ok(http && tls && dnsEv, JSON.stringify(got.map((x) => x.l)));
    const off = http.r.pkt.l4Off + http.r.pkt.l4HdrLen;
    equal(http.r.pkt.l4HdrLen, 32, "Linux sends timestamps: doff 8");
    deepEqual(
      { ...http.l, payloadOff: 0 },
      {
        ...NONE,
        proto: HTTP,
        method: 1,
        version: 1,
        targetOff: off + 4,
        targetLen: "/index.html?q=belt&x=%20".length,
        nameOff: off + httpReq.indexOf("b.belt.test"),
        nameLen: 11,
        nameWire: 11,
        name: "b.belt.test",
      },
    );
    equal(http.l.payloadOff, off);
    equal(tls.l.name, "stack.belt.test");
    equal(
      tls.l.nameOff,
      tls.r.pkt.l4Off + tls.r.pkt.l4HdrLen + findBytes(helloBytes, text("stack.belt.test")),
    );
    deepEqual([dnsEv.l.name, dnsEv.l.qtype, dnsEv.l.qclass, dnsEv.l.nameOff], [
      "stack.belt.test",
      16,
      1,
      dnsEv.r.pkt.l4Off + 8 + 12,
    ]);
    for (const x of got) equal(x.r.ret, x.l.proto);
  },
);

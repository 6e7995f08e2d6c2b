/** Frames for tests: hand-built ones (802.1Q where no VLAN device exists) and comparisons. */
import type { Topology } from "./netns.ts";

/** The MAC address of `iface` in a host, as 6 bytes. */
export async function macOf(topo: Topology, host: string, iface = "eth0"): Promise<Uint8Array> {
  const r = await topo.run(host, ["ip", "-j", "link", "show", iface]);
  const text: string = JSON.parse(r.stdout)[0].address;
  return new Uint8Array(text.split(":").map((h) => parseInt(h, 16)));
}

function ipv4Checksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += (h[i]! << 8) | h[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/**
 * An Ethernet frame with one 802.1Q tag carrying IPv4/UDP, `size` bytes in
 * all (at least 46); the UDP payload is filled with `seq`.
 */
export function taggedUdpFrame(opts: {
  dst: Uint8Array;
  src: Uint8Array;
  vlan: number;
  srcIp: number[];
  dstIp: number[];
  dport: number;
  size: number;
  seq: number;
}): Uint8Array {
  const f = new Uint8Array(opts.size);
  const v = new DataView(f.buffer);
  f.set(opts.dst, 0);
  f.set(opts.src, 6);
  v.setUint16(12, 0x8100);
  v.setUint16(14, opts.vlan & 0x0fff);
  v.setUint16(16, 0x0800);
  const ipLen = opts.size - 18;
  const ip = f.subarray(18, 38);
  ip[0] = 0x45;
  new DataView(ip.buffer, ip.byteOffset).setUint16(2, ipLen);
  ip[8] = 64;
  ip[9] = 17;
  ip.set(opts.srcIp, 12);
  ip.set(opts.dstIp, 16);
  new DataView(ip.buffer, ip.byteOffset).setUint16(10, ipv4Checksum(ip));
  v.setUint16(38, 40000);
  v.setUint16(40, opts.dport);
  v.setUint16(42, ipLen - 20);
  f.fill(opts.seq & 0xff, 46);
  return f;
}

/** Frames a host sends by itself (IPv6 router solicitations, MLD reports), not test traffic. */
export function spontaneous(frame: Uint8Array): boolean {
  if (frame.length < 55 || frame[12] !== 0x86 || frame[13] !== 0xdd) return false;
  const next = frame[20];
  return next === 0 /* hop-by-hop: MLD */ || (next === 58 && frame[54] === 133);
}

/** Bytes built by the frame helpers. */
export type Bytes = Uint8Array<ArrayBuffer>;
/** What cat() joins: bytes or a list of byte values. */
export type Part = Uint8Array | readonly number[];

/** Concatenates byte arrays and number lists into one frame. */
export function cat(...parts: Part[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A 16-bit number in network order. */
export const n16 = (x: number): number[] => [(x >>> 8) & 0xff, x & 0xff];
/** A 32-bit number in network order. */
export const n32 = (x: number): number[] => [...n16(x >>> 16), ...n16(x)];

/** Hex of a frame, to compare multisets of frames. */
export function hex(frame: Uint8Array): string {
  return Array.from(frame, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Counts of each distinct frame. */
export function multiset(frames: Uint8Array[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const f of frames) m.set(hex(f), (m.get(hex(f)) ?? 0) + 1);
  return m;
}

/** What differs between two multisets of frames (empty when equal), described briefly. */
export function diff(expected: Uint8Array[], got: Uint8Array[]): string[] {
  const e = multiset(expected);
  const g = multiset(got);
  const out: string[] = [];
  for (const [k, n] of e) {
    const m = g.get(k) ?? 0;
    if (m !== n) out.push(`expected ${n}× got ${m}×: ${k.slice(0, 96)}… (${k.length / 2} B)`);
  }
  for (const [k, m] of g) {
    if (!e.has(k)) out.push(`unexpected ${m}×: ${k.slice(0, 96)}… (${k.length / 2} B)`);
  }
  return out;
}

/** Throws, listing the differences, unless both hold the same frames the same number of times. */
export function assertSameFrames(expected: Uint8Array[], got: Uint8Array[], what: string): void {
  const d = diff(expected, got);
  if (d.length) throw new Error(`${what}: ${d.length} differences\n${d.slice(0, 12).join("\n")}`);
}

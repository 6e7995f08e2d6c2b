/**
 * The headers of a captured Ethernet frame, read in TypeScript with exactly
 * the rules of the kernel's `belt_parse()` (bpf/include/belt_packet.h), so
 * that `belt sniff` prints what its socket filter matched on: up to two
 * VLAN tags, IPv4 with options or IPv6 with the extension headers
 * belt_parse() follows, fragments, then TCP, UDP, ICMP or ICMPv6.
 *
 * A field is present only once the header holding it is wholly inside the
 * captured bytes (which a snap length may have cut), exactly where
 * belt_parse() sets the flag of that layer; it is never a guess from a cut
 * header. tests/sniff_parse_test.ts checks every field against the kernel.
 *
 * VLAN tags are read from the data: hand this the frame as
 * {@linkcode PacketRing} gives it (a tag the kernel had moved to metadata
 * put back), not the bytes a socket filter sees without it.
 *
 * This runs for every captured frame: it allocates only the result, two
 * address views and their text.
 *
 * @module
 */

/**
 * What belt_parse() reads from one frame. Each optional field is present iff
 * belt_parse() stores it with its layer's flag set (BELT_F_L2, BELT_F_L3,
 * BELT_F_L4); offsets are from the frame's first byte.
 */
export interface FrameHeaders {
  /** EtherType after the VLAN tags (0x0800, 0x86dd, 0x0806...); 0 when the link header was cut. */
  ethType: number;
  /** VLAN id (12 bits) of the outer tag, when the frame has one (VID 0 for a priority tag). */
  vlan?: number;
  /** Offset of the L3 header: present once Ethernet and its tags are read (BELT_F_L2). */
  l3Off?: number;
  /** 4 or 6. This and every L3 field are present once the IP header is read (BELT_F_L3):
   * IPv4 with its options, IPv6 with its whole extension chain. */
  ipVersion?: 4 | 6;
  /** Source address, 16 bytes, IPv4 as ::ffff:a.b.c.d (like struct belt_packet). */
  srcAddr?: Uint8Array;
  /** Destination address, 16 bytes, as srcAddr. */
  dstAddr?: Uint8Array;
  /** srcAddr as text: a dotted quad for IPv4. */
  src?: string;
  /** dstAddr as text. */
  dst?: string;
  /** Length the IP header states: IPv4 total length, IPv6 40 + payload length. */
  ipLen?: number;
  /** IP protocol after the extension headers (for a later IPv6 fragment, the fragment header's). */
  proto?: number;
  /** A fragment at a non-zero offset: it holds no L4 header (no l4Off, ports...). */
  laterFragment?: boolean;
  /** Offset of the L4 header; present with L3 unless laterFragment (also for protocols not
   * read, e.g. GRE). */
  l4Off?: number;
  /** TCP data offset * 4, UDP, ICMP and ICMPv6 8. This and the L4 fields below are present
   * once that header is read (BELT_F_L4). */
  l4HdrLen?: number;
  /** TCP/UDP source port. */
  sport?: number;
  /** TCP/UDP destination port. */
  dport?: number;
  /** TCP flag byte (FIN 0x01 ... CWR 0x80). */
  tcpFlags?: number;
  /** ICMP type (IPv4) or ICMPv6 type (IPv6). */
  icmpType?: number;
  /** ICMP or ICMPv6 code. */
  icmpCode?: number;
  /** Offset of the L4 payload: l4Off + l4HdrLen. */
  payloadOff?: number;
  /** First offset past the L4 payload (belt_l7_end()): the frame's end, or the IP datagram's
   * if that comes first (Ethernet padding is not payload); an IPv4 total length of 0 or an IPv6
   * payload length of 0 says nothing. Present with L3. Before payloadOff when the IP length
   * ends inside the headers: then there is no payload. */
  payloadEnd?: number;
  /** Why reading stopped before the last header (BELT_F_STOPPED): a header runs past the
   * captured bytes, one is impossible (IP version, IHL < 5, doff < 5, a second fragment
   * header...), or more than 6 IPv6 extension headers. */
  stopped?: "truncated" | "malformed" | "ext-limit";
}

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800, ETH_P_IPV6 = 0x86dd, ETH_P_8021Q = 0x8100, ETH_P_8021AD = 0x88a8;
const TCP = 6, UDP = 17, ICMP = 1, ICMPV6 = 58;
const HOPOPTS = 0, ROUTING = 43, FRAGMENT = 44, DSTOPTS = 60;
/** IPv6 extension headers followed (BELT_IPV6_MAX_EXT). */
const IPV6_MAX_EXT = 6;

const be16 = (f: Uint8Array, o: number) => (f[o]! << 8) | f[o + 1]!;

/**
 * Reads the headers of a captured Ethernet frame (VLAN tags in the data),
 * as belt_parse() does in the kernel: see {@linkcode FrameHeaders}.
 *
 * @example
 * ```ts
 * import { readFrameHeaders } from "@belt/belt";
 * const frame = new Uint8Array([
 *   ...Array(12).fill(2), 0x08, 0x00, // Ethernet: IPv4
 *   0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4: TCP
 *   0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // SYN
 * ]);
 * const h = readFrameHeaders(frame);
 * console.log(h.src, h.sport, h.dst, h.dport, h.tcpFlags); // 198.18.0.1 40000 198.18.0.2 80 2
 * console.log(readFrameHeaders(frame.subarray(0, 50)).sport); // undefined (TCP header cut)
 * ```
 */
export function readFrameHeaders(frame: Uint8Array): FrameHeaders {
  if (frame.length < ETH_HLEN) return { ethType: 0, stopped: "truncated" };
  let off = ETH_HLEN;
  let type = be16(frame, 12);
  let vlan = -1;
  // Up to two tags; a third is left as the EtherType, with no L3.
  for (let i = 0; i < 2 && (type === ETH_P_8021Q || type === ETH_P_8021AD); i++) {
    // A cut tag leaves nothing, not even the MACs (belt_parse() resets the result).
    if (off + 4 > frame.length) return { ethType: 0, stopped: "truncated" };
    if (i === 0) vlan = be16(frame, off) & 0x0fff;
    type = be16(frame, off + 2);
    off += 4;
  }
  const h: FrameHeaders = { ethType: type, l3Off: off };
  if (vlan >= 0) h.vlan = vlan;
  let proto = -1;
  if (type === ETH_P_IP) proto = readIpv4(frame, off, h);
  else if (type === ETH_P_IPV6) proto = readIpv6(frame, off, h);
  if (proto >= 0) readL4(frame, h.l4Off!, proto, h.ipVersion === 4 ? ICMP : ICMPV6, h);
  return h;
}

/** The L4 protocol to read at h.l4Off, or -1 to stop. */
function readIpv4(f: Uint8Array, at: number, h: FrameHeaders): number {
  if (at + 20 > f.length) return stop(h, "truncated");
  const hlen = (f[at]! & 0x0f) * 4, totLen = be16(f, at + 2);
  // A total length of 0 passes (IPv4 BIG TCP GSO skbs carry it).
  if (f[at]! >> 4 !== 4 || hlen < 20 || (totLen !== 0 && totLen < hlen)) {
    return stop(h, "malformed");
  }
  if (at + hlen > f.length) return stop(h, "truncated"); // options cut
  const proto = f[at + 9]!;
  const later = (be16(f, at + 6) & 0x1fff) !== 0; // a non-zero fragment offset
  setL3(h, 4, mapped(f, at + 12), mapped(f, at + 16), totLen, proto, later, f.length);
  if (later) return -1;
  h.l4Off = at + hlen;
  return proto;
}

// Addresses are views of a shared block, each 16 bytes its own and never reused: a new
// Uint8Array costs about 1 µs (its own backing store), a view a tenth of that. A block holds
// 4096 addresses and is freed when no view of it is left.
let block = new Uint8Array(0), used = 0;
function address(): Uint8Array {
  if (used + 16 > block.length) {
    block = new Uint8Array(16 * 4096);
    used = 0;
  }
  return block.subarray(used, used += 16);
}

/** The IPv4 address at f[o, o + 4) as ::ffff:a.b.c.d. */
function mapped(f: Uint8Array, o: number): Uint8Array {
  const a = address();
  a[10] = a[11] = 0xff;
  a[12] = f[o]!;
  a[13] = f[o + 1]!;
  a[14] = f[o + 2]!;
  a[15] = f[o + 3]!;
  return a;
}

/** The IPv6 address at f[o, o + 16). */
function copied(f: Uint8Array, o: number): Uint8Array {
  const a = address();
  for (let i = 0; i < 16; i++) a[i] = f[o + i]!;
  return a;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16));
const HEX2 = HEX.map((h) => h.padStart(2, "0"));

/**
 * formatIp() (plugins/addr.ts), the same text ten times faster (0.2 µs for IPv6, not 2 µs):
 * a dotted quad for ::ffff:a.b.c.d, else RFC 5952 (the first longest run of two or more zero
 * groups as "::"). Tests compare the two.
 */
function ipText(a: Uint8Array): string {
  let v4 = a[10] === 0xff && a[11] === 0xff;
  for (let i = 0; i < 10 && v4; i++) v4 = a[i] === 0;
  if (v4) return `${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && a[2 * j] === 0 && a[2 * j + 1] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  let s = "";
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      s += "::";
      i += bestLen - 1;
      continue;
    }
    const hi = a[2 * i]!, lo = a[2 * i + 1]!;
    s += (i === 0 || i === best + bestLen ? "" : ":") + (hi ? HEX[hi]! + HEX2[lo]! : HEX[lo]!);
  }
  return s;
}

function readIpv6(f: Uint8Array, at: number, h: FrameHeaders): number {
  if (at + 40 > f.length) return stop(h, "truncated");
  if (f[at]! >> 4 !== 6) return stop(h, "malformed");
  let off = at + 40, nh = f[at + 6]!, seenFrag = false, later = false;
  for (let i = 0; i < IPV6_MAX_EXT; i++) {
    if (nh === FRAGMENT) {
      // One fragment header at most (RFC 8200): a second describes another datagram.
      if (seenFrag) return stop(h, "malformed");
      seenFrag = true;
      if (off + 8 > f.length) return stop(h, "truncated");
      later = (be16(f, off + 2) & 0xfff8) !== 0; // offset in 8-byte units, bits 3-15
      nh = f[off]!;
      off += 8;
      if (later) break;
    } else if (nh === HOPOPTS || nh === ROUTING || nh === DSTOPTS) {
      if (nh === HOPOPTS && i > 0) return stop(h, "malformed"); // only right after the header
      if (off + 8 > f.length) return stop(h, "truncated");
      const next = off + 8 + f[off + 1]! * 8;
      if (next > f.length) return stop(h, "truncated");
      nh = f[off]!;
      off = next;
    } else {
      break;
    }
  }
  if (!later && (nh === HOPOPTS || nh === ROUTING || nh === DSTOPTS || nh === FRAGMENT)) {
    return stop(h, "ext-limit");
  }
  setL3(h, 6, copied(f, at + 8), copied(f, at + 24), 40 + be16(f, at + 4), nh, later, f.length);
  if (later) return -1;
  h.l4Off = off;
  return nh;
}

function setL3(
  h: FrameHeaders,
  version: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  ipLen: number,
  proto: number,
  later: boolean,
  frameLen: number,
): void {
  h.ipVersion = version;
  h.srcAddr = src;
  h.dstAddr = dst;
  h.src = ipText(src);
  h.dst = ipText(dst);
  h.ipLen = ipLen;
  h.proto = proto;
  h.laterFragment = later;
  const ipEnd = h.l3Off! + ipLen;
  h.payloadEnd = ipLen > (version === 6 ? 40 : 0) && ipEnd < frameLen ? ipEnd : frameLen;
}

function readL4(f: Uint8Array, off: number, proto: number, icmp: number, h: FrameHeaders): void {
  let hlen: number;
  if (proto === TCP) {
    if (off + 20 > f.length) return void stop(h, "truncated");
    hlen = (f[off + 12]! >> 4) * 4;
    if (hlen < 20) return void stop(h, "malformed");
    if (off + hlen > f.length) return void stop(h, "truncated"); // options cut
    h.tcpFlags = f[off + 13]!;
  } else if (proto === UDP || proto === icmp) {
    hlen = 8; // every ICMP/ICMPv6 message has these 8 bytes too
    if (off + hlen > f.length) return void stop(h, "truncated");
    if (proto === icmp) {
      h.icmpType = f[off]!;
      h.icmpCode = f[off + 1]!;
    }
  } else {
    return; // another protocol: l4Off and proto say where and what
  }
  if (proto !== icmp) {
    h.sport = be16(f, off);
    h.dport = be16(f, off + 2);
  }
  h.l4HdrLen = hlen;
  h.payloadOff = off + hlen;
}

function stop(h: FrameHeaders, why: FrameHeaders["stopped"]): -1 {
  h.stopped = why;
  return -1;
}

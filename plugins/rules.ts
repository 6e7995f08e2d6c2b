/**
 * Filter rules: the one small language every filtering plugin of belt shares
 * (`belt mirror --filter`, later the firewall and `belt sniff`), so a rule
 * means the same thing everywhere. The kernel side is
 * `bpf/include/belt_match.h`: {@linkcode parseRule} turns the text into a
 * {@linkcode Rule}, {@linkcode packRules} into the C array
 * `struct belt_rule rules[max]`, and `belt_rule_match()` evaluates one rule
 * on a parsed packet. {@linkcode ruleMatches} is the same function in
 * TypeScript (tests compare the two on random packets).
 *
 * A rule is a conjunction: words separated by spaces, optionally joined by
 * `and`; every term must hold. Several rules are OR-ed by the plugin.
 *
 * | Term                                    | Matches                                              |
 * | --------------------------------------- | ---------------------------------------------------- |
 * | `tcp` `udp`                             | IP protocol 6 / 17, over IPv4 or IPv6                |
 * | `icmp`                                  | IPv4 and IP protocol 1                               |
 * | `icmp6` `icmpv6`                        | IPv6 and IP protocol 58                              |
 * | `ip` `ip4` `ipv4` / `ip6` `ipv6`        | EtherType 0x0800 / 0x86dd                            |
 * | `arp`                                   | EtherType 0x0806                                     |
 * | `ether proto N`                         | EtherType N (0-0xffff, hex `0x...` or decimal)       |
 * | `ether src MAC` / `ether dst MAC`       | Ethernet source / destination address                |
 * | `ether host MAC`                        | Ethernet source or destination address               |
 * | `proto N`                               | IP protocol N (0-255)                                |
 * | `vlan [ID]`                             | outer 802.1Q/802.1ad tag with id ID (0-4094), or any |
 * | `[src\|dst] host ADDR`                  | that address (IPv4 or IPv6); no src/dst: either      |
 * | `[src\|dst] net ADDR/LEN`               | that network; a bare address is a /32 or /128        |
 * | `src ADDR[/LEN]`, `dst ADDR[/LEN]`      | short for `src host` / `src net` (same for dst)      |
 * | `[src\|dst] port P[-Q]`                 | TCP/UDP port or range (0-65535); no src/dst: either  |
 * | `sport P[-Q]` `dport P[-Q]`             | short for `src port` / `dst port`                    |
 * | `type T` (after `icmp`/`icmp6`)         | ICMP/ICMPv6 type T: 0-255 or a name (below)          |
 * | `code N` (after `icmp`/`icmp6`)         | ICMP/ICMPv6 code N (0-255)                           |
 * | `in` `inbound` / `out` `outbound`       | ingress / egress hook                                |
 *
 * A MAC address is six hex bytes joined by `:` or `-` (`02:00:5e:10:00:01`,
 * `02-00-5E-10-00-01`). ICMP type names follow the protocol word (`icmp`,
 * `icmp6`, `proto 1`, `proto 58`), which says whose numbers they are:
 *
 * | Name                                    | `icmp` | `icmp6` |
 * | --------------------------------------- | ------ | ------- |
 * | `echo-reply`                            | 0      | 129     |
 * | `dest-unreach`                          | 3      | 1       |
 * | `redirect`                              | 5      | 137     |
 * | `echo-request`                          | 8      | 128     |
 * | `router-advert`                         | 9      | 134     |
 * | `router-solicit`                        | 10     | 133     |
 * | `time-exceeded`                         | 11     | 3       |
 * | `neighbor-solicit`                      |        | 135     |
 * | `neighbor-advert`                       |        | 136     |
 *
 * IPv4 addresses are kept in IPv6's IPv4-mapped form (::ffff:a.b.c.d), so an IPv6 prefix
 * shorter than /96 that contains ::ffff:0:0/96 (`::/0`, `::/1`, ...) matches IPv4 packets too:
 * `net ::/0` is any IP address. Add `ip6` for IPv6 only (tcpdump's `net ::/0`).
 *
 * Keywords are case-insensitive. Terms that cannot hold together are
 * refused: `tcp udp`, `ip6 and net 198.18.0.0/15`, `arp and port 80`, a
 * second source address, `icmp type 8 type 0`, `ether host` with `ether src`.
 * Port terms only match packets with a TCP or UDP header, ICMP type and code
 * only packets with an ICMP or ICMPv6 header (so neither a non-first
 * fragment); address and protocol terms need a complete IP header, MAC
 * terms a complete Ethernet header.
 *
 * @example Parse, show, pack for the kernel, check in TypeScript
 * ```ts
 * import { formatRule, packRules, parseRule } from "@belt/belt";
 * const rule = parseRule("tcp and dst port 80 and net 198.18.0.0/15");
 * console.log(formatRule(rule)); // "tcp net 198.18.0.0/15 dport 80"
 * console.log(packRules([rule], 16).length); // 1664
 * ```
 *
 * @module
 */
import { BeltError, bytes, pad, struct, u16, u32, u8 } from "../bpf/mod.ts";
import type { StructCodec } from "../bpf/mod.ts";

// Re-exported so this module's documentation is complete on its own.
export type { Codec, FieldLayout, StructCodec } from "../bpf/mod.ts";

// ---------------------------------------------------------------------------------------------
// Constants of belt_match.h and belt_packet.h

/**
 * `BELT_M_ETH`: the rule's `ethProto` must equal the EtherType after the VLAN tags.
 *
 * @example
 * ```ts
 * import { BELT_M_ETH, parseRule } from "@belt/belt";
 * console.log((parseRule("arp").fields & BELT_M_ETH) !== 0); // true
 * ```
 */
export const BELT_M_ETH = 1;
/**
 * `BELT_M_L4`: the rule's `l4Proto` must equal the IP protocol (needs a complete IP header).
 *
 * @example
 * ```ts
 * import { BELT_M_L4, parseRule } from "@belt/belt";
 * console.log(parseRule("tcp").fields === BELT_M_L4); // true
 * ```
 */
export const BELT_M_L4 = 2;
/**
 * `BELT_M_DIR`: the rule's `direction` must equal the direction the packet is seen in.
 *
 * @example
 * ```ts
 * import { BELT_M_DIR, parseRule } from "@belt/belt";
 * console.log(parseRule("in").fields === BELT_M_DIR); // true
 * ```
 */
export const BELT_M_DIR = 4;
/**
 * `BELT_M_VLAN`: the outer VLAN id must equal `vlan` ({@linkcode BELT_VLAN_ANY}: any tag).
 *
 * @example
 * ```ts
 * import { BELT_M_VLAN, parseRule } from "@belt/belt";
 * console.log(parseRule("vlan 10").fields === BELT_M_VLAN); // true
 * ```
 */
export const BELT_M_VLAN = 8;
/**
 * `BELT_M_SRC`: the source address must lie in `src`/`srcLen`.
 *
 * @example
 * ```ts
 * import { BELT_M_SRC, parseRule } from "@belt/belt";
 * console.log(parseRule("src host 198.18.0.1").fields === BELT_M_SRC); // true
 * ```
 */
export const BELT_M_SRC = 16;
/**
 * `BELT_M_DST`: the destination address must lie in `dst`/`dstLen`.
 *
 * @example
 * ```ts
 * import { BELT_M_DST, parseRule } from "@belt/belt";
 * console.log(parseRule("dst net fd00:beef::/64").fields === BELT_M_DST); // true
 * ```
 */
export const BELT_M_DST = 32;
/**
 * `BELT_M_ANY`: the source or the destination address must lie in `any`/`anyLen`.
 *
 * @example
 * ```ts
 * import { BELT_M_ANY, parseRule } from "@belt/belt";
 * console.log(parseRule("host 198.18.0.1").fields === BELT_M_ANY); // true
 * ```
 */
export const BELT_M_ANY = 64;
/**
 * `BELT_M_SPORT`: the TCP/UDP source port must lie in [`sportLo`, `sportHi`].
 *
 * @example
 * ```ts
 * import { BELT_M_SPORT, parseRule } from "@belt/belt";
 * console.log(parseRule("sport 53").fields === BELT_M_SPORT); // true
 * ```
 */
export const BELT_M_SPORT = 128;
/**
 * `BELT_M_DPORT`: the TCP/UDP destination port must lie in [`dportLo`, `dportHi`].
 *
 * @example
 * ```ts
 * import { BELT_M_DPORT, parseRule } from "@belt/belt";
 * console.log(parseRule("dport 80").fields === BELT_M_DPORT); // true
 * ```
 */
export const BELT_M_DPORT = 256;
/**
 * `BELT_M_PORT`: the TCP/UDP source or destination port must lie in [`portLo`, `portHi`].
 *
 * @example
 * ```ts
 * import { BELT_M_PORT, parseRule } from "@belt/belt";
 * console.log(parseRule("port 8000-8080").fields === BELT_M_PORT); // true
 * ```
 */
export const BELT_M_PORT = 512;
/**
 * `BELT_M_SMAC`: the Ethernet source address must equal `srcMac` (needs a complete Ethernet
 * header, {@linkcode BELT_F_L2}).
 *
 * @example
 * ```ts
 * import { BELT_M_SMAC, parseRule } from "@belt/belt";
 * console.log(parseRule("ether src 02:00:5e:10:00:01").fields === BELT_M_SMAC); // true
 * ```
 */
export const BELT_M_SMAC = 1024;
/**
 * `BELT_M_DMAC`: the Ethernet destination address must equal `dstMac`.
 *
 * @example
 * ```ts
 * import { BELT_M_DMAC, parseRule } from "@belt/belt";
 * console.log(parseRule("ether dst ff:ff:ff:ff:ff:ff").fields === BELT_M_DMAC); // true
 * ```
 */
export const BELT_M_DMAC = 2048;
/**
 * `BELT_M_MAC`: the Ethernet source or destination address must equal `anyMac`.
 *
 * @example
 * ```ts
 * import { BELT_M_MAC, parseRule } from "@belt/belt";
 * console.log(parseRule("ether host 02-00-5E-10-00-01").fields === BELT_M_MAC); // true
 * ```
 */
export const BELT_M_MAC = 4096;
/**
 * `BELT_M_ICMP_TYPE`: an ICMP or ICMPv6 header must have been read and its type equal
 * `icmpType`.
 *
 * @example
 * ```ts
 * import { BELT_M_ICMP_TYPE, parseRule } from "@belt/belt";
 * const r = parseRule("icmp6 type neighbor-solicit");
 * console.log((r.fields & BELT_M_ICMP_TYPE) !== 0, r.icmpType); // true 135
 * ```
 */
export const BELT_M_ICMP_TYPE = 8192;
/**
 * `BELT_M_ICMP_CODE`: an ICMP or ICMPv6 header must have been read and its code equal
 * `icmpCode`.
 *
 * @example
 * ```ts
 * import { BELT_M_ICMP_CODE, parseRule } from "@belt/belt";
 * const r = parseRule("icmp type dest-unreach code 4");
 * console.log((r.fields & BELT_M_ICMP_CODE) !== 0, r.icmpType, r.icmpCode); // true 3 4
 * ```
 */
export const BELT_M_ICMP_CODE = 16384;
const M_ALL = (1 << 15) - 1;
const M_L3 = BELT_M_L4 | BELT_M_SRC | BELT_M_DST | BELT_M_ANY;
const M_PORTS = BELT_M_SPORT | BELT_M_DPORT | BELT_M_PORT;
const M_MACS = BELT_M_SMAC | BELT_M_DMAC | BELT_M_MAC;
const M_ICMP = BELT_M_ICMP_TYPE | BELT_M_ICMP_CODE;

/**
 * `BELT_DIR_IN`: a packet seen on the ingress hook.
 *
 * @example
 * ```ts
 * import { BELT_DIR_IN, parseRule } from "@belt/belt";
 * console.log(parseRule("inbound").direction === BELT_DIR_IN); // true
 * ```
 */
export const BELT_DIR_IN = 1;
/**
 * `BELT_DIR_OUT`: a packet seen on the egress hook.
 *
 * @example
 * ```ts
 * import { BELT_DIR_OUT, parseRule } from "@belt/belt";
 * console.log(parseRule("out").direction === BELT_DIR_OUT); // true
 * ```
 */
export const BELT_DIR_OUT = 2;
/**
 * `BELT_VLAN_ANY`: the `vlan` value of a rule that matches any VLAN-tagged frame.
 *
 * @example
 * ```ts
 * import { BELT_VLAN_ANY, parseRule } from "@belt/belt";
 * console.log(parseRule("vlan").vlan === BELT_VLAN_ANY); // true
 * ```
 */
export const BELT_VLAN_ANY = 0xffff;

/**
 * `BELT_F_L2` of `struct belt_packet.flags`: the Ethernet header and its VLAN tags were read
 * whole: MACs, ethProto.
 *
 * @example
 * ```ts
 * import { BELT_F_L2 } from "@belt/belt";
 * console.log(BELT_F_L2); // 1
 * ```
 */
export const BELT_F_L2 = 1;
/**
 * `BELT_F_VLAN`: the frame has at least one VLAN tag.
 *
 * @example
 * ```ts
 * import { BELT_F_VLAN } from "@belt/belt";
 * console.log(BELT_F_VLAN); // 2
 * ```
 */
export const BELT_F_VLAN = 2;
/**
 * `BELT_F_L3`: the IP header (and IPv6 extension chain) was read whole: addresses, l4Proto.
 *
 * @example
 * ```ts
 * import { BELT_F_L3 } from "@belt/belt";
 * console.log(BELT_F_L3); // 8
 * ```
 */
export const BELT_F_L3 = 8;
/**
 * `BELT_F_L4`: a TCP, UDP, ICMP or ICMPv6 header was read whole: ports (TCP/UDP), ICMP type
 * and code.
 *
 * @example
 * ```ts
 * import { BELT_F_L4 } from "@belt/belt";
 * console.log(BELT_F_L4); // 256
 * ```
 */
export const BELT_F_L4 = 256;

const IPPROTO_ICMP = 1, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_ICMPV6 = 58;
const ETH_IP = 0x0800, ETH_IPV6 = 0x86dd, ETH_ARP = 0x0806;

// ---------------------------------------------------------------------------------------------
// Types and codecs

/**
 * One parsed rule: the fields of `struct belt_rule` (bpf/include/belt_match.h) in camelCase,
 * plus the text it came from. Addresses use belt_packet's 16-byte form: an IPv4 prefix
 * a.b.c.d/n is `::ffff:a.b.c.d` with length 96 + n; bits past the length are zero. Values of
 * conditions whose `BELT_M_*` bit is not in `fields` are zero. MACs are 6 bytes in wire order.
 *
 * @example
 * ```ts
 * import { parseRule } from "@belt/belt";
 * const { fields, l4Proto, dportLo, dportHi } = parseRule("udp dport 53");
 * console.log(fields, l4Proto, dportLo, dportHi); // 258 17 53 53
 * ```
 */
export interface Rule {
  /** The text the rule was parsed from (for messages); not packed. */
  text: string;
  /** `BELT_M_*` bits: the conditions that apply. */
  fields: number;
  /** EtherType after the VLAN tags ({@linkcode BELT_M_ETH}). */
  ethProto: number;
  /** IP protocol ({@linkcode BELT_M_L4}). */
  l4Proto: number;
  /** {@linkcode BELT_DIR_IN} or {@linkcode BELT_DIR_OUT} ({@linkcode BELT_M_DIR}). */
  direction: number;
  /** Outer VLAN id, or {@linkcode BELT_VLAN_ANY} ({@linkcode BELT_M_VLAN}). */
  vlan: number;
  /** Lowest TCP/UDP source port ({@linkcode BELT_M_SPORT}). */
  sportLo: number;
  /** Highest TCP/UDP source port. */
  sportHi: number;
  /** Lowest TCP/UDP destination port ({@linkcode BELT_M_DPORT}). */
  dportLo: number;
  /** Highest TCP/UDP destination port. */
  dportHi: number;
  /** Lowest port on either side ({@linkcode BELT_M_PORT}). */
  portLo: number;
  /** Highest port on either side. */
  portHi: number;
  /** Prefix length in bits of `src` (0-128). */
  srcLen: number;
  /** Prefix length in bits of `dst` (0-128). */
  dstLen: number;
  /** Prefix length in bits of `any` (0-128). */
  anyLen: number;
  /** Source prefix, 16 bytes ({@linkcode BELT_M_SRC}). */
  src: Uint8Array;
  /** Destination prefix, 16 bytes ({@linkcode BELT_M_DST}). */
  dst: Uint8Array;
  /** Prefix that the source or the destination must lie in, 16 bytes ({@linkcode BELT_M_ANY}). */
  any: Uint8Array;
  /** Ethernet source address, 6 bytes ({@linkcode BELT_M_SMAC}). */
  srcMac: Uint8Array;
  /** Ethernet destination address, 6 bytes ({@linkcode BELT_M_DMAC}). */
  dstMac: Uint8Array;
  /** Ethernet address of either side, 6 bytes ({@linkcode BELT_M_MAC}). */
  anyMac: Uint8Array;
  /** ICMP or ICMPv6 type ({@linkcode BELT_M_ICMP_TYPE}). */
  icmpType: number;
  /** ICMP or ICMPv6 code ({@linkcode BELT_M_ICMP_CODE}). */
  icmpCode: number;
}

/**
 * `struct belt_rule` member by member, with the C names (see {@linkcode beltRule}).
 *
 * @example
 * ```ts
 * import { beltRule, packRules, parseRule } from "@belt/belt";
 * const s = beltRule.unpack(packRules([parseRule("net 198.18.0.0/15")], 1));
 * console.log(s.any_len); // 111
 * ```
 */
export interface BeltRuleStruct {
  /** `__u32 fields` */
  fields: number;
  /** `__u16 eth_proto` */
  eth_proto: number;
  /** `__u8 l4_proto` */
  l4_proto: number;
  /** `__u8 direction` */
  direction: number;
  /** `__u16 vlan` */
  vlan: number;
  /** `__u16 sport_lo` */
  sport_lo: number;
  /** `__u16 sport_hi` */
  sport_hi: number;
  /** `__u16 dport_lo` */
  dport_lo: number;
  /** `__u16 dport_hi` */
  dport_hi: number;
  /** `__u16 port_lo` */
  port_lo: number;
  /** `__u16 port_hi` */
  port_hi: number;
  /** `__u8 src_len` */
  src_len: number;
  /** `__u8 dst_len` */
  dst_len: number;
  /** `__u8 any_len` */
  any_len: number;
  /** `__u8 pad[7]`: written as zeros. */
  pad: undefined;
  /** `__u8 src[16]` */
  src: Uint8Array;
  /** `__u8 dst[16]` */
  dst: Uint8Array;
  /** `__u8 any[16]` */
  any: Uint8Array;
  /** `__u8 src_mac[6]` */
  src_mac: Uint8Array;
  /** `__u8 dst_mac[6]` */
  dst_mac: Uint8Array;
  /** `__u8 any_mac[6]` */
  any_mac: Uint8Array;
  /** `__u8 icmp_type` */
  icmp_type: number;
  /** `__u8 icmp_code` */
  icmp_code: number;
  /** `__u8 pad2[4]`: written as zeros. */
  pad2: undefined;
}

/**
 * The codec of `struct belt_rule` (104 bytes, layout of bpf/include/belt_match.h, checked
 * against the compiled BTF by tests/rules_test.ts). {@linkcode packRules} uses it;
 * {@linkcode ruleFromStruct} turns what it unpacks back into a {@linkcode Rule}.
 *
 * @example
 * ```ts
 * import { beltRule } from "@belt/belt";
 * console.log(beltRule.size, beltRule.layout.find((f) => f.name === "src_mac")?.offset); // 104 80
 * ```
 */
export const beltRule: StructCodec<BeltRuleStruct> = struct({
  fields: u32,
  eth_proto: u16,
  l4_proto: u8,
  direction: u8,
  vlan: u16,
  sport_lo: u16,
  sport_hi: u16,
  dport_lo: u16,
  dport_hi: u16,
  port_lo: u16,
  port_hi: u16,
  src_len: u8,
  dst_len: u8,
  any_len: u8,
  pad: pad(7),
  src: bytes(16),
  dst: bytes(16),
  any: bytes(16),
  src_mac: bytes(6),
  dst_mac: bytes(6),
  any_mac: bytes(6),
  icmp_type: u8,
  icmp_code: u8,
  pad2: pad(4),
});

/**
 * What {@linkcode ruleMatches} reads of a packet: the members of `struct belt_packet`
 * (bpf/include/belt_packet.h) that rules look at, in camelCase.
 *
 * @example
 * ```ts
 * import { BELT_F_L3, parseRule, ruleMatches } from "@belt/belt";
 * import type { ParsedPacket } from "@belt/belt";
 * const addr = new Uint8Array(16); // ::
 * const mac = new Uint8Array(6);
 * const gre: ParsedPacket = {
 *   flags: BELT_F_L3, ethProto: 0x86dd, l4Proto: 47, srcAddr: addr, dstAddr: addr,
 *   srcPort: 0, dstPort: 0, vlanOuter: 0, srcMac: mac, dstMac: mac, icmpType: 0, icmpCode: 0,
 * };
 * console.log(ruleMatches(parseRule("ip6 proto 47"), gre, 2)); // true
 * ```
 */
export interface ParsedPacket {
  /** `BELT_F_*` status bits. */
  flags: number;
  /** EtherType after the VLAN tags. */
  ethProto: number;
  /** IP protocol after any IPv6 extension headers. */
  l4Proto: number;
  /** Source address, 16 bytes (IPv4 as `::ffff:a.b.c.d`). */
  srcAddr: Uint8Array;
  /** Destination address, 16 bytes. */
  dstAddr: Uint8Array;
  /** TCP/UDP source port. */
  srcPort: number;
  /** TCP/UDP destination port. */
  dstPort: number;
  /** VLAN id of the outer tag. */
  vlanOuter: number;
  /** Source MAC, 6 bytes. */
  srcMac: Uint8Array;
  /** Destination MAC, 6 bytes. */
  dstMac: Uint8Array;
  /** ICMP or ICMPv6 type. */
  icmpType: number;
  /** ICMP or ICMPv6 code. */
  icmpCode: number;
}

/**
 * The whole `struct belt_packet` in camelCase, as {@linkcode beltPacket} decodes it.
 *
 * @example
 * ```ts
 * import { beltPacket } from "@belt/belt";
 * import type { BeltPacket } from "@belt/belt";
 * const p: BeltPacket = beltPacket.unpack(new Uint8Array(80));
 * console.log(p.ipVersion, p.srcAddr.length); // 0 16
 * ```
 */
export interface BeltPacket extends ParsedPacket {
  /** Length the IP header states. */
  ipLen: number;
  /** VLAN id of the inner tag (QinQ). */
  vlanInner: number;
  /** Offset of the L3 header. */
  l3Off: number;
  /** Offset of the L4 header, 0 when unknown. */
  l4Off: number;
  /** Fragment offset in bytes. */
  fragOff: number;
  /** IPv4 identification or IPv6 fragment id. */
  fragId: number;
  /** 4 or 6. */
  ipVersion: number;
  /** TCP doff*4, UDP/ICMP 8. */
  l4HdrLen: number;
  /** TCP flag byte. */
  tcpFlags: number;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number;
  /** VLAN tags read (0-2). */
  vlanCount: number;
}

/**
 * The codec of `struct belt_packet` (80 bytes), camelCase members: what an eBPF program that
 * calls belt_parse() hands to user space (a map value, a ring buffer event) decodes with it, and
 * the result goes straight to {@linkcode ruleMatches}.
 *
 * @example
 * ```ts
 * import { beltPacket, parseRule, ruleMatches } from "@belt/belt";
 * const pkt = beltPacket.unpack(new Uint8Array(80)); // all zero: nothing parsed
 * console.log(beltPacket.size, ruleMatches(parseRule("tcp"), pkt, 1)); // 80 false
 * ```
 */
export const beltPacket: StructCodec<BeltPacket> = struct({
  flags: u32,
  ipLen: u32,
  ethProto: u16,
  vlanOuter: u16,
  vlanInner: u16,
  l3Off: u16,
  l4Off: u16,
  fragOff: u16,
  dstMac: bytes(6),
  srcMac: bytes(6),
  srcAddr: bytes(16),
  dstAddr: bytes(16),
  fragId: u32,
  srcPort: u16,
  dstPort: u16,
  ipVersion: u8,
  l4Proto: u8,
  l4HdrLen: u8,
  tcpFlags: u8,
  icmpType: u8,
  icmpCode: u8,
  ttl: u8,
  vlanCount: u8,
});

// ---------------------------------------------------------------------------------------------
// Addresses

const MAPPED = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);

function parseIpv4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p))) return undefined;
  const out = parts.map(Number);
  return out.every((x) => x <= 255) ? out : undefined;
}

function parseIpv6(s: string): Uint8Array | undefined {
  if (!/^[0-9a-f:.]+$/i.test(s)) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string, last: boolean): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (last && i === items.length - 1 && g.includes(".")) {
        const v4 = parseIpv4(g);
        if (!v4) return undefined;
        out.push(v4[0]! << 8 | v4[1]!, v4[2]! << 8 | v4[3]!);
      } else if (/^[0-9a-f]{1,4}$/i.test(g)) {
        out.push(parseInt(g, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** RFC 5952 text of 16 bytes: lower case, the longest run (>= 2) of zero groups as `::`. */
function formatIpv6(a: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => a[2 * i]! << 8 | a[2 * i + 1]!);
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

const isMapped = (a: Uint8Array) => MAPPED.subarray(0, 12).every((x, i) => a[i] === x);

/** The prefix's text: dotted IPv4 when it lies in ::ffff:0:0/96, else IPv6; `/len` unless whole. */
function formatPrefix(a: Uint8Array, len: number): string {
  if (len >= 96 && isMapped(a)) {
    const v4 = Array.from(a.subarray(12)).join(".");
    return len === 128 ? v4 : `${v4}/${len - 96}`;
  }
  return len === 128 ? formatIpv6(a) : `${formatIpv6(a)}/${len}`;
}

/** Copy of `a` with the bits past `len` cleared. */
function masked(a: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, len - 8 * i));
    out[i] = a[i]! & (0xff00 >> bits) & 0xff;
  }
  return out;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Which families a prefix can match: IPv4 (mapped form) and/or IPv6. */
function families(a: Uint8Array, len: number): { v4: boolean; v6: boolean } {
  const v4 = sameBytes(masked(a, Math.min(len, 96)), masked(MAPPED, Math.min(len, 96)));
  return { v4, v6: !(len >= 96 && isMapped(a)) };
}

/** Six bytes from `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (any case, 1-2 digits a byte). */
function parseMac(s: string): Uint8Array | undefined {
  if (!/^[0-9a-f]{1,2}([:-])[0-9a-f]{1,2}(\1[0-9a-f]{1,2}){4}$/i.test(s)) return undefined;
  return new Uint8Array(s.split(/[:-]/).map((x) => parseInt(x, 16)));
}

/** Lower-case, colon-separated, two digits a byte. */
const formatMac = (a: Uint8Array) =>
  Array.from(a, (x) => x.toString(16).padStart(2, "0")).join(":");

// ---------------------------------------------------------------------------------------------
// ICMP type names: [name, ICMP (IPv4) type, ICMPv6 type]; -1 where the family has none.

const ICMP_NAMES: readonly [string, number, number][] = [
  ["echo-reply", 0, 129],
  ["dest-unreach", 3, 1],
  ["redirect", 5, 137],
  ["echo-request", 8, 128],
  ["router-advert", 9, 134],
  ["router-solicit", 10, 133],
  ["time-exceeded", 11, 3],
  ["neighbor-solicit", -1, 135],
  ["neighbor-advert", -1, 136],
];

/**
 * The name of an ICMP (`six` false) or ICMPv6 type, as the rule language
 * spells it, if it has one.
 *
 * @example
 * ```ts
 * import { icmpTypeName } from "@belt/belt";
 * console.log(icmpTypeName(8, false), icmpTypeName(135, true)); // echo-request neighbor-solicit
 * ```
 */
export function icmpTypeName(type: number, six: boolean): string | undefined {
  return ICMP_NAMES.find((n) => n[six ? 2 : 1] === type)?.[0];
}

// ---------------------------------------------------------------------------------------------
// Parser

interface Token {
  word: string; // as written
  key: string; // lower case
  col: number; // 1-based
}

/** A term already in the rule, for conflict messages. */
interface Term {
  text: string;
  col: number;
}

const HINT_TERMS = "terms are tcp, udp, icmp, icmp6, arp, ip, ip6, vlan [ID], proto N, " +
  "ether proto N, ether src|dst|host MAC, [src|dst] host ADDR, [src|dst] net CIDR, " +
  "[src|dst] port P[-Q], sport, dport, type T and code N after icmp or icmp6, in, out, " +
  "joined by spaces or 'and'";
const HINT_OR = "all terms of a rule must hold at once; to match either, write two rules";
const HINT_PROTO = "IP protocol numbers are 0-255; tcp, udp, icmp and icmp6 are terms of their own";
const HINT_PORT = "ports are numbers 0-65535, ranges are written LO-HI, e.g. 8000-8080";
const HINT_ADDR = "write an IPv4 or IPv6 address, e.g. 198.18.0.1 or fd00:beef::1";
const HINT_MAC = "write six hex bytes joined by ':' or '-', e.g. 02:00:5e:10:00:01";
const HINT_ETHER = "e.g. 'ether proto 0x88cc', 'ether src 02:00:5e:10:00:01', " +
  "'ether host 02:00:5e:10:00:01'";
const HINT_ICMP_ORDER =
  "ICMP types and codes follow the protocol, e.g. 'icmp type echo-request' or 'icmp6 type 135'";
const HINT_ICMP_TYPE = "ICMP types are 0-255 or a name: echo-reply, dest-unreach, redirect, " +
  "echo-request, router-advert, router-solicit, time-exceeded, and for icmp6 " +
  "neighbor-solicit, neighbor-advert";

const MAC_SIDE_NAME = {
  src: "source MAC address",
  dst: "destination MAC address",
  any: "either-side MAC address",
} as const;

const SIDE_NAME = { src: "source", dst: "destination", any: "either-side" } as const;
const ETH_WORDS = new Map([
  ["ip", ETH_IP],
  ["ip4", ETH_IP],
  ["ipv4", ETH_IP],
  ["ip6", ETH_IPV6],
  ["ipv6", ETH_IPV6],
  ["arp", ETH_ARP],
]);
const DIR_WORDS = new Map([
  ["in", BELT_DIR_IN],
  ["inbound", BELT_DIR_IN],
  ["out", BELT_DIR_OUT],
  ["outbound", BELT_DIR_OUT],
]);

function emptyRule(text: string): Rule {
  return {
    text,
    fields: 0,
    ethProto: 0,
    l4Proto: 0,
    direction: 0,
    vlan: 0,
    sportLo: 0,
    sportHi: 0,
    dportLo: 0,
    dportHi: 0,
    portLo: 0,
    portHi: 0,
    srcLen: 0,
    dstLen: 0,
    anyLen: 0,
    src: new Uint8Array(16),
    dst: new Uint8Array(16),
    any: new Uint8Array(16),
    srcMac: new Uint8Array(6),
    dstMac: new Uint8Array(6),
    anyMac: new Uint8Array(6),
    icmpType: 0,
    icmpCode: 0,
  };
}

class RuleParser {
  readonly rule: Rule;
  readonly #text: string;
  readonly #tokens: Token[];
  #at = 0;
  // Who set what, for conflict messages.
  #eth?: Term;
  #l4?: Term;
  #dir?: Term;
  #vlan?: Term;
  #ports?: Term; // first port term
  #addr?: Term & { v4: boolean; v6: boolean }; // families all address terms so far allow
  #icmpType?: Term;
  #icmpCode?: Term;
  readonly #slots = new Map<number, Term>(); // BELT_M_SRC... -> term

  /** `whole` and `offset`: this rule is a piece of a longer expression, which errors quote. */
  constructor(text: string, whole = text, offset = 0) {
    this.#text = whole;
    this.rule = emptyRule(whole === text ? text : text.trim()); // a piece of an or-list: without the spaces around it
    this.#tokens = [];
    for (const m of text.matchAll(/\S+/g)) {
      this.#tokens.push({ word: m[0], key: m[0].toLowerCase(), col: m.index + 1 + offset });
    }
  }

  fail(what: string, col: number, problem: string, hint: string): never {
    throw new BeltError(`filter '${this.#text}': ${what} at column ${col} ${problem}`, { hint });
  }

  parse(): Rule {
    if (!this.#tokens.length) {
      throw new BeltError(`filter '${this.#text}' is empty`, {
        hint: "give at least one term, e.g. 'tcp dport 80'",
      });
    }
    let joined = true; // at the start, or just after 'and'
    while (this.#at < this.#tokens.length) {
      const t = this.#tokens[this.#at++]!;
      if (t.key === "and") {
        if (joined) {
          const where = this.#at === 1 ? "has no term before it" : "follows another 'and'";
          this.fail("'and'", t.col, where, "'and' joins two terms, e.g. 'tcp and port 80'");
        }
        if (this.#at === this.#tokens.length) {
          this.fail("'and'", t.col, "has no term after it", "end the rule with a term");
        }
        joined = true;
        continue;
      }
      joined = false;
      this.#term(t);
    }
    return this.rule;
  }

  #next(): Token | undefined {
    const t = this.#tokens[this.#at];
    if (t && t.key !== "and") {
      this.#at++;
      return t;
    }
    return undefined;
  }

  #need(after: Token, what: string, hint: string): Token {
    return this.#next() ??
      this.fail(`'${after.word}'`, after.col, `needs ${what} after it`, hint);
  }

  #term(t: Token): void {
    const k = t.key;
    if (k === "tcp" || k === "udp") {
      return this.#setL4(k === "tcp" ? IPPROTO_TCP : IPPROTO_UDP, { text: t.word, col: t.col });
    }
    if (k === "icmp" || k === "icmp6" || k === "icmpv6") {
      const term = { text: t.word, col: t.col };
      this.#setEth(k === "icmp" ? ETH_IP : ETH_IPV6, term);
      return this.#setL4(k === "icmp" ? IPPROTO_ICMP : IPPROTO_ICMPV6, term);
    }
    const eth = ETH_WORDS.get(k), dir = DIR_WORDS.get(k);
    if (eth !== undefined) return this.#setEth(eth, { text: t.word, col: t.col });
    if (dir !== undefined) return this.#setDir(dir, { text: t.word, col: t.col });
    switch (k) {
      case "vlan":
        return this.#vlanTerm(t);
      case "proto": {
        const v = this.#need(t, "an IP protocol number", "e.g. 'proto 47' for GRE");
        const n = this.#number(v, `protocol ${v.word}`, 255, HINT_PROTO);
        return this.#setL4(n, { text: `${t.word} ${v.word}`, col: t.col });
      }
      case "ether": {
        const p = this.#need(t, "proto, src, dst or host", HINT_ETHER);
        if (p.key === "src" || p.key === "dst" || p.key === "host") {
          return this.#macTerm(t, p, p.key === "host" ? "any" : p.key);
        }
        if (p.key !== "proto") {
          this.fail(
            `'${p.word}'`,
            p.col,
            "is not proto, src, dst or host after 'ether'",
            HINT_ETHER,
          );
        }
        const v = this.#need(p, "an EtherType", "e.g. 'ether proto 0x88cc'");
        const n = this.#number(v, `EtherType ${v.word}`, 0xffff, "EtherTypes are 0-0xffff", true);
        return this.#setEth(n, { text: `${t.word} ${p.word} ${v.word}`, col: t.col });
      }
      case "src":
      case "dst":
        return this.#qualified(t, k === "src" ? "src" : "dst");
      case "host":
      case "net":
      case "port":
        return this.#slotTerm(t, t, "any", k);
      case "sport":
      case "dport":
        return this.#slotTerm(t, t, k === "sport" ? "src" : "dst", "port");
      case "type":
      case "code":
        return this.#icmpTerm(t);
    }
    this.fail(`'${t.word}'`, t.col, "is not a filter term", HINT_TERMS);
  }

  #number(t: Token, what: string, max: number, hint: string, hex = false): number {
    const ok = /^\d+$/.test(t.word) || (hex && /^0x[0-9a-f]+$/i.test(t.word));
    if (!ok) this.fail(`'${t.word}'`, t.col, "is not a number", hint);
    const n = Number(t.word);
    if (n > max) {
      const range = hex ? `0-0x${max.toString(16)}` : `0-${max}`;
      this.fail(what, t.col, `is out of range (${range})`, hint);
    }
    return n;
  }

  #vlanTerm(t: Token): void {
    const next = this.#tokens[this.#at];
    let vlan = BELT_VLAN_ANY, text = t.word;
    if (next && /^\d+$/.test(next.word)) {
      this.#at++;
      vlan = this.#number(next, `vlan id ${next.word}`, 4094, "VLAN ids are 0-4094");
      text += ` ${next.word}`;
    }
    const term = { text, col: t.col };
    if (this.#vlan && this.rule.vlan !== vlan) {
      this.#conflict(term, this.#vlan, "the outer VLAN tag has one id");
    }
    this.#vlan ??= term;
    this.rule.fields |= BELT_M_VLAN;
    this.rule.vlan = vlan;
  }

  /** `ether src|dst|host MAC`. */
  #macTerm(ether: Token, kw: Token, side: "src" | "dst" | "any"): void {
    const v = this.#need(kw, "a MAC address", HINT_MAC);
    const mac = parseMac(v.word);
    if (!mac) this.fail(`'${v.word}'`, v.col, "is not a MAC address", HINT_MAC);
    const term = { text: `${ether.word} ${kw.word} ${v.word}`, col: ether.col };
    const bit = side === "src" ? BELT_M_SMAC : side === "dst" ? BELT_M_DMAC : BELT_M_MAC;
    this.#claimSlot(bit, term, MAC_SIDE_NAME[side]);
    const other = side === "any"
      ? this.#slots.get(BELT_M_SMAC) ?? this.#slots.get(BELT_M_DMAC)
      : this.#slots.get(BELT_M_MAC);
    if (other) {
      this.fail(
        `'${term.text}'`,
        term.col,
        `conflicts with '${other.text}' at column ${other.col}: ` +
          "a rule names the MAC of either side ('ether host') or of each side ('ether src', " +
          "'ether dst'), not both",
        "between two MACs write 'ether src A ether dst B'; to match either, write two rules",
      );
    }
    const r = this.rule;
    if (bit === BELT_M_SMAC) r.srcMac = mac;
    else if (bit === BELT_M_DMAC) r.dstMac = mac;
    else r.anyMac = mac;
    r.fields |= bit;
  }

  /** `type T` / `code N`, after a term that made the protocol ICMP or ICMPv6. */
  #icmpTerm(kw: Token): void {
    const isType = kw.key === "type";
    const name = isType ? "ICMP type" : "ICMP code";
    const hint = isType ? HINT_ICMP_TYPE : "ICMP codes are 0-255";
    const v = this.#need(kw, `an ${name}`, hint);
    const term = { text: `${kw.word} ${v.word}`, col: kw.col };
    const l4 = this.#l4, proto = this.rule.l4Proto;
    if (l4 && proto !== IPPROTO_ICMP && proto !== IPPROTO_ICMPV6) {
      this.#conflict(term, l4, `${name}s need icmp or icmp6`);
    }
    if (this.#ports) {
      this.#conflict(term, this.#ports, `a packet has ports or an ${name}, not both`);
    }
    if (!l4) {
      this.fail(`'${term.text}'`, term.col, "needs icmp or icmp6 before it", HINT_ICMP_ORDER);
    }
    let n: number;
    if (!isType || /^\d+$/.test(v.word)) {
      n = this.#number(v, `${name} ${v.word}`, 255, hint);
    } else {
      const named = ICMP_NAMES.find((x) => x[0] === v.key);
      if (!named) this.fail(`'${v.word}'`, v.col, "is not an ICMP type", hint);
      n = named[proto === IPPROTO_ICMPV6 ? 2 : 1];
      if (n < 0) {
        this.fail(
          `'${v.word}'`,
          v.col,
          `is an ICMPv6 type, but '${l4.text}' at column ${l4.col} makes the rule ICMP`,
          `write 'icmp6 type ${v.key}', or a number for an ICMP type`,
        );
      }
    }
    const had = isType ? this.#icmpType : this.#icmpCode;
    if (had && (isType ? this.rule.icmpType : this.rule.icmpCode) !== n) {
      this.#conflict(term, had, `a packet has one ${name}`);
    }
    if (isType) {
      this.#icmpType ??= term;
      this.rule.icmpType = n;
    } else {
      this.#icmpCode ??= term;
      this.rule.icmpCode = n;
    }
    this.rule.fields |= isType ? BELT_M_ICMP_TYPE : BELT_M_ICMP_CODE;
  }

  #qualified(q: Token, side: "src" | "dst"): void {
    const t = this.#need(q, "host, net or port", `e.g. '${q.word} host 198.18.0.1'`);
    if (t.key === "host" || t.key === "net" || t.key === "port") {
      return this.#slotTerm(q, t, side, t.key);
    }
    if (/^[0-9a-f:.]+(\/\d*)?$/i.test(t.word) && /[.:]/.test(t.word)) {
      // `src ADDR` / `src ADDR/LEN`: host or net without the keyword.
      this.#at--;
      return this.#slotTerm(q, q, side, t.word.includes("/") ? "net" : "host");
    }
    this.fail(
      `'${t.word}'`,
      t.col,
      `is not host, net, port or an address after '${q.word}'`,
      `e.g. '${q.word} host 198.18.0.1', '${q.word} net 198.18.0.0/15', '${q.word} port 80'`,
    );
  }

  /** host/net/port for a side; `first` starts the term (src/dst or the keyword itself). */
  #slotTerm(first: Token, kw: Token, side: "src" | "dst" | "any", kind: string): void {
    if (kind === "port") {
      const v = this.#need(kw, "a port or a range", "e.g. 'port 80' or 'port 8000-8080'");
      const [lo, hi] = this.#portRange(v);
      const bit = side === "src" ? BELT_M_SPORT : side === "dst" ? BELT_M_DPORT : BELT_M_PORT;
      const text = first === kw ? `${kw.word} ${v.word}` : `${first.word} ${kw.word} ${v.word}`;
      const term = { text, col: first.col };
      this.#claimSlot(bit, term, `${SIDE_NAME[side]} port`);
      this.#needsIp(term, "ports need TCP or UDP over IP");
      if (this.#l4 && this.rule.l4Proto !== IPPROTO_TCP && this.rule.l4Proto !== IPPROTO_UDP) {
        this.#conflict(term, this.#l4, "ports need TCP or UDP");
      }
      this.#ports ??= term;
      const r = this.rule;
      if (bit === BELT_M_SPORT) [r.sportLo, r.sportHi] = [lo, hi];
      else if (bit === BELT_M_DPORT) [r.dportLo, r.dportHi] = [lo, hi];
      else [r.portLo, r.portHi] = [lo, hi];
      r.fields |= bit;
      return;
    }
    const what = kind === "host" ? "an address" : "a network";
    const v = this.#need(kw, what, kind === "host" ? HINT_ADDR : "e.g. 'net 198.18.0.0/15'");
    const [addr, len] = this.#prefix(v, kind === "host");
    const text = first === kw ? `${kw.word} ${v.word}` : `${first.word} ${kw.word} ${v.word}`;
    const term = { text, col: first.col };
    const bit = side === "src" ? BELT_M_SRC : side === "dst" ? BELT_M_DST : BELT_M_ANY;
    this.#claimSlot(bit, term, `${SIDE_NAME[side]} address`);
    this.#needsIp(term, "addresses need IPv4 or IPv6");
    const fam = families(addr, len);
    const famName = fam.v4 && fam.v6 ? "" : fam.v4 ? "IPv4" : "IPv6";
    if (this.#eth && (this.rule.ethProto === ETH_IP ? !fam.v4 : !fam.v6)) {
      const pkts = this.rule.ethProto === ETH_IP ? "IPv4" : "IPv6";
      this.#conflict(term, this.#eth, `an ${famName} address is never in an ${pkts} packet`);
    }
    if (this.#addr && !((this.#addr.v4 && fam.v4) || (this.#addr.v6 && fam.v6))) {
      this.#conflict(term, this.#addr, "no packet has an IPv4 and an IPv6 address");
    }
    this.#addr = this.#addr
      ? { ...this.#addr, v4: this.#addr.v4 && fam.v4, v6: this.#addr.v6 && fam.v6 }
      : { ...term, ...fam };
    const r = this.rule;
    if (bit === BELT_M_SRC) [r.src, r.srcLen] = [addr, len];
    else if (bit === BELT_M_DST) [r.dst, r.dstLen] = [addr, len];
    else [r.any, r.anyLen] = [addr, len];
    r.fields |= bit;
  }

  #portRange(t: Token): [number, number] {
    const m = /^(\d+)(?:-(\d+))?$/.exec(t.word);
    if (!m) {
      this.fail(`port '${t.word}'`, t.col, "is not a number or a range", HINT_PORT);
    }
    const check = (s: string, col: number) => {
      const n = Number(s);
      if (n > 65535) this.fail(`port ${s}`, col, "is out of range (0-65535)", HINT_PORT);
      return n;
    };
    const lo = check(m[1]!, t.col);
    if (m[2] === undefined) return [lo, lo];
    const hi = check(m[2], t.col + m[1]!.length + 1);
    if (lo > hi) {
      this.fail(
        `port range ${t.word}`,
        t.col,
        `runs backwards; did you mean ${hi}-${lo}?`,
        "a range is written LO-HI with LO <= HI",
      );
    }
    return [lo, hi];
  }

  /** ADDR or ADDR/LEN as a 16-byte prefix and its length in the 128-bit form. */
  #prefix(t: Token, host: boolean): [Uint8Array, number] {
    const slash = t.word.indexOf("/");
    const addrText = slash < 0 ? t.word : t.word.slice(0, slash);
    const v4 = parseIpv4(addrText);
    const addr = v4 ? new Uint8Array([...MAPPED.subarray(0, 12), ...v4]) : parseIpv6(addrText);
    if (!addr && slash < 0 && parseMac(addrText)) {
      this.fail(
        `'${addrText}'`,
        t.col,
        "is a MAC address, not an IP address",
        "MAC addresses are matched with 'ether src', 'ether dst' or 'ether host'",
      );
    }
    if (!addr) {
      this.fail(`'${addrText}'`, t.col, "is not an IPv4 or IPv6 address", HINT_ADDR);
    }
    if (slash < 0) return [addr, 128];
    if (host) {
      this.fail(
        `'${t.word}'`,
        t.col,
        "has a prefix length, which host does not take",
        `write 'net ${t.word}' for a network`,
      );
    }
    const max = v4 ? 32 : 128;
    const lenText = t.word.slice(slash + 1), lenCol = t.col + slash + 1;
    if (!/^\d+$/.test(lenText)) {
      this.fail(`prefix length '${lenText}'`, lenCol, "is not a number", `give 0-${max} bits`);
    }
    if (Number(lenText) > max) {
      this.fail(
        `prefix length ${lenText}`,
        lenCol,
        `is out of range (0-${max})`,
        `${v4 ? "IPv4" : "IPv6"} prefixes are 0-${max} bits`,
      );
    }
    const len = Number(lenText) + (v4 ? 96 : 0);
    const net = masked(addr, len);
    if (!sameBytes(net, addr)) {
      this.fail(
        t.word,
        t.col,
        `has host bits set; did you mean ${
          v4 ? formatPrefix(net, len) : `${formatIpv6(net)}/${len}`
        }?`,
        "the bits past the prefix length must be zero",
      );
    }
    return [addr, len];
  }

  #conflict(term: Term, earlier: Term, why: string): never {
    this.fail(
      `'${term.text}'`,
      term.col,
      `conflicts with '${earlier.text}' at column ${earlier.col}: ${why}`,
      HINT_OR,
    );
  }

  #claimSlot(bit: number, term: Term, name: string): void {
    const had = this.#slots.get(bit);
    if (had) {
      this.fail(
        `'${term.text}'`,
        term.col,
        `gives a second ${name} ('${had.text}' at column ${had.col})`,
        `a rule holds one ${name}; to match either, write two rules`,
      );
    }
    this.#slots.set(bit, term);
  }

  /** A term that needs an IP header: refused after a non-IP EtherType. */
  #needsIp(term: Term, why: string): void {
    if (this.#eth && this.rule.ethProto !== ETH_IP && this.rule.ethProto !== ETH_IPV6) {
      this.#conflict(term, this.#eth, why);
    }
  }

  #setEth(eth: number, term: Term): void {
    if (this.#eth && this.rule.ethProto !== eth) {
      this.#conflict(term, this.#eth, "a frame has one EtherType");
    }
    if (eth !== ETH_IP && eth !== ETH_IPV6) {
      const ipTerm = this.#l4 ?? this.#addr ?? this.#ports;
      if (ipTerm) this.#conflict(term, ipTerm, `'${ipTerm.text}' needs IPv4 or IPv6`);
    } else if (this.#addr && !(eth === ETH_IP ? this.#addr.v4 : this.#addr.v6)) {
      this.#conflict(term, this.#addr, "the addresses are of the other IP version");
    }
    this.#eth ??= term;
    this.rule.fields |= BELT_M_ETH;
    this.rule.ethProto = eth;
  }

  #setL4(proto: number, term: Term): void {
    if (this.#l4 && this.rule.l4Proto !== proto) {
      this.#conflict(term, this.#l4, "a packet has one IP protocol");
    }
    this.#needsIp(term, "an IP protocol needs IPv4 or IPv6");
    if (this.#ports && proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) {
      this.#conflict(term, this.#ports, "ports need TCP or UDP");
    }
    this.#l4 ??= term;
    this.rule.fields |= BELT_M_L4;
    this.rule.l4Proto = proto;
  }

  #setDir(dir: number, term: Term): void {
    if (this.#dir && this.rule.direction !== dir) {
      this.#conflict(term, this.#dir, "a packet is seen in one direction");
    }
    this.#dir ??= term;
    this.rule.fields |= BELT_M_DIR;
    this.rule.direction = dir;
  }
}

/**
 * Parses one rule (see the module doc for the grammar). Throws a `BeltError` that quotes the
 * rule and names the 1-based column of the offending word, with a hint saying what is valid.
 *
 * @example
 * ```ts
 * import { parseRule } from "@belt/belt";
 * const r = parseRule("udp and src net 198.18.0.0/15 and dport 53");
 * console.log(r.l4Proto, r.srcLen, r.dportLo); // 17 111 53
 * try {
 *   parseRule("tcp dport 99999");
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // filter 'tcp dport 99999': port 99999 at column 11 is out of range (0-65535)
 * }
 * ```
 */
export function parseRule(text: string): Rule {
  return new RuleParser(text).parse();
}

/**
 * Parses rules joined by `or` (`tcp dport 80 or udp dport 53`): each piece
 * is one rule as {@linkcode parseRule} reads it, and a packet matches the
 * expression when it matches any of them. Errors quote the whole expression
 * and point at the column in it.
 *
 * @example
 * ```ts
 * import { parseRuleList } from "@belt/belt";
 * console.log(parseRuleList("tcp dport 80 or udp dport 53").length); // 2
 * try {
 *   parseRuleList("tcp or or udp");
 * } catch (e) {
 *   console.log((e as Error).message); // filter 'tcp or or udp': 'or' at column 8 has no rule before it
 * }
 * ```
 */
export function parseRuleList(text: string): Rule[] {
  const rules: Rule[] = [];
  let start = 0; // where the current piece begins in `text`
  const words = [...text.matchAll(/\S+/g)];
  const fail = (col: number, problem: string): never => {
    throw new BeltError(`filter '${text}': 'or' at column ${col} ${problem}`, {
      hint: "'or' joins two rules, e.g. 'tcp dport 80 or udp dport 53'",
    });
  };
  for (const [i, m] of words.entries()) {
    if (m[0].toLowerCase() !== "or") continue;
    const piece = text.slice(start, m.index);
    if (!piece.trim()) fail(m.index + 1, "has no rule before it");
    if (i === words.length - 1) fail(m.index + 1, "has no rule after it");
    rules.push(new RuleParser(piece, text, start).parse());
    start = m.index + m[0].length;
  }
  rules.push(new RuleParser(text.slice(start), text, start).parse());
  return rules;
}

// ---------------------------------------------------------------------------------------------
// Formatting, packing, matching

/**
 * The canonical text of a rule, for display (`belt chain show`, stats): terms in a fixed order
 * (direction, vlan, MACs, protocol, addresses, ports, ICMP type and code), `icmp`/`icmp6` where
 * EtherType and protocol say so, MACs lower case with colons, IPv4 prefixes dotted, IPv6 in
 * RFC 5952 form, `host` for a whole address, ICMP types by name where they have one.
 * `parseRule(formatRule(r))` gives `r` back (apart from `text`).
 *
 * @example
 * ```ts
 * import { formatRule, parseRule } from "@belt/belt";
 * console.log(formatRule(parseRule("PORT 80 AND IPV6 and dst FD00:BEEF:0::1 inbound")));
 * // "in ip6 dst host fd00:beef::1 port 80"
 * console.log(formatRule(parseRule("icmp6 type 135 ether src 02-00-5E-10-00-01")));
 * // "ether src 02:00:5e:10:00:01 icmp6 type neighbor-solicit"
 * ```
 */
export function formatRule(rule: Rule): string {
  const f = rule.fields;
  const out: string[] = [];
  const has = (bit: number) => (f & bit) !== 0;
  if (has(BELT_M_DIR)) {
    out.push(
      rule.direction === BELT_DIR_IN
        ? "in"
        : rule.direction === BELT_DIR_OUT
        ? "out"
        : `direction ${rule.direction}`,
    );
  }
  if (has(BELT_M_VLAN)) out.push(rule.vlan === BELT_VLAN_ANY ? "vlan" : `vlan ${rule.vlan}`);
  if (has(BELT_M_SMAC)) out.push(`ether src ${formatMac(rule.srcMac)}`);
  if (has(BELT_M_DMAC)) out.push(`ether dst ${formatMac(rule.dstMac)}`);
  if (has(BELT_M_MAC)) out.push(`ether host ${formatMac(rule.anyMac)}`);
  let l4Done = false;
  if (has(BELT_M_ETH)) {
    const eth = rule.ethProto, l4 = has(BELT_M_L4) ? rule.l4Proto : -1;
    l4Done = (eth === ETH_IP && l4 === IPPROTO_ICMP) || (eth === ETH_IPV6 && l4 === IPPROTO_ICMPV6);
    if (l4Done) out.push(eth === ETH_IP ? "icmp" : "icmp6");
    else if (eth === ETH_IP) out.push("ip");
    else if (eth === ETH_IPV6) out.push("ip6");
    else if (eth === ETH_ARP) out.push("arp");
    else out.push(`ether proto 0x${eth.toString(16).padStart(4, "0")}`);
  }
  if (has(BELT_M_L4) && !l4Done) {
    const l4 = rule.l4Proto;
    out.push(l4 === IPPROTO_TCP ? "tcp" : l4 === IPPROTO_UDP ? "udp" : `proto ${l4}`);
  }
  const addr = (side: string, a: Uint8Array, len: number) =>
    `${side}${len === 128 ? "host" : "net"} ${formatPrefix(a, len)}`;
  if (has(BELT_M_SRC)) out.push(addr("src ", rule.src, rule.srcLen));
  if (has(BELT_M_DST)) out.push(addr("dst ", rule.dst, rule.dstLen));
  if (has(BELT_M_ANY)) out.push(addr("", rule.any, rule.anyLen));
  const range = (lo: number, hi: number) => lo === hi ? `${lo}` : `${lo}-${hi}`;
  if (has(BELT_M_SPORT)) out.push(`sport ${range(rule.sportLo, rule.sportHi)}`);
  if (has(BELT_M_DPORT)) out.push(`dport ${range(rule.dportLo, rule.dportHi)}`);
  if (has(BELT_M_PORT)) out.push(`port ${range(rule.portLo, rule.portHi)}`);
  if (has(BELT_M_ICMP_TYPE)) {
    const l4 = has(BELT_M_L4) ? rule.l4Proto : -1;
    const name = l4 === IPPROTO_ICMP || l4 === IPPROTO_ICMPV6
      ? icmpTypeName(rule.icmpType, l4 === IPPROTO_ICMPV6)
      : undefined;
    out.push(`type ${name ?? rule.icmpType}`);
  }
  if (has(BELT_M_ICMP_CODE)) out.push(`code ${rule.icmpCode}`);
  return out.join(" ");
}

/** Refuses values the C struct cannot hold or belt_rule_match() would misread. */
function checkRule(rule: Rule, index: number): void {
  const bad = (what: string): never => {
    throw new BeltError(`rule ${index} ('${rule.text}'): ${what}`, {
      hint: "build rules with parseRule()",
    });
  };
  const int = (v: number, max: number) => Number.isInteger(v) && v >= 0 && v <= max;
  if (!int(rule.fields, M_ALL)) bad(`fields 0x${rule.fields.toString(16)} has unknown bits`);
  const ranges: [keyof Rule, number][] = [
    ["ethProto", 0xffff],
    ["l4Proto", 0xff],
    ["direction", 0xff],
    ["vlan", 0xffff],
    ["sportLo", 0xffff],
    ["sportHi", 0xffff],
    ["dportLo", 0xffff],
    ["dportHi", 0xffff],
    ["portLo", 0xffff],
    ["portHi", 0xffff],
    ["srcLen", 128],
    ["dstLen", 128],
    ["anyLen", 128],
    ["icmpType", 0xff],
    ["icmpCode", 0xff],
  ];
  for (const [key, max] of ranges) {
    if (!int(rule[key] as number, max)) bad(`${key} ${rule[key]} is outside 0-${max}`);
  }
  for (const [key, len] of [["src", rule.srcLen], ["dst", rule.dstLen], ["any", rule.anyLen]]) {
    const a = rule[key as "src" | "dst" | "any"];
    if (a.length !== 16) bad(`${key} has ${a.length} bytes, not 16`);
    if (!sameBytes(masked(a, len as number), a)) bad(`${key} has bits set past /${len}`);
  }
  for (const key of ["srcMac", "dstMac", "anyMac"] as const) {
    if (rule[key].length !== 6) bad(`${key} has ${rule[key].length} bytes, not 6`);
  }
}

/**
 * Packs rules into the C array `struct belt_rule rules[max]`: `max * 104` bytes, little-endian,
 * unused entries zero (e.g. for a `const volatile struct belt_rule rules[16]` global, with the
 * count in another global). Throws a `BeltError` for more than `max` rules or a field out of
 * range (prefix lengths over 128, bits past a prefix, a MAC that is not 6 bytes).
 *
 * @example
 * ```ts
 * import { packRules, parseRule } from "@belt/belt";
 * const packed = packRules([parseRule("tcp"), parseRule("udp port 53")], 16);
 * console.log(packed.length, packed[6], packed[104 + 6]); // 1664 6 17
 * ```
 */
export function packRules(rules: Rule[], max: number): Uint8Array<ArrayBuffer> {
  if (rules.length > max) {
    throw new BeltError(`${rules.length} filter rules given, at most ${max} fit`, {
      hint: `merge rules (wider networks, port ranges) to stay within ${max}`,
    });
  }
  const out = new Uint8Array(max * beltRule.size);
  const view = new DataView(out.buffer);
  rules.forEach((r, i) => {
    checkRule(r, i);
    beltRule.write(view, i * beltRule.size, structOf(r));
  });
  return out;
}

/**
 * The {@linkcode Rule} of an unpacked `struct belt_rule`, e.g. one read back from a kernel map
 * to show with {@linkcode formatRule}: the inverse of what {@linkcode packRules} writes.
 * `text` defaults to the rule's canonical text. The values are taken as they are (a struct
 * that did not come from {@linkcode parseRule} may hold rules it would refuse).
 *
 * @example
 * ```ts
 * import { beltRule, packRules, parseRule, ruleFromStruct } from "@belt/belt";
 * const packed = packRules([parseRule("ether dst 02:00:5e:10:00:01 and icmp type 8")], 4);
 * const rule = ruleFromStruct(beltRule.unpack(packed.subarray(0, beltRule.size)));
 * console.log(rule.text); // "ether dst 02:00:5e:10:00:01 icmp type echo-request"
 * ```
 */
export function ruleFromStruct(s: BeltRuleStruct, text?: string): Rule {
  const rule: Rule = {
    text: "",
    fields: s.fields,
    ethProto: s.eth_proto,
    l4Proto: s.l4_proto,
    direction: s.direction,
    vlan: s.vlan,
    sportLo: s.sport_lo,
    sportHi: s.sport_hi,
    dportLo: s.dport_lo,
    dportHi: s.dport_hi,
    portLo: s.port_lo,
    portHi: s.port_hi,
    srcLen: s.src_len,
    dstLen: s.dst_len,
    anyLen: s.any_len,
    src: s.src.slice(),
    dst: s.dst.slice(),
    any: s.any.slice(),
    srcMac: s.src_mac.slice(),
    dstMac: s.dst_mac.slice(),
    anyMac: s.any_mac.slice(),
    icmpType: s.icmp_type,
    icmpCode: s.icmp_code,
  };
  rule.text = text ?? formatRule(rule);
  return rule;
}

/** belt_prefix_match(): the first `len` bits of addr, the rest zeroed, equal prefix. */
function prefixMatch(addr: Uint8Array, prefix: Uint8Array, len: number): boolean {
  for (let i = 0; i < 16; i++) {
    const bits = len - 8 * i;
    const mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff;
    if ((addr[i]! & mask) !== prefix[i]) return false;
  }
  return true;
}

const inRange = (v: number, lo: number, hi: number) => v >= lo && v <= hi;
const sameMac = (a: Uint8Array, b: Uint8Array) => a.length === 6 && sameBytes(a, b);

/**
 * belt_rule_match() in TypeScript, with the same semantics: does `pkt` (a parsed
 * `struct belt_packet`), seen in `direction` (1 in, 2 out), meet every condition of `rule`?
 * MAC conditions need `BELT_F_L2`; address and protocol conditions need `BELT_F_L3`; port
 * conditions need `BELT_F_L4` and TCP or UDP; ICMP type and code need `BELT_F_L4` and ICMP or
 * ICMPv6.
 *
 * @example
 * ```ts
 * import { BELT_F_L3, BELT_F_L4, parseRule, ruleMatches } from "@belt/belt";
 * const v4 = (a: number[]) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...a]);
 * const pkt = {
 *   flags: BELT_F_L3 | BELT_F_L4, ethProto: 0x0800, l4Proto: 6, vlanOuter: 0,
 *   srcAddr: v4([198, 18, 0, 1]), dstAddr: v4([198, 19, 0, 1]), srcPort: 40000, dstPort: 80,
 *   srcMac: new Uint8Array(6), dstMac: new Uint8Array(6), icmpType: 0, icmpCode: 0,
 * };
 * console.log(ruleMatches(parseRule("tcp dport 80 dst net 198.19.0.0/16"), pkt, 1)); // true
 * console.log(ruleMatches(parseRule("out"), pkt, 1)); // false
 * ```
 */
export function ruleMatches(rule: Rule, pkt: ParsedPacket, direction: 1 | 2): boolean {
  const f = rule.fields;
  if ((f & BELT_M_DIR) && rule.direction !== direction) return false;
  if ((f & BELT_M_ETH) && pkt.ethProto !== rule.ethProto) return false;
  if (
    (f & BELT_M_VLAN) &&
    (!(pkt.flags & BELT_F_VLAN) || (rule.vlan !== BELT_VLAN_ANY && pkt.vlanOuter !== rule.vlan))
  ) {
    return false;
  }
  if ((f & M_MACS) && !(pkt.flags & BELT_F_L2)) return false;
  if ((f & BELT_M_SMAC) && !sameMac(pkt.srcMac, rule.srcMac)) return false;
  if ((f & BELT_M_DMAC) && !sameMac(pkt.dstMac, rule.dstMac)) return false;
  if (
    (f & BELT_M_MAC) && !sameMac(pkt.srcMac, rule.anyMac) && !sameMac(pkt.dstMac, rule.anyMac)
  ) {
    return false;
  }
  if (f & M_L3) {
    if (!(pkt.flags & BELT_F_L3)) return false;
    if ((f & BELT_M_L4) && pkt.l4Proto !== rule.l4Proto) return false;
    if ((f & BELT_M_SRC) && !prefixMatch(pkt.srcAddr, rule.src, rule.srcLen)) return false;
    if ((f & BELT_M_DST) && !prefixMatch(pkt.dstAddr, rule.dst, rule.dstLen)) return false;
    if (
      (f & BELT_M_ANY) && !prefixMatch(pkt.srcAddr, rule.any, rule.anyLen) &&
      !prefixMatch(pkt.dstAddr, rule.any, rule.anyLen)
    ) {
      return false;
    }
  }
  if (f & M_PORTS) {
    const hasPorts = (pkt.flags & BELT_F_L4) !== 0 &&
      (pkt.l4Proto === IPPROTO_TCP || pkt.l4Proto === IPPROTO_UDP);
    if (!hasPorts) return false;
    if ((f & BELT_M_SPORT) && !inRange(pkt.srcPort, rule.sportLo, rule.sportHi)) return false;
    if ((f & BELT_M_DPORT) && !inRange(pkt.dstPort, rule.dportLo, rule.dportHi)) return false;
    if (
      (f & BELT_M_PORT) && !inRange(pkt.srcPort, rule.portLo, rule.portHi) &&
      !inRange(pkt.dstPort, rule.portLo, rule.portHi)
    ) {
      return false;
    }
  }
  if (f & M_ICMP) {
    const hasIcmp = (pkt.flags & BELT_F_L4) !== 0 &&
      (pkt.l4Proto === IPPROTO_ICMP || pkt.l4Proto === IPPROTO_ICMPV6);
    if (!hasIcmp) return false;
    if ((f & BELT_M_ICMP_TYPE) && pkt.icmpType !== rule.icmpType) return false;
    if ((f & BELT_M_ICMP_CODE) && pkt.icmpCode !== rule.icmpCode) return false;
  }
  return true;
}

/**
 * The `struct belt_rule` members of a rule (what {@linkcode packRules} writes for each rule),
 * for codecs that embed a belt_rule in a larger struct. Checks the rule as packRules does.
 *
 * @example
 * ```ts
 * import { parseRule, ruleToStruct } from "@belt/belt";
 * console.log(ruleToStruct(parseRule("udp dport 53")).dport_lo); // 53
 * ```
 */
export function ruleToStruct(r: Rule): BeltRuleStruct {
  checkRule(r, 0);
  return structOf(r);
}

/** The struct members of a checked rule. */
function structOf(r: Rule): BeltRuleStruct {
  return {
    fields: r.fields,
    eth_proto: r.ethProto,
    l4_proto: r.l4Proto,
    direction: r.direction,
    vlan: r.vlan,
    sport_lo: r.sportLo,
    sport_hi: r.sportHi,
    dport_lo: r.dportLo,
    dport_hi: r.dportHi,
    port_lo: r.portLo,
    port_hi: r.portHi,
    src_len: r.srcLen,
    dst_len: r.dstLen,
    any_len: r.anyLen,
    pad: undefined,
    src: r.src,
    dst: r.dst,
    any: r.any,
    src_mac: r.srcMac,
    dst_mac: r.dstMac,
    any_mac: r.anyMac,
    icmp_type: r.icmpType,
    icmp_code: r.icmpCode,
    pad2: undefined,
  };
}

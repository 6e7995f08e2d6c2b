/**
 * Filter rules (plugins/rules.ts) and belt_match.h:
 *   - parseRule() on every term kind, IPv4/IPv6, ranges, `and`; exact error messages and columns;
 *   - formatRule() is canonical and parses back to the same rule; packRules() bytes, and
 *     ruleFromStruct() turns them back into the same rule;
 *   - the struct belt_rule / belt_packet codecs equal the BTF of tests/bpf/match_rule.bpf.o;
 *   - differential: tens of thousands of random frames, each parsed by belt_parse() in the kernel
 *     and judged by belt_rule_match() against hundreds of random rules in both directions, must
 *     get the verdicts ruleMatches() gives on the kernel's own struct belt_packet; where the frame
 *     is well-formed, the parse must also agree with what the generator built.
 */
import { deepEqual, equal, fail, ok, throws } from "node:assert/strict";
import { BeltError, BpfObject, bytes, u32 } from "../bpf/mod.ts";
import type { StructCodec } from "../bpf/mod.ts";
import {
  BELT_DIR_IN,
  BELT_DIR_OUT,
  BELT_F_L2,
  BELT_F_L3,
  BELT_F_L4,
  BELT_F_VLAN,
  BELT_M_ANY,
  BELT_M_DIR,
  BELT_M_DMAC,
  BELT_M_DPORT,
  BELT_M_DST,
  BELT_M_ETH,
  BELT_M_ICMP_CODE,
  BELT_M_ICMP_TYPE,
  BELT_M_L4,
  BELT_M_MAC,
  BELT_M_PORT,
  BELT_M_SMAC,
  BELT_M_SPORT,
  BELT_M_SRC,
  BELT_M_VLAN,
  BELT_VLAN_ANY,
  beltPacket,
  beltRule,
  formatRule,
  packRules,
  parseRule,
  parseRuleList,
  ruleFromStruct,
  ruleMatches,
} from "../plugins/rules.ts";
import type { ParsedPacket, Rule } from "../plugins/rules.ts";
import { matchRuleObject } from "./bpf/match_rule.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { cat, hex, n16, n32 } from "./harness/frames.ts";
import type { Bytes } from "./harness/frames.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** 16-byte form of an IPv4 address: ::ffff:a.b.c.d. */
const v4 = (s: string) => cat(new Uint8Array(10), [0xff, 0xff], s.split(".").map(Number));
/** 16 bytes of an IPv6 address (tests only use simple forms). */
function v6(s: string): Bytes {
  const groups = (x: string | undefined) => x ? x.split(":").map((g) => parseInt(g, 16)) : [];
  const [head, tail] = s.split("::");
  const h = groups(head), t = groups(tail);
  return cat([...h, ...Array(8 - h.length - t.length).fill(0), ...t].flatMap(n16));
}

/** 6 bytes of a MAC written aa:bb:cc:dd:ee:ff. */
const mac = (s: string) => new Uint8Array(s.split(":").map((x) => parseInt(x, 16)));

/** The rule's binary fields (everything packRules writes), for deepEqual. */
const body = ({ text: _, ...rest }: Rule) => rest;

// ---------------------------------------------------------------------------------------------
// Parser: accepted rules

interface Good {
  text: string;
  want: Partial<Rule>;
  canonical: string;
}
const ETH = BELT_M_ETH, L4 = BELT_M_L4, TYPE = BELT_M_ICMP_TYPE, CODE = BELT_M_ICMP_CODE;
const M1 = "02:00:5e:10:00:01", M2 = "02:00:5e:10:00:02";
const good: Good[] = [
  // Protocols
  { text: "tcp", want: { fields: L4, l4Proto: 6 }, canonical: "tcp" },
  { text: "udp", want: { fields: L4, l4Proto: 17 }, canonical: "udp" },
  { text: "icmp", want: { fields: ETH | L4, ethProto: 0x0800, l4Proto: 1 }, canonical: "icmp" },
  { text: "icmp6", want: { fields: ETH | L4, ethProto: 0x86dd, l4Proto: 58 }, canonical: "icmp6" },
  { text: "icmpv6", want: { fields: ETH | L4, ethProto: 0x86dd, l4Proto: 58 }, canonical: "icmp6" },
  { text: "arp", want: { fields: ETH, ethProto: 0x0806 }, canonical: "arp" },
  { text: "ip", want: { fields: ETH, ethProto: 0x0800 }, canonical: "ip" },
  { text: "ip4", want: { fields: ETH, ethProto: 0x0800 }, canonical: "ip" },
  { text: "ipv4", want: { fields: ETH, ethProto: 0x0800 }, canonical: "ip" },
  { text: "ip6", want: { fields: ETH, ethProto: 0x86dd }, canonical: "ip6" },
  { text: "ipv6", want: { fields: ETH, ethProto: 0x86dd }, canonical: "ip6" },
  { text: "proto 47", want: { fields: L4, l4Proto: 47 }, canonical: "proto 47" },
  { text: "proto 0", want: { fields: L4, l4Proto: 0 }, canonical: "proto 0" },
  { text: "proto 255", want: { fields: L4, l4Proto: 255 }, canonical: "proto 255" },
  { text: "proto 6", want: { fields: L4, l4Proto: 6 }, canonical: "tcp" },
  { text: "ip and proto 1", want: { fields: ETH | L4, l4Proto: 1 }, canonical: "icmp" },
  { text: "proto 1 ip6", want: { fields: ETH | L4, l4Proto: 1 }, canonical: "ip6 proto 1" },
  {
    text: "ether proto 0x88cc",
    want: { fields: ETH, ethProto: 0x88cc },
    canonical: "ether proto 0x88cc",
  },
  { text: "ether proto 2054", want: { fields: ETH, ethProto: 0x0806 }, canonical: "arp" },
  { text: "ether proto 0x0", want: { fields: ETH, ethProto: 0 }, canonical: "ether proto 0x0000" },
  { text: "vlan", want: { fields: BELT_M_VLAN, vlan: BELT_VLAN_ANY }, canonical: "vlan" },
  { text: "vlan 10", want: { fields: BELT_M_VLAN, vlan: 10 }, canonical: "vlan 10" },
  { text: "vlan 0", want: { fields: BELT_M_VLAN, vlan: 0 }, canonical: "vlan 0" },
  {
    text: "vlan 4094 tcp",
    want: { fields: BELT_M_VLAN | L4, vlan: 4094 },
    canonical: "vlan 4094 tcp",
  },
  // Direction
  { text: "in", want: { fields: BELT_M_DIR, direction: 1 }, canonical: "in" },
  { text: "inbound", want: { fields: BELT_M_DIR, direction: 1 }, canonical: "in" },
  { text: "out", want: { fields: BELT_M_DIR, direction: 2 }, canonical: "out" },
  { text: "outbound", want: { fields: BELT_M_DIR, direction: 2 }, canonical: "out" },
  // Addresses, IPv4
  {
    text: "host 198.18.0.1",
    want: { fields: BELT_M_ANY, any: v4("198.18.0.1"), anyLen: 128 },
    canonical: "host 198.18.0.1",
  },
  {
    text: "src host 198.18.0.1",
    want: { fields: BELT_M_SRC, src: v4("198.18.0.1"), srcLen: 128 },
    canonical: "src host 198.18.0.1",
  },
  {
    text: "dst net 198.19.0.0/16",
    want: { fields: BELT_M_DST, dst: v4("198.19.0.0"), dstLen: 112 },
    canonical: "dst net 198.19.0.0/16",
  },
  {
    text: "net 198.18.0.0/15",
    want: { fields: BELT_M_ANY, any: v4("198.18.0.0"), anyLen: 111 },
    canonical: "net 198.18.0.0/15",
  },
  {
    text: "net 198.18.0.7",
    want: { fields: BELT_M_ANY, any: v4("198.18.0.7"), anyLen: 128 },
    canonical: "host 198.18.0.7",
  },
  {
    text: "net 0.0.0.0/0",
    want: { fields: BELT_M_ANY, any: v4("0.0.0.0"), anyLen: 96 },
    canonical: "net 0.0.0.0/0",
  },
  {
    text: "src 198.18.0.1 dst 198.19.0.0/24",
    want: { fields: BELT_M_SRC | BELT_M_DST, srcLen: 128, dst: v4("198.19.0.0"), dstLen: 120 },
    canonical: "src host 198.18.0.1 dst net 198.19.0.0/24",
  },
  // Addresses, IPv6
  {
    text: "host fd00:beef::1",
    want: { fields: BELT_M_ANY, any: v6("fd00:beef::1"), anyLen: 128 },
    canonical: "host fd00:beef::1",
  },
  {
    text: "dst host FD00:BEEF:0:0:0:0:0:1",
    want: { fields: BELT_M_DST, dst: v6("fd00:beef::1"), dstLen: 128 },
    canonical: "dst host fd00:beef::1",
  },
  {
    text: "src net fd00:beef::/64",
    want: { fields: BELT_M_SRC, src: v6("fd00:beef::"), srcLen: 64 },
    canonical: "src net fd00:beef::/64",
  },
  {
    text: "net fd00:beef::1",
    want: { fields: BELT_M_ANY, any: v6("fd00:beef::1"), anyLen: 128 },
    canonical: "host fd00:beef::1",
  },
  {
    text: "net ::/0",
    want: { fields: BELT_M_ANY, any: new Uint8Array(16), anyLen: 0 },
    canonical: "net ::/0",
  },
  {
    text: "dst fd00:beef:0:1::/64",
    want: { fields: BELT_M_DST, dst: v6("fd00:beef:0:1::"), dstLen: 64 },
    canonical: "dst net fd00:beef:0:1::/64",
  },
  {
    text: "host 2001:db8:0:0:1:0:0:1", // RFC 5952: the first of two equal zero runs
    want: { any: v6("2001:db8::1:0:0:1") },
    canonical: "host 2001:db8::1:0:0:1",
  },
  { text: "host ::1", want: { any: v6("::1") }, canonical: "host ::1" },
  { text: "host 1::", want: { any: v6("1::") }, canonical: "host 1::" },
  { text: "host 1:0:2::", want: { any: v6("1:0:2::") }, canonical: "host 1:0:2::" },
  {
    text: "host 64:ff9b::198.18.0.1",
    want: { any: v6("64:ff9b::c612:1") },
    canonical: "host 64:ff9b::c612:1",
  },
  {
    // IPv4-mapped IPv6 text is the same 16 bytes as the IPv4 address.
    text: "host ::ffff:198.18.0.1",
    want: { any: v4("198.18.0.1"), anyLen: 128 },
    canonical: "host 198.18.0.1",
  },
  {
    text: "net ::ffff:198.18.0.0/111",
    want: { any: v4("198.18.0.0"), anyLen: 111 },
    canonical: "net 198.18.0.0/15",
  },
  {
    text: "ip and net ::ffff:0:0/96",
    want: { fields: ETH | BELT_M_ANY, any: v4("0.0.0.0"), anyLen: 96 },
    canonical: "ip net 0.0.0.0/0",
  },
  // Ports
  { text: "port 80", want: { fields: BELT_M_PORT, portLo: 80, portHi: 80 }, canonical: "port 80" },
  { text: "port 0", want: { fields: BELT_M_PORT, portLo: 0, portHi: 0 }, canonical: "port 0" },
  {
    text: "port 65535",
    want: { fields: BELT_M_PORT, portLo: 65535, portHi: 65535 },
    canonical: "port 65535",
  },
  {
    text: "port 8000-8080",
    want: { fields: BELT_M_PORT, portLo: 8000, portHi: 8080 },
    canonical: "port 8000-8080",
  },
  {
    text: "port 0-65535",
    want: { fields: BELT_M_PORT, portLo: 0, portHi: 65535 },
    canonical: "port 0-65535",
  },
  {
    text: "src port 53",
    want: { fields: BELT_M_SPORT, sportLo: 53, sportHi: 53 },
    canonical: "sport 53",
  },
  {
    text: "sport 1024-65535",
    want: { fields: BELT_M_SPORT, sportLo: 1024, sportHi: 65535 },
    canonical: "sport 1024-65535",
  },
  {
    text: "dst port 1-1023",
    want: { fields: BELT_M_DPORT, dportLo: 1, dportHi: 1023 },
    canonical: "dport 1-1023",
  },
  {
    text: "dport 443",
    want: { fields: BELT_M_DPORT, dportLo: 443, dportHi: 443 },
    canonical: "dport 443",
  },
  {
    text: "sport 1 dport 2 port 3",
    want: { fields: BELT_M_SPORT | BELT_M_DPORT | BELT_M_PORT, sportLo: 1, dportLo: 2, portHi: 3 },
    canonical: "sport 1 dport 2 port 3",
  },
  // Conjunctions, `and`, case, spacing, redundant but consistent terms
  {
    text: "tcp and dst port 80 and net 198.18.0.0/15",
    want: { fields: L4 | BELT_M_DPORT | BELT_M_ANY, l4Proto: 6, dportLo: 80, anyLen: 111 },
    canonical: "tcp net 198.18.0.0/15 dport 80",
  },
  {
    text: "PORT 80 AND IPV6 and dst FD00:BEEF:0::1 Inbound",
    want: { fields: BELT_M_PORT | ETH | BELT_M_DST | BELT_M_DIR, direction: 1 },
    canonical: "in ip6 dst host fd00:beef::1 port 80",
  },
  {
    text: "  udp\tport 53   and\nin ",
    want: { fields: L4 | BELT_M_PORT | BELT_M_DIR },
    canonical: "in udp port 53",
  },
  {
    text: "out vlan 100 ip6 udp src net fd00:beef::/48 dst host fd00:beef::2 sport 53",
    want: {
      fields: BELT_M_DIR | BELT_M_VLAN | ETH | L4 | BELT_M_SRC | BELT_M_DST | BELT_M_SPORT,
      vlan: 100,
    },
    canonical: "out vlan 100 ip6 udp src net fd00:beef::/48 dst host fd00:beef::2 sport 53",
  },
  { text: "ip icmp", want: { fields: ETH | L4 }, canonical: "icmp" },
  { text: "tcp tcp in inbound", want: { fields: L4 | BELT_M_DIR }, canonical: "in tcp" },
  { text: "vlan 7 vlan 7", want: { vlan: 7 }, canonical: "vlan 7" },
  {
    text: "src net ::/0 dst host 198.18.0.1",
    want: { srcLen: 0, dstLen: 128 },
    canonical: "src net ::/0 dst host 198.18.0.1",
  },
  // MAC addresses
  {
    text: `ether src ${M1}`,
    want: { fields: BELT_M_SMAC, srcMac: mac(M1) },
    canonical: `ether src ${M1}`,
  },
  {
    text: "ether dst FF-FF-FF-FF-FF-FF",
    want: { fields: BELT_M_DMAC, dstMac: mac("ff:ff:ff:ff:ff:ff") },
    canonical: "ether dst ff:ff:ff:ff:ff:ff",
  },
  {
    text: "Ether Host 2:0:5E:10:0:1",
    want: { fields: BELT_M_MAC, anyMac: mac(M1) },
    canonical: `ether host ${M1}`,
  },
  {
    text: `ether dst ${M2} and ether src ${M1}`,
    want: { fields: BELT_M_SMAC | BELT_M_DMAC, srcMac: mac(M1), dstMac: mac(M2) },
    canonical: `ether src ${M1} ether dst ${M2}`,
  },
  {
    text: `tcp port 80 ether dst ${M2} in`,
    want: { fields: L4 | BELT_M_PORT | BELT_M_DMAC | BELT_M_DIR },
    canonical: `in ether dst ${M2} tcp port 80`,
  },
  {
    text: `arp and ether host 00:00:00:00:00:00`,
    want: { fields: ETH | BELT_M_MAC, anyMac: new Uint8Array(6) },
    canonical: `ether host 00:00:00:00:00:00 arp`,
  },
  // ICMP type and code
  {
    text: "icmp type 8",
    want: { fields: ETH | L4 | TYPE, l4Proto: 1, icmpType: 8, icmpCode: 0 },
    canonical: "icmp type echo-request",
  },
  { text: "icmp type echo-reply", want: { icmpType: 0 }, canonical: "icmp type echo-reply" },
  { text: "icmp type dest-unreach", want: { icmpType: 3 }, canonical: "icmp type dest-unreach" },
  { text: "icmp type redirect", want: { icmpType: 5 }, canonical: "icmp type redirect" },
  { text: "icmp type router-advert", want: { icmpType: 9 }, canonical: "icmp type router-advert" },
  {
    text: "icmp type router-solicit",
    want: { icmpType: 10 },
    canonical: "icmp type router-solicit",
  },
  { text: "icmp type time-exceeded", want: { icmpType: 11 }, canonical: "icmp type time-exceeded" },
  { text: "icmp type 13", want: { icmpType: 13 }, canonical: "icmp type 13" },
  { text: "icmp type 255", want: { icmpType: 255 }, canonical: "icmp type 255" },
  {
    text: "icmp6 type echo-request",
    want: { fields: ETH | L4 | TYPE, l4Proto: 58, icmpType: 128 },
    canonical: "icmp6 type echo-request",
  },
  { text: "icmp6 type 129", want: { icmpType: 129 }, canonical: "icmp6 type echo-reply" },
  { text: "icmp6 type dest-unreach", want: { icmpType: 1 }, canonical: "icmp6 type dest-unreach" },
  {
    text: "icmp6 type time-exceeded",
    want: { icmpType: 3 },
    canonical: "icmp6 type time-exceeded",
  },
  {
    text: "icmpv6 type router-solicit",
    want: { icmpType: 133 },
    canonical: "icmp6 type router-solicit",
  },
  {
    text: "icmp6 type router-advert",
    want: { icmpType: 134 },
    canonical: "icmp6 type router-advert",
  },
  {
    text: "ICMP6 TYPE Neighbor-Solicit",
    want: { icmpType: 135 },
    canonical: "icmp6 type neighbor-solicit",
  },
  {
    text: "icmp6 type neighbor-advert",
    want: { icmpType: 136 },
    canonical: "icmp6 type neighbor-advert",
  },
  { text: "icmp6 type redirect", want: { icmpType: 137 }, canonical: "icmp6 type redirect" },
  { text: "icmp6 type 8", want: { icmpType: 8 }, canonical: "icmp6 type 8" },
  {
    text: "icmp type 3 and code 4",
    want: { fields: ETH | L4 | TYPE | CODE, icmpType: 3, icmpCode: 4 },
    canonical: "icmp type dest-unreach code 4",
  },
  {
    text: "icmp6 code 0",
    want: { fields: ETH | L4 | CODE, icmpType: 0, icmpCode: 0 },
    canonical: "icmp6 code 0",
  },
  { text: "icmp code 255", want: { icmpCode: 255 }, canonical: "icmp code 255" },
  {
    text: "proto 1 type echo-request",
    want: { fields: L4 | TYPE, l4Proto: 1, icmpType: 8 },
    canonical: "proto 1 type echo-request",
  },
  {
    // The protocol number, not the IP version, says whose type numbers these are.
    text: "ip6 proto 1 type echo-request",
    want: { fields: ETH | L4 | TYPE, ethProto: 0x86dd, icmpType: 8 },
    canonical: "ip6 proto 1 type echo-request",
  },
  {
    text: "ip6 and proto 58 and type 135",
    want: { fields: ETH | L4 | TYPE, icmpType: 135 },
    canonical: "icmp6 type neighbor-solicit",
  },
  {
    text: "icmp type 8 type echo-request code 0 code 0",
    want: { fields: ETH | L4 | TYPE | CODE, icmpType: 8 },
    canonical: "icmp type echo-request code 0",
  },
  {
    text: "icmp and type echo-request and host 198.18.0.1",
    want: { fields: ETH | L4 | TYPE | BELT_M_ANY },
    canonical: "icmp host 198.18.0.1 type echo-request",
  },
  {
    text: `out vlan 5 icmp6 type 135 code 0 src net fd00:beef::/64 ether src ${M1} ` +
      `ether dst ${M2}`,
    want: {
      fields: BELT_M_DIR | BELT_M_VLAN | BELT_M_SMAC | BELT_M_DMAC | ETH | L4 | BELT_M_SRC |
        TYPE | CODE,
    },
    canonical: `out vlan 5 ether src ${M1} ether dst ${M2} icmp6 src net fd00:beef::/64 ` +
      "type neighbor-solicit code 0",
  },
];

Deno.test("parseRule() reads every term kind; formatRule() is canonical and parses back", () => {
  for (const { text, want, canonical } of good) {
    const rule = parseRule(text);
    equal(rule.text, text);
    const got = Object.fromEntries(Object.keys(want).map((k) => [k, rule[k as keyof Rule]]));
    deepEqual(got, want, text);
    // A condition that is off leaves its values zero.
    if (!(rule.fields & BELT_M_SRC)) ok(!rule.srcLen && rule.src.every((x) => !x), text);
    if (!(rule.fields & BELT_M_PORT)) ok(!rule.portLo && !rule.portHi, text);
    if (!(rule.fields & BELT_M_MAC)) ok(rule.anyMac.every((x) => !x), text);
    if (!(rule.fields & BELT_M_ICMP_TYPE)) equal(rule.icmpType, 0, text);
    equal(formatRule(rule), canonical, text);
    deepEqual(body(parseRule(canonical)), body(rule), `${text}: canonical form parses back`);
  }
});

// ---------------------------------------------------------------------------------------------
// Parser: refused rules, with the exact message (word and 1-based column) and hint

const OR = "all terms of a rule must hold at once; to match either, write two rules";
const PORTS = "ports are numbers 0-65535, ranges are written LO-HI, e.g. 8000-8080";
const ADDR = "write an IPv4 or IPv6 address, e.g. 198.18.0.1 or fd00:beef::1";
const MAC = "write six hex bytes joined by ':' or '-', e.g. 02:00:5e:10:00:01";
const ETHER = "e.g. 'ether proto 0x88cc', 'ether src 02:00:5e:10:00:01', " +
  "'ether host 02:00:5e:10:00:01'";
const MAC_SIDES =
  "between two MACs write 'ether src A ether dst B'; to match either, write two rules";
const MAC_BOTH = "a rule names the MAC of either side ('ether host') or of each side " +
  "('ether src', 'ether dst'), not both";
const ICMP_ORDER =
  "ICMP types and codes follow the protocol, e.g. 'icmp type echo-request' or 'icmp6 type 135'";
const ICMP_TYPES = "ICMP types are 0-255 or a name: echo-reply, dest-unreach, redirect, " +
  "echo-request, router-advert, router-solicit, time-exceeded, and for icmp6 " +
  "neighbor-solicit, neighbor-advert";
const ICMP_CODES = "ICMP codes are 0-255";
const bad: [string, string, string][] = [
  ["", "filter '' is empty", "give at least one term, e.g. 'tcp dport 80'"],
  ["   ", "filter '   ' is empty", "give at least one term, e.g. 'tcp dport 80'"],
  ["tcp dport 99999", "port 99999 at column 11 is out of range (0-65535)", PORTS],
  ["udp port 80-99999", "port 99999 at column 13 is out of range (0-65535)", PORTS],
  [
    "port 90-80",
    "port range 90-80 at column 6 runs backwards; did you mean 80-90?",
    "a range is written LO-HI with LO <= HI",
  ],
  ["port http", "port 'http' at column 6 is not a number or a range", PORTS],
  ["port 80-", "port '80-' at column 6 is not a number or a range", PORTS],
  [
    "tcp port",
    "'port' at column 5 needs a port or a range after it",
    "e.g. 'port 80' or 'port 8000-8080'",
  ],
  [
    "sport and tcp",
    "'sport' at column 1 needs a port or a range after it",
    "e.g. 'port 80' or 'port 8000-8080'",
  ],
  [
    "net 198.18.1.1/24",
    "198.18.1.1/24 at column 5 has host bits set; did you mean 198.18.1.0/24?",
    "the bits past the prefix length must be zero",
  ],
  [
    "tcp and src net fd00:beef::1/64",
    "fd00:beef::1/64 at column 17 has host bits set; did you mean fd00:beef::/64?",
    "the bits past the prefix length must be zero",
  ],
  [
    "net 198.18.0.0/33",
    "prefix length 33 at column 16 is out of range (0-32)",
    "IPv4 prefixes are 0-32 bits",
  ],
  [
    "net fd00::/129",
    "prefix length 129 at column 12 is out of range (0-128)",
    "IPv6 prefixes are 0-128 bits",
  ],
  ["net 198.18.0.0/", "prefix length '' at column 16 is not a number", "give 0-32 bits"],
  ["host 198.18.0.256", "'198.18.0.256' at column 6 is not an IPv4 or IPv6 address", ADDR],
  ["host 010.0.0.1", "'010.0.0.1' at column 6 is not an IPv4 or IPv6 address", ADDR],
  [
    "dst host 1:2:3:4:5:6:7:8:9",
    "'1:2:3:4:5:6:7:8:9' at column 10 is not an IPv4 or IPv6 address",
    ADDR,
  ],
  ["host 1::2::3", "'1::2::3' at column 6 is not an IPv4 or IPv6 address", ADDR],
  ["host fd00::beef::", "'fd00::beef::' at column 6 is not an IPv4 or IPv6 address", ADDR],
  ["host 1:2:3:4:5:6:7::8", "'1:2:3:4:5:6:7::8' at column 6 is not an IPv4 or IPv6 address", ADDR],
  ["host", "'host' at column 1 needs an address after it", ADDR],
  [
    "host 198.18.0.0/24",
    "'198.18.0.0/24' at column 6 has a prefix length, which host does not take",
    "write 'net 198.18.0.0/24' for a network",
  ],
  [
    "tcp udp",
    "'udp' at column 5 conflicts with 'tcp' at column 1: a packet has one IP protocol",
    OR,
  ],
  [
    "icmp and icmp6",
    "'icmp6' at column 10 conflicts with 'icmp' at column 1: a frame has one EtherType",
    OR,
  ],
  ["ip ip6", "'ip6' at column 4 conflicts with 'ip' at column 1: a frame has one EtherType", OR],
  [
    "in and out",
    "'out' at column 8 conflicts with 'in' at column 1: a packet is seen in one direction",
    OR,
  ],
  [
    "vlan 10 vlan 20",
    "'vlan 20' at column 9 conflicts with 'vlan 10' at column 1: the outer VLAN tag has one id",
    OR,
  ],
  [
    "src net 198.18.0.0/16 and src net 198.19.0.0/16",
    "'src net 198.19.0.0/16' at column 27 gives a second source address ('src net 198.18.0.0/16' at column 1)",
    "a rule holds one source address; to match either, write two rules",
  ],
  [
    "dport 80 dport 81",
    "'dport 81' at column 10 gives a second destination port ('dport 80' at column 1)",
    "a rule holds one destination port; to match either, write two rules",
  ],
  [
    "ip6 and net 198.18.0.0/15",
    "'net 198.18.0.0/15' at column 9 conflicts with 'ip6' at column 1: an IPv4 address is never in an IPv6 packet",
    OR,
  ],
  [
    "dst host fd00:beef::1 icmp",
    "'icmp' at column 23 conflicts with 'dst host fd00:beef::1' at column 1: the addresses are of the other IP version",
    OR,
  ],
  [
    "src 198.18.0.0/15 dst fd00::1",
    "'dst fd00::1' at column 19 conflicts with 'src 198.18.0.0/15' at column 1: no packet has an IPv4 and an IPv6 address",
    OR,
  ],
  [
    "arp and port 80",
    "'port 80' at column 9 conflicts with 'arp' at column 1: ports need TCP or UDP over IP",
    OR,
  ],
  [
    "arp host 198.18.0.1",
    "'host 198.18.0.1' at column 5 conflicts with 'arp' at column 1: addresses need IPv4 or IPv6",
    OR,
  ],
  [
    "tcp and ether proto 0x88cc",
    "'ether proto 0x88cc' at column 9 conflicts with 'tcp' at column 1: 'tcp' needs IPv4 or IPv6",
    OR,
  ],
  [
    "arp udp",
    "'udp' at column 5 conflicts with 'arp' at column 1: an IP protocol needs IPv4 or IPv6",
    OR,
  ],
  [
    "icmp port 80",
    "'port 80' at column 6 conflicts with 'icmp' at column 1: ports need TCP or UDP",
    OR,
  ],
  [
    "dport 53 proto 47",
    "'proto 47' at column 10 conflicts with 'dport 53' at column 1: ports need TCP or UDP",
    OR,
  ],
  ["vlan 4095", "vlan id 4095 at column 6 is out of range (0-4094)", "VLAN ids are 0-4094"],
  [
    "proto 256",
    "protocol 256 at column 7 is out of range (0-255)",
    "IP protocol numbers are 0-255; tcp, udp, icmp and icmp6 are terms of their own",
  ],
  [
    "proto tcp",
    "'tcp' at column 7 is not a number",
    "IP protocol numbers are 0-255; tcp, udp, icmp and icmp6 are terms of their own",
  ],
  [
    "ether proto 0x10000",
    "EtherType 0x10000 at column 13 is out of range (0-0xffff)",
    "EtherTypes are 0-0xffff",
  ],
  ["ether type 0x0800", "'type' at column 7 is not proto, src, dst or host after 'ether'", ETHER],
  ["ether", "'ether' at column 1 needs proto, src, dst or host after it", ETHER],
  ["ether proto", "'proto' at column 7 needs an EtherType after it", "e.g. 'ether proto 0x88cc'"],
  // MAC addresses
  ["ether src", "'src' at column 7 needs a MAC address after it", MAC],
  ["ether dst and tcp", "'dst' at column 7 needs a MAC address after it", MAC],
  ["ether src 02:00:5e:10:00", "'02:00:5e:10:00' at column 11 is not a MAC address", MAC],
  [
    "ether dst 02:00:5e:10:00:01:02",
    "'02:00:5e:10:00:01:02' at column 11 is not a MAC address",
    MAC,
  ],
  ["ether host 02:00-5e:10:00:01", "'02:00-5e:10:00:01' at column 12 is not a MAC address", MAC],
  ["ether src 002:00:5e:10:00:01", "'002:00:5e:10:00:01' at column 11 is not a MAC address", MAC],
  ["ether src 0g:00:5e:10:00:01", "'0g:00:5e:10:00:01' at column 11 is not a MAC address", MAC],
  ["ether src 02005e100001", "'02005e100001' at column 11 is not a MAC address", MAC],
  ["ether host 198.18.0.1", "'198.18.0.1' at column 12 is not a MAC address", MAC],
  [
    `ether src ${M1} ether src ${M2}`,
    `'ether src ${M2}' at column 29 gives a second source MAC address ('ether src ${M1}' at column 1)`,
    "a rule holds one source MAC address; to match either, write two rules",
  ],
  [
    `ether dst ${M1} and ether dst ${M1}`,
    `'ether dst ${M1}' at column 33 gives a second destination MAC address ('ether dst ${M1}' at column 1)`,
    "a rule holds one destination MAC address; to match either, write two rules",
  ],
  [
    `ether host ${M1} ether host ${M2}`,
    `'ether host ${M2}' at column 30 gives a second either-side MAC address ('ether host ${M1}' at column 1)`,
    "a rule holds one either-side MAC address; to match either, write two rules",
  ],
  [
    `ether host ${M1} ether src ${M2}`,
    `'ether src ${M2}' at column 30 conflicts with 'ether host ${M1}' at column 1: ${MAC_BOTH}`,
    MAC_SIDES,
  ],
  [
    `tcp ether dst ${M2} ether host ${M1}`,
    `'ether host ${M1}' at column 33 conflicts with 'ether dst ${M2}' at column 5: ${MAC_BOTH}`,
    MAC_SIDES,
  ],
  [
    `host ${M1}`,
    `'${M1}' at column 6 is a MAC address, not an IP address`,
    "MAC addresses are matched with 'ether src', 'ether dst' or 'ether host'",
  ],
  [
    "src 2:0:5e:10:0:1",
    "'2:0:5e:10:0:1' at column 5 is a MAC address, not an IP address",
    "MAC addresses are matched with 'ether src', 'ether dst' or 'ether host'",
  ],
  // ICMP type and code
  ["type 8", "'type 8' at column 1 needs icmp or icmp6 before it", ICMP_ORDER],
  ["code 0 and icmp", "'code 0' at column 1 needs icmp or icmp6 before it", ICMP_ORDER],
  [
    "type echo-request icmp",
    "'type echo-request' at column 1 needs icmp or icmp6 before it",
    ICMP_ORDER,
  ],
  ["ip and type 0", "'type 0' at column 8 needs icmp or icmp6 before it", ICMP_ORDER],
  [
    "tcp type 8",
    "'type 8' at column 5 conflicts with 'tcp' at column 1: ICMP types need icmp or icmp6",
    OR,
  ],
  [
    "ip proto 47 code 1",
    "'code 1' at column 13 conflicts with 'proto 47' at column 4: ICMP codes need icmp or icmp6",
    OR,
  ],
  [
    "port 80 type 8",
    "'type 8' at column 9 conflicts with 'port 80' at column 1: a packet has ports or an ICMP type, not both",
    OR,
  ],
  [
    "dst port 53 and code 3",
    "'code 3' at column 17 conflicts with 'dst port 53' at column 1: a packet has ports or an ICMP code, not both",
    OR,
  ],
  [
    "icmp type 8 port 80",
    "'port 80' at column 13 conflicts with 'icmp' at column 1: ports need TCP or UDP",
    OR,
  ],
  [
    "icmp type 8 and tcp",
    "'tcp' at column 17 conflicts with 'icmp' at column 1: a packet has one IP protocol",
    OR,
  ],
  [
    "icmp type 8 type 0",
    "'type 0' at column 13 conflicts with 'type 8' at column 6: a packet has one ICMP type",
    OR,
  ],
  [
    "icmp6 type echo-request type echo-reply",
    "'type echo-reply' at column 25 conflicts with 'type echo-request' at column 7: a packet has one ICMP type",
    OR,
  ],
  [
    "icmp code 1 code 2",
    "'code 2' at column 13 conflicts with 'code 1' at column 6: a packet has one ICMP code",
    OR,
  ],
  ["icmp type 256", "ICMP type 256 at column 11 is out of range (0-255)", ICMP_TYPES],
  ["icmp code 256", "ICMP code 256 at column 11 is out of range (0-255)", ICMP_CODES],
  ["icmp code x", "'x' at column 11 is not a number", ICMP_CODES],
  ["icmp6 type ping", "'ping' at column 12 is not an ICMP type", ICMP_TYPES],
  ["icmp type -1", "'-1' at column 11 is not an ICMP type", ICMP_TYPES],
  ["icmp6 type", "'type' at column 7 needs an ICMP type after it", ICMP_TYPES],
  ["icmp code and in", "'code' at column 6 needs an ICMP code after it", ICMP_CODES],
  [
    "icmp type neighbor-solicit",
    "'neighbor-solicit' at column 11 is an ICMPv6 type, but 'icmp' at column 1 makes the rule ICMP",
    "write 'icmp6 type neighbor-solicit', or a number for an ICMP type",
  ],
  [
    "proto 1 type Neighbor-Advert",
    "'Neighbor-Advert' at column 14 is an ICMPv6 type, but 'proto 1' at column 1 makes the rule ICMP",
    "write 'icmp6 type neighbor-advert', or a number for an ICMP type",
  ],
  ["src", "'src' at column 1 needs host, net or port after it", "e.g. 'src host 198.18.0.1'"],
  [
    "dst example.com",
    "'example.com' at column 5 is not host, net, port or an address after 'dst'",
    "e.g. 'dst host 198.18.0.1', 'dst net 198.18.0.0/15', 'dst port 80'",
  ],
  [
    "and tcp",
    "'and' at column 1 has no term before it",
    "'and' joins two terms, e.g. 'tcp and port 80'",
  ],
  ["tcp and", "'and' at column 5 has no term after it", "end the rule with a term"],
  [
    "tcp and and udp",
    "'and' at column 9 follows another 'and'",
    "'and' joins two terms, e.g. 'tcp and port 80'",
  ],
  ["tcp or udp", "'or' at column 5 is not a filter term", ""],
  ["constructor", "'constructor' at column 1 is not a filter term", ""],
  ["tcp __proto__", "'__proto__' at column 5 is not a filter term", ""],
  ["tcp dst port 80 syn", "'syn' at column 17 is not a filter term", ""],
];

Deno.test(`parseRule() refuses ${bad.length} bad rules with the word, its column and a hint`, () => {
  for (const [text, message, hint] of bad) {
    throws(() => parseRule(text), (e: unknown) => {
      ok(e instanceof BeltError, `${text}: a BeltError`);
      const full = text.trim() ? `filter '${text}': ${message}` : message;
      equal(e.message, full);
      if (hint) equal(e.hint, hint, text);
      else ok(e.hint.startsWith("terms are tcp, udp"), text);
      return true;
    });
  }
});

Deno.test("the column of an error is where the offending word starts", () => {
  for (const [text, message] of bad) {
    const m = /at column (\d+)/.exec(message);
    if (!m) continue;
    const col = Number(m[1]);
    ok(col >= 1 && col <= text.length + 1, `${text}: column ${col}`);
    ok(/\s/.test(text[col - 2] ?? " ") || /[-/]/.test(text[col - 2]!), `${text}: col ${col}`);
  }
});

// ---------------------------------------------------------------------------------------------
// packRules

Deno.test("packRules() writes struct belt_rule rules[max], little-endian, zero-filled", () => {
  const r = parseRule("in vlan 100 ip udp src net 198.18.0.0/15 dst host 198.19.0.1 sport 53");
  const r2 = parseRule("ip6 net fd00:beef::/64 dport 8000-8080 port 1-2");
  const r3 = parseRule(`ether src ${M1} ether dst ${M2} icmp6 type 135 code 7`);
  const r4 = parseRule(`ether host ${M2}`);
  const packed = packRules([r, r2, r3, r4], 5);
  equal(packed.length, 5 * 104);
  const v = new DataView(packed.buffer);
  equal(v.getUint32(0, true), r.fields);
  equal(v.getUint16(4, true), 0x0800);
  equal(packed[6], 17);
  equal(packed[7], 1);
  equal(v.getUint16(8, true), 100);
  deepEqual([v.getUint16(10, true), v.getUint16(12, true)], [53, 53]);
  deepEqual([packed[22], packed[23], packed[24]], [111, 128, 0]);
  deepEqual(Array.from(packed.subarray(25, 32)), [0, 0, 0, 0, 0, 0, 0]);
  equal(hex(packed.subarray(32, 48)), hex(v4("198.18.0.0")));
  equal(hex(packed.subarray(48, 64)), hex(v4("198.19.0.1")));
  ok(packed.subarray(80, 104).every((x) => x === 0), "MACs, ICMP and pad2 zero when unused");
  // Rule 1 starts at 104 (the C array stride).
  deepEqual([v.getUint16(104 + 14, true), v.getUint16(104 + 16, true)], [8000, 8080]);
  deepEqual([v.getUint16(104 + 18, true), v.getUint16(104 + 20, true)], [1, 2]);
  deepEqual(Array.from(packed.subarray(104 + 22, 104 + 32)), [0, 0, 64, 0, 0, 0, 0, 0, 0, 0]);
  equal(hex(packed.subarray(104 + 64, 104 + 80)), hex(v6("fd00:beef::")));
  // Rule 2: struct offsets 80 src_mac, 86 dst_mac, 92 any_mac, 98 icmp_type, 99 icmp_code.
  const at = 2 * 104;
  equal(v.getUint32(at, true), BELT_M_SMAC | BELT_M_DMAC | ETH | L4 | TYPE | CODE);
  equal(hex(packed.subarray(at + 80, at + 86)), hex(mac(M1)));
  equal(hex(packed.subarray(at + 86, at + 92)), hex(mac(M2)));
  ok(packed.subarray(at + 92, at + 98).every((x) => x === 0), "no any_mac");
  deepEqual([packed[at + 98], packed[at + 99]], [135, 7]);
  ok(packed.subarray(at + 100, at + 104).every((x) => x === 0), "pad2 is zero");
  equal(v.getUint32(3 * 104, true), BELT_M_MAC);
  equal(hex(packed.subarray(3 * 104 + 92, 3 * 104 + 98)), hex(mac(M2)));
  ok(packed.subarray(4 * 104).every((x) => x === 0), "unused entries are zero");
  deepEqual(beltRule.unpack(packed.subarray(104)).dst_len, 0);
  equal(packRules([], 16).length, 16 * 104);
});

Deno.test("ruleFromStruct() turns packRules() bytes back into the rule formatRule() shows", () => {
  const rules = good.map((g) => parseRule(g.text));
  const packed = packRules(rules, rules.length);
  rules.forEach((rule, i) => {
    const s = beltRule.unpack(packed.subarray(i * 104, (i + 1) * 104));
    const back = ruleFromStruct(s);
    deepEqual(body(back), body(rule), rule.text);
    equal(formatRule(back), formatRule(rule), rule.text);
    equal(back.text, formatRule(rule), "text defaults to the canonical form");
    equal(ruleFromStruct(s, "from map").text, "from map");
    // The rule owns its bytes: the struct can be reused.
    s.src_mac.fill(0xee);
    s.any.fill(0xee);
    deepEqual(body(back), body(rule), `${rule.text}: no shared buffers`);
  });
  // What the kernel holds is shown even when parseRule() would not have written it.
  const raw = ruleFromStruct(beltRule.unpack(packRules([{
    ...parseRule("tcp"),
    fields: BELT_M_ICMP_TYPE | BELT_M_DIR,
    direction: 3,
    icmpType: 8,
  }], 1)));
  equal(raw.text, "direction 3 type 8");
});

Deno.test("packRules() refuses more rules than fit, and fields C cannot hold", () => {
  const tcp = parseRule("tcp");
  throws(() => packRules([tcp, tcp, tcp], 2), {
    name: "BeltError",
    message: "3 filter rules given, at most 2 fit",
  });
  const broken: [Partial<Rule>, string][] = [
    [{ srcLen: 129 }, "srcLen 129 is outside 0-128"],
    [{ portHi: 65536 }, "portHi 65536 is outside 0-65535"],
    [{ fields: 1 << 15 }, "fields 0x8000 has unknown bits"],
    [{ any: new Uint8Array(4) }, "any has 4 bytes, not 16"],
    [{ srcMac: new Uint8Array(5) }, "srcMac has 5 bytes, not 6"],
    [{ anyMac: new Uint8Array(16) }, "anyMac has 16 bytes, not 6"],
    [{ icmpType: 256 }, "icmpType 256 is outside 0-255"],
    [{ icmpCode: -1 }, "icmpCode -1 is outside 0-255"],
    [{ dst: v4("198.18.0.1"), dstLen: 120 }, "dst has bits set past /120"],
  ];
  for (const [change, what] of broken) {
    throws(() => packRules([tcp, { ...tcp, ...change }], 2), {
      name: "BeltError",
      message: `rule 1 ('tcp'): ${what}`,
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Layouts against the compiled object's BTF (no root needed: BTF is read before load)

/** camelCase to the C member name. */
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function assertLayout(codec: StructCodec<unknown>, name: string, rename = (s: string) => s) {
  using obj = BpfObject.open(matchRuleObject);
  const btf = obj.btfStruct(name);
  deepEqual(
    { size: codec.size, members: codec.layout.map((f) => ({ ...f, name: rename(f.name) })) },
    { size: btf.size, members: btf.members },
    name,
  );
}

Deno.test("beltRule matches struct belt_rule in match_rule.bpf.o's BTF, member by member", () => {
  assertLayout(beltRule as StructCodec<unknown>, "belt_rule");
  equal(beltRule.size, 104);
  deepEqual(
    beltRule.layout.slice(-6).map((f) => [f.name, f.offset, f.size]),
    [
      ["src_mac", 80, 6],
      ["dst_mac", 86, 6],
      ["any_mac", 92, 6],
      ["icmp_type", 98, 1],
      ["icmp_code", 99, 1],
      ["pad2", 100, 4],
    ],
  );
  // And packRules lays rules out at the stride C uses for an array of them.
  using obj = BpfObject.open(matchRuleObject);
  const rules = obj.btfStruct("match_rules");
  deepEqual(rules.members.map((m) => [m.name, m.offset, m.size]), [
    ["rule", 0, MAX_RULES * 104],
    ["count", MAX_RULES * 104, 4],
  ]);
});

Deno.test("beltPacket matches struct belt_packet in match_rule.bpf.o's BTF", () => {
  assertLayout(beltPacket as StructCodec<unknown>, "belt_packet", snake);
  using obj = BpfObject.open(matchRuleObject);
  const o = obj.btfStruct("match_out");
  deepEqual(o.members.map((m) => [m.name, m.offset, m.size]), [
    ["pkt", 0, 80],
    ["verdict", 80, MAX_RULES * 2],
  ]);
});

// ---------------------------------------------------------------------------------------------
// ruleMatches on hand-built packets

function packet(p: Partial<ParsedPacket>): ParsedPacket {
  return {
    flags: 0,
    ethProto: 0,
    l4Proto: 0,
    srcAddr: new Uint8Array(16),
    dstAddr: new Uint8Array(16),
    srcPort: 0,
    dstPort: 0,
    vlanOuter: 0,
    srcMac: new Uint8Array(6),
    dstMac: new Uint8Array(6),
    icmpType: 0,
    icmpCode: 0,
    ...p,
  };
}

Deno.test("ruleMatches() follows belt_rule_match() on hand-built packets", () => {
  const tcp4 = packet({
    flags: BELT_F_L3 | BELT_F_L4,
    ethProto: 0x0800,
    l4Proto: 6,
    srcAddr: v4("198.18.0.1"),
    dstAddr: v4("198.19.1.2"),
    srcPort: 40000,
    dstPort: 80,
  });
  const later = { ...tcp4, flags: BELT_F_L3 | BELT_F_VLAN, vlanOuter: 10, srcPort: 0, dstPort: 0 };
  const cut = { ...tcp4, flags: 0 }; // IP header cut: no L3, fields zero or right
  const udp6 = packet({
    flags: BELT_F_L3 | BELT_F_L4,
    ethProto: 0x86dd,
    l4Proto: 17,
    srcAddr: v6("fd00:beef::1"),
    dstAddr: v6("fd00:beef:0:1::2"),
    srcPort: 53,
    dstPort: 5353,
  });
  const arp = packet({ ethProto: 0x0806, flags: BELT_F_VLAN, vlanOuter: 0 });
  const ping = packet({
    flags: BELT_F_L2 | BELT_F_L3 | BELT_F_L4,
    ethProto: 0x0800,
    l4Proto: 1,
    srcAddr: v4("198.18.0.1"),
    dstAddr: v4("198.19.0.1"),
    srcMac: mac(M1),
    dstMac: mac(M2),
    icmpType: 8,
    icmpCode: 0,
  });
  const pingNoL2 = { ...ping, flags: BELT_F_L3 | BELT_F_L4 };
  const pingLater = { ...ping, flags: BELT_F_L2 | BELT_F_L3, icmpType: 0 }; // no ICMP header
  const ns = packet({
    flags: BELT_F_L2 | BELT_F_L3 | BELT_F_L4,
    ethProto: 0x86dd,
    l4Proto: 58,
    srcAddr: v6("fd00:beef::1"),
    dstAddr: v6("ff02::1:ff00:2"),
    srcMac: mac(M2),
    dstMac: mac("33:33:ff:00:00:02"),
    icmpType: 135,
  });
  const zeroL2 = packet({ flags: BELT_F_L2 }); // all-zero MACs, read
  const cutL2 = packet({}); // all-zero MACs, not read
  const table: [string, ParsedPacket, 1 | 2, boolean][] = [
    ["tcp", tcp4, 1, true],
    ["tcp", cut, 1, false],
    ["ip", cut, 1, true],
    ["udp", tcp4, 1, false],
    ["in", tcp4, 1, true],
    ["in", tcp4, 2, false],
    ["out tcp", tcp4, 2, true],
    ["dport 80", tcp4, 1, true],
    ["sport 80", tcp4, 1, false],
    ["port 80", tcp4, 1, true],
    ["port 40000-40001", tcp4, 1, true],
    ["port 81-39999", tcp4, 1, false],
    ["dport 80", later, 1, false], // later fragment: no ports
    ["tcp", later, 1, true], // ... but its protocol is known
    ["vlan", later, 1, true],
    ["vlan 10", later, 1, true],
    ["vlan 11", later, 1, false],
    ["vlan", tcp4, 1, false],
    ["vlan 0", arp, 1, true],
    ["vlan", arp, 1, true],
    ["arp", arp, 1, true],
    ["net ::/0", arp, 1, false], // addresses need L3
    ["net ::/0", tcp4, 1, true],
    ["net ::/0", udp6, 1, true],
    ["net 0.0.0.0/0", udp6, 1, false],
    ["net 0.0.0.0/0", tcp4, 1, true],
    ["src net 198.18.0.0/15", tcp4, 1, true],
    ["dst net 198.18.0.0/15", tcp4, 1, true],
    ["dst net 198.18.0.0/16", tcp4, 1, false],
    ["host 198.19.1.2", tcp4, 1, true],
    ["src host 198.19.1.2", tcp4, 1, false],
    ["net fd00:beef::/64", udp6, 1, true],
    ["dst net fd00:beef::/64", udp6, 1, false],
    ["dst net fd00:beef::/63", udp6, 1, true],
    ["icmp6", udp6, 1, false],
    ["ip6 udp sport 53 dport 5353 src fd00:beef::1 in", udp6, 1, true],
    ["ip6 udp sport 53 dport 5353 src fd00:beef::1 in", udp6, 2, false],
    [`ether src ${M1}`, ping, 1, true],
    [`ether src ${M2}`, ping, 1, false],
    [`ether dst ${M2}`, ping, 1, true],
    [`ether src ${M1} ether dst ${M2}`, ping, 1, true],
    [`ether src ${M2} ether dst ${M1}`, ping, 1, false],
    [`ether host ${M1}`, ping, 1, true],
    [`ether host ${M2}`, ping, 1, true],
    ["ether host 02:00:5e:10:00:03", ping, 1, false],
    [`ether host ${M2}`, ns, 1, true],
    ["ether dst 33:33:ff:00:00:02", ns, 1, true],
    [`ether src ${M1}`, pingNoL2, 1, false], // MACs need L2
    [`ether host ${M1}`, pingNoL2, 1, false],
    ["ether src 00:00:00:00:00:00", zeroL2, 1, true],
    ["ether host 00:00:00:00:00:00", zeroL2, 1, true],
    ["ether src 00:00:00:00:00:00", cutL2, 1, false],
    ["ether dst 00:00:00:00:00:00", cutL2, 1, false],
    ["icmp", ping, 1, true],
    ["icmp type 8", ping, 1, true],
    ["icmp type echo-request code 0", ping, 1, true],
    ["icmp type 0", ping, 1, false],
    ["icmp code 1", ping, 1, false],
    ["icmp code 0", ping, 1, true],
    ["proto 1 type 8", ping, 1, true],
    ["icmp type 8", pingNoL2, 1, true], // L2 is not needed for ICMP
    ["icmp type 8", pingLater, 1, false], // no ICMP header: no type
    ["icmp code 0", pingLater, 1, false],
    ["icmp", pingLater, 1, true],
    ["icmp6 type neighbor-solicit", ns, 2, true],
    ["icmp6 type 135 code 0", ns, 1, true],
    ["icmp6 type echo-request", ns, 1, false],
    ["icmp type 135", ns, 1, false], // ICMP is IPv4
    [`in ether src ${M1} icmp src host 198.18.0.1 type echo-request`, ping, 1, true],
    [`in ether src ${M1} icmp src host 198.18.0.1 type echo-request`, ping, 2, false],
  ];
  for (const [text, pkt, dir, want] of table) {
    equal(ruleMatches(parseRule(text), pkt, dir), want, `${text} (dir ${dir})`);
  }
  // Raw rules (no protocol condition): the type needs an ICMP or ICMPv6 header all the same.
  const raw = (r: Partial<Rule>) => ({ ...parseRule("in"), fields: 0, ...r });
  equal(ruleMatches(raw({ fields: BELT_M_ICMP_TYPE, icmpType: 0 }), tcp4, 1), false);
  equal(ruleMatches(raw({ fields: BELT_M_ICMP_CODE, icmpCode: 0 }), udp6, 1), false);
  equal(ruleMatches(raw({ fields: BELT_M_ICMP_TYPE, icmpType: 135 }), ns, 1), true);
  equal(ruleMatches(raw({ fields: BELT_M_ICMP_TYPE, icmpType: 8 }), ping, 1), true);
});

// ---------------------------------------------------------------------------------------------
// Random frames, built from a model of what belt_parse() should see

/** A small seeded PRNG (mulberry32): the same frames and rules on every run. */
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
    bytes: (n: number) => Array.from({ length: n }, () => int(256)),
  };
}
type Rand = ReturnType<typeof prng>;

const TCP = 6, UDP = 17, ICMP = 1, ICMPV6 = 58;
const HOP = 0, RTG = 43, FRG = 44, DST = 60;

function addr4(r: Rand): string {
  const x = r.int(100);
  if (x < 35) return `198.18.${r.int(2)}.${1 + r.int(4)}`;
  if (x < 60) return `198.19.${r.int(3)}.${r.int(256)}`;
  if (x < 85) return `198.18.${r.int(256)}.${r.int(256)}`;
  return r.bytes(4).join(".");
}
function addr6(r: Rand): Bytes {
  const x = r.int(100);
  if (x < 30) return v6(`fd00:beef::${1 + r.int(4)}`);
  if (x < 50) return v6(`fd00:beef:0:${r.int(3)}::${r.int(0x10000).toString(16)}`);
  if (x < 75) return v6(`fd00:beef:${r.int(0x10000).toString(16)}::${r.int(16).toString(16)}`);
  if (x < 80) return v4(addr4(r)); // IPv4-mapped on the wire: matched as IPv4 by belt_match
  return cat(r.bytes(16));
}
const COMMON_PORTS = [0, 22, 53, 80, 443, 1023, 1024, 5353, 8000, 8080, 65535];
const port = (r: Rand) => r.chance(0.6) ? r.pick(COMMON_PORTS) : r.int(65536);
/** Rules name the common ports more often than frames carry them, so that they hit. */
const rulePort = (r: Rand) => r.chance(0.9) ? r.pick(COMMON_PORTS) : r.int(65536);
/** MACs of the frames, mostly from a small pool so that rules naming them hit. The zero MAC is
 * also what belt_packet holds when the Ethernet header was not read (no BELT_F_L2). */
const MAC_POOL = [
  M1,
  M2,
  "02:00:5e:10:00:03",
  "33:33:00:00:00:01",
  "ff:ff:ff:ff:ff:ff",
  "00:00:00:00:00:00",
];
const frameMac = (r: Rand) => r.chance(0.85) ? mac(r.pick(MAC_POOL)) : cat(r.bytes(6));
const ruleMac = (r: Rand) => r.chance(0.9) ? mac(r.pick(MAC_POOL)) : cat(r.bytes(6));
/** ICMP and ICMPv6 types and codes the frames carry most of the time (and rules name). */
const ICMP4_TYPES = [0, 3, 5, 8, 11];
const ICMP6_TYPES = [1, 3, 128, 129, 133, 134, 135, 136, 137];
const ICMP_CODE_POOL = [0, 0, 1, 3, 4];
const icmpType = (r: Rand, six: boolean, p: number) =>
  r.chance(p) ? r.pick(six ? ICMP6_TYPES : ICMP4_TYPES) : r.int(256);
const icmpCode = (r: Rand, p: number) => r.chance(p) ? r.pick(ICMP_CODE_POOL) : r.int(256);

interface Frame {
  frame: Bytes;
  /** What belt_parse() must report, for the fields rules read; undefined: not modelled. */
  model?: ParsedPacket;
  /** Bytes the parser must see for the model to hold (a cut from here on changes nothing). */
  need: number;
}

interface L4Part {
  bytes: Bytes;
  hdr: number; // header length belt_parse reads
  ports?: [number, number];
  icmp?: [number, number]; // type, code
  malformed?: boolean;
}

function l4Header(r: Rand, proto: number, icmpProto: number): L4Part | undefined {
  const payload = r.bytes(r.int(24));
  if (proto === TCP) {
    const malformed = r.chance(0.02);
    const doff = malformed ? r.int(5) : 5 + (r.chance(0.3) ? r.int(11) : 0);
    const [sp, dp] = [port(r), port(r)];
    const opts = Array(Math.max(0, doff - 5) * 4).fill(1);
    const hdr = cat(n16(sp), n16(dp), n32(r.int(2 ** 32)), n32(0), [doff << 4, r.int(256)]);
    return {
      bytes: cat(hdr, n16(65535), [0, 0, 0, 0], opts, payload),
      hdr: malformed ? 20 : doff * 4,
      ports: [sp, dp],
      malformed,
    };
  }
  if (proto === UDP) {
    const [sp, dp] = [port(r), port(r)];
    return {
      bytes: cat(n16(sp), n16(dp), n16(8 + payload.length), [0, 0], payload),
      hdr: 8,
      ports: [sp, dp],
    };
  }
  if (proto === icmpProto) {
    const type = icmpType(r, icmpProto === ICMPV6, 0.75), code = icmpCode(r, 0.8);
    return { bytes: cat([type, code, 0, 0], r.bytes(4), payload), hdr: 8, icmp: [type, code] };
  }
  return undefined; // a protocol belt_parse does not read: just payload
}

function l4Proto(r: Rand, six: boolean): number {
  const icmp = six ? ICMPV6 : ICMP, other = six ? ICMP : ICMPV6;
  const p = r.pick([TCP, TCP, TCP, UDP, UDP, UDP, icmp, icmp, other, 47, 0, 59, r.int(256)]);
  // Over IPv6, 0/43/44/60 would be extension headers, not an upper-layer protocol.
  return six && [HOP, RTG, FRG, DST].includes(p) ? 59 : p;
}

/** IPv4 from `l3` on: [bytes, model fields, header bytes needed, well-formed]. */
function ipv4(r: Rand, l3: number, m: ParsedPacket): [Bytes, number, boolean] {
  const proto = l4Proto(r, false);
  const optLen = r.chance(0.2) ? 4 * (1 + r.int(10)) : 0;
  const ihl = 5 + optLen / 4;
  const fragKind = r.int(100); // <80 whole, <88 first fragment, else later fragment
  const fragOff = fragKind < 88 ? 0 : 1 + r.int(8191);
  const mf = fragKind >= 80 && fragKind < 88 ? 1 : fragKind >= 88 ? r.int(2) : 0;
  const frag = (r.chance(0.3) ? 0x4000 : 0) | (mf << 13) | fragOff;
  const l4 = fragOff ? undefined : l4Header(r, proto, ICMP);
  const payload = l4 ? l4.bytes : cat(r.bytes(r.int(40)));
  const malformed = r.int(100) < 3 ? r.pick(["ihl", "version", "totlen"]) : undefined;
  const tot = malformed === "totlen"
    ? r.int(ihl * 4)
    : r.chance(0.05)
    ? r.int(65536)
    : ihl * 4 + payload.length;
  const src = addr4(r), dst = addr4(r);
  const head = cat(
    [
      (malformed === "version" ? r.pick([0, 6, 15]) : 4) << 4 |
      (malformed === "ihl" ? r.int(5) : ihl),
      0,
    ],
    n16(tot),
    n16(r.int(65536)),
    n16(frag),
    [1 + r.int(255), proto, 0, 0],
    src.split(".").map(Number),
    dst.split(".").map(Number),
    Array(optLen).fill(1),
  );
  const wellFormed = !malformed && !l4?.malformed && (tot === 0 || tot >= ihl * 4);
  m.flags |= BELT_F_L3 | (l4 ? BELT_F_L4 : 0);
  m.l4Proto = proto;
  m.srcAddr = v4(src);
  m.dstAddr = v4(dst);
  if (l4?.ports) [m.srcPort, m.dstPort] = l4.ports;
  if (l4?.icmp) [m.icmpType, m.icmpCode] = l4.icmp;
  return [cat(head, payload), l3 + ihl * 4 + (l4 ? l4.hdr : 0), wellFormed];
}

function ipv6(r: Rand, l3: number, m: ParsedPacket): [Bytes, number, boolean] {
  // Extension chain: hop-by-hop first if at all, then routing/destination options, at most one
  // fragment header anywhere; sometimes too long (EXT_LIMIT) or out of order (malformed).
  const n = r.chance(0.5) ? 0 : r.chance(0.9) ? 1 + r.int(3) : 4 + r.int(4);
  const kinds: number[] = [];
  for (let i = 0; i < n; i++) kinds.push(i === 0 && r.chance(0.4) ? HOP : r.pick([DST, RTG]));
  let fragAt = -1, fragOff = 0, mf = 0;
  if (n && r.chance(0.4)) {
    fragAt = r.int(n);
    if (kinds[fragAt] === HOP) fragAt = Math.min(n - 1, fragAt + 1);
    kinds[fragAt] = FRG;
    const k = r.int(3); // atomic, first, later
    fragOff = k === 2 ? 1 + r.int(8191) : 0;
    mf = k === 0 ? 0 : k === 1 ? 1 : r.int(2);
  }
  const badOrder = r.int(100) < 2;
  if (badOrder && n >= 2) kinds[1 + r.int(n - 1)] = r.pick([HOP, FRG]);
  const proto = l4Proto(r, true);
  const later = fragAt >= 0 && fragOff > 0;
  const l4 = later ? undefined : l4Header(r, proto, ICMPV6);
  let inner: Bytes = l4 ? l4.bytes : cat(r.bytes(r.int(40)));
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
  const malformedVersion = r.int(100) < 2;
  const plen = r.chance(0.05) ? r.int(65536) : inner.length;
  const src = addr6(r), dst = addr6(r);
  const head = cat(
    n32(((malformedVersion ? r.pick([0, 4, 7]) : 6) << 28 | r.int(1 << 28)) >>> 0),
    n16(plen),
    [n ? kinds[0]! : proto, 1 + r.int(255)],
    src,
    dst,
  );
  const frags = kinds.filter((k) => k === FRG).length;
  const hopLater = kinds.slice(1).includes(HOP);
  const wellFormed = !malformedVersion && n <= 6 && frags <= 1 && !hopLater && !l4?.malformed;
  m.flags |= BELT_F_L3 | (l4 ? BELT_F_L4 : 0);
  // A later fragment names the header after the fragment header.
  m.l4Proto = later ? (fragAt === n - 1 ? proto : kinds[fragAt + 1]!) : proto;
  m.srcAddr = src;
  m.dstAddr = dst;
  if (l4?.ports) [m.srcPort, m.dstPort] = l4.ports;
  if (l4?.icmp) [m.icmpType, m.icmpCode] = l4.icmp;
  // A later fragment stops the parse right after its fragment header.
  const laterEnd = l3 + 40 + (later ? extLenUpTo(inner, kinds, fragAt) : 0);
  return [cat(head, inner), later ? laterEnd : l3 + 40 + extLen + (l4 ? l4.hdr : 0), wellFormed];
}

/** Bytes of the extension headers up to and including index `last` (chain starts `chain`). */
function extLenUpTo(chain: Uint8Array, kinds: number[], last: number): number {
  let at = 0;
  for (let i = 0; i <= last; i++) at += kinds[i] === FRG ? 8 : 8 + 8 * chain[at + 1]!;
  return at;
}

function randomFrame(r: Rand): Frame {
  const m: ParsedPacket = {
    flags: 0,
    ethProto: 0,
    l4Proto: 0,
    srcAddr: new Uint8Array(16),
    dstAddr: new Uint8Array(16),
    srcPort: 0,
    dstPort: 0,
    vlanOuter: 0,
    srcMac: frameMac(r),
    dstMac: frameMac(r),
    icmpType: 0,
    icmpCode: 0,
  };
  const t = r.int(100);
  const tags = t < 70 ? 0 : t < 88 ? 1 : t < 98 ? 2 : 3;
  const vids = Array.from(
    { length: tags },
    () => r.chance(0.7) ? r.pick([0, 10, 100, 4094]) : r.int(4096),
  );
  const kind = r.int(100);
  const ethType = kind < 45
    ? 0x0800
    : kind < 88
    ? 0x86dd
    : kind < 95
    ? 0x0806
    : r.pick([0x88cc, 0x8847, 0x0000, 0x05dc, 0x9000]);
  const tpids = vids.map(() => r.pick([0x8100, 0x88a8]));
  const l2 = cat(
    m.dstMac,
    m.srcMac,
    ...vids.map((v, i) => cat(n16(tpids[i]!), n16(r.int(16) << 12 | v))),
    n16(ethType),
  );
  const l3 = l2.length;
  // Ethernet and the first two tags are read whole whenever the model is checked (need >= that).
  m.flags |= BELT_F_L2 | (tags ? BELT_F_VLAN : 0);
  m.vlanOuter = vids[0] ?? 0;
  let l3Bytes: Bytes, need = l3, wellFormed = true;
  if (tags > 2) {
    // A third tag is not read: the EtherType is the third tag's TPID, nothing past L2.
    m.ethProto = tpids[2]!;
    l3Bytes = cat(r.bytes(40));
    need = 14 + 8;
  } else {
    m.ethProto = ethType;
    if (ethType === 0x0800) [l3Bytes, need, wellFormed] = ipv4(r, l3, m);
    else if (ethType === 0x86dd) [l3Bytes, need, wellFormed] = ipv6(r, l3, m);
    else l3Bytes = cat(r.bytes(ethType === 0x0806 ? 28 : r.int(46)));
  }
  let frame = cat(l2, l3Bytes);
  if (r.chance(0.3)) {
    // Cut somewhere, mostly inside the headers.
    const end = Math.max(need + 8, 15);
    frame = frame.slice(0, Math.min(frame.length, 14 + r.int(end - 13)));
  }
  return { frame, model: wellFormed ? m : undefined, need };
}

// ---------------------------------------------------------------------------------------------
// Random rules: mostly parsed from random text (so formatRule round trips get exercised too),
// some built field by field to reach what the parser never emits (direction 0, lo > hi, ...).

const V4_NETS = [
  "198.18.0.0/15",
  "198.18.0.0/16",
  "198.18.0.0/23",
  "198.18.0.0/24",
  "198.18.1.0/24",
  "198.19.0.0/16",
  "198.19.1.0/24",
  "0.0.0.0/0",
  "192.0.0.0/2",
];
const V6_NETS = [
  "fd00:beef::/64",
  "fd00:beef::/32",
  "fd00:beef:0:1::/64",
  "fd00::/8",
  "::/0",
  "::ffff:0:0/96",
  "::ffff:198.18.0.0/111",
  "fd00:beef::/126",
];

function maskedText(r: Rand): string {
  // An address from the frame pools with a random prefix length, host bits cleared.
  if (r.chance(0.5)) {
    const a = addr4(r).split(".").map(Number);
    const len = r.int(33);
    const n = ((a[0]! << 24 | a[1]! << 16 | a[2]! << 8 | a[3]!) >>> 0) &
      (len ? ~0 << (32 - len) : 0);
    return `${[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".")}/${len}`;
  }
  const a = addr6(r), len = r.int(129);
  const out = a.map((x, i) => x & ((0xff00 >> Math.max(0, Math.min(8, len - 8 * i))) & 0xff));
  const g = Array.from({ length: 8 }, (_, i) => (out[2 * i]! << 8 | out[2 * i + 1]!).toString(16));
  return `${g.join(":")}/${len}`;
}

/** A MAC as a rule writes it: colons or dashes, any case, sometimes without leading zeros. */
function macText(r: Rand): string {
  const sep = r.pick([":", ":", "-"]);
  const text = Array.from(ruleMac(r), (x) => {
    const h = x.toString(16);
    return r.chance(0.2) ? h : h.padStart(2, "0");
  }).join(sep);
  return r.chance(0.3) ? text.toUpperCase() : text;
}

const ICMP_NAMES: Record<string, [number, number]> = { // name: [ICMP, ICMPv6]; -1: none
  "echo-reply": [0, 129],
  "dest-unreach": [3, 1],
  "redirect": [5, 137],
  "echo-request": [8, 128],
  "time-exceeded": [11, 3],
  "router-solicit": [10, 133],
  "neighbor-solicit": [-1, 135],
  "neighbor-advert": [-1, 136],
};

/** A protocol word and, mostly, an ICMP type and/or code after it. */
function icmpTerms(r: Rand): string {
  if (r.chance(0.04)) return r.pick(["type 8", "code 0", "type echo-request"]); // refused
  const six = r.chance(0.5);
  const out = [
    six
      ? r.pick(["icmp6", "icmpv6", "icmp6", "proto 58", "ip6 proto 58"])
      : r.pick(["icmp", "icmp", "proto 1", "ip proto 1"]),
  ];
  if (r.chance(0.85)) {
    const type = icmpType(r, six, 0.9);
    const names = Object.entries(ICMP_NAMES).filter(([, t]) => t[six ? 1 : 0] === type);
    out.push(`type ${names.length && r.chance(0.6) ? r.pick(names)[0] : type}`);
  }
  if (r.chance(0.45)) out.push(`code ${icmpCode(r, 0.9)}`);
  return out.join(r.chance(0.5) ? " and " : " ");
}

function randomTerm(r: Rand): string {
  switch (r.int(12)) {
    case 9:
      return `ether ${r.pick(["src", "dst", "host"])} ${macText(r)}`;
    case 10:
    case 11:
      return icmpTerms(r);
    case 0:
    case 1:
      return r.pick([
        "tcp",
        "udp",
        "icmp",
        "icmp6",
        "arp",
        "ip",
        "ip6",
        "proto 47",
        "proto 58",
        "proto 1",
        "ether proto 0x88cc",
        "ether proto 0x8100",
        "tcp",
        "udp",
      ]);
    case 2:
      return r.pick(["vlan", "vlan 10", "vlan 100", "vlan 0", "in", "out", "in", "out"]);
    case 3:
    case 4: {
      const side = r.pick(["", "src ", "dst "]);
      const x = r.int(4);
      if (x === 0) return `${side}host ${r.chance(0.5) ? addr4(r) : hexAddr(addr6(r))}`;
      if (x === 1) return `${side}net ${r.pick(V4_NETS)}`;
      if (x === 2) return `${side}net ${r.pick(V6_NETS)}`;
      return `${side}net ${maskedText(r)}`;
    }
    default: {
      const kw = r.pick(["port", "sport", "dport", "src port", "dst port", "port"]);
      if (r.chance(0.5)) return `${kw} ${rulePort(r)}`;
      const range = r.pick([
        "1-1023",
        "1024-65535",
        "80-443",
        "0-0",
        "53-53",
        "8000-8999",
        "0-65535",
      ]);
      if (r.chance(0.7)) return `${kw} ${range}`;
      const [a, b] = [rulePort(r), port(r)];
      return `${kw} ${Math.min(a, b)}-${Math.max(a, b)}`;
    }
  }
}
const hexAddr = (a: Uint8Array) =>
  Array.from({ length: 8 }, (_, i) => (a[2 * i]! << 8 | a[2 * i + 1]!).toString(16)).join(":");

function rawRule(r: Rand): Rule {
  let fields = 0; // one to four conditions, so that raw rules match now and then
  for (let n = 1 + r.int(4); n > 0; n--) fields |= 1 << r.int(15);
  const prefix = (): [Uint8Array, number] => {
    const a = r.chance(0.5) ? v4(addr4(r)) : addr6(r);
    const len = r.chance(0.5) ? 96 + r.int(33) : r.int(129);
    return [a.map((x, i) => x & ((0xff00 >> Math.max(0, Math.min(8, len - 8 * i))) & 0xff)), len];
  };
  const [src, srcLen] = prefix(), [dst, dstLen] = prefix(), [any, anyLen] = prefix();
  const range = () => {
    const [a, b] = [port(r), port(r)];
    return r.chance(0.85) ? [Math.min(a, b), Math.max(a, b)] : [a, b]; // sometimes lo > hi
  };
  const [sportLo, sportHi] = range(), [dportLo, dportHi] = range(), [portLo, portHi] = range();
  return {
    text: "(raw)",
    fields,
    ethProto: r.pick([0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, r.int(65536)]),
    l4Proto: r.pick([TCP, UDP, ICMP, ICMPV6, 47, 59, r.int(256)]),
    direction: r.pick([1, 2, 1, 2, 0, 3]),
    vlan: r.pick([BELT_VLAN_ANY, 0, 10, 100, r.int(4096)]),
    sportLo,
    sportHi,
    dportLo,
    dportHi,
    portLo,
    portHi,
    srcLen,
    dstLen,
    anyLen,
    src,
    dst,
    any,
    srcMac: ruleMac(r),
    dstMac: ruleMac(r),
    anyMac: ruleMac(r),
    icmpType: icmpType(r, r.chance(0.5), 0.8),
    icmpCode: icmpCode(r, 0.8),
  };
}

function randomRules(r: Rand, parsed: number, raw: number): { rules: Rule[]; refused: number } {
  const rules: Rule[] = [];
  let refused = 0;
  while (rules.length < parsed) {
    const terms = Array.from({ length: 1 + r.int(4) }, () => randomTerm(r));
    const text = terms.join(r.chance(0.5) ? " and " : " ");
    try {
      const rule = parseRule(text);
      deepEqual(body(parseRule(formatRule(rule))), body(rule), `round trip of '${text}'`);
      deepEqual(body(throughStruct(rule)), body(rule), `'${text}' through struct belt_rule`);
      rules.push(rule);
    } catch (e) {
      if (!(e instanceof BeltError)) throw e;
      refused++; // a conflict such as 'arp port 80': drawn again
    }
  }
  for (let i = 0; i < raw; i++) {
    const rule = rawRule(r);
    equal(formatRule(throughStruct(rule)), formatRule(rule));
    rules.push(rule);
  }
  return { rules, refused };
}

/** packRules(), beltRule.unpack(), ruleFromStruct(): what a plugin reads back from the kernel. */
const throughStruct = (rule: Rule) => ruleFromStruct(beltRule.unpack(packRules([rule], 1)));

// ---------------------------------------------------------------------------------------------
// The kernel differential test

const MAX_RULES = 512; // MATCH_MAX_RULES in tests/bpf/match_rule.bpf.c
const OUT_SIZE = 80 + MAX_RULES * 2; // struct match_out
const POISON = 0xa5;
const SEED = 0x5eed_be17;
const FRAMES = 30_000;
const PARSED_RULES = 320;
const RAW_RULES = 100;

/** The TC test run refuses (EINVAL) frames whose EtherType at 12 says IPv4/IPv6 but that are
 * too short for the bare IP header (see tests/packet_cursor_test.ts). */
function tcRefuses(frame: Uint8Array): boolean {
  const type = frame.length >= 14 ? (frame[12]! << 8) | frame[13]! : 0;
  return frame.length < 14 + (type === 0x0800 ? 20 : type === 0x86dd ? 40 : 0);
}

const describe = (p: ParsedPacket) =>
  JSON.stringify({
    ...p,
    srcAddr: hex(p.srcAddr),
    dstAddr: hex(p.dstAddr),
    srcMac: hex(p.srcMac),
    dstMac: hex(p.dstMac),
  });

kernelTest(
  "belt_rule_match() in the kernel equals ruleMatches() on random frames and rules",
  () => {
    const r = prng(SEED);
    const { rules, refused } = randomRules(r, PARSED_RULES, RAW_RULES);
    using obj = BpfObject.open(matchRuleObject);
    obj.load();
    const ruleBuf = new Uint8Array(MAX_RULES * beltRule.size + 4);
    ruleBuf.set(packRules(rules, MAX_RULES));
    new DataView(ruleBuf.buffer).setUint32(MAX_RULES * beltRule.size, rules.length, true);
    obj.map("rules").typed(u32, bytes(ruleBuf.length)).set(0, ruleBuf);
    const out = obj.map("out").typed(u32, bytes(OUT_SIZE));
    const poison = new Uint8Array(OUT_SIZE).fill(POISON);
    const prog = obj.program("match_rule");

    let ran = 0, skipped = 0, modelled = 0, compared = 0, hits = 0;
    const ruleHits = new Uint32Array(rules.length);
    const t0 = performance.now();
    for (let i = 0; i < FRAMES; i++) {
      const { frame, model, need } = randomFrame(r);
      if (tcRefuses(frame)) {
        skipped++;
        continue;
      }
      out.set(0, poison);
      prog.testRun(frame);
      ran++;
      const got = out.get(0)!;
      const pkt = beltPacket.unpack(got);
      const verdict = got.subarray(80);
      const where = () =>
        `frame ${i} (seed ${SEED}) ${hex(frame)}\n  kernel parse ${describe(pkt)}`;

      // The parse, where the generator knows what a well-formed frame holds.
      if (model && frame.length >= need) {
        modelled++;
        const keep = BELT_F_L2 | BELT_F_VLAN | BELT_F_L3 | BELT_F_L4;
        const mine = { ...model, flags: model.flags & keep };
        const theirs: ParsedPacket = {
          flags: pkt.flags & keep,
          ethProto: pkt.ethProto,
          l4Proto: pkt.l4Proto,
          srcAddr: pkt.srcAddr,
          dstAddr: pkt.dstAddr,
          srcPort: pkt.srcPort,
          dstPort: pkt.dstPort,
          vlanOuter: pkt.vlanOuter,
          srcMac: pkt.srcMac,
          dstMac: pkt.dstMac,
          icmpType: pkt.icmpType,
          icmpCode: pkt.icmpCode,
        };
        if (describe(mine) !== describe(theirs)) {
          fail(`${where()}\n  generator expected ${describe(mine)}`);
        }
      }

      // Every verdict: kernel against TypeScript on the kernel's own parse (and on the model).
      for (let k = 0; k < rules.length; k++) {
        for (const dir of [BELT_DIR_IN, BELT_DIR_OUT] as const) {
          const v = verdict[2 * k + dir - 1]!;
          if (v !== 0 && v !== 1) fail(`${where()}\n  rule ${k} dir ${dir}: verdict byte ${v}`);
          const want = ruleMatches(rules[k]!, pkt, dir);
          if ((v === 1) !== want) {
            fail(
              `${where()}\n  rule ${k} '${rules[k]!.text}' = '${
                formatRule(rules[k]!)
              }' dir ${dir}: ` +
                `kernel ${v === 1}, ruleMatches ${want}`,
            );
          }
          if (model && frame.length >= need && ruleMatches(rules[k]!, model, dir) !== want) {
            fail(`${where()}\n  rule ${k} '${rules[k]!.text}' dir ${dir}: model disagrees`);
          }
          compared++;
          if (v) {
            hits++;
            ruleHits[k]!++;
          }
        }
      }
      ok(verdict.subarray(2 * rules.length).every((x) => x === POISON), "wrote past the rules");
    }
    const ms = performance.now() - t0;
    const hitRules = ruleHits.filter((n) => n > 0).length;
    const hitParsed = ruleHits.subarray(0, PARSED_RULES).filter((n) => n > 0).length;
    // The newer conditions must be drawn often and hit, or the comparison proves little.
    const kinds = [
      ["MAC", BELT_M_SMAC | BELT_M_DMAC | BELT_M_MAC],
      ["ICMP type", BELT_M_ICMP_TYPE],
      ["ICMP code", BELT_M_ICMP_CODE],
    ] as const;
    const coverage = kinds.map(([name, bits]) => {
      const parsed = rules.slice(0, PARSED_RULES).map((x, k) => [x, k] as const)
        .filter(([x]) => x.fields & bits);
      const hit = parsed.filter(([, k]) => ruleHits[k]! > 0).length;
      return { name, parsed: parsed.length, hit };
    });
    console.log(
      `${ran} frames x ${rules.length} rules x 2 directions = ${compared} verdicts compared ` +
        `(${hits} matches; ${hitRules} rules matched something, ${hitParsed} of the ` +
        `${PARSED_RULES} parsed ones; ${modelled} parses checked against ` +
        `the generator; ${skipped} frames too short for a TC test run; ${refused} random rule ` +
        `texts refused as conflicting; parsed rules with ` +
        coverage.map((c) => `${c.name}: ${c.parsed}, ${c.hit} matched`).join("; ") +
        `) in ${Math.round(ms)} ms`,
    );
    for (const c of coverage) {
      const min = c.name === "ICMP code" ? 15 : 30;
      ok(c.parsed >= min, `${c.parsed} parsed rules with a ${c.name} condition`);
      ok(c.hit >= c.parsed * 0.6, `${c.hit} of ${c.parsed} ${c.name} rules matched`);
    }
    ok(ran >= 20_000, `${ran} frames ran`);
    ok(rules.length >= 300);
    ok(modelled >= ran / 2, `${modelled} of ${ran} frames modelled`);
    // The pools are narrow so that rules hit: most rules must match some frame, and not all do.
    ok(hitParsed >= PARSED_RULES * 0.75, `${hitParsed} of ${PARSED_RULES} parsed rules matched`);
    ok(hitRules >= rules.length * 0.65, `${hitRules} of ${rules.length} rules ever matched`);
    ok(hits > compared * 0.02 && hits < compared * 0.8, `${hits} of ${compared} verdicts matched`);
  },
);

Deno.test("parseRuleList() splits on 'or' and points errors at the column in the whole expression", () => {
  const rules = parseRuleList("tcp dport 80 or udp dport 53 OR icmp");
  deepEqual(rules.map((r) => r.text), ["tcp dport 80", "udp dport 53", "icmp"]);
  deepEqual(rules.map(formatRule), ["tcp dport 80", "udp dport 53", "icmp"]);
  for (
    const [text, message] of [
      ["tcp or or udp", "filter 'tcp or or udp': 'or' at column 8 has no rule before it"],
      ["or tcp", "filter 'or tcp': 'or' at column 1 has no rule before it"],
      ["tcp or", "filter 'tcp or': 'or' at column 5 has no rule after it"],
      [
        "tcp dport 80 or udp dport 99999",
        "filter 'tcp dport 80 or udp dport 99999': port 99999 at column 27 is out of range (0-65535)",
      ],
    ]
  ) {
    throws(() => parseRuleList(text!), (e: Error) => e.message === message);
  }
});

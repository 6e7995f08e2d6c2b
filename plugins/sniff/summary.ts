/**
 * How `belt sniff` shows a captured frame: a tcpdump-like one-line summary,
 * an L7 record line, or a JSON record. Headers come from
 * {@linkcode readFrameHeaders}, L7 fields from {@linkcode readL7}: both read
 * the captured bytes with the kernel filter's own rules.
 *
 * @module
 */
import type { CapturedFrame } from "../../bpf/mod.ts";
import { icmpTypeName } from "../rules.ts";
import { readFrameHeaders } from "./frame.ts";
import type { FrameHeaders } from "./frame.ts";
import { formatL7, readL7 } from "./l7.ts";
import type { L7Record } from "./l7.ts";

const PROTO_NAMES: Record<number, string> = { 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMP6" };
const ETHER_NAMES: Record<number, string> = { 0x0806: "ARP", 0x88cc: "LLDP", 0x8035: "RARP" };
const TCP_FLAGS = "FSRPAUEC"; // bit 0 (FIN) to bit 7 (CWR)

/**
 * TCP flags as tcpdump writes them: `S`, `S.`, `P.`, `F.`, `R` ... (`.` is ACK).
 *
 * @example
 * ```ts
 * import { tcpFlagsText } from "@belt/belt";
 * console.log(tcpFlagsText(0x12), tcpFlagsText(0x18)); // S. P.
 * ```
 */
export function tcpFlagsText(flags: number): string {
  let s = "";
  for (let bit = 0; bit < 8; bit++) {
    if (bit !== 4 && flags & (1 << bit)) s += TCP_FLAGS[bit];
  }
  return (flags & 0x10 ? s + "." : s) || "none";
}

/** Seconds.microseconds of the day (UTC), as tcpdump prints times. */
function clock(ns: bigint): string {
  const us = ns / 1000n;
  const day = Number(us % 86_400_000_000n);
  const h = Math.floor(day / 3_600_000_000), m = Math.floor(day / 60_000_000) % 60;
  const s = Math.floor(day / 1_000_000) % 60, frac = day % 1_000_000;
  const two = (n: number) => (n < 10 ? "0" : "") + n;
  return `${two(h)}:${two(m)}:${two(s)}.${String(frac).padStart(6, "0")}`;
}

function endpoint(addr: string | undefined, port: number | undefined): string {
  return port === undefined ? addr ?? "?" : `${addr}.${port}`;
}

/** What follows the addresses: protocol and its details. */
function l4Text(h: FrameHeaders): string {
  const proto = h.proto!;
  const name = PROTO_NAMES[proto] ?? `proto ${proto}`;
  if (h.laterFragment) return `${name} fragment`;
  if (proto === 6 && h.tcpFlags !== undefined) return `TCP [${tcpFlagsText(h.tcpFlags)}]`;
  if ((proto === 1 || proto === 58) && h.icmpType !== undefined) {
    const type = icmpTypeName(h.icmpType, proto === 58) ?? `type ${h.icmpType}`;
    return `${name} ${type}${h.icmpCode ? ` code ${h.icmpCode}` : ""}`;
  }
  return name;
}

/** The addresses part: `IP a.p > b.q` / `IP6 ...`, or the EtherType for non-IP frames. */
function l3Text(h: FrameHeaders): string {
  if (h.ipVersion === undefined) {
    return ETHER_NAMES[h.ethType] ?? `ethertype 0x${h.ethType.toString(16).padStart(4, "0")}`;
  }
  const ip = h.ipVersion === 6 ? "IP6" : "IP";
  return `${ip} ${endpoint(h.src, h.sport)} > ${endpoint(h.dst, h.dport)}`;
}

/**
 * One line for a frame, tcpdump-like: time (UTC), direction, VLAN, addresses
 * and ports, protocol details (or the L7 record when given), wire length.
 *
 * @example
 * ```ts
 * import { formatFrame, readFrameHeaders } from "@belt/belt";
 * const data = new Uint8Array(60);
 * data.set([0x08, 0x06], 12); // ARP
 * const frame = { data, wireLength: 60, timestampNs: 3_723_000_001_000n, direction: "in" as const };
 * console.log(formatFrame(frame, readFrameHeaders(data))); // 01:02:03.000001 in ARP length 60
 * ```
 */
export function formatFrame(frame: CapturedFrame, h: FrameHeaders, l7?: L7Record): string {
  const vlan = h.vlan === undefined ? "" : `vlan ${h.vlan} `;
  const head = `${clock(frame.timestampNs)} ${frame.direction} ${vlan}${l3Text(h)}`;
  if (l7) return `${head} ${formatL7(l7)}`;
  const detail = h.proto === undefined ? "" : `: ${l4Text(h)}`;
  return `${head}${detail} length ${frame.wireLength}`;
}

/** A frame as a JSON-ready record (see {@linkcode frameRecord}). */
export interface FrameRecord {
  /** Seconds since the Unix epoch, to the microsecond. */
  ts: number;
  /** "in" or "out". */
  dir: "in" | "out";
  /** Bytes on the wire. */
  len: number;
  /** Bytes captured. */
  caplen: number;
  /** Outer VLAN id. */
  vlan?: number;
  /** EtherType, e.g. "0x0800". */
  ethType: string;
  /** Source address. */
  src?: string;
  /** Destination address. */
  dst?: string;
  /** "tcp", "udp", "icmp", "icmp6", or the IP protocol number. */
  proto?: string | number;
  /** TCP/UDP source port. */
  sport?: number;
  /** TCP/UDP destination port. */
  dport?: number;
  /** TCP flags, tcpdump style. */
  flags?: string;
  /** ICMP/ICMPv6 type. */
  icmpType?: number;
  /** ICMP/ICMPv6 code. */
  icmpCode?: number;
  /** A fragment other than the first. */
  fragment?: true;
  /** The L7 record, when one was asked for. */
  l7?: L7Record;
}

/**
 * The JSON record of a frame (`belt sniff --json`): absent fields were not
 * in the captured bytes.
 *
 * @example
 * ```ts
 * import { frameRecord, readFrameHeaders } from "@belt/belt";
 * const data = new Uint8Array(60);
 * data.set([0x08, 0x06], 12);
 * const frame = { data, wireLength: 60, timestampNs: 1_500_000_000n, direction: "out" as const };
 * console.log(JSON.stringify(frameRecord(frame, readFrameHeaders(data))));
 * // {"ts":1.5,"dir":"out","len":60,"caplen":60,"ethType":"0x0806"}
 * ```
 */
export function frameRecord(frame: CapturedFrame, h: FrameHeaders, l7?: L7Record): FrameRecord {
  const r: FrameRecord = {
    ts: Number(frame.timestampNs / 1000n) / 1e6,
    dir: frame.direction,
    len: frame.wireLength,
    caplen: frame.data.length,
    ethType: `0x${h.ethType.toString(16).padStart(4, "0")}`,
  };
  if (h.vlan !== undefined) r.vlan = h.vlan;
  if (h.ipVersion !== undefined) {
    r.src = h.src;
    r.dst = h.dst;
    r.proto = PROTO_NAMES[h.proto!]?.toLowerCase() ?? h.proto;
  }
  if (h.laterFragment) r.fragment = true;
  if (h.sport !== undefined) r.sport = h.sport;
  if (h.dport !== undefined) r.dport = h.dport;
  if (h.tcpFlags !== undefined) r.flags = tcpFlagsText(h.tcpFlags);
  if (h.icmpType !== undefined) r.icmpType = h.icmpType;
  if (h.icmpCode !== undefined) r.icmpCode = h.icmpCode;
  if (l7) r.l7 = l7;
  return r;
}

/**
 * Reads a captured frame's headers and, when `l7` is set, its L7 record.
 *
 * @example
 * ```ts
 * import { decodeFrame } from "@belt/belt";
 * const data = new Uint8Array(60);
 * data.set([0x08, 0x06], 12);
 * console.log(decodeFrame(data, true).l7); // undefined
 * ```
 */
export function decodeFrame(data: Uint8Array, l7: boolean): { h: FrameHeaders; l7?: L7Record } {
  const h = readFrameHeaders(data);
  return l7 ? { h, l7: readL7(data, h) } : { h };
}

/**
 * IP addresses in belt's 16-byte form (struct belt_packet, belt_rule and
 * mirror_collector): IPv6 as is, IPv4 as the IPv4-mapped ::ffff:a.b.c.d, so
 * one layout serves both families.
 *
 * @module
 */
import { isIPv4, isIPv6 } from "node:net";

/**
 * Parses an IPv4 or IPv6 literal into the 16-byte form; undefined if it is
 * not one.
 *
 * @example
 * ```ts
 * import { parseIp } from "@belt/belt";
 * console.log(parseIp("198.18.0.1")?.slice(10)); // Uint8Array [255, 255, 198, 18, 0, 1]
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  if (isIPv4(text)) {
    out[10] = 0xff;
    out[11] = 0xff;
    text.split(".").forEach((part, i) => out[12 + i] = Number(part));
    return out;
  }
  if (!isIPv6(text) || text.includes("%")) return undefined;
  let tail: number[] = [];
  let body = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) { // ::ffff:1.2.3.4 and friends
    tail = v4.split(".").map(Number);
    body = text.slice(0, -v4.length) + "0:0";
  }
  const [head, rest] = body.split("::") as [string, string | undefined];
  const groups = (s: string) => s ? s.split(":").map((g) => parseInt(g, 16)) : [];
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (v4) out.set(tail, 12);
  return out;
}

/**
 * Whether a 16-byte address is an IPv4-mapped one.
 *
 * @example
 * ```ts
 * import { isMappedIpv4, parseIp } from "@belt/belt";
 * console.log(isMappedIpv4(parseIp("198.18.0.1")!)); // true
 * ```
 */
export function isMappedIpv4(addr: Uint8Array): boolean {
  // A loop, not slice().every(): this runs for every event a tracer prints.
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

/**
 * Formats a 16-byte address: dotted quad for IPv4-mapped, else IPv6 text.
 *
 * @example
 * ```ts
 * import { formatIp, parseIp } from "@belt/belt";
 * console.log(formatIp(parseIp("fd00:beef::1")!)); // "fd00:beef::1"
 * ```
 */
export function formatIp(addr: Uint8Array): string {
  if (isMappedIpv4(addr)) return `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  const groups = Array.from({ length: 8 }, (_, i) => (addr[2 * i]! << 8) | addr[2 * i + 1]!);
  // Longest run of zero groups (at least two) becomes "::".
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

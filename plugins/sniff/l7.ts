/**
 * Application-layer fields of a captured frame, read in TypeScript with
 * exactly the rules of the kernel's `belt_l7_parse()` (bpf/include/belt_l7.h):
 * an HTTP/1.x request line and its Host header, a DNS query's first
 * question, a TLS ClientHello's server name. The kernel decides which frames
 * `belt sniff` captures; this reads the same fields back from the captured
 * bytes, so the printed record is the one the filter matched.
 * tests/sniff_parse_test.ts checks it against the kernel, byte for byte.
 *
 * Like the kernel, it reports a field only when every length leading to it
 * lies inside the frame and the IP datagram, and a name only when it is
 * printable ASCII; otherwise nothing, never a guess.
 *
 * @module
 */
import type { FrameHeaders } from "./frame.ts";

/**
 * struct belt_l7.proto: an HTTP/1.x request line.
 *
 * @example
 * ```ts
 * import { L7_DNS, L7_HTTP, L7_TLS } from "@belt/belt";
 * console.log(L7_HTTP, L7_DNS, L7_TLS); // 1 2 3
 * ```
 */
export const L7_HTTP = 1;
/**
 * struct belt_l7.proto: a DNS query (UDP, destination port 53).
 *
 * @example
 * ```ts
 * import { L7_DNS } from "@belt/belt";
 * console.log(L7_DNS); // 2
 * ```
 */
export const L7_DNS = 2;
/**
 * struct belt_l7.proto: a TLS ClientHello with a server name.
 *
 * @example
 * ```ts
 * import { L7_TLS } from "@belt/belt";
 * console.log(L7_TLS); // 3
 * ```
 */
export const L7_TLS = 3;

/**
 * HTTP request methods in belt_l7.h's order: struct belt_l7.method is the
 * index here + 1 (BELT_HTTP_GET = 1 ... BELT_HTTP_TRACE = 9).
 *
 * @example
 * ```ts
 * import { HTTP_METHODS } from "@belt/belt";
 * console.log(HTTP_METHODS[0], HTTP_METHODS.indexOf("DELETE") + 1); // GET 4
 * ```
 */
export const HTTP_METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "HEAD",
  "OPTIONS",
  "PATCH",
  "CONNECT",
  "TRACE",
] as const;

/**
 * The numbers of struct belt_l7 (bpf/include/belt_l7.h) for a frame that
 * matched, with the name as text. Offsets are from the frame's first byte.
 */
export interface L7Fields {
  /** L7_HTTP, L7_DNS or L7_TLS. */
  proto: number;
  /** HTTP: the method, HTTP_METHODS index + 1; else 0. */
  method: number;
  /** HTTP: the minor version, 0 or 1; else 0. */
  version: number;
  /** DNS: QTYPE of the first question; else 0. */
  qtype: number;
  /** DNS: QCLASS; else 0. */
  qclass: number;
  /** HTTP: offset of the request target; else 0. */
  targetOff: number;
  /** HTTP: length of the request target; else 0. */
  targetLen: number;
  /** DNS: offset of the name's first length byte; TLS: of the server name; HTTP: of the Host
   * value (0: none). */
  nameOff: number;
  /** Length of `name`: DNS: the dotted name (0 for the root); TLS: the server name; HTTP: the
   * Host value (0: none). */
  nameLen: number;
  /** Bytes the name takes in the frame: DNS: nameLen + 2 (1 for the root); else nameLen. */
  nameWire: number;
  /** Offset of the L4 payload that was read. */
  payloadOff: number;
  /** The name as text: DNS dotted name, TLS server name, HTTP Host value; "" if none. */
  name: string;
}

/** An HTTP/1.x request line, with its Host header when found in the same frame. */
export interface HttpRecord {
  /** Discriminant. */
  kind: "http";
  /** One of HTTP_METHODS. */
  method: string;
  /** The request target; bytes outside ASCII appear percent-encoded (%C3%A9), so the text
   * stays printable. */
  target: string;
  /** "HTTP/1.0" or "HTTP/1.1". */
  version: string;
  /** The Host header's value, when its line ends within the first 2048 payload bytes. */
  host?: string;
}

/** The first question of a DNS query. */
export interface DnsRecord {
  /** Discriminant. */
  kind: "dns";
  /** Transaction id. */
  id: number;
  /** Dotted name without the final dot; "" for the root. */
  name: string;
  /** QTYPE number. */
  qtype: number;
  /** Its mnemonic ("A", "AAAA", "MX"...), or "TYPE<n>" (RFC 3597) when not known here. */
  qtypeName: string;
  /** QCLASS (1: IN). */
  qclass: number;
}

/** The server name of a TLS ClientHello. */
export interface TlsRecord {
  /** Discriminant. */
  kind: "tls";
  /** server_name (SNI): the first host_name entry. */
  sni: string;
}

/** What `belt sniff` prints for a frame the L7 parsers matched. */
export type L7Record = HttpRecord | DnsRecord | TlsRecord;

// Limits of belt_l7.h.
const NAME_MAX = 255; // BELT_L7_NAME_MAX
const LINE_MAX = 512; // BELT_HTTP_LINE_MAX: request line without CRLF
const WINDOW = 2048; // BELT_HTTP_WINDOW: payload bytes the Host search reads
const DNS_NAME_MAX = 255; // BELT_DNS_NAME_MAX: wire length of a name
const TLS_MAX_EXT = 32; // BELT_TLS_MAX_EXT
const TCP = 6, UDP = 17;
const CR = 0x0d, LF = 0x0a, SP = 0x20, HT = 0x09;

/** HTTP_METHODS with their trailing space, as bytes. */
const METHOD_BYTES = HTTP_METHODS.map((m) => Uint8Array.from(`${m} `, (c) => c.charCodeAt(0)));

const be16 = (f: Uint8Array, o: number) => (f[o]! << 8) | f[o + 1]!;

/** Latin-1 text of f[from, to): one char per byte (names are printable ASCII). */
const latin1 = (f: Uint8Array, from: number, to: number) =>
  String.fromCharCode.apply(null, f.subarray(from, to) as unknown as number[]);

/** Whether f[from, to) is printable ASCII (0x21-0x7e), without "." if noDot (a DNS label). */
function printable(f: Uint8Array, from: number, to: number, noDot = false): boolean {
  for (let i = from; i < to; i++) {
    const b = f[i]!;
    if (b < 0x21 || b > 0x7e || (noDot && b === 0x2e)) return false;
  }
  return true;
}

function fields(proto: number, payloadOff: number): L7Fields {
  return {
    proto,
    method: 0,
    version: 0,
    qtype: 0,
    qclass: 0,
    targetOff: 0,
    targetLen: 0,
    nameOff: 0,
    nameLen: 0,
    nameWire: 0,
    payloadOff,
    name: "",
  };
}

/**
 * Reads the L7 fields of a frame whose headers {@linkcode readFrameHeaders}
 * read, with belt_l7_parse()'s dispatch: a TCP payload (any port) as a TLS
 * ClientHello, then as an HTTP request; a UDP payload to port 53 as a DNS
 * query. Undefined when nothing matched (the kernel's proto 0).
 *
 * @example
 * ```ts
 * import { readFrameHeaders, readL7Fields } from "@belt/belt";
 * const frame = new Uint8Array([
 *   ...Array(12).fill(2), 0x08, 0x00, // Ethernet: IPv4
 *   0x45, 0, 0, 52, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4: UDP
 *   0x9c, 0x40, 0, 53, 0, 32, 0, 0, // UDP 40000 > 53
 *   0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, // DNS query, id 7, one question
 *   1, 97, 4, 116, 101, 115, 116, 0, 0, 28, 0, 1, // a.test AAAA IN
 * ]);
 * const l7 = readL7Fields(frame, readFrameHeaders(frame))!;
 * console.log(l7.proto, l7.name, l7.qtype, l7.nameOff, l7.nameWire); // 2 a.test 28 54 8
 * ```
 */
export function readL7Fields(frame: Uint8Array, h: FrameHeaders): L7Fields | undefined {
  const off = h.payloadOff, end = h.payloadEnd;
  if (off === undefined || end === undefined) return undefined; // no L4 header
  if (h.proto === TCP) return readTls(frame, off, end) ?? readHttp(frame, off, end);
  if (h.proto === UDP && h.dport === 53) return readDns(frame, off, end);
  return undefined;
}

/** HTTP/1.x request line at f[off, end), then the Host header among the next lines. */
function readHttp(f: Uint8Array, off: number, end: number): L7Fields | undefined {
  if (off >= end) return undefined;
  const n = Math.min(end - off, WINDOW); // bytes of the window: f[off, off + n)
  if (n < 16) return undefined; // "GET / HTTP/1.0\r\n"
  let method = 0;
  for (let m = 0; m < METHOD_BYTES.length && !method; m++) {
    const want = METHOD_BYTES[m]!;
    let k = 0;
    while (k < want.length && f[off + k] === want[k]) k++;
    if (k === want.length) method = m + 1;
  }
  if (!method) return undefined;
  const t = HTTP_METHODS[method - 1]!.length + 1;
  // The target: up to a space, no controls, within the line limit.
  let sp = 0;
  for (let i = t; i < n && i < LINE_MAX; i++) {
    const ch = f[off + i]!;
    if (ch === SP) {
      sp = i;
      break;
    }
    if (ch < 0x21 || ch === 0x7f) return undefined;
  }
  if (sp <= t || sp + 11 > n || sp + 9 > LINE_MAX) return undefined;
  // Then exactly "HTTP/1.0\r\n" or "HTTP/1.1\r\n".
  const v = off + sp + 1;
  if (
    f[v] !== 0x48 || f[v + 1] !== 0x54 || f[v + 2] !== 0x54 || f[v + 3] !== 0x50 ||
    f[v + 4] !== 0x2f || f[v + 5] !== 0x31 || f[v + 6] !== 0x2e
  ) return undefined;
  const minor = f[v + 7]! - 0x30;
  if ((minor !== 0 && minor !== 1) || f[v + 8] !== CR || f[v + 9] !== LF) return undefined;
  const out = fields(L7_HTTP, off);
  out.method = method;
  out.version = minor;
  out.targetOff = off + t;
  out.targetLen = sp - t;
  const host = findHost(f, off, sp + 11, n);
  if (host >= 0) {
    const fs = host >> 16, ve = host & 0xffff; // window offsets, < 2048
    out.nameOff = off + fs;
    out.nameLen = out.nameWire = ve - fs;
    out.name = latin1(f, off + fs, off + ve);
  }
  return out;
}

/**
 * The Host value among the header lines at window offsets [from, n) of the
 * window at f[off]: (start << 16 | end) in window offsets, or -1. As the
 * kernel's scan: "host:" (any case) at a line start before the blank line,
 * optional spaces/tabs, one word, optional spaces/tabs, CRLF inside the window.
 */
function findHost(f: Uint8Array, off: number, from: number, n: number): number {
  const at = (i: number) => f[off + i]!;
  let line = from, i = from, vs = -1;
  for (; i + 1 < n; i++) {
    if (i === line) {
      if (at(i) === CR && at(i + 1) === LF) return -1; // the blank line: end of the headers
      if (
        i + 5 <= n && (at(i) | 0x20) === 0x68 && (at(i + 1) | 0x20) === 0x6f &&
        (at(i + 2) | 0x20) === 0x73 && (at(i + 3) | 0x20) === 0x74 && at(i + 4) === 0x3a
      ) {
        vs = i + 5;
        break;
      }
    }
    if (at(i) === CR && at(i + 1) === LF) line = i + 2;
  }
  if (vs < 0) return -1;
  let fs = 0, ve = 0;
  for (i = vs; i + 1 < n; i++) {
    const ch = at(i);
    if (ch === CR) break;
    if (ch === SP || ch === HT) continue; // spaces around the value are not part of it
    if (ve && ve !== i) return -1; // a space inside the value: not a host
    if (!fs) fs = i;
    ve = i + 1;
  }
  if (i + 1 >= n || at(i + 1) !== LF || !fs) return -1;
  if (ve - fs > NAME_MAX || !printable(f, off + fs, off + ve)) return -1;
  return fs << 16 | ve;
}

/** DNS query at f[off, end): the first question, its name without compression. */
function readDns(f: Uint8Array, off: number, end: number): L7Fields | undefined {
  if (off > end || end - off < 12) return undefined;
  if (f[off + 2]! & 0x80 || be16(f, off + 4) === 0) return undefined; // a response, no question
  const name = off + 12;
  let pos = name;
  for (;;) {
    if (pos >= end) return undefined;
    const len = f[pos]!;
    if (len === 0) break;
    if (len & 0xc0) return undefined; // a compression pointer, or the reserved 0x40/0x80
    pos += 1 + len;
    if (pos - name + 1 > DNS_NAME_MAX) return undefined; // + 1: the root byte still to come
  }
  if (pos + 5 > end) return undefined; // QTYPE, QCLASS
  const wire = pos - name + 1;
  const out = fields(L7_DNS, off);
  out.qtype = be16(f, pos + 1);
  out.qclass = be16(f, pos + 3);
  out.nameOff = name;
  out.nameWire = wire;
  out.nameLen = wire > 1 ? wire - 2 : 0; // the root alone has no text
  // The dotted text; labels must be printable and hold no dot (the text would misread).
  for (let p = name; p < pos; p += 1 + f[p]!) {
    if (!printable(f, p + 1, p + 1 + f[p]!, true)) return undefined;
    out.name += (p === name ? "" : ".") + latin1(f, p + 1, p + 1 + f[p]!);
  }
  return out;
}

/** TLS ClientHello at f[off, end): the first host_name of server_name, inside the first record. */
function readTls(f: Uint8Array, off: number, end: number): L7Fields | undefined {
  if (off + 5 > end || f[off] !== 22 || f[off + 1] !== 3) return undefined; // handshake, 3.x
  const lim = Math.min(end, off + 5 + be16(f, off + 3)); // reads stay in the first record
  let pos = off + 5;
  if (pos + 4 > lim || f[pos] !== 1) return undefined; // client_hello
  const helloEnd = pos + 4 + (f[pos + 1]! << 16 | be16(f, pos + 2));
  pos += 4;
  if (pos + 2 > lim || f[pos] !== 3) return undefined; // legacy_version 3.x
  pos += 2 + 32; // and random
  if (pos + 1 > lim || f[pos]! > 32) return undefined; // session id
  pos += 1 + f[pos]!;
  if (pos + 2 > lim) return undefined;
  const suites = be16(f, pos);
  if (suites < 2 || suites & 1) return undefined;
  pos += 2 + suites;
  if (pos + 1 > lim || f[pos]! < 1) return undefined; // compression methods
  pos += 1 + f[pos]!;
  if (pos + 2 > lim) return undefined;
  const extEnd = pos + 2 + be16(f, pos);
  pos += 2;
  if (extEnd > helloEnd) return undefined;
  for (let k = 0; k < TLS_MAX_EXT; k++) {
    if (pos + 4 > extEnd || pos + 4 > lim) return undefined;
    const type = be16(f, pos), elen = be16(f, pos + 2);
    pos += 4;
    if (pos + elen > extEnd) return undefined;
    if (type !== 0) {
      pos += elen;
      continue;
    }
    // server_name: list length (the rest), then host_name (0), 16-bit length, name.
    if (elen < 5 || pos + 4 > lim || be16(f, pos) !== elen - 2 || f[pos + 2] !== 0) {
      return undefined;
    }
    if (pos + 5 > lim) return undefined;
    const nlen = be16(f, pos + 3);
    if (5 + nlen > elen || pos + 5 + nlen > lim || nlen === 0 || nlen > NAME_MAX) return undefined;
    if (!printable(f, pos + 5, pos + 5 + nlen)) return undefined;
    const out = fields(L7_TLS, off);
    out.nameOff = pos + 5;
    out.nameLen = out.nameWire = nlen;
    out.name = latin1(f, pos + 5, pos + 5 + nlen);
    return out;
  }
  return undefined; // more than TLS_MAX_EXT extensions before server_name
}

/** QTYPE mnemonics (IANA DNS parameters) of the types worth a name. */
const DNS_TYPES = new Map<number, string>([
  [1, "A"],
  [2, "NS"],
  [5, "CNAME"],
  [6, "SOA"],
  [12, "PTR"],
  [13, "HINFO"],
  [15, "MX"],
  [16, "TXT"],
  [28, "AAAA"],
  [33, "SRV"],
  [35, "NAPTR"],
  [43, "DS"],
  [46, "RRSIG"],
  [47, "NSEC"],
  [48, "DNSKEY"],
  [52, "TLSA"],
  [64, "SVCB"],
  [65, "HTTPS"],
  [99, "SPF"],
  [251, "IXFR"],
  [252, "AXFR"],
  [255, "ANY"],
  [257, "CAA"],
]);

/**
 * The mnemonic of a DNS QTYPE, or its RFC 3597 generic form "TYPE<n>".
 *
 * @example
 * ```ts
 * import { dnsTypeName } from "@belt/belt";
 * console.log(dnsTypeName(28), dnsTypeName(65), dnsTypeName(65280)); // AAAA HTTPS TYPE65280
 * ```
 */
export function dnsTypeName(qtype: number): string {
  return DNS_TYPES.get(qtype) ?? `TYPE${qtype}`;
}

/** The request target as printable text: bytes 0x80-0xff (the only ones not ASCII the kernel
 * lets through) percent-encoded. */
function targetText(f: Uint8Array, from: number, to: number): string {
  let high = false;
  for (let i = from; i < to; i++) if (f[i]! >= 0x80) high = true;
  if (!high) return latin1(f, from, to);
  let s = "";
  for (let i = from; i < to; i++) {
    const b = f[i]!;
    s += b < 0x80 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase()}`;
  }
  return s;
}

/**
 * Reads the L7 record `belt sniff` prints for a frame: the same match as
 * {@linkcode readL7Fields} (so the kernel's), as words; undefined when
 * nothing matched.
 *
 * @example
 * ```ts
 * import { readFrameHeaders, readL7 } from "@belt/belt";
 * const frame = new Uint8Array([
 *   ...Array(12).fill(2), 0x08, 0x00, // Ethernet: IPv4
 *   0x45, 0, 0, 52, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4: UDP
 *   0x9c, 0x40, 0, 53, 0, 32, 0, 0, // UDP 40000 > 53
 *   0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, // DNS query, id 7, one question
 *   1, 97, 4, 116, 101, 115, 116, 0, 0, 28, 0, 1, // a.test AAAA IN
 * ]);
 * console.log(readL7(frame, readFrameHeaders(frame)));
 * // { kind: "dns", id: 7, name: "a.test", qtype: 28, qtypeName: "AAAA", qclass: 1 }
 * ```
 */
export function readL7(frame: Uint8Array, h: FrameHeaders): L7Record | undefined {
  const l = readL7Fields(frame, h);
  if (!l) return undefined;
  if (l.proto === L7_HTTP) {
    const r: HttpRecord = {
      kind: "http",
      method: HTTP_METHODS[l.method - 1]!,
      target: targetText(frame, l.targetOff, l.targetOff + l.targetLen),
      version: l.version ? "HTTP/1.1" : "HTTP/1.0",
    };
    if (l.nameLen) r.host = l.name;
    return r;
  }
  if (l.proto === L7_DNS) {
    return {
      kind: "dns",
      id: be16(frame, l.payloadOff),
      name: l.name,
      qtype: l.qtype,
      qtypeName: dnsTypeName(l.qtype),
      qclass: l.qclass,
    };
  }
  return { kind: "tls", sni: l.name };
}

/**
 * One line of text for an L7 record: `GET /index.html HTTP/1.1 Host: example.test`
 * (no Host part without one), `DNS A? example.test` (the root as ".", a class other than
 * IN appended as `CLASS<n>`), `TLS SNI example.test`.
 *
 * @example
 * ```ts
 * import { formatL7 } from "@belt/belt";
 * console.log(formatL7({
 *   kind: "http",
 *   method: "GET",
 *   target: "/index.html",
 *   version: "HTTP/1.1",
 *   host: "example.test",
 * })); // GET /index.html HTTP/1.1 Host: example.test
 * console.log(formatL7({ kind: "dns", id: 1, name: "", qtype: 2, qtypeName: "NS", qclass: 1 }));
 * // DNS NS? .
 * console.log(formatL7({ kind: "tls", sni: "example.test" })); // TLS SNI example.test
 * ```
 */
export function formatL7(r: L7Record): string {
  switch (r.kind) {
    case "http": {
      const line = `${r.method} ${r.target} ${r.version}`;
      return r.host === undefined ? line : `${line} Host: ${r.host}`;
    }
    case "dns": {
      const q = `DNS ${r.qtypeName}? ${r.name || "."}`;
      return r.qclass === 1 ? q : `${q} CLASS${r.qclass}`;
    }
    case "tls":
      return `TLS SNI ${r.sni}`;
  }
}

/**
 * The first offset past the last byte a matched record needs: the end of
 * the HTTP request line (its CRLF), or of the Host line when a Host was
 * found; the DNS name's end + 4 (QTYPE, QCLASS); the TLS server name's end.
 * The frame cut there decodes to the same record; cut one byte earlier it
 * does not (an HTTP request loses only its Host). The frame is needed for
 * HTTP: spaces may follow the Host value before its CRLF, and
 * struct belt_l7 does not record where that line ends.
 *
 * @example
 * ```ts
 * import { l7End, readFrameHeaders, readL7Fields } from "@belt/belt";
 * const frame = new Uint8Array([
 *   ...Array(12).fill(2), 0x08, 0x00, // Ethernet: IPv4
 *   0x45, 0, 0, 52, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4: UDP
 *   0x9c, 0x40, 0, 53, 0, 32, 0, 0, // UDP 40000 > 53
 *   0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, // DNS query, id 7, one question
 *   1, 97, 4, 116, 101, 115, 116, 0, 0, 28, 0, 1, // a.test AAAA IN
 * ]);
 * console.log(l7End(readL7Fields(frame, readFrameHeaders(frame))!, frame)); // 66
 * ```
 */
export function l7End(fields: L7Fields, frame: Uint8Array): number {
  if (fields.proto === L7_DNS) return fields.nameOff + fields.nameWire + 4;
  if (fields.proto === L7_TLS) return fields.nameOff + fields.nameLen;
  if (!fields.nameLen) return fields.targetOff + fields.targetLen + 11; // " HTTP/1.x\r\n"
  // The Host line: spaces or tabs after the value, then the CRLF the kernel saw.
  let i = fields.nameOff + fields.nameLen;
  while (frame[i] === SP || frame[i] === HT) i++;
  return i + 2;
}

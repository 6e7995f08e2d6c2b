/**
 * plugins/sniff/frame.ts and l7.ts in TypeScript alone (no kernel, no root): the records and
 * text `belt sniff` prints, and the rules that matter to it (later fragments, cut headers,
 * padding, l7End() as a snap length). tests/sniff_parse_test.ts proves the same functions equal
 * the kernel's parsers on tens of thousands of frames.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { formatIp, parseIp } from "../plugins/addr.ts";
import { readFrameHeaders } from "../plugins/sniff/frame.ts";
import {
  dnsTypeName,
  formatL7,
  HTTP_METHODS,
  L7_DNS,
  L7_HTTP,
  L7_TLS,
  l7End,
  readL7,
  readL7Fields,
} from "../plugins/sniff/l7.ts";
import type { L7Record } from "../plugins/sniff/l7.ts";
import { cat, n16, n32 } from "./harness/frames.ts";
import type { Part } from "./harness/frames.ts";

// ---------------------------------------------------------------------------------------------
// Frame builders (wire order, checksums 0)

const text = (s: string) => new TextEncoder().encode(s);
const eth = (type: number) => cat([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], n16(type));
const tag = (vid: number, type: number) => cat(n16(vid), n16(type));
function ipv4(proto: number, payload: Part, o: { frag?: number; totLen?: number } = {}) {
  return cat(
    [0x45, 0],
    n16(o.totLen ?? 20 + payload.length),
    n16(1),
    n16(o.frag ?? 0),
    [64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2],
    payload,
  );
}
function ipv6(nh: number, payload: Part, o: { src?: Part; plen?: number } = {}) {
  return cat(
    n32(0x60000000),
    n16(o.plen ?? payload.length),
    [nh, 64],
    o.src ?? parseIp("fd00:beef::1")!,
    parseIp("fd00:beef::2")!,
    payload,
  );
}
const frag6 = (nh: number, offset: number, payload: Part) =>
  cat([nh, 0], n16(offset | 1), n32(7), payload);
function tcp(dport: number, payload: Part = [], flags = 0x18) {
  return cat(n16(40000), n16(dport), n32(1), n32(0), [0x50, flags], n16(65535), n32(0), payload);
}
const udp = (dport: number, payload: Part = []) =>
  cat(n16(33333), n16(dport), n16(8 + payload.length), n16(0), payload);
const v4 = (proto: number, l4: Part) => cat(eth(0x0800), ipv4(proto, l4));
const v6 = (proto: number, l4: Part) => cat(eth(0x86dd), ipv6(proto, l4));

function dnsQuery(name: string, qtype: number, id = 0xbe17, qclass = 1) {
  const labels = name ? name.split(".").map((l) => cat([l.length], text(l))) : [];
  return cat(
    n16(id),
    n16(0x0100),
    n16(1),
    n16(0),
    n16(0),
    n16(0),
    ...labels,
    [0],
    n16(qtype),
    n16(qclass),
  );
}
const ext = (type: number, body: Part) => cat(n16(type), n16(body.length), body);
function clientHello(sni: string) {
  const entry = cat([0], n16(sni.length), text(sni));
  const exts = cat(ext(0x0a, [0, 2, 0, 0x1d]), ext(0, cat(n16(entry.length), entry)));
  const body = cat(
    [3, 3],
    new Uint8Array(32),
    [0],
    n16(2),
    [0x13, 0x01],
    [1, 0],
    n16(exts.length),
    exts,
  );
  const hs = cat([1], n32(body.length).slice(1), body);
  return cat([22, 3, 1], n16(hs.length), hs);
}

const decode = (f: Uint8Array) => readL7(f, readFrameHeaders(f));

// ---------------------------------------------------------------------------------------------
// Records and their text

Deno.test("formatL7() prints one line per kind", () => {
  const http: L7Record = {
    kind: "http",
    method: "GET",
    target: "/index.html",
    version: "HTTP/1.1",
    host: "example.test",
  };
  equal(formatL7(http), "GET /index.html HTTP/1.1 Host: example.test");
  const { host: _, ...noHost } = http;
  equal(formatL7(noHost), "GET /index.html HTTP/1.1");
  const dns = { kind: "dns", id: 1, name: "example.test", qtype: 1, qtypeName: "A", qclass: 1 };
  equal(formatL7(dns as L7Record), "DNS A? example.test");
  equal(formatL7({ ...dns, name: "", qtype: 2, qtypeName: "NS" } as L7Record), "DNS NS? .");
  equal(
    formatL7({ ...dns, name: "version.bind", qtypeName: "TXT", qclass: 3 } as L7Record),
    "DNS TXT? version.bind CLASS3",
  );
  equal(formatL7({ kind: "tls", sni: "example.test" }), "TLS SNI example.test");
});

Deno.test("dnsTypeName() names common types, others as TYPE<n>", () => {
  deepEqual([1, 28, 15, 16, 33, 65, 255].map(dnsTypeName), [
    "A",
    "AAAA",
    "MX",
    "TXT",
    "SRV",
    "HTTPS",
    "ANY",
  ]);
  equal(dnsTypeName(0), "TYPE0");
  equal(dnsTypeName(65280), "TYPE65280");
});

Deno.test("readL7() reads an HTTP request line and its Host", () => {
  const req = "POST /api/v1?q=1 HTTP/1.0\r\nUser-Agent: x\r\nhOsT:\t example.test:8080 \r\n\r\n";
  deepEqual(decode(v4(6, tcp(8080, text(req)))), {
    kind: "http",
    method: "POST",
    target: "/api/v1?q=1",
    version: "HTTP/1.0",
    host: "example.test:8080",
  });
  // No Host line, or one past the blank line: no host key at all.
  const noHost = decode(v6(6, tcp(80, text("HEAD / HTTP/1.1\r\n\r\nHost: x\r\n"))));
  deepEqual(noHost, { kind: "http", method: "HEAD", target: "/", version: "HTTP/1.1" });
  ok(!("host" in noHost!));
  // Bytes 0x80-0xff may be in a target (the kernel lets them through): shown percent-encoded.
  const raw = cat(text("GET /caf"), [0xc3, 0xa9], text(" HTTP/1.1\r\n\r\n"));
  equal((decode(v4(6, tcp(80, raw))) as { target: string }).target, "/caf%C3%A9");
  const l = readL7Fields(v4(6, tcp(80, raw)), readFrameHeaders(v4(6, tcp(80, raw))))!;
  equal(l.targetLen, 6, "targetLen counts bytes");
  // Every method, in belt_l7.h's order.
  for (const [i, m] of HTTP_METHODS.entries()) {
    const f = v4(6, tcp(80, text(`${m} * HTTP/1.1\r\n\r\n`)));
    equal(readL7Fields(f, readFrameHeaders(f))?.method, i + 1, m);
  }
});

Deno.test("readL7() reads a DNS question: name, root, type names, id", () => {
  deepEqual(decode(v4(17, udp(53, dnsQuery("example.test", 28, 0x1234)))), {
    kind: "dns",
    id: 0x1234,
    name: "example.test",
    qtype: 28,
    qtypeName: "AAAA",
    qclass: 1,
  });
  const root = decode(v6(17, udp(53, dnsQuery("", 2))))!;
  deepEqual(root, { kind: "dns", id: 0xbe17, name: "", qtype: 2, qtypeName: "NS", qclass: 1 });
  equal(formatL7(root), "DNS NS? .");
  const odd = decode(v4(17, udp(53, dnsQuery("a.test", 65280))))!;
  equal(formatL7(odd), "DNS TYPE65280? a.test");
  equal(decode(v4(17, udp(5353, dnsQuery("a.test", 1)))), undefined, "port 53 only");
  equal(decode(v4(6, tcp(53, dnsQuery("a.test", 1)))), undefined, "UDP only");
});

Deno.test("readL7() reads a TLS ClientHello's server name, on any TCP port", () => {
  deepEqual(decode(v4(6, tcp(443, clientHello("www.example.test")))), {
    kind: "tls",
    sni: "www.example.test",
  });
  const f = v6(6, tcp(8443, clientHello("a.test")));
  const l = readL7Fields(f, readFrameHeaders(f))!;
  equal(l.proto, L7_TLS);
  equal(new TextDecoder().decode(f.subarray(l.nameOff, l.nameOff + l.nameLen)), "a.test");
  equal(decode(v4(17, udp(443, clientHello("a.test")))), undefined, "TCP only");
});

// ---------------------------------------------------------------------------------------------
// Headers

Deno.test("readFrameHeaders() reads addresses, ports, flags and offsets", () => {
  const f = cat(eth(0x8100), tag(0x2000 | 77, 0x86dd), ipv6(6, tcp(80, text("x"), 0x02)));
  deepEqual(readFrameHeaders(f), {
    ethType: 0x86dd,
    vlan: 77,
    l3Off: 18,
    ipVersion: 6,
    srcAddr: parseIp("fd00:beef::1"),
    dstAddr: parseIp("fd00:beef::2"),
    src: "fd00:beef::1",
    dst: "fd00:beef::2",
    ipLen: 61,
    proto: 6,
    laterFragment: false,
    l4Off: 58,
    l4HdrLen: 20,
    sport: 40000,
    dport: 80,
    tcpFlags: 0x02,
    payloadOff: 78,
    payloadEnd: 79,
  });
  const icmp = readFrameHeaders(v4(1, [8, 0, 0, 0, 0, 1, 0, 1]));
  deepEqual([icmp.icmpType, icmp.icmpCode, icmp.sport, icmp.src], [8, 0, undefined, "198.18.0.1"]);
});

Deno.test("readFrameHeaders(): VLAN tags in the data, two at most", () => {
  const qinq = cat(eth(0x88a8), tag(100, 0x8100), tag(200, 0x0800), ipv4(17, udp(1)));
  const h = readFrameHeaders(qinq);
  deepEqual([h.vlan, h.ethType, h.l3Off, h.dport], [100, 0x0800, 22, 1]);
  const three = readFrameHeaders(cat(eth(0x8100), tag(1, 0x8100), tag(2, 0x8100), tag(3, 0x0800)));
  deepEqual(three, { ethType: 0x8100, vlan: 1, l3Off: 22 }, "a third tag: no L3");
  deepEqual(readFrameHeaders(cat(eth(0x8100), [0, 5, 8])), { ethType: 0, stopped: "truncated" });
  equal(readFrameHeaders(cat(eth(0x8100), tag(0, 0x0806))).vlan, 0, "a priority tag is VID 0");
});

Deno.test("readFrameHeaders(): a later fragment has no ports, the first one has", () => {
  const later4 = readFrameHeaders(cat(eth(0x0800), ipv4(6, tcp(80), { frag: 185 })));
  deepEqual(
    [later4.laterFragment, later4.proto, later4.l4Off, later4.sport, later4.payloadOff],
    [true, 6, undefined, undefined, undefined],
  );
  const first4 = readFrameHeaders(cat(eth(0x0800), ipv4(17, udp(53), { frag: 0x2000 })));
  deepEqual([first4.laterFragment, first4.dport], [false, 53]);
  const later6 = readFrameHeaders(v6(44, frag6(17, 1480, udp(53))));
  deepEqual([later6.laterFragment, later6.proto, later6.l4Off, later6.dport], [
    true,
    17,
    undefined,
    undefined,
  ]);
  equal(readFrameHeaders(v6(44, frag6(17, 0, udp(53)))).dport, 53, "first IPv6 fragment");
});

Deno.test("readFrameHeaders(): IPv6 extension headers as belt_parse() walks them", () => {
  // Hop-by-hop (0), routing (43), destination options (60): (hdrlen + 1) * 8 bytes each.
  const opt = (nh: number, payload: Part) => cat([nh, 0, 1, 4, 0, 0, 0, 0], payload);
  const chain = (n: number, last: number, payload: Part): Part =>
    n === 0 ? payload : opt(n === 1 ? last : 60, chain(n - 1, last, payload));
  const six = readFrameHeaders(v6(0, chain(6, 6, tcp(80))));
  deepEqual([six.proto, six.l4Off, six.dport, six.stopped], [6, 14 + 40 + 48, 80, undefined]);
  const seven = readFrameHeaders(v6(0, chain(7, 6, tcp(80))));
  deepEqual([seven.stopped, seven.ipVersion, seven.src], ["ext-limit", undefined, undefined]);
  const hopLate = readFrameHeaders(v6(60, opt(0, opt(17, udp(53)))));
  equal(hopLate.stopped, "malformed", "hop-by-hop only right after the IPv6 header");
  const twoFrags = readFrameHeaders(v6(44, cat([44, 0, 0, 0, 0, 0, 0, 1], frag6(17, 0, udp(53)))));
  equal(twoFrags.stopped, "malformed", "a second fragment header");
  const ah = readFrameHeaders(v6(51, new Uint8Array(24)));
  deepEqual([ah.proto, ah.l4Off, ah.payloadOff], [51, 54, undefined], "AH is not followed");
  const long = readFrameHeaders(v6(60, cat([17, 255], new Uint8Array(6))));
  equal(long.stopped, "truncated", "an extension header past the end");
});

Deno.test("readFrameHeaders(): a cut header gives nothing of its layer", () => {
  const full = v4(6, tcp(80, text("GET / HTTP/1.1\r\n\r\n")));
  for (let cut = 34; cut < 54; cut++) {
    const h = readFrameHeaders(full.subarray(0, cut));
    deepEqual(
      [h.stopped, h.l4Off, h.sport, h.tcpFlags, h.payloadOff, h.payloadEnd],
      ["truncated", 34, undefined, undefined, undefined, cut],
      `cut at ${cut}`,
    );
  }
  const h = readFrameHeaders(full.subarray(0, 33));
  deepEqual([h.stopped, h.ipVersion, h.src, h.l3Off], ["truncated", undefined, undefined, 14]);
  deepEqual(readFrameHeaders(full.subarray(0, 13)), { ethType: 0, stopped: "truncated" });
  // Data offset 15 with the options cut.
  const opts = cat(eth(0x0800), ipv4(6, tcp(80).map((b, i) => i === 12 ? 0xf0 : b)));
  deepEqual([readFrameHeaders(opts).stopped, readFrameHeaders(opts).payloadOff], [
    "truncated",
    undefined,
  ]);
  equal(
    readFrameHeaders(cat(eth(0x0800), ipv4(6, tcp(80).map((b, i) => i === 12 ? 0x40 : b))))
      .stopped,
    "malformed",
  );
});

Deno.test("readFrameHeaders(): payloadEnd stops at the IP datagram, not the padding", () => {
  const padded = cat(v4(17, udp(53, [1, 2])), new Uint8Array(16));
  const h = readFrameHeaders(padded);
  deepEqual([h.payloadOff, h.payloadEnd, padded.length], [42, 44, 60]);
  const zero = readFrameHeaders(cat(eth(0x0800), ipv4(17, udp(53, [1, 2]), { totLen: 0 })));
  equal(zero.payloadEnd, 44, "IPv4 total length 0 says nothing");
  const jumbo = readFrameHeaders(cat(eth(0x86dd), ipv6(17, udp(53, [1, 2]), { plen: 0 }), [9]));
  equal(jumbo.payloadEnd, 14 + 40 + 10 + 1, "IPv6 payload length 0 says nothing");
});

Deno.test("readFrameHeaders() writes addresses as formatIp() does", () => {
  // Every pattern of zero groups, so every "::" placement and tie.
  for (let zeros = 0; zeros < 256; zeros++) {
    const a = new Uint8Array(16);
    for (let g = 0; g < 8; g++) {
      if (!(zeros & (1 << g))) a.set(n16([0x1, 0xab, 0xfd00, 0xffff, 0x100][g % 5]!), 2 * g);
    }
    const h = readFrameHeaders(cat(eth(0x86dd), ipv6(59, [], { src: a })));
    deepEqual(h.srcAddr, a);
    equal(h.src, formatIp(a), `zero groups ${zeros.toString(2)}`);
  }
  equal(
    readFrameHeaders(cat(eth(0x86dd), ipv6(59, [], { src: parseIp("::ffff:1.2.3.4") }))).src,
    "1.2.3.4",
  );
});

// ---------------------------------------------------------------------------------------------
// l7End() as a snap length

Deno.test("l7End(): cut there, the same record; one byte earlier, none (or no Host)", () => {
  const cases: [string, Uint8Array, boolean][] = [
    ["HTTP without Host", v4(6, tcp(80, text("GET /a HTTP/1.1\r\nAccept: */*\r\n\r\n"))), false],
    ["HTTP with Host", v4(6, tcp(80, text("GET /a HTTP/1.1\r\nHost: h.test\r\n\r\n"))), true],
    [
      "HTTP, spaces after the Host value",
      v6(6, tcp(80, text("PUT /b HTTP/1.0\r\nHost:  h.test \t \r\nX: y\r\n\r\n"))),
      true,
    ],
    ["DNS", v4(17, udp(53, dnsQuery("a.b.test", 1))), false],
    ["DNS root", v6(17, udp(53, dnsQuery("", 2))), false],
    ["TLS", cat(v4(6, tcp(443, clientHello("sni.test"))), new Uint8Array(8)), false],
  ];
  for (const [title, frame, host] of cases) {
    const fields = readL7Fields(frame, readFrameHeaders(frame))!;
    ok([L7_HTTP, L7_DNS, L7_TLS].includes(fields.proto), title);
    const end = l7End(fields, frame);
    ok(end <= frame.length, title);
    const whole = decode(frame)!;
    deepEqual(decode(frame.subarray(0, end)), whole, `${title}: cut at l7End()`);
    const cutFields = readL7Fields(
      frame.subarray(0, end),
      readFrameHeaders(frame.subarray(0, end)),
    );
    deepEqual(cutFields, fields, `${title}: the same fields`);
    const { host: _, ...noHost } = whole as { host?: string };
    deepEqual(decode(frame.subarray(0, end - 1)), host ? noHost : undefined, `${title}: one less`);
  }
});

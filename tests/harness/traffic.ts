/**
 * A deterministic mix of application traffic between two test hosts, for
 * `belt sniff`'s tests: HTTP/1.x requests (raw and fetch), DNS queries
 * (crafted, and a real resolver's), TLS ClientHellos with and without a
 * server name (node:tls and crafted), and noise that must not read as any
 * of them (UDP to other ports, DNS responses, TCP with non-HTTP payloads).
 *
 * The same file is the program that makes the traffic: run in host b as
 * `traffic.ts server PLAN.json` (listeners; prints "ready" on stderr), then
 * in host a as `traffic.ts client PLAN.json` (every step in order, each
 * bounded in time; prints a JSON report on stdout). The test knows from the
 * plan what every L7 record must be (see expectedHttp/expectedDns/expectedTls).
 *
 * Only addresses of 198.18.0.0/15 and fd00:beef::/64 appear in plans.
 */
import type { Topology } from "./netns.ts";
import { Background } from "./process.ts";

/** Addresses of the two hosts. */
export interface PlanAddrs {
  a4: string;
  b4: string;
  a6: string;
  b6: string;
}

/** An HTTP/1.x request. */
export interface HttpStep {
  kind: "http";
  /** "raw": written as given on a TCP connection; "fetch": Deno's fetch (its own headers). */
  via: "raw" | "fetch";
  family: 4 | 6;
  port: number;
  method: string;
  target: string;
  /** Raw only: "1.0" or "1.1". */
  version: "1.0" | "1.1";
  /** Raw only: header lines (without CRLF), in order; none need be Host. */
  headers: string[];
  /** The Host value a correct decoder reports (absent: none). */
  host?: string;
  body?: string;
  /** Raw only: the request line in one segment, the headers in the next. */
  split?: boolean;
}

/** A DNS query sent as crafted bytes over UDP. */
export interface DnsStep {
  kind: "dns";
  family: 4 | 6;
  port: number;
  id: number;
  name: string;
  qtype: number;
  qclass: number;
  /** A second question after the first. */
  second?: string;
  /** An EDNS OPT record in the additional section. */
  edns?: boolean;
}

/** A query made by Deno.resolveDns (hickory): id chosen by the resolver. */
export interface ResolveStep {
  kind: "resolve";
  name: string;
  type: "A" | "AAAA" | "MX" | "TXT";
}

/** A TLS ClientHello. */
export interface TlsStep {
  kind: "tls";
  /** "node": node:tls (rustls) handshake; "raw": crafted hello bytes. */
  via: "node" | "raw";
  family: 4 | 6;
  port: number;
  /** The server name sent (absent: none). */
  sni?: string;
  /** Raw only: extensions before server_name, and the session id length. */
  extsBefore?: number;
  sessionId?: number;
}

/** Traffic that carries none of the three: its payload as hex. */
export interface NoiseStep {
  kind: "noise";
  proto: "udp" | "tcp";
  family: 4 | 6;
  port: number;
  hex: string;
}

/** One thing the client does. */
export type Step = HttpStep | DnsStep | ResolveStep | TlsStep | NoiseStep;

/** What the client does, in order, and where. */
export interface TrafficPlan {
  addrs: PlanAddrs;
  steps: Step[];
  /** Ports the server listens on. */
  httpPorts: number[];
  tlsPorts: number[];
  tcpSinkPorts: number[];
  udpSinkPorts: number[];
}

/** What the client reports. */
export interface ClientReport {
  done: Record<string, number>;
  /** Steps that failed in a way they should not (HTTP without a response...). */
  failures: string[];
}

const enc = new TextEncoder();
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const fromHex = (h: string) => new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));

// ---------------------------------------------------------------------------------------------
// Wire formats

/** A DNS name in wire form (labels, root byte); "" is the root. */
export function dnsName(name: string): number[] {
  const out: number[] = [];
  for (const label of name ? name.split(".") : []) {
    const b = enc.encode(label);
    out.push(b.length, ...b);
  }
  out.push(0);
  return out;
}

/** A DNS query: header (RD set), one question (or two), maybe an EDNS OPT record. */
export function dnsQuery(q: {
  id: number;
  name: string;
  qtype: number;
  qclass?: number;
  second?: string;
  edns?: boolean;
  flags?: number;
}): Uint8Array {
  const qd = q.second === undefined ? 1 : 2;
  const question = (name: string) => [
    ...dnsName(name),
    q.qtype >> 8,
    q.qtype & 0xff,
    (q.qclass ?? 1) >> 8,
    (q.qclass ?? 1) & 0xff,
  ];
  const flags = q.flags ?? 0x0100;
  return new Uint8Array([
    q.id >> 8,
    q.id & 0xff,
    flags >> 8,
    flags & 0xff,
    0,
    qd,
    0,
    0,
    0,
    0,
    0,
    q.edns ? 1 : 0,
    ...question(q.name),
    ...(q.second === undefined ? [] : question(q.second)),
    // OPT: root name, type 41, UDP size 1232, no extended flags, no data.
    ...(q.edns ? [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0] : []),
  ]);
}

/**
 * A TLS ClientHello record: `extsBefore` other extensions (each 4 bytes of
 * data) before server_name, then supported_versions; `sni` absent: no
 * server_name extension.
 */
export function clientHello(opts: {
  sni?: string;
  extsBefore?: number;
  sessionId?: number;
  recordVersion?: number;
}): Uint8Array {
  const u16 = (n: number) => [n >> 8 & 0xff, n & 0xff];
  const exts: number[] = [];
  for (let i = 0; i < (opts.extsBefore ?? 0); i++) {
    exts.push(...u16(0xff00 + i), ...u16(4), 0xde, 0xad, 0xbe, i & 0xff); // private-use types
  }
  if (opts.sni !== undefined) {
    const name = [...enc.encode(opts.sni)];
    exts.push(...u16(0), ...u16(name.length + 5), ...u16(name.length + 3), 0);
    exts.push(...u16(name.length), ...name);
  }
  exts.push(...u16(43), ...u16(3), 2, 0x03, 0x03); // supported_versions: TLS 1.2
  const sid = Array.from({ length: opts.sessionId ?? 0 }, (_, i) => (i * 7 + 1) & 0xff);
  const suites = [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f, 0xc0, 0x30, 0x00, 0x9c];
  const random = Array.from({ length: 32 }, (_, i) => (i * 13 + 5) & 0xff);
  const body = [
    0x03,
    0x03,
    ...random,
    sid.length,
    ...sid,
    ...u16(suites.length),
    ...suites,
    1,
    0, // compression: null
    ...u16(exts.length),
    ...exts,
  ];
  const hs = [1, body.length >> 16, ...u16(body.length), ...body];
  const rv = opts.recordVersion ?? 0x0301;
  return new Uint8Array([22, rv >> 8, rv & 0xff, ...u16(hs.length), ...hs]);
}

/** A raw HTTP request's bytes: the line, the headers, an empty line, the body. */
export function httpRequestText(s: HttpStep): string {
  const head = [`${s.method} ${s.target} HTTP/${s.version}`, ...s.headers].join("\r\n");
  return `${head}\r\n\r\n${s.body ?? ""}`;
}

// ---------------------------------------------------------------------------------------------
// The plan

/** The traffic of the tests between 198.18.<subnet>.1 (a) and .2 (b), same for IPv6. */
export function planTraffic(subnet: number): TrafficPlan {
  const addrs = {
    a4: `198.18.${subnet}.1`,
    b4: `198.18.${subnet}.2`,
    a6: `fd00:beef::${subnet}:1`,
    b6: `fd00:beef::${subnet}:2`,
  };
  const steps: Step[] = [];
  const raw = (
    family: 4 | 6,
    port: number,
    method: string,
    target: string,
    headers: string[],
    host: string | undefined,
    extra: Partial<HttpStep> = {},
  ) =>
    steps.push({
      kind: "http",
      via: "raw",
      family,
      port,
      method,
      target,
      version: "1.1",
      headers: [...headers, "Connection: close"],
      ...(host === undefined ? {} : { host }),
      ...extra,
    });
  const fetched = (family: 4 | 6, port: number, method: string, target: string, body?: string) => {
    const addr = family === 4 ? addrs.b4 : `[${addrs.b6}]`;
    steps.push({
      kind: "http",
      via: "fetch",
      family,
      port,
      method,
      target,
      version: "1.1",
      headers: [],
      host: port === 80 ? addr : `${addr}:${port}`,
      ...(body === undefined ? {} : { body }),
    });
  };
  const dns = (
    family: 4 | 6,
    name: string,
    qtype: number,
    extra: Partial<DnsStep> = {},
  ) =>
    steps.push({
      kind: "dns",
      family,
      port: 53,
      id: 0x1000 + steps.length,
      name,
      qtype,
      qclass: 1,
      ...extra,
    });
  const tls = (s: Omit<TlsStep, "kind">) => steps.push({ kind: "tls", ...s });
  const noise = (proto: "udp" | "tcp", family: 4 | 6, port: number, payload: Uint8Array) =>
    steps.push({ kind: "noise", proto, family, port, hex: toHex(payload) });

  // HTTP: every method, targets of every shape, Host in every spelling the grammar allows.
  raw(4, 80, "GET", "/", ["Host: example.test"], "example.test");
  raw(4, 80, "GET", "/index.html", ["Host: www.example.test", "Accept: */*"], "www.example.test");
  raw(
    4,
    80,
    "POST",
    "/api/v1/items?id=7&x=y",
    ["Host: api.example.test", "Content-Type: text/plain", "Content-Length: 11"],
    "api.example.test",
    { body: "hello=world" },
  );
  raw(
    4,
    80,
    "PUT",
    "/upload/file.bin",
    [
      "Host: example.test:8080",
      "Content-Length: 4",
    ],
    "example.test:8080",
    { body: "data" },
  );
  raw(6, 80, "DELETE", "/items/42", ["Host: v6.example.test"], "v6.example.test");
  raw(4, 80, "HEAD", "/head", ["Host: head.example.test"], "head.example.test");
  raw(4, 80, "OPTIONS", "*", ["Host: example.test"], "example.test");
  raw(
    6,
    80,
    "PATCH",
    "/patch/1",
    [
      "Host: patch.example.test",
      "Content-Length: 2",
    ],
    "patch.example.test",
    { body: "{}" },
  );
  raw(4, 80, "TRACE", "/trace", ["Host: trace.example.test"], "trace.example.test");
  raw(4, 80, "GET", "/http10", [], undefined, { version: "1.0", headers: [] });
  raw(4, 80, "GET", "/lower", ["host: lower.example.test"], "lower.example.test");
  raw(6, 80, "GET", "/ows", ["Host:    ows.example.test   "], "ows.example.test");
  raw(4, 80, "GET", "/late", [
    "User-Agent: belt-test/1.0",
    "Accept: text/html,application/xhtml+xml",
    "Accept-Language: en",
    "Accept-Encoding: identity",
    "Cache-Control: no-cache",
    "Pragma: no-cache",
    "X-Request-Id: 0123456789abcdef",
    "X-Long: " + "v".repeat(600),
    "Host: late.example.test",
  ], "late.example.test");
  raw(4, 80, "GET", "/pct%20enc/%E2%82%AC?q=a+b&r=%2F", ["Host: example.test"], "example.test");
  raw(4, 80, "GET", "/" + "p".repeat(400), ["Host: long.example.test"], "long.example.test");
  raw(4, 80, "GET", "http://proxy.example.test/abs", [
    "Host: proxy.example.test",
  ], "proxy.example.test");
  raw(4, 80, "GET", "/split", ["Host: split.example.test"], undefined, { split: true });
  raw(6, 80, "GET", "/v6", ["Host: [fd00:beef::1]:80"], "[fd00:beef::1]:80");
  raw(
    6,
    80,
    "POST",
    "/v6/post",
    [
      "Host: v6.example.test",
      "Content-Length: 3",
    ],
    "v6.example.test",
    { body: "a=b" },
  );
  raw(4, 18080, "GET", "/alt-port", ["Host: alt.example.test"], "alt.example.test");
  raw(6, 8080, "DELETE", "/v6/del", ["Host: del.example.test"], "del.example.test");
  raw(4, 80, "GET", "/no-host", ["Accept: */*"], undefined);
  fetched(4, 8080, "GET", "/fetch/get");
  fetched(4, 80, "POST", "/fetch/post", "x=1");
  fetched(6, 8080, "PUT", "/fetch/put", "put-body");
  fetched(6, 80, "HEAD", "/fetch/head");
  fetched(4, 8080, "DELETE", "/fetch/delete");

  // DNS: many types and classes, names of every length, IPv4 and IPv6.
  const long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
  dns(4, "example.test", 1);
  dns(6, "example.test", 28);
  dns(4, "mail.example.test", 15);
  dns(6, "txt.example.test", 16);
  dns(4, "example.test", 2);
  dns(4, "_sip._udp.example.test", 33);
  dns(6, "2.0.18.198.in-addr.arpa", 12);
  dns(4, "any.example.test", 255);
  dns(4, "caa.example.test", 257);
  dns(6, "svc.example.test", 65);
  dns(4, "private.example.test", 65280);
  dns(4, "Mixed-Case.Example.TEST", 1);
  dns(6, "xn--bcher-kva.example.test", 28);
  dns(4, `${"x".repeat(63)}.example.test`, 1);
  dns(4, long, 16); // 253 characters, the longest name there is
  dns(6, "", 2); // the root
  dns(4, "version.bind", 16, { qclass: 3 });
  dns(4, "a.b.c.d.e.f.g.h.example.test", 1);
  dns(6, "first.example.test", 1, { second: "second.example.test" });
  dns(4, "edns.example.test", 28, { edns: true });
  steps.push({ kind: "resolve", name: "resolver.example.test", type: "A" });
  steps.push({ kind: "resolve", name: "resolver.example.test", type: "AAAA" });
  steps.push({ kind: "resolve", name: "resolver-mx.example.test", type: "MX" });
  steps.push({ kind: "resolve", name: "resolver-txt.example.test", type: "TXT" });

  // TLS: rustls handshakes (one without a server name), crafted hellos of every shape.
  tls({ via: "node", family: 4, port: 443, sni: "tls.example.test" });
  tls({ via: "node", family: 4, port: 443, sni: "www.example.test" });
  tls({ via: "node", family: 6, port: 443, sni: "v6.tls.example.test" });
  tls({ via: "node", family: 4, port: 8443, sni: "api.v2.example.test" });
  tls({ via: "node", family: 6, port: 8443, sni: "xn--bcher-kva.example.test" });
  tls({ via: "node", family: 4, port: 443, sni: `${"n".repeat(63)}.example.test` });
  tls({ via: "node", family: 4, port: 443 }); // an IP address: no server name
  tls({ via: "raw", family: 4, port: 443, sni: "raw.example.test" });
  tls({ via: "raw", family: 6, port: 9443, sni: "after10.example.test", extsBefore: 10 });
  tls({ via: "raw", family: 4, port: 9443, sni: "sid.example.test", sessionId: 32 });
  tls({
    via: "raw",
    family: 4,
    port: 443,
    sni: ["l".repeat(63), "m".repeat(63), "o".repeat(63), "example"].join("."),
  });
  tls({ via: "raw", family: 4, port: 8443, sni: "max.example.test", extsBefore: 31 });
  tls({ via: "raw", family: 6, port: 443 }); // crafted, no server name

  // Noise: nothing here is an HTTP request, a DNS query to port 53, or a ClientHello.
  for (let i = 0; i < 6; i++) {
    noise("udp", i % 2 ? 6 : 4, 7000, new Uint8Array([i, 0xff, 0x00, 0x42, i * 3]));
    noise(
      "udp",
      i % 2 ? 4 : 6,
      5353,
      dnsQuery({ id: 0x5350 + i, name: `mdns${i}.local`, qtype: 1 }),
    );
  }
  noise(
    "udp",
    4,
    53,
    dnsQuery({ id: 0x7777, name: "response.example.test", qtype: 1, flags: 0x8180 }),
  );
  noise(
    "udp",
    6,
    53,
    dnsQuery({ id: 0x7778, name: "response.example.test", qtype: 28, flags: 0x8183 }),
  );
  const text = (s: string) => enc.encode(s);
  noise("tcp", 4, 9000, text("GETX / HTTP/1.1\r\nHost: getx.example.test\r\n\r\n"));
  noise("tcp", 6, 9000, text("get / HTTP/1.1\r\nHost: lower.example.test\r\n\r\n"));
  noise("tcp", 4, 9000, text("GET /nine\r\n\r\n")); // HTTP/0.9: no version
  noise("tcp", 4, 9000, text("GET /two HTTP/2.0\r\nHost: two.example.test\r\n\r\n"));
  noise("tcp", 4, 9000, new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]));
  noise("tcp", 6, 9000, new Uint8Array(Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff)));
  noise("tcp", 4, 9000, text("SSH-2.0-OpenSSH_9.2\r\n"));
  noise("tcp", 4, 80, text("GETX / HTTP/1.1\r\nHost: getx.example.test\r\n\r\n"));

  return {
    addrs,
    steps,
    httpPorts: [80, 8080, 18080],
    tlsPorts: [443, 8443, 9443],
    tcpSinkPorts: [9000],
    udpSinkPorts: [5353, 7000],
  };
}

/** The HTTP records a correct `belt sniff --http` gives for the plan (sent by a to b). */
export function expectedHttp(plan: TrafficPlan): string[] {
  return plan.steps.filter((s): s is HttpStep => s.kind === "http").map((s) =>
    httpKey(s.family === 4 ? plan.addrs.b4 : plan.addrs.b6, s.port, {
      method: s.method,
      target: s.target,
      version: `HTTP/${s.version}`,
      host: s.host,
    })
  );
}

/** An HTTP record as a comparable string. */
export function httpKey(
  dst: string,
  dport: number,
  r: { method: string; target: string; version: string; host?: string },
): string {
  return JSON.stringify([dst, dport, r.method, r.target, r.version, r.host ?? null]);
}

/** The DNS records of the crafted queries (the resolver's have ids of its own). */
export function expectedDns(plan: TrafficPlan): string[] {
  return plan.steps.filter((s): s is DnsStep => s.kind === "dns").map((s) =>
    dnsKey(s.family === 4 ? plan.addrs.b4 : plan.addrs.b6, s)
  );
}

/** A DNS record as a comparable string. */
export function dnsKey(
  dst: string,
  r: { id: number; name: string; qtype: number; qclass: number },
): string {
  return JSON.stringify([dst, r.id, r.name, r.qtype, r.qclass]);
}

/** The server names a correct `belt sniff --tls-sni` gives for the plan. */
export function expectedTls(plan: TrafficPlan): string[] {
  return plan.steps.filter((s): s is TlsStep => s.kind === "tls" && s.sni !== undefined).map((
    s,
  ) => tlsKey(s.family === 4 ? plan.addrs.b4 : plan.addrs.b6, s.port, s.sni!));
}

/** A TLS record as a comparable string. */
export function tlsKey(dst: string, dport: number, sni: string): string {
  return JSON.stringify([dst, dport, sni]);
}

// ---------------------------------------------------------------------------------------------
// Running it from a test

/** Writes the plan, starts the server in `server`; resolves once it listens. */
export async function startServer(
  topo: Topology,
  host: string,
  plan: TrafficPlan,
  file: string,
): Promise<Background> {
  await Deno.writeTextFile(file, JSON.stringify(plan));
  const bg = new Background(
    topo.spawn(host, ["deno", "run", "-A", new URL(import.meta.url).pathname, "server", file]),
  );
  await bg.waitFor(/^ready$/m, 30_000);
  return bg;
}

/** Runs the client in `host` (bounded: 60 s); returns its report. */
export async function runClient(
  topo: Topology,
  host: string,
  file: string,
): Promise<ClientReport> {
  const r = await topo.run(host, [
    "timeout",
    "60",
    "deno",
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    "client",
    file,
  ], false);
  if (r.code !== 0) throw new Error(`traffic client exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClientReport;
}

// ---------------------------------------------------------------------------------------------
// The server and the client (run as programs)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads until EOF, `max` bytes, or `ms`; never throws. */
async function drain(conn: Deno.Conn, ms: number, max = 1 << 20): Promise<number> {
  const buf = new Uint8Array(65536);
  let total = 0;
  const deadline = Date.now() + ms;
  try {
    while (total < max && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buf),
        new Promise<"timeout">((r) =>
          timer = setTimeout(() => r("timeout"), deadline - Date.now())
        ),
      ]);
      clearTimeout(timer);
      if (n === null || n === "timeout") break;
      total += n;
    }
  } catch {
    // reset by the peer
  }
  return total;
}

async function server(plan: TrafficPlan): Promise<void> {
  const { b4, b6 } = plan.addrs;
  const dgram = await import("node:dgram");
  const closers: (() => unknown)[] = [];
  for (const hostname of [b4, b6]) {
    for (const port of plan.httpPorts) {
      const s = Deno.serve(
        { hostname, port, onListen() {} },
        (req) => new Response(req.method === "HEAD" ? null : "ok\n"),
      );
      closers.push(() => s.shutdown());
    }
    for (const port of [...plan.tlsPorts, ...plan.tcpSinkPorts]) {
      // Takes the first bytes (a ClientHello), then closes: no handshake is ever answered.
      const l = Deno.listen({ hostname, port });
      closers.push(() => l.close());
      (async () => {
        for await (const conn of l) {
          (async () => {
            await drain(conn, 1000, 1);
            try {
              conn.close();
            } catch {
              // closed
            }
          })();
        }
      })().catch(() => {});
    }
  }
  const bind = (type: "udp4" | "udp6", address: string, port: number) =>
    new Promise<import("node:dgram").Socket>((resolve, reject) => {
      const sock = dgram.createSocket(type);
      sock.once("error", reject);
      sock.bind(port, address, () => resolve(sock));
    });
  for (const [type, addr] of [["udp4", b4], ["udp6", b6]] as const) {
    const dns = await bind(type, addr, 53);
    // Answers queries (not responses) with NXDOMAIN: the question echoed, QR and RCODE set.
    dns.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
      if (msg.length < 12 || msg[2]! & 0x80) return;
      const reply = new Uint8Array(msg);
      reply[2] = 0x80 | (msg[2]! & 0x01);
      reply[3] = 0x83;
      dns.send(reply, rinfo.port, rinfo.address);
    });
    closers.push(() => dns.close());
    for (const port of plan.udpSinkPorts) {
      const sink = await bind(type, addr, port);
      closers.push(() => sink.close());
    }
  }
  console.error("ready");
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, resolve);
  });
  for (const close of closers) {
    try {
      await close();
    } catch {
      // already closed
    }
  }
  Deno.exit(0);
}

async function client(plan: TrafficPlan): Promise<ClientReport> {
  const { b4, b6 } = plan.addrs;
  const dgram = await import("node:dgram");
  const tlsLib = await import("node:tls");
  const report: ClientReport = { done: {}, failures: [] };
  const done = (what: string) => report.done[what] = (report.done[what] ?? 0) + 1;
  const addr = (family: 4 | 6) => family === 4 ? b4 : b6;
  const udp = async (family: 4 | 6, port: number, payload: Uint8Array, answer: boolean) => {
    const sock = dgram.createSocket(family === 4 ? "udp4" : "udp6");
    try {
      await new Promise<void>((resolve) =>
        sock.bind(0, family === 4 ? plan.addrs.a4 : plan.addrs.a6, resolve)
      );
      const got = answer
        ? new Promise<boolean>((resolve) => {
          sock.once("message", () => resolve(true));
          setTimeout(() => resolve(false), 1000);
        })
        : Promise.resolve(true);
      await new Promise<void>((resolve, reject) =>
        sock.send(payload, port, addr(family), (e: unknown) => e ? reject(e) : resolve())
      );
      return await got;
    } finally {
      sock.close();
    }
  };
  const tcp = async (family: 4 | 6, port: number, parts: Uint8Array[]) => {
    const conn = await Deno.connect({ hostname: addr(family), port });
    try {
      conn.setNoDelay(true);
      for (const [i, part] of parts.entries()) {
        if (i) await sleep(60); // its own segment
        await conn.write(part);
      }
      return await drain(conn, 3000);
    } finally {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  };

  for (const step of plan.steps) {
    const what = `${step.kind}${"via" in step ? `/${step.via}` : ""}`;
    try {
      if (step.kind === "http" && step.via === "raw") {
        const text = httpRequestText(step);
        const cut = text.indexOf("\r\n") + 2;
        const parts = step.split ? [text.slice(0, cut), text.slice(cut)] : [text];
        const n = await tcp(step.family, step.port, parts.map((p) => enc.encode(p)));
        if (n === 0) report.failures.push(`${step.method} ${step.target}: no response`);
      } else if (step.kind === "http") {
        const host = step.family === 4 ? b4 : `[${b6}]`;
        const res = await fetch(`http://${host}:${step.port}${step.target}`, {
          method: step.method,
          ...(step.body === undefined ? {} : { body: step.body }),
          signal: AbortSignal.timeout(3000),
        });
        await res.arrayBuffer();
        if (res.status !== 200) report.failures.push(`fetch ${step.target}: ${res.status}`);
      } else if (step.kind === "dns") {
        const answered = await udp(step.family, step.port, dnsQuery(step), true);
        if (!answered) report.failures.push(`dns ${step.name}: no answer`);
      } else if (step.kind === "resolve") {
        await Deno.resolveDns(step.name, step.type, {
          nameServer: { ipAddr: b4, port: 53 },
          signal: AbortSignal.timeout(3000),
        }).catch(() => {}); // NXDOMAIN
      } else if (step.kind === "tls" && step.via === "node") {
        await new Promise<void>((resolve) => {
          const sock = tlsLib.connect({
            host: addr(step.family),
            port: step.port,
            ...(step.sni === undefined ? {} : { servername: step.sni }),
            rejectUnauthorized: false,
          });
          const end = () => {
            clearTimeout(timer);
            sock.destroy();
            resolve();
          };
          const timer = setTimeout(end, 3000);
          sock.on("error", end);
          sock.on("close", end);
        });
      } else if (step.kind === "tls") {
        await tcp(step.family, step.port, [clientHello(step)]);
      } else if (step.proto === "udp") {
        await udp(step.family, step.port, fromHex(step.hex), false);
      } else {
        await tcp(step.family, step.port, [fromHex(step.hex)]);
      }
      done(what);
    } catch (e) {
      report.failures.push(`${what} ${JSON.stringify(step).slice(0, 120)}: ${e}`);
    }
  }
  return report;
}

if (import.meta.main) {
  const [role, file] = Deno.args;
  const plan = JSON.parse(await Deno.readTextFile(file!)) as TrafficPlan;
  if (role === "server") await server(plan);
  else if (role === "client") {
    const report = await client(plan);
    console.log(JSON.stringify(report));
    Deno.exit(0); // fetch's pooled connections would keep it running
  } else throw new Error(`usage: traffic.ts server|client PLAN.json`);
}

/**
 * belt firewall against real traffic, in namespaces only:
 *
 *   b (198.18.6x.2, fd00:beef::6x:2) ── eth0 [a] (198.18.6x.1 + extra addresses)
 *
 * a runs `belt firewall eth0` as a user would; b sends, either through its own
 * stack (ping, TCP, UDP) or as hand-made frames from a packet socket (spoofed
 * sources, 802.1Q and QinQ tags, other MACs, fragments). Ground truth: the
 * frames sent (each carries a marker), tcpdump on a's eth0 (it sees what XDP
 * let through), UDP receivers in a or b (what the stack delivered), and a
 * packet socket in b (what b's stack really sent). Every per-rule counter is
 * checked against the number of frames sent that the rule is the first to
 * match, worked out here from the flows, independently of belt's own code.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { PacketSocket, withNetns } from "../bpf/mod.ts";
import { eventually, kernelTest, tcPrograms } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";
import { background, BELT, capture } from "./harness/process.ts";
import type { Background } from "./harness/process.ts";
import { readPcap } from "./harness/pcap.ts";
import { cat, macOf, n16, n32 } from "./harness/frames.ts";
import type { Bytes } from "./harness/frames.ts";

// ---------------------------------------------------------------------------------------------
// Addresses and frames

/** The bytes of an IPv4 (dotted) or IPv6 (colon, `::` allowed) address. */
function ipBytes(s: string): number[] {
  if (!s.includes(":")) return s.split(".").map(Number);
  const [head = "", tail] = s.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.flatMap((g) => n16(parseInt(g, 16)));
}

/** Whether `addr` lies in `cidr` (same family only). */
function inNet(addr: string, cidr: string): boolean {
  const [net = "", len = "128"] = cidr.split("/");
  const a = ipBytes(addr), n = ipBytes(net);
  if (a.length !== n.length) return false;
  for (let bit = 0; bit < Number(len); bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((a[bit >> 3]! & mask) !== (n[bit >> 3]! & mask)) return false;
  }
  return true;
}

function macBytes(s: string): number[] {
  return s.split(":").map((h) => parseInt(h, 16));
}

function checksum(...parts: (Uint8Array | number[])[]): number {
  const b = cat(...parts);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** One VLAN tag: TPID (0x8100 802.1Q, 0x88a8 802.1ad) and id. */
interface Tag {
  tpid: number;
  vid: number;
}

/** What a test frame carries, enough to say which rule must match it. */
interface Flow {
  v: 4 | 6;
  src: string;
  dst: string;
  proto: "udp" | "tcp" | "icmp";
  sport: number;
  dport: number;
  /** ICMP/ICMPv6 type (proto icmp). */
  type: number;
  /** Ethernet source, when not b's own. */
  smac?: string;
  tags: Tag[];
  /** With IPv4 options (4 NOPs) or an IPv6 destination options header before the L4 header. */
  ext?: boolean;
}

const MAGIC = [0x42, 0x45, 0x4c, 0x54]; // "BELT"

/** Ethernet + tags + EtherType + payload. */
function ether(dst: Uint8Array, src: Uint8Array, tags: Tag[], type: number, payload: Uint8Array) {
  return cat(dst, src, ...tags.map((t) => [...n16(t.tpid), ...n16(t.vid)]), n16(type), payload);
}

/** IPv4 header (no options) + payload; `frag` is [offset in bytes, more fragments]. */
function ipv4(
  src: string,
  dst: string,
  proto: number,
  payload: Uint8Array,
  id = 1,
  frag = [0, 0],
  options: number[] = [],
) {
  const flags = (frag[1] ? 0x2000 : 0) | (frag[0]! >> 3);
  const len = 20 + options.length + payload.length;
  const h = cat([0x45 + options.length / 4, 0, ...n16(len), ...n16(id), ...n16(flags), 64, proto]);
  const hdr = cat(h, [0, 0], ipBytes(src), ipBytes(dst), options);
  hdr.set(n16(checksum(hdr)), 10);
  return cat(hdr, payload);
}

/** IPv6 header + payload. */
function ipv6(src: string, dst: string, next: number, payload: Uint8Array) {
  return cat(
    [0x60, 0, 0, 0, ...n16(payload.length), next, 64],
    ipBytes(src),
    ipBytes(dst),
    payload,
  );
}

/** TCP/UDP/ICMP header and payload, checksummed for `f`'s addresses. */
function transport(f: Flow, payload: Uint8Array): { proto: number; bytes: Bytes } {
  const pseudo = (proto: number, len: number) =>
    f.v === 4
      ? cat(ipBytes(f.src), ipBytes(f.dst), [0, proto], n16(len))
      : cat(ipBytes(f.src), ipBytes(f.dst), n32(len), [0, 0, 0, proto]);
  let proto: number, hdr: Bytes, at: number;
  if (f.proto === "udp") {
    proto = 17;
    hdr = cat(n16(f.sport), n16(f.dport), n16(8 + payload.length), [0, 0]);
    at = 6;
  } else if (f.proto === "tcp") {
    proto = 6; // a SYN (carrying the marker as data)
    hdr = cat(n16(f.sport), n16(f.dport), n32(1000), n32(0), [0x50, 0x02], n16(8192), [0, 0, 0, 0]);
    at = 16;
  } else {
    proto = f.v === 4 ? 1 : 58; // echo-style header: id, sequence
    hdr = cat([f.type, 0, 0, 0], n16(0x4245), n16(1));
    at = 2;
  }
  const len = hdr.length + payload.length;
  const sum = proto === 1 ? checksum(hdr, payload) : checksum(pseudo(proto, len), hdr, payload);
  hdr.set(n16(sum === 0 && proto === 17 ? 0xffff : sum), at);
  return { proto, bytes: cat(hdr, payload) };
}

/** The whole frame of `f` from b to a, with `marker` as the last 8 bytes. */
function frameOf(f: Flow, macs: { a: Uint8Array; b: Uint8Array }, marker: number): Bytes {
  const { proto, bytes } = transport(f, cat(MAGIC, n32(marker)));
  const src = f.smac ? new Uint8Array(macBytes(f.smac)) : macs.b;
  if (f.v === 4) {
    const options = f.ext ? [1, 1, 1, 1] : [];
    return ether(macs.a, src, f.tags, 0x0800, ipv4(f.src, f.dst, proto, bytes, 1, [0, 0], options));
  }
  if (!f.ext) return ether(macs.a, src, f.tags, 0x86dd, ipv6(f.src, f.dst, proto, bytes));
  const destOpts = cat([proto, 0, 1, 4, 0, 0, 0, 0], bytes); // PadN: 8 bytes in all
  return ether(macs.a, src, f.tags, 0x86dd, ipv6(f.src, f.dst, 60, destOpts));
}

/**
 * A UDP datagram of `size` payload bytes (marker last) cut into fragments of
 * at most 1500 bytes of IP packet: the first carries the UDP header.
 */
function fragmentedUdp(
  f: Flow,
  macs: { a: Uint8Array; b: Uint8Array },
  marker: number,
  size: number,
): Bytes[] {
  const payload = new Uint8Array(size).fill(0x61);
  payload.set(cat(MAGIC, n32(marker)), size - 8);
  const { bytes } = transport(f, payload);
  const chunk = f.v === 4 ? 1480 : 1448; // multiples of 8 that fit 1500 with the headers
  const out: Bytes[] = [];
  for (let off = 0; off < bytes.length; off += chunk) {
    const piece = bytes.subarray(off, off + chunk);
    const more = off + chunk < bytes.length ? 1 : 0;
    out.push(
      f.v === 4
        ? ether(
          macs.a,
          macs.b,
          [],
          0x0800,
          ipv4(f.src, f.dst, 17, piece, marker & 0xffff, [off, more]),
        )
        : ether(
          macs.a,
          macs.b,
          [],
          0x86dd,
          ipv6(f.src, f.dst, 44, cat([17, 0], n16(off | more), n32(marker), piece)),
        ),
    );
  }
  return out;
}

/** The marker of a test frame (found after its magic), or undefined. */
function markerOf(frame: Uint8Array): number | undefined {
  for (let i = frame.length - 8; i >= 0; i--) {
    if (MAGIC.every((m, j) => frame[i + j] === m)) {
      return new DataView(frame.buffer, frame.byteOffset).getUint32(i + 4);
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Processes: belt, receivers

interface RuleRow {
  n: number;
  rule: string;
  origin: string;
  packets: number;
  bytes: number;
  limited: number;
}

type Report = Record<string, number> & { rules: RuleRow[] };

async function startFirewall(topo: Topology, args: string[]): Promise<Background> {
  const fw = background(topo, "a", [...BELT, "firewall", "eth0", ...args, "--json"]);
  try {
    await fw.waitFor(/firewall on eth0/);
  } catch (e) {
    await fw.stop();
    throw e;
  }
  return fw;
}

/** Stops belt with SIGTERM; its final JSON report. */
async function stopFirewall(fw: Background): Promise<Report> {
  const r = await fw.stop();
  equal(r.code, 0, r.stderr);
  return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!);
}

/** Nothing of the firewall left on a's eth0: no XDP program, no TC egress program. */
async function assertDetached(topo: Topology): Promise<void> {
  const link = JSON.parse((await topo.run("a", ["ip", "-j", "-d", "link", "show", "eth0"])).stdout);
  equal(link[0].xdp, undefined, `XDP left on eth0: ${JSON.stringify(link[0].xdp)}`);
  withNetns(topo.ns("a"), () => {
    deepEqual(tcPrograms("eth0", "ingress"), []);
    deepEqual(tcPrograms("eth0", "egress"), []);
  });
  const tc = await topo.run("a", ["tc", "filter", "show", "dev", "eth0", "egress"], false);
  equal(tc.stdout.trim(), "", "no cls_bpf filter left");
}

interface Received {
  /** Datagrams per local port. */
  ports: Record<string, number>;
  /** Datagrams per marker, and the size of the last one. */
  markers: Record<string, number>;
  sizes: Record<string, number>;
}

/** A UDP receiver in `host` on `ports` (IPv4 and IPv6); stop() makes it print what it got. */
async function receiver(topo: Topology, host: string, ports: number[]): Promise<Background> {
  const code = `
    const ports = ${JSON.stringify(ports)};
    const got = { ports: {}, markers: {}, sizes: {} };
    for (const port of ports) {
      const sock = Deno.listenDatagram({ transport: "udp", hostname: "::", port });
      (async () => {
        for (;;) {
          const [d] = await sock.receive();
          got.ports[port] = (got.ports[port] ?? 0) + 1;
          const at = d.length - 8;
          if (at >= 0 && d[at] === 0x42 && d[at + 1] === 0x45 && d[at + 2] === 0x4c && d[at + 3] === 0x54) {
            const m = new DataView(d.buffer, d.byteOffset).getUint32(at + 4);
            got.markers[m] = (got.markers[m] ?? 0) + 1;
            got.sizes[m] = d.length;
          }
        }
      })().catch(() => {});
    }
    Deno.addSignalListener("SIGTERM", () => { console.log(JSON.stringify(got)); Deno.exit(0); });
    console.error("ready");`;
  const bg = background(topo, host, ["deno", "eval", "--unstable-net", code]);
  try {
    await bg.waitFor(/ready/);
  } catch (e) {
    await bg.stop();
    throw e;
  }
  return bg;
}

async function received(bg: Background): Promise<Received> {
  const r = await bg.stop();
  equal(r.code, 0, r.stderr);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

/**
 * What one test starts: background processes and a temporary directory, all
 * gone at its end, also when it fails.
 */
class Scope implements AsyncDisposable {
  readonly dir = Deno.makeTempDirSync({ prefix: "belt-fwt-" });
  readonly #procs: Background[] = [];

  /** Stops `p` (SIGTERM) when the scope ends, unless it has ended already. */
  keep<T extends Background>(p: T): T {
    this.#procs.push(p);
    return p;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const p of this.#procs.reverse()) await p.stop().catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** tcpdump in a: incoming only, small snap length and a big buffer so that no burst is lost. */
const TRUTH_OPTS = ["-Q", "in", "-s", "1600", "-B", "32768"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends frames from a packet socket, pausing now and then so the veth ring never overflows. */
async function sendAll(sock: PacketSocket, frames: Uint8Array[], every = 64): Promise<void> {
  for (let i = 0; i < frames.length; i++) {
    sock.send(frames[i]!);
    if (i % every === every - 1) await sleep(2);
  }
}

/** Frames a veth dropped on transmit (its peer's ring was full): lost before XDP saw them. */
async function txDropped(topo: Topology, host: string): Promise<number> {
  const s = JSON.parse((await topo.run(host, ["ip", "-j", "-s", "link", "show", "eth0"])).stdout);
  return s[0].stats64.tx.dropped;
}

// ---------------------------------------------------------------------------------------------
// 1. Every match kind, IPv4 and IPv6, untagged, 802.1Q and QinQ, and a rate limit

const A4 = "198.18.60.1", B4 = "198.18.60.2", A6 = "fd00:beef::60:1", B6 = "fd00:beef::60:2";
const FAKE_MAC = "02:be:17:00:00:01";

/** One rule under test and, independently of belt, which flows it matches. */
interface Case {
  rule: string;
  allow?: boolean;
  m: (f: Flow) => boolean;
}

const isPort = (f: Flow) => f.proto === "udp" || f.proto === "tcp";

/** In order: the first matching rule decides (--default allow). */
const CASES: Case[] = [
  {
    rule: "allow src 198.18.60.131 udp",
    allow: true,
    m: (f) => f.src === "198.18.60.131" && f.proto === "udp",
  },
  { rule: "deny src 198.18.60.128/28", m: (f) => inNet(f.src, "198.18.60.128/28") },
  {
    rule: "allow src fd00:beef::60:83 udp",
    allow: true,
    m: (f) => f.src === "fd00:beef::60:83" && f.proto === "udp",
  },
  { rule: "deny src fd00:beef::60:80/124", m: (f) => inNet(f.src, "fd00:beef::60:80/124") },
  { rule: "deny dst 198.18.60.64/30", m: (f) => inNet(f.dst, "198.18.60.64/30") },
  { rule: "deny dst fd00:beef::60:40/126", m: (f) => inNet(f.dst, "fd00:beef::60:40/126") },
  {
    rule: "deny host 198.18.60.33",
    m: (f) => f.src === "198.18.60.33" || f.dst === "198.18.60.33",
  },
  {
    rule: "deny host 198.18.60.150",
    m: (f) => f.src === "198.18.60.150" || f.dst === "198.18.60.150",
  },
  {
    rule: "deny host fd00:beef::60:21",
    m: (f) => f.src === "fd00:beef::60:21" || f.dst === "fd00:beef::60:21",
  },
  {
    rule: "deny host fd00:beef::60:96",
    m: (f) => f.src === "fd00:beef::60:96" || f.dst === "fd00:beef::60:96",
  },
  { rule: "deny tcp dport 7010", m: (f) => f.proto === "tcp" && f.dport === 7010 },
  {
    rule: "deny udp dport 7100-7109",
    m: (f) => f.proto === "udp" && f.dport >= 7100 && f.dport <= 7109,
  },
  { rule: "deny udp sport 7020", m: (f) => f.proto === "udp" && f.sport === 7020 },
  { rule: "deny port 7030", m: (f) => isPort(f) && (f.sport === 7030 || f.dport === 7030) },
  {
    rule: "deny icmp type echo-request",
    m: (f) => f.v === 4 && f.proto === "icmp" && f.type === 8,
  },
  { rule: "deny icmp6 type 128", m: (f) => f.v === 6 && f.proto === "icmp" && f.type === 128 },
  { rule: `deny ether src ${FAKE_MAC}`, m: (f) => f.smac === FAKE_MAC },
  { rule: "deny vlan 101", m: (f) => f.tags[0]?.vid === 101 },
  { rule: "deny vlan 201", m: (f) => f.tags[0]?.vid === 201 },
  {
    rule: "deny src 198.18.60.160/28 udp dport 7200-7209",
    m: (f) =>
      inNet(f.src, "198.18.60.160/28") && f.proto === "udp" && f.dport >= 7200 && f.dport <= 7209,
  },
  {
    rule: "deny src fd00:beef::60:a0/124 tcp dport 7200-7209",
    m: (f) =>
      inNet(f.src, "fd00:beef::60:a0/124") && f.proto === "tcp" && f.dport >= 7200 &&
      f.dport <= 7209,
  },
  {
    rule: "deny src fd00:beef::60:b0/124 icmp6",
    m: (f) => inNet(f.src, "fd00:beef::60:b0/124") && f.v === 6 && f.proto === "icmp",
  },
  { rule: "deny tcp", m: (f) => f.proto === "tcp" },
  { rule: "deny icmp", m: (f) => f.v === 4 && f.proto === "icmp" },
];

/** The limit: a burst from b's address, and a smaller one from another source (its own bucket). */
const LIMIT = {
  rule: "limit 100/s burst 10 udp dport 7500",
  rate: 100,
  burst: 10,
  sources: [["198.18.60.2", 300], ["198.18.60.3", 30]] as const,
};

/** A flow with defaults: b's own address to a's, UDP from 40000 to 7001. */
function flow(v: 4 | 6, over: Partial<Flow> = {}): Flow {
  return {
    v,
    src: v === 4 ? B4 : B6,
    dst: v === 4 ? A4 : A6,
    proto: "udp",
    sport: 40000,
    dport: 7001,
    type: 0,
    tags: [],
    ...over,
  };
}

/** Flows each sent untagged, with one 802.1Q tag and as QinQ: matches and near misses. */
const FLOWS: Flow[] = [
  // source CIDR, and an allow rule before it (first match wins)
  flow(4, { src: "198.18.60.131" }), // allow
  flow(4, { src: "198.18.60.131", proto: "tcp", dport: 7002 }), // deny src /28 (allow is udp only)
  flow(4, { src: "198.18.60.130" }),
  flow(4, { src: "198.18.60.143" }),
  flow(4, { src: "198.18.60.144" }), // outside the /28: passes
  flow(6, { src: "fd00:beef::60:83" }), // allow
  flow(6, { src: "fd00:beef::60:83", proto: "tcp", dport: 7002 }),
  flow(6, { src: "fd00:beef::60:82" }),
  flow(6, { src: "fd00:beef::60:8f" }),
  flow(6, { src: "fd00:beef::60:90" }), // passes
  // destination CIDR (a's extra addresses)
  flow(4, { dst: "198.18.60.65" }),
  flow(4, { dst: "198.18.60.66" }),
  flow(4, { dst: "198.18.60.70" }), // passes
  flow(6, { dst: "fd00:beef::60:41" }),
  flow(6, { dst: "fd00:beef::60:46" }), // passes
  // host, either side
  flow(4, { dst: "198.18.60.33" }),
  flow(4, { src: "198.18.60.150" }),
  flow(4, { src: "198.18.60.151" }), // passes
  flow(6, { dst: "fd00:beef::60:21" }),
  flow(6, { src: "fd00:beef::60:96" }),
  flow(6, { src: "fd00:beef::60:97" }), // passes
  // protocol + port, ranges, source port, either port
  flow(4, { proto: "tcp", dport: 7010 }),
  flow(6, { proto: "tcp", dport: 7010 }),
  flow(4, { dport: 7010 }), // udp: passes
  flow(6, { dport: 7010 }),
  flow(4, { proto: "tcp", dport: 7011 }), // deny tcp (last)
  ...[7099, 7100, 7105, 7109, 7110].flatMap((dport) => [flow(4, { dport }), flow(6, { dport })]),
  flow(4, { sport: 7020, dport: 7021 }),
  flow(6, { sport: 7020, dport: 7021 }),
  flow(4, { sport: 7019, dport: 7021 }), // passes
  flow(4, { dport: 7030 }),
  flow(6, { sport: 7030, dport: 7031 }),
  flow(4, { sport: 7029, dport: 7031 }), // passes
  // ICMP types
  flow(4, { proto: "icmp", type: 8 }),
  flow(4, { proto: "icmp", type: 0 }), // deny icmp (last)
  flow(6, { proto: "icmp", type: 128 }),
  flow(6, { proto: "icmp", type: 129 }), // passes
  flow(6, { src: "fd00:beef::60:b1", proto: "icmp", type: 128 }), // icmp6 type 128 comes first
  flow(6, { src: "fd00:beef::60:b1", proto: "icmp", type: 129 }), // src /124 icmp6
  flow(6, { src: "fd00:beef::60:b1" }), // udp: passes
  // source MAC
  flow(4, { smac: FAKE_MAC }),
  flow(6, { smac: FAKE_MAC }),
  flow(4, { smac: "02:be:17:00:00:02" }), // passes
  // combined: CIDR + protocol + port range
  flow(4, { src: "198.18.60.161", dport: 7205 }),
  flow(4, { src: "198.18.60.161", dport: 7210 }), // passes
  flow(4, { src: "198.18.60.176", dport: 7205 }), // passes
  flow(4, { src: "198.18.60.161", proto: "tcp", dport: 7205 }), // deny tcp (last)
  flow(6, { src: "fd00:beef::60:a1", proto: "tcp", dport: 7205 }),
  flow(6, { src: "fd00:beef::60:a1", dport: 7205 }), // udp: passes
  // ports behind IPv4 options and IPv6 extension headers
  flow(4, { dport: 7105, ext: true }),
  flow(6, { dport: 7105, ext: true }),
  flow(6, { src: "fd00:beef::60:82", ext: true }),
  flow(4, { dport: 7001, ext: true }), // passes
  flow(6, { dport: 7001, ext: true }), // passes
];

/** Flows with their own tags (VLAN rules), sent as they are. */
const TAGGED_FLOWS: Flow[] = [
  flow(4, { tags: [{ tpid: 0x8100, vid: 101 }] }),
  flow(6, { tags: [{ tpid: 0x8100, vid: 101 }] }),
  flow(4, { tags: [{ tpid: 0x8100, vid: 102 }] }), // passes
  flow(4, { tags: [{ tpid: 0x88a8, vid: 201 }, { tpid: 0x8100, vid: 5 }] }),
  flow(6, { tags: [{ tpid: 0x88a8, vid: 201 }, { tpid: 0x8100, vid: 5 }] }),
  flow(4, { tags: [{ tpid: 0x88a8, vid: 202 }, { tpid: 0x8100, vid: 201 }] }), // inner 201: passes
  flow(4, { tags: [{ tpid: 0x8100, vid: 201 }] }), // 802.1Q 201
];

const VARIANTS: Tag[][] = [
  [],
  [{ tpid: 0x8100, vid: 10 }],
  [{ tpid: 0x88a8, vid: 20 }, { tpid: 0x8100, vid: 21 }],
];
const PER_FLOW = 3;

/** a's addresses: what its stack delivers locally. */
const A_ADDRS = [
  "198.18.60.1/24",
  "198.18.60.33/24",
  "198.18.60.65/24",
  "198.18.60.70/24",
  "fd00:beef::60:1/112",
  "fd00:beef::60:21/112",
  "fd00:beef::60:41/112",
  "fd00:beef::60:46/112",
];

interface Sent {
  flow: Flow;
  frame: Bytes;
  marker: number;
  /** Index of the first matching case, or -1. */
  rule: number;
  pass: boolean;
  /** A UDP socket in a must get it. */
  delivered: boolean;
}

function plan(macs: { a: Uint8Array; b: Uint8Array }): Sent[] {
  const own = new Set(A_ADDRS.map((s) => s.split("/")[0]));
  const flows = [
    ...FLOWS.flatMap((f) => VARIANTS.map((tags) => ({ ...f, tags }))),
    ...TAGGED_FLOWS,
  ];
  const out: Sent[] = [];
  let marker = 1;
  for (const f of flows) {
    const rule = CASES.findIndex((c) => c.m(f));
    const pass = rule < 0 || CASES[rule]!.allow === true;
    for (let i = 0; i < PER_FLOW; i++) {
      out.push({
        flow: f,
        frame: frameOf(f, macs, marker),
        marker: marker++,
        rule,
        pass,
        delivered: pass && !f.tags.length && f.proto === "udp" && own.has(f.dst),
      });
    }
  }
  return out;
}

/** The first few items, one a line, for an assertion message. */
function listed<T>(items: T[], show: (x: T) => string): string {
  return items.slice(0, 12).map(show).join("\n");
}

function describe(f: Flow): string {
  const tags = f.tags.map((t) => `${t.tpid.toString(16)}/${t.vid}`).join("+") || "untagged";
  const l4 = f.proto === "icmp" ? `icmp type ${f.type}` : `${f.proto} ${f.sport}->${f.dport}`;
  return `${f.src} -> ${f.dst} ${l4} ${tags}${f.smac ? ` from ${f.smac}` : ""}`;
}

for (const mode of ["native", "generic"] as const) {
  kernelTest(
    `belt firewall (XDP ${mode}): addresses, hosts, protocols, ports, ICMP types, MACs, VLANs (IPv4/IPv6, untagged/802.1Q/QinQ) and a rate limit: counters = frames sent, only allowed ones arrive`,
    async () => {
      await using topo = await Topology.create(["a", "b"], [{
        a: "a",
        b: "b",
        aAddrs: A_ADDRS,
        bAddrs: ["198.18.60.2/24", "fd00:beef::60:2/112"],
      }]);
      await using scope = new Scope();
      const macs = { a: await macOf(topo, "a"), b: await macOf(topo, "b") };
      const sent = plan(macs);
      // Every rule is exercised, and some frames of every kind pass.
      CASES.forEach((c, i) => ok(sent.some((s) => s.rule === i), `no flow for '${c.rule}'`));
      ok(sent.filter((s) => s.pass && s.flow.tags.length === 2).length > 0, "QinQ frames pass");
      // Interleaved: one frame of the second source after every tenth of the first.
      const limitFrames: { src: string; marker: number; frame: Bytes }[] = [];
      const [[srcA, nA], [srcB, nB]] = LIMIT.sources;
      const push = (src: string) => {
        const marker = 100_000 + limitFrames.length;
        limitFrames.push({
          src,
          marker,
          frame: frameOf(flow(4, { src, dport: 7500 }), macs, marker),
        });
      };
      for (let i = 0; i < nA; i++) {
        push(srcA);
        if (i % (nA / nB) === 0) push(srcB);
      }
      equal(limitFrames.length, nA + nB);
      const ports = [
        ...new Set([...sent.filter((s) => s.flow.proto === "udp").map((s) => s.flow.dport), 7500]),
      ];
      const rx = scope.keep(await receiver(topo, "a", ports));
      const truth = scope.keep(
        await capture(topo, "a", "eth0", `${scope.dir}/in.pcap`, TRUTH_OPTS),
      );
      const fw = scope.keep(
        await startFirewall(topo, [
          ...CASES.flatMap((c) => [`--${c.allow ? "allow" : "deny"}`, c.rule.replace(/^\w+ /, "")]),
          "--limit",
          LIMIT.rule.replace(/^limit /, ""),
          "--mode",
          mode,
        ]),
      );
      ok(fw.stderr.includes(`XDP ${mode}`), fw.stderr);
      let report!: Report;
      let tcpdump = { stderr: "" };
      let limitSeconds = 0;
      const dropsBefore = await txDropped(topo, "b");
      try {
        const sock = withNetns(topo.ns("b"), () => PacketSocket.open("eth0"));
        try {
          await sendAll(sock, sent.map((s) => s.frame));
          await sleep(50);
          // The limit: everything at once, as fast as the socket takes it.
          const t0 = performance.now();
          for (const f of limitFrames) sock.send(f.frame);
          limitSeconds = (performance.now() - t0) / 1000;
        } finally {
          sock.close();
        }
        await sleep(300);
        report = await stopFirewall(fw);
      } finally {
        await fw.stop();
        tcpdump = await truth.stop("SIGINT");
      }
      const got = await received(rx);
      equal(await txDropped(topo, "b"), dropsBefore, "no frame lost on the veth before XDP");
      ok(/^0 packets dropped by kernel/m.test(tcpdump.stderr), tcpdump.stderr);
      const seen = new Map<number, number>();
      for (const f of readPcap(await Deno.readFile(`${scope.dir}/in.pcap`))) {
        const m = markerOf(f.data);
        if (m !== undefined) seen.set(m, (seen.get(m) ?? 0) + 1);
      }

      // Per rule: packets and bytes = the frames sent that it is the first to match.
      equal(report.rules.length, CASES.length + 1);
      for (const [i, c] of CASES.entries()) {
        const mine = sent.filter((s) => s.rule === i);
        const row = report.rules[i]!;
        equal(row.n, i + 1);
        equal(row.origin, "command");
        equal(row.packets, mine.length, `'${c.rule}' (${row.rule}) packets`);
        equal(row.bytes, mine.reduce((n, s) => n + s.frame.length, 0), `'${c.rule}' bytes`);
        equal(row.limited, 0);
      }
      // Ground truth: denied frames never got past XDP, allowed ones did, once.
      const wrong = sent.filter((s) => (seen.get(s.marker) ?? 0) !== (s.pass ? 1 : 0));
      const seenText = (s: Sent) => `${describe(s.flow)}: seen ${seen.get(s.marker) ?? 0}×`;
      equal(wrong.length, 0, `frames wrong past XDP:\n${listed(wrong, seenText)}`);
      // And the stack delivered the allowed untagged UDP to a's sockets, nothing else.
      const badRx = sent.filter((s) => (got.markers[s.marker] ?? 0) !== (s.delivered ? 1 : 0));
      const rxText = (s: Sent) => `${describe(s.flow)}: delivered ${got.markers[s.marker] ?? 0}×`;
      equal(badRx.length, 0, `datagrams wrongly delivered or not:\n${listed(badRx, rxText)}`);
      ok(sent.filter((s) => s.delivered).length >= 20);

      // The limit: every frame counted, `limited` is exactly what did not pass.
      const lim = report.rules[CASES.length]!;
      equal(lim.rule, LIMIT.rule);
      equal(lim.packets, limitFrames.length, "every frame of the bursts met the limit rule");
      const passed = limitFrames.filter((f) => seen.get(f.marker) === 1);
      equal(lim.limited, limitFrames.length - passed.length, `limited = sent - passed`);
      equal(got.ports["7500"] ?? 0, passed.length, "what passed was delivered");
      equal(passed.filter((f) => got.markers[f.marker] === 1).length, passed.length);
      // Per source: the burst, plus the rate over the time it took (wide bounds).
      const most = LIMIT.burst + 1 + LIMIT.rate * (limitSeconds + 0.05) + 2;
      for (const [src] of LIMIT.sources) {
        const n = passed.filter((f) => f.src === src).length;
        ok(
          n >= LIMIT.burst && n <= most,
          `${src}: ${n} passed in ${limitSeconds.toFixed(3)} s, expected ${LIMIT.burst}..${
            most.toFixed(0)
          }`,
        );
      }
      // Totals: every drop is one of ours (b's own ARP/ND/MLD passes by default).
      const denied = sent.filter((s) => !s.pass).length;
      equal(report.dropped_in, denied + lim.limited);
      equal(report.default_dropped_in, 0);
      equal(report.fragments, 0);
      equal(report.malformed, 0);
      ok(report.packets_in >= sent.length + limitFrames.length);
      await assertDetached(topo);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// 2. --default deny: what is allowed works, ARP and ND are kept, `deny arp` still blocks ARP

/** What b's own stack sent, from a packet socket in b (outgoing frames carry b's MAC). */
function sentBy(frames: Uint8Array[], mac: Uint8Array) {
  const out = { arp: 0, nd: 0, echo4: 0, echo6: 0, tcp7600: 0, udp7601: 0 };
  for (const f of frames) {
    if (!mac.every((b, i) => f[6 + i] === b)) continue;
    const type = (f[12]! << 8) | f[13]!;
    if (type === 0x0806) out.arp++;
    if (type === 0x0800 && f[23] === 1 && f[34] === 8) out.echo4++;
    if (type === 0x0800 && f[23] === 6 && ((f[36]! << 8) | f[37]!) === 7600) out.tcp7600++;
    if (type === 0x0800 && f[23] === 17 && ((f[36]! << 8) | f[37]!) === 7601) out.udp7601++;
    if (type === 0x86dd && f[20] === 58 && f[54] === 128) out.echo6++;
    if (type === 0x86dd && f[20] === 58 && f[54]! >= 133 && f[54]! <= 137) out.nd++;
  }
  return out;
}

/** The rules of the firewall running on a's eth0, from `belt firewall eth0 list --json`. */
async function listRules(topo: Topology): Promise<RuleRow[]> {
  const r = await topo.run("a", [...BELT, "firewall", "eth0", "list", "--json"]);
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l));
}

async function flushNeighbours(topo: Topology): Promise<void> {
  for (const host of ["a", "b"]) await topo.run(host, ["ip", "neigh", "flush", "all"]);
}

kernelTest(
  "belt firewall --default deny: allowed TCP and pings work, ARP and ND are kept, the rest is dropped; an added `deny arp` blocks ARP",
  async () => {
    await using topo = await Topology.pair(62);
    await using scope = new Scope();
    const macB = await macOf(topo, "b");
    // b gives up resolving quickly (phase 2): 2 ARP requests 200 ms apart.
    await topo.run("b", [
      "sysctl",
      "-qw",
      "net.ipv4.neigh.eth0.mcast_solicit=2",
      "net.ipv4.neigh.eth0.retrans_time_ms=200",
    ]);
    const server = scope.keep(background(topo, "a", [
      "deno",
      "eval",
      `const l = Deno.listen({ hostname: "198.18.62.1", port: 7600 }); console.error("up");
       const c = await l.accept(); const buf = new Uint8Array(64); const n = await c.read(buf);
       await c.write(buf.subarray(0, n ?? 0)); c.close(); l.close();`,
    ]));
    const rx = scope.keep(await receiver(topo, "a", [7601]));
    await server.waitFor(/up/);
    const fw = scope.keep(
      await startFirewall(topo, [
        "--default",
        "deny",
        "--allow",
        "tcp dport 7600",
        "--allow",
        "icmp type echo-request",
        "--allow",
        "icmp6 type echo-request",
      ]),
    );
    let report!: Report;
    let phase1!: ReturnType<typeof sentBy>, phase2!: ReturnType<typeof sentBy>;
    let rules1!: RuleRow[];
    try {
      await flushNeighbours(topo); // so that ARP and ND must get through the firewall
      const sock = withNetns(topo.ns("b"), () => PacketSocket.open("eth0"));
      try {
        equal(
          await topo.ping("b", "198.18.62.1", 3),
          3,
          "ping through 'allow icmp type echo-request'",
        );
        equal(
          await topo.ping("b", "fd00:beef::62:1", 3),
          3,
          "ping6 through 'allow icmp6 type ...'",
        );
        const echo = await topo.run("b", [
          "timeout",
          "5",
          "bash",
          "-c",
          "exec 3<>/dev/tcp/198.18.62.1/7600; echo hello-belt >&3; read -u 3 line; echo $line",
        ]);
        equal(
          echo.stdout.trim(),
          "hello-belt",
          "TCP handshake and data through 'allow tcp dport 7600'",
        );
        equal((await server.finished()).code, 0);
        await topo.sendUdp("b", "198.18.62.1", 7601, 5); // no rule: the default drops it
        await sleep(100);
        phase1 = sentBy(sock.drain(), macB);
        rules1 = await listRules(topo);

        // Phase 2: a rule that matches ARP decides, default deny or not.
        const add = await topo.run("a", [...BELT, "firewall", "eth0", "add", "deny arp", "--json"]);
        deepEqual(JSON.parse(add.stdout), { iface: "eth0", added: ["deny arp"], rules: 4 });
        await flushNeighbours(topo);
        sock.drain();
        equal(await topo.ping("b", "198.18.62.1", 1), 0, "no ARP reply, no ping");
        ok(
          await eventually(async () =>
            /FAILED/.test((await topo.run("b", ["ip", "neigh", "show", "198.18.62.1"])).stdout)
          ),
          "b gave up resolving a",
        );
        phase2 = sentBy(sock.drain(), macB);
      } finally {
        sock.close();
      }
      report = await stopFirewall(fw);
    } finally {
      await fw.stop();
      await server.stop();
    }
    const got = await received(rx);

    // Phase 1: counters = what b's stack sent, resolution went through the default deny.
    equal(phase1.echo4, 3);
    equal(phase1.echo6, 3);
    ok(phase1.tcp7600 >= 4, `TCP segments b sent: ${phase1.tcp7600}`);
    equal(phase1.udp7601, 5);
    ok(phase1.arp > 0 && phase1.nd > 0, `b resolved a: ${phase1.arp} ARP, ${phase1.nd} ND frames`);
    deepEqual(
      rules1.map((r) => [r.rule, r.packets]),
      [
        ["allow tcp dport 7600", phase1.tcp7600],
        ["allow icmp type echo-request", 3],
        ["allow icmp6 type echo-request", 3],
      ],
    );
    equal(got.ports["7601"] ?? 0, 0, "the default dropped the UDP datagrams");
    ok(report.kept_nd >= phase1.arp + phase1.nd, `kept_nd ${report.kept_nd}`);
    ok(report.default_dropped_in >= 5, `default_dropped_in ${report.default_dropped_in}`);

    // Phase 2: every ARP frame b sent met `deny arp`, none was kept.
    ok(phase2.arp >= 1, "b tried ARP");
    const arp = report.rules[3]!;
    deepEqual([arp.rule, arp.origin, arp.packets], ["deny arp", "added", phase2.arp]);
    equal(report.rules[0]!.packets, phase1.tcp7600);
    await assertDetached(topo);
  },
);

// ---------------------------------------------------------------------------------------------
// 3. Fragments, and rules on egress

/** IPv4 identification or IPv6 fragment id of a fragment, or undefined. */
function fragIdOf(f: Uint8Array): string | undefined {
  const type = (f[12]! << 8) | f[13]!;
  if (type === 0x0800 && (((f[20]! << 8) | f[21]!) & 0x3fff) !== 0) {
    return `4/${(f[18]! << 8) | f[19]!}`;
  }
  if (type === 0x86dd && f[20] === 44) {
    return `6/${new DataView(f.buffer, f.byteOffset).getUint32(58)}`;
  }
  return undefined;
}

kernelTest(
  "belt firewall: fragments (port rules see only the first, address rules all) and `out` rules on egress",
  async () => {
    await using topo = await Topology.create(["a", "b"], [{
      a: "a",
      b: "b",
      aAddrs: ["198.18.63.1/24", "fd00:beef::63:1/112"],
      bAddrs: ["198.18.63.2/24", "198.18.63.200/24", "fd00:beef::63:2/112", "fd00:beef::63:c8/112"],
    }]);
    await using scope = new Scope();
    const macs = { a: await macOf(topo, "a"), b: await macOf(topo, "b") };
    const datagram = (v: 4 | 6, src: string, dport: number) =>
      flow(v, { src, dst: v === 4 ? "198.18.63.1" : "fd00:beef::63:1", dport });
    // [flow, fragments expected past XDP, delivered]
    const plan: [Flow, number, boolean][] = [
      [datagram(4, "198.18.63.2", 7300), 2, false], // port rule: first fragment only
      [datagram(4, "198.18.63.2", 7301), 3, true],
      [datagram(4, "198.18.63.150", 7301), 0, false], // address rule: every fragment
      [datagram(6, "fd00:beef::63:2", 7300), 2, false],
      [datagram(6, "fd00:beef::63:2", 7301), 3, true],
      [datagram(6, "fd00:beef::63:96", 7301), 0, false],
    ];
    const frames = plan.map(([f], i) => fragmentedUdp(f, macs, 0x5000 + i, 3000));
    frames.forEach((fs) => equal(fs.length, 3));
    const rxA = scope.keep(await receiver(topo, "a", [7300, 7301]));
    const rxB = scope.keep(await receiver(topo, "b", [7302, 7303, 7304, 7305]));
    const truth = scope.keep(await capture(topo, "a", "eth0", `${scope.dir}/in.pcap`, TRUTH_OPTS));
    const fw = scope.keep(
      await startFirewall(topo, [
        "--deny",
        "udp dport 7300",
        "--deny",
        "src 198.18.63.150",
        "--deny",
        "src fd00:beef::63:96",
        "--deny",
        "out dst 198.18.63.200",
        "--deny",
        "out dst fd00:beef::63:c8",
      ]),
    );
    ok(/\+ TC egress/.test(fw.stderr), fw.stderr);
    let report!: Report;
    let rules1!: RuleRow[];
    let tcpdump = { stderr: "" };
    try {
      const sock = withNetns(topo.ns("b"), () => PacketSocket.open("eth0"));
      try {
        await sendAll(sock, frames.flat());
      } finally {
        sock.close();
      }
      // Egress: a sends 5 datagrams to each of b's addresses; the denied ones never leave.
      await topo.sendUdp("a", "198.18.63.200", 7302, 5);
      await topo.sendUdp("a", "198.18.63.2", 7303, 5);
      await topo.sendUdp("a", "fd00:beef::63:c8", 7304, 5);
      await topo.sendUdp("a", "fd00:beef::63:2", 7305, 5);
      await sleep(200);
      rules1 = await listRules(topo);
      equal(await topo.ping("a", "198.18.63.2", 1), 1, "a reaches b's other address");
      equal(await topo.ping("a", "fd00:beef::63:2", 1), 1);
      const denied = await topo.run("a", ["ping", "-c", "1", "-W", "0.3", "198.18.63.200"], false);
      ok(/0 received/.test(denied.stdout), denied.stdout + denied.stderr);
      report = await stopFirewall(fw);
    } finally {
      await fw.stop();
      tcpdump = await truth.stop("SIGINT");
    }
    const gotA = await received(rxA);
    const gotB = await received(rxB);
    ok(/^0 packets dropped by kernel/m.test(tcpdump.stderr), tcpdump.stderr);
    const seen = new Map<string, number>();
    for (const f of readPcap(await Deno.readFile(`${scope.dir}/in.pcap`))) {
      const id = fragIdOf(f.data);
      if (id) seen.set(id, (seen.get(id) ?? 0) + 1);
    }

    // Fragments: the port rule dropped the first fragments only, the address rules all three.
    deepEqual(rules1.slice(0, 3).map((r) => r.packets), [2, 3, 3], JSON.stringify(rules1));
    equal(report.fragments, 12, "two non-first fragments per datagram");
    plan.forEach(([f, past, delivered], i) => {
      const id = f.v === 4 ? `4/${(0x5000 + i) & 0xffff}` : `6/${0x5000 + i}`;
      equal(seen.get(id) ?? 0, past, `${describe(f)}: fragments past XDP`);
      equal(gotA.markers[0x5000 + i] ?? 0, delivered ? 1 : 0, `${describe(f)}: delivered`);
      if (delivered) equal(gotA.sizes[0x5000 + i], 3000);
    });
    equal(gotA.ports["7300"] ?? 0, 0, "nothing reassembled for the denied port");

    // Egress: counted, and only the denied destinations lost their datagrams.
    deepEqual(rules1.slice(3).map((r) => r.packets), [5, 5], JSON.stringify(rules1));
    deepEqual(gotB.ports, { 7303: 5, 7305: 5 });
    ok(report.rules[3]!.packets > 5, "the ping to the denied address was dropped too");
    equal(report.dropped_out, report.rules[3]!.packets + report.rules[4]!.packets);
    ok(report.default_passed_out > 0);
    await assertDetached(topo);
  },
);

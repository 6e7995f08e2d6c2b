/**
 * belt sniff against tshark, in namespaces only:
 *
 *   a (198.18.S.1, fd00:beef::S:1) ── eth0 ═ eth0 ── b (198.18.S.2, fd00:beef::S:2)
 *
 * b runs small servers (HTTP on 80/8080/18080, DNS on 53, TLS-ish listeners
 * on 443/8443/9443, TCP and UDP sinks); a runs the traffic of
 * tests/harness/traffic.ts (HTTP requests, DNS queries, TLS ClientHellos,
 * noise) and pings. belt sniff and tshark capture a's eth0 over the same
 * window (all started before the traffic, stopped after it); tshark's
 * capture, its capture filters and its dissectors are the ground truth, and
 * the traffic plan says independently what every L7 record must be.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { readPcapng } from "../plugins/pcapng.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";
import { BELT } from "./harness/process.ts";
import type { Background, Result } from "./harness/process.ts";
import { assertSameFrames, hex, macOf, spontaneous } from "./harness/frames.ts";
import {
  assertSameMultiset,
  frameKey,
  inHost,
  reap,
  sniffJson,
  spawn,
  startSniff,
  startTshark,
  stopWithin,
  tsharkFields,
  tsharkFrames,
} from "./harness/sniff.ts";
import type { SniffRecord, SniffRecordWith } from "./harness/sniff.ts";
import {
  dnsKey,
  expectedDns,
  expectedHttp,
  expectedTls,
  httpKey,
  planTraffic,
  runClient,
  startServer,
  tlsKey,
} from "./harness/traffic.ts";
import type { ResolveStep, TrafficPlan } from "./harness/traffic.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** tshark's dissectors on the plan's ports, per segment (as belt reads each frame alone). */
const DISSECT = [
  "-o",
  "tcp.desegment_tcp_streams:FALSE",
  "-d",
  "tcp.port==18080,http",
  "-d",
  "tcp.port==8443,tls",
  "-d",
  "tcp.port==9443,tls",
];

/** What hosts send by themselves (MLD reports, router solicitations): not test traffic. */
const selfSent = (dst: string | undefined) => dst === "ff02::16" || dst === "ff02::2";

/** What capture() collected: belt's results by name, and the traffic's time window. */
interface Captured {
  out: Record<string, Result>;
  /**
   * Whether a frame's time (epoch seconds, the kernel's clock as belt and
   * tshark read it) falls between the traffic's start and its end: frames a
   * host sent by itself while the captures were starting or stopping (they
   * do not start and stop at the very same instant) are outside.
   */
  inWindow(ts: number): boolean;
}

/**
 * Starts b's servers and tshark (into truth.pcapng, plus any `filtered`
 * captures), then the belts; runs the plan's traffic and pings from a;
 * stops every belt with SIGINT, and tshark, at once.
 */
async function capture(
  topo: Topology,
  plan: TrafficPlan,
  dir: string,
  belts: Record<string, string[]>,
  filtered: Record<string, string> = {},
): Promise<Captured> {
  const procs: Background[] = [];
  try {
    procs.push(await startServer(topo, "b", plan, `${dir}/plan.json`));
    const tsharks = [await startTshark(topo, "a", "eth0", `${dir}/truth.pcapng`, procs)];
    for (const [name, filter] of Object.entries(filtered)) {
      tsharks.push(await startTshark(topo, "a", "eth0", `${dir}/${name}.pcapng`, procs, filter));
    }
    const names = Object.keys(belts);
    const running = await Promise.all(
      names.map((n) => startSniff(topo, "a", ["eth0", ...belts[n]!], procs)),
    );
    await sleep(300);
    const start = Date.now() / 1000;
    const report = await runClient(topo, "a", `${dir}/plan.json`);
    deepEqual(report.failures, [], "every step of the traffic did what it should");
    equal(await topo.ping("a", plan.addrs.b4, 3), 3);
    equal(await topo.ping("a", plan.addrs.b6, 3), 3);
    await sleep(500); // the last frames reach every socket
    const end = Date.now() / 1000;
    await sleep(300);
    const [results, stopped] = await Promise.all([
      Promise.all(running.map((bg) => stopWithin(bg, "SIGINT"))),
      Promise.all(tsharks.map((t) => stopWithin(t, "SIGINT"))),
    ]);
    for (const r of stopped) equal(r.code, 0, `tshark: ${r.stderr}`);
    return {
      out: Object.fromEntries(names.map((n, i) => [n, results[i]!])),
      inWindow: (ts) => ts >= start && ts <= end,
    };
  } finally {
    await reap(procs);
  }
}

/** An endpoint pair of a belt record or tshark row. */
const ends = (
  src: string,
  sport: number | string,
  dst: string,
  dport: number | string,
) => [src, Number(sport), dst, Number(dport)];

/** The L7 part of a text line, built here from a JSON record (formatL7 must agree). */
function l7Text(l7: NonNullable<SniffRecord["l7"]>): string {
  if (l7.kind === "http") {
    return `${l7.method} ${l7.target} ${l7.version}${
      l7.host === undefined ? "" : ` Host: ${l7.host}`
    }`;
  }
  if (l7.kind === "dns") {
    return `DNS ${l7.qtypeName}? ${l7.name || "."}${l7.qclass === 1 ? "" : ` CLASS${l7.qclass}`}`;
  }
  return `TLS SNI ${l7.sni}`;
}

const QTYPE_NAMES: Record<number, string> = {
  1: "A",
  2: "NS",
  12: "PTR",
  15: "MX",
  16: "TXT",
  28: "AAAA",
  33: "SRV",
  65: "HTTPS",
  255: "ANY",
  257: "CAA",
  65280: "TYPE65280",
};

kernelTest(
  "belt sniff --http, --dns, --tls-sni: exactly tshark's requests, queries and server names, " +
    "field for field; text lines and --snaplen agree",
  async () => {
    const SUBNET = 151;
    await using topo = await Topology.pair(SUBNET);
    const plan = planTraffic(SUBNET);
    const dir = await Deno.makeTempDir({ prefix: "belt-sniff-" });
    try {
      const all = ["--http", "--dns", "--tls-sni"];
      const { out } = await capture(topo, plan, dir, {
        http: ["--http", "--json"],
        dns: ["--dns", "--json"],
        tls: ["--tls-sni", "--json"],
        text: all,
        snapJson: [...all, "--snaplen", "60", "--json"],
        snapPcap: [...all, "--snaplen", "60", "--pcap", `${dir}/snap.pcapng`],
      });
      const truth = `${dir}/truth.pcapng`;
      // Typed by the kind each option prints; the loop below checks it record by record.
      const http = sniffJson(out.http!, "--http").records as SniffRecordWith<"http">[];
      const dns = sniffJson(out.dns!, "--dns").records as SniffRecordWith<"dns">[];
      const tls = sniffJson(out.tls!, "--tls-sni").records as SniffRecordWith<"tls">[];
      for (const [records, kind] of [[http, "http"], [dns, "dns"], [tls, "tls"]] as const) {
        for (const r of records) {
          equal(r.l7?.kind, kind, `--${kind} printed ${JSON.stringify(r)}`);
          equal(r.dir, "out", "a sent every request");
          equal(r.src, r.ethType === "0x0800" ? plan.addrs.a4 : plan.addrs.a6);
        }
      }

      // HTTP: tshark's requests, per segment; OWS after the Host value is not part of it (RFC 9110).
      const tHttp = await tsharkFields(truth, [
        "ip.src",
        "ipv6.src",
        "tcp.srcport",
        "ip.dst",
        "ipv6.dst",
        "tcp.dstport",
        "http.request.method",
        "http.request.uri",
        "http.request.version",
        "http.host",
      ], { filter: "http.request", extra: DISSECT });
      const httpOf = (
        e: unknown[],
        r: { method?: string; target?: string; version?: string; host?: string },
      ) => JSON.stringify([...e, r.method, r.target, r.version, r.host ?? null]);
      assertSameMultiset(
        tHttp.map((f) =>
          httpOf(ends(f[0] || f[1]!, f[2]!, f[3] || f[4]!, f[5]!), {
            method: f[6]!,
            target: f[7]!,
            version: f[8]!,
            ...(f[9]!.trim() ? { host: f[9]!.trim() } : {}),
          })
        ),
        http.map((r) => httpOf(ends(r.src!, r.sport!, r.dst!, r.dport!), r.l7!)),
        "belt --http vs tshark http.request",
      );
      assertSameMultiset(
        expectedHttp(plan),
        http.map((r) => httpKey(r.dst!, r.dport!, r.l7 as Parameters<typeof httpKey>[2])),
        "belt --http vs the requests sent",
      );
      equal(http.length, 27);

      // DNS: tshark's queries to UDP port 53 (first question).
      const tDns = await tsharkFields(truth, [
        "ip.src",
        "ipv6.src",
        "udp.srcport",
        "ip.dst",
        "ipv6.dst",
        "udp.dstport",
        "dns.id",
        "dns.qry.name",
        "dns.qry.type",
        "dns.qry.class",
      ], { filter: "udp.dstport == 53 && dns.flags.response == 0" });
      const dnsOf = (e: unknown[], id: number, name: string, qtype: number, qclass: number) =>
        JSON.stringify([...e, id, name, qtype, qclass]);
      assertSameMultiset(
        tDns.map((f) =>
          dnsOf(
            ends(f[0] || f[1]!, f[2]!, f[3] || f[4]!, f[5]!),
            Number(f[6]),
            f[7] === "<Root>" ? "" : f[7]!,
            Number(f[8]),
            Number(f[9]),
          )
        ),
        dns.map((r) =>
          dnsOf(
            ends(r.src!, r.sport!, r.dst!, r.dport!),
            r.l7!.id!,
            r.l7!.name!,
            r.l7!.qtype!,
            r.l7!.qclass!,
          )
        ),
        "belt --dns vs tshark's DNS queries",
      );
      const resolved = plan.steps.filter((s): s is ResolveStep => s.kind === "resolve");
      const resolverNames = new Set(resolved.map((s) => s.name));
      const crafted = dns.filter((r) => !resolverNames.has(r.l7!.name!));
      assertSameMultiset(
        expectedDns(plan),
        crafted.map((r) => dnsKey(r.dst!, r.l7 as Parameters<typeof dnsKey>[1])),
        "belt --dns vs the crafted queries sent",
      );
      assertSameMultiset(
        resolved.map((s) => `${s.name} ${s.type}`),
        dns.filter((r) => resolverNames.has(r.l7!.name!)).map((r) =>
          `${r.l7!.name} ${r.l7!.qtypeName}`
        ),
        "belt --dns vs Deno.resolveDns's queries",
      );
      for (const r of dns) equal(r.l7!.qtypeName, QTYPE_NAMES[r.l7!.qtype!], JSON.stringify(r.l7));
      equal(dns.length, 24);

      // TLS: tshark's ClientHellos that carry a server name.
      const tTls = await tsharkFields(truth, [
        "ip.src",
        "ipv6.src",
        "tcp.srcport",
        "ip.dst",
        "ipv6.dst",
        "tcp.dstport",
        "tls.handshake.extensions_server_name",
      ], {
        filter: "tls.handshake.type == 1 && tls.handshake.extensions_server_name",
        extra: DISSECT,
      });
      assertSameMultiset(
        tTls.map((f) =>
          JSON.stringify([...ends(f[0] || f[1]!, f[2]!, f[3] || f[4]!, f[5]!), f[6]])
        ),
        tls.map((r) => JSON.stringify([...ends(r.src!, r.sport!, r.dst!, r.dport!), r.l7!.sni])),
        "belt --tls-sni vs tshark's ClientHellos with a server name",
      );
      assertSameMultiset(
        expectedTls(plan),
        tls.map((r) => tlsKey(r.dst!, r.dport!, r.l7!.sni!)),
        "belt --tls-sni vs the server names sent",
      );
      const hellos = await tsharkFields(truth, ["frame.number"], {
        filter: "tls.handshake.type == 1",
        extra: DISSECT,
      });
      equal(hellos.length, tls.length + 2, "the two hellos without a server name are not reported");

      // The same records as text lines: one per frame, tcpdump-like, the summary on stderr.
      const union = [...http, ...dns, ...tls];
      const endpoint = (a: string, p: number) => `${a}.${p}`;
      const lines = out.text!.stdout.trim().split("\n");
      equal(out.text!.code, 0, out.text!.stderr);
      for (const line of lines) {
        match(
          line,
          /^\d\d:\d\d:\d\d\.\d{6} out IP6? \S+\.\d+ > \S+\.\d+ (GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|TRACE|DNS|TLS) /,
        );
      }
      assertSameMultiset(
        union.map((r) =>
          `${r.ethType === "0x86dd" ? "IP6" : "IP"} ${endpoint(r.src!, r.sport!)} > ` +
          `${endpoint(r.dst!, r.dport!)} ${l7Text(r.l7!)}`
        ),
        lines.map((l) => l.replace(/^\S+ out /, "")),
        "text lines vs the JSON records",
      );
      match(
        out.text!.stderr.trim().split("\n").at(-1)!,
        new RegExp(
          `^belt: ${lines.length} frames captured, ${lines.length} passed the filter of \\d+ seen, 0 dropped by the kernel \\(ring full\\)$`,
        ),
      );
      match(out.text!.stderr, /^belt: sniffing eth0$/m);

      // --snaplen 60: the same records; a DNS query is kept to the end of its question, a TLS
      // hello to the end of its server name, a (small) HTTP request whole.
      const snap = sniffJson(out.snapJson!, "--snaplen 60").records;
      const l7Of = (r: SniffRecord) =>
        JSON.stringify([...ends(r.src!, r.sport!, r.dst!, r.dport!), r.l7]);
      assertSameMultiset(union.map(l7Of), snap.map(l7Of), "--snaplen 60 decodes the same records");
      const full = new Map(union.map((r) => [l7Of(r), r]));
      for (const r of snap) {
        const whole = full.get(l7Of(r))!;
        equal(r.len, whole.len, "the wire length is kept");
        const ipHdr = r.ethType === "0x0800" ? 20 : 40;
        if (r.l7!.kind === "http") equal(r.caplen, r.len, `${l7Of(r)}: whole`);
        if (r.l7!.kind === "dns") {
          const name = r.l7!.name!;
          const end = 14 + ipHdr + 8 + 12 + (name ? name.length + 2 : 1) + 4;
          equal(r.caplen, Math.max(60, end), `${l7Of(r)}: to the end of the question`);
        }
        if (r.l7!.kind === "tls") ok(r.caplen > 60 && r.caplen <= r.len, `${l7Of(r)}: cut`);
      }
      ok(snap.some((r) => r.caplen < r.len), "some frames were cut");
      // ... and the cut frames written to pcapng still dissect to the same fields in tshark.
      const snapFile = readPcapng(await Deno.readFile(`${dir}/snap.pcapng`));
      equal(snapFile.packets.length, snap.length);
      equal(out.snapPcap!.code, 0, out.snapPcap!.stderr);
      // tshark leaves a cut TLS record undissected: there the frame must end with the name.
      const cutNames = await tsharkFields(`${dir}/snap.pcapng`, [
        "dns.qry.name",
        "http.request.uri",
      ], { extra: DISSECT });
      const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
      assertSameMultiset(
        union.map((r) =>
          r.l7!.kind === "dns"
            ? r.l7!.name || "<Root>"
            : r.l7!.kind === "http"
            ? r.l7!.target!
            : `ends with ${r.l7!.sni}`
        ),
        cutNames.map((f, i) => {
          const name = f.find((x) => x !== "");
          if (name !== undefined) return name;
          const data = snapFile.packets[i]!.data;
          // The name, after its 16-bit length: the last bytes of the frame.
          const sni = tls.map((r) => r.l7!.sni!).find((s) =>
            latin1(data.slice(-s.length - 2)) === String.fromCharCode(s.length >> 8, s.length) + s
          );
          return `ends with ${sni}`;
        }),
        "tshark reads the same DNS names and HTTP targets from belt's cut frames, " +
          "a cut ClientHello ends with its server name",
      );
      const truthPackets = readPcapng(await Deno.readFile(truth)).packets;
      const byPrefix = new Map(truthPackets.map((p) => [hex(p.data), p.originalLength]));
      for (const p of snapFile.packets) {
        const prefix = hex(p.data);
        ok(
          [...byPrefix].some(([h, len]) => h.startsWith(prefix) && len === p.originalLength),
          `a cut frame is the start of a frame tshark captured: ${prefix.slice(0, 80)}`,
        );
      }

      // Timestamps: those of the same frames in tshark's capture (same kernel clock).
      const tTimes = await tsharkFields(truth, [
        "tcp.srcport",
        "http.request.uri",
        "frame.time_epoch",
      ], {
        filter: "http.request",
        extra: DISSECT,
      });
      const timeOf = new Map(tTimes.map((f) => [`${f[0]} ${f[1]}`, Number(f[2])]));
      for (const r of http) {
        const t = timeOf.get(`${r.sport} ${r.l7!.target}`)!;
        ok(Math.abs(r.ts - t) < 0.05, `${r.l7!.target}: belt ts ${r.ts}, tshark ${t}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "belt sniff EXPR, in/out, --pcap and --snaplen: exactly tshark's frames, byte for byte",
  async () => {
    const SUBNET = 152;
    await using topo = await Topology.pair(SUBNET);
    const plan = planTraffic(SUBNET);
    const macA = hex(await macOf(topo, "a"));
    const dir = await Deno.makeTempDir({ prefix: "belt-sniff-" });
    try {
      const E1 = "udp and dst port 5353 or icmp6";
      const E2 = "tcp and dst port 80 and net 198.18.0.0/15";
      const { out, inWindow } = await capture(topo, plan, dir, {
        e1: ["--json", ...E1.split(" ")],
        e2: ["--json", E2],
        out: ["out", "--json"],
        in: ["--json", "in"],
        pcap: ["--pcap", `${dir}/belt.pcapng`],
        snap: ["--pcap", `${dir}/snap.pcapng`, "--snaplen", "60"],
      }, {
        e1: "(udp and dst port 5353) or icmp6",
        e2: "tcp and dst port 80 and net 198.18.0.0/15",
      });
      const key = (r: SniffRecord) => frameKey(r, Number(r.ethType));
      /** Test traffic: inside the window, not what a host sends by itself. */
      const ours = (dst: string | undefined, ts: number) => !selfSent(dst) && inWindow(ts);
      const oursFrame = (p: { data: Uint8Array; tsNs: bigint }) =>
        !spontaneous(p.data) && inWindow(Number(p.tsNs) / 1e9);

      // Expressions: the frames tshark's equivalent capture filter took.
      for (const name of ["e1", "e2"]) {
        const { records, summary } = sniffJson(out[name]!, name);
        equal(summary.matched, summary.passed, `${name}: no L7 condition`);
        const t = await tsharkFrames(`${dir}/${name}.pcapng`);
        assertSameMultiset(
          t.filter((f) => ours(f.dst, f.time)).map((f) => frameKey(f, f.ethType)),
          records.filter((r) => ours(r.dst, r.ts)).map(key),
          `belt sniff eth0 ${name === "e1" ? E1 : E2} vs tshark -f`,
        );
        if (name === "e1") {
          equal(records.filter((r) => r.dport === 5353).length, 6, "the six datagrams to 5353");
          equal(records.filter((r) => r.icmpType === 128 || r.icmpType === 129).length, 6);
          ok(records.some((r) => r.icmpType === 135) && records.some((r) => r.icmpType === 136));
        } else {
          ok(records.length >= 40, `${records.length} frames to port 80`);
          ok(records.every((r) => r.proto === "tcp" && r.dport === 80 && r.ethType === "0x0800"));
        }
      }

      // Directions: out is what a sent (its MAC as source), in the rest.
      const truth = (await tsharkFrames(`${dir}/truth.pcapng`)).filter((f) => ours(f.dst, f.time));
      for (const dir_ of ["out", "in"] as const) {
        const { records } = sniffJson(out[dir_]!, dir_);
        ok(records.every((r) => r.dir === dir_));
        const sent = (f: { ethSrc: string }) => f.ethSrc.replaceAll(":", "") === macA;
        assertSameMultiset(
          truth.filter((f) => sent(f) === (dir_ === "out")).map((f) => frameKey(f, f.ethType)),
          records.filter((r) => ours(r.dst, r.ts)).map(key),
          `belt sniff eth0 ${dir_} vs tshark's frames ${
            dir_ === "out" ? "from" : "not from"
          } a's MAC`,
        );
        ok(records.length >= 150, `${dir_}: ${records.length} frames`);
        ok(records.some((r) => r.ethType === "0x0806"), `${dir_}: ARP`);
      }

      // pcapng: tshark reads belt's file; the frames are tshark's own, byte for byte, directions too.
      const summaryOf = (r: Result) => {
        equal(r.code, 0, r.stderr);
        const m = /^belt: (\d+) frames captured, (\d+) passed the filter of (\d+) seen, 0 dropped/m
          .exec(r.stderr);
        ok(m, `summary on stderr: ${r.stderr}`);
        return Number(m[1]);
      };
      const truthFrames = readPcapng(await Deno.readFile(`${dir}/truth.pcapng`)).packets
        .filter(oursFrame);
      const mine = readPcapng(await Deno.readFile(`${dir}/belt.pcapng`));
      equal(mine.packets.length, summaryOf(out.pcap!), "every frame counted was written");
      deepEqual(mine.interfaces.map((i) => [i.name, i.linktype]), [["eth0", 1]]);
      const tRead = await tsharkFields(`${dir}/belt.pcapng`, [
        "frame.len",
        "frame.packet_flags_direction",
        "eth.src",
      ]);
      equal(tRead.length, mine.packets.length, "tshark reads every frame of belt's pcapng");
      for (const f of tRead) {
        const out_ = f[2]!.replaceAll(":", "") === macA;
        equal(Number(f[1]), out_ ? 2 : 1, `direction flag of a frame from ${f[2]}`);
      }
      assertSameFrames(
        truthFrames.map((p) => p.data),
        mine.packets.filter(oursFrame).map((p) => p.data),
        "belt --pcap",
      );
      for (const p of mine.packets) equal(p.originalLength, p.data.length, "whole frames");

      // --snaplen 60: the first 60 bytes of each frame, the wire length kept.
      const snap = readPcapng(await Deno.readFile(`${dir}/snap.pcapng`));
      equal(snap.packets.length, summaryOf(out.snap!));
      equal(snap.interfaces[0]!.snaplen, 60);
      const cut = snap.packets.filter(oursFrame);
      assertSameMultiset(
        truthFrames.map((p) => `${hex(p.data.slice(0, 60))} of ${p.originalLength}`),
        cut.map((p) => `${hex(p.data)} of ${p.originalLength}`),
        "belt --snaplen 60: each frame's first 60 bytes, and its wire length",
      );
      ok(cut.some((p) => p.originalLength > 60), "frames longer than 60 bytes were cut");
      const tSnap = await tsharkFields(`${dir}/snap.pcapng`, ["frame.cap_len", "frame.len"]);
      equal(tSnap.length, snap.packets.length, "tshark reads the cut frames");
      ok(tSnap.every((f) => Number(f[0]) === Math.min(60, Number(f[1]))));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "belt sniff --pcap - feeds tshark -r - through a pipe; --count N stops after exactly N frames",
  async (t) => {
    const SUBNET = 153;
    await using topo = await Topology.pair(SUBNET);
    const b4 = `198.18.${SUBNET}.2`;

    await t.step("--pcap - | tshark -r -", async () => {
      const belt = [...BELT, "sniff", "eth0", "--pcap", "-", "--count", "10", "udp dst port 7777"];
      const quoted = belt.map((w) => `'${w}'`).join(" ");
      const pipe = spawn([
        ...inHost(topo, "a"),
        "bash",
        "-c",
        `set -o pipefail; ${quoted} | tshark -n -r - -T fields -e udp.dstport -e frame.len 2>/dev/null`,
      ]);
      try {
        await pipe.waitFor(/^belt: sniffing eth0/m, 60_000);
        await topo.sendUdp("a", b4, 7777, 20);
        const r = await pipe.finished(30_000);
        equal(r.code, 0, r.stderr);
        const rows = new TextDecoder().decode(r.stdout).trim().split("\n");
        deepEqual(rows, Array(10).fill("7777\t43"), "ten 43-byte frames, read from the pipe");
        match(r.stderr, /^belt: 10 frames captured, \d+ passed the filter of \d+ seen, 0 dropped/m);
      } finally {
        await reap([pipe]);
      }
    });

    await t.step("--count 5 --json: five records, the summary, exit 0, by itself", async () => {
      const procs: Background[] = [];
      try {
        const bg = await startSniff(topo, "a", [
          "eth0",
          "--json",
          "--count",
          "5",
          "udp",
          "dst",
          "port",
          "7001",
        ], procs);
        await topo.sendUdp("a", b4, 7001, 20);
        const r = await bg.finished(30_000);
        const { records, summary } = sniffJson(
          { code: r.code, stdout: new TextDecoder().decode(r.stdout), stderr: r.stderr },
          "--count 5",
        );
        equal(records.length, 5);
        ok(records.every((x) => x.dport === 7001 && x.len === 43 && x.dir === "out"));
        ok(summary.passed >= 5, JSON.stringify(summary));
      } finally {
        await reap(procs);
      }
    });

    await t.step("--count 3, text: three lines, the summary on stderr", async () => {
      const procs: Background[] = [];
      try {
        const bg = await startSniff(topo, "a", ["eth0", "--count", "3", "icmp"], procs);
        equal(await topo.ping("a", b4, 4), 4);
        const r = await bg.finished(30_000);
        equal(r.code, 0, r.stderr);
        const lines = new TextDecoder().decode(r.stdout).trim().split("\n");
        equal(lines.length, 3, lines.join("\n"));
        const a4 = `198\\.18\\.${SUBNET}\\.1`, b = b4.replaceAll(".", "\\.");
        for (const line of lines) {
          match(
            line,
            new RegExp(
              `^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} (out IP ${a4} > ${b}: ICMP echo-request|` +
                `in IP ${b} > ${a4}: ICMP echo-reply) length 98$`,
            ),
          );
        }
        match(
          r.stderr.trim().split("\n").at(-1)!,
          /^belt: 3 frames captured, \d+ passed the filter of \d+ seen, 0 dropped by the kernel \(ring full\)$/,
        );
      } finally {
        await reap(procs);
      }
    });
  },
);

/**
 * `belt sniff` at its edges, as users run it: bad input (one `belt:` line,
 * exit 2 for usage, 1 otherwise), signals and SIGKILL, an interface that
 * goes away, --help; and malformed or truncated frames, which must never
 * crash it nor read as a wrong L7 field. Whatever happens, nothing stays:
 * no "sniff" program, no packet socket, no promiscuous mode.
 *
 * Everything runs inside namespaces the tests create; crafted frames go
 * from host a to host b over their veth, addressed to hosts that do not
 * exist (198.18.S.9 > 198.18.S.10), so b's stack drops them unanswered.
 */
import { deepEqual, doesNotMatch, equal, match, ok } from "node:assert/strict";
import { PacketSocket, withNetns } from "../bpf/mod.ts";
import { readPcapng } from "../plugins/pcapng.ts";
import { SNIFF_HELP } from "../plugins/mod.ts";
import { eventually, kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";
import { BELT, run } from "./harness/process.ts";
import type { Background, Result } from "./harness/process.ts";
import { assertSameFrames, cat, macOf, n16, n32, spontaneous } from "./harness/frames.ts";
import type { Bytes } from "./harness/frames.ts";
import {
  assertNothingLeft,
  inHost,
  jsonLines,
  packetSockets,
  progsHeldBy,
  promiscuity,
  reap,
  sniffJson,
  sniffPrograms,
  spawn,
  startSniff,
  stopWithin,
} from "./harness/sniff.ts";
import type { SniffRecord } from "./harness/sniff.ts";
import { clientHello, dnsName, dnsQuery } from "./harness/traffic.ts";

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asserts the one-line error contract: one `belt: ` line, no stack trace, nothing on stdout. */
function assertOneLine(r: Result, what: string, code: number, expected: RegExp): string {
  const lines = r.stderr.trim().split("\n");
  equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  const line = lines[0]!;
  match(line, /^belt: /, what);
  match(line, expected, `${what}: ${line}`);
  doesNotMatch(r.stderr, /^\s+at /m, `${what}: stack trace`);
  equal(r.stdout, "", `${what}: nothing on stdout`);
  equal(r.code, code, `${what}: exit ${r.code}, want ${code}; ${line}`);
  return line;
}

kernelTest("belt sniff: bad input gives one line, exit 2 or 1, and leaves nothing", async () => {
  await using topo = await Topology.pair(161);
  const dir = await Deno.makeTempDir({ prefix: "belt-sniff-cli-" });
  try {
    const belt = (args: string[]) => run([...inHost(topo, "a"), ...BELT, "sniff", ...args], 60_000);
    const usage = /see `belt( sniff)? --help`/;
    // [args after `sniff`, exit code, what the line says]
    const cases: [string[], number, RegExp][] = [
      [
        ["eth0", "tcp", "and", "prot", "80"],
        1,
        /filter 'tcp and prot 80': 'prot' at column 9 is not a filter term/,
      ],
      [["eth0", "port 99999"], 1, /filter 'port 99999': port 99999 at column 6 is out of range/],
      [
        ["eth0", "net", "198.18.0.0/40"],
        1,
        /prefix length 40 at column 16 is out of range \(0-32\)/,
      ],
      [["eth0", "tcp", "or"], 1, /filter 'tcp or': 'or' at column 5 has no rule after it/],
      [["eth0", "tcp", "udp"], 1, /'udp' at column 5 conflicts with 'tcp' at column 1/],
      [["eth0", "or", "tcp"], 1, /'or' at column 1 has no rule before it/],
      [
        ["eth0", "host", "1.2.3.4.5"],
        1,
        /'1\.2\.3\.4\.5' at column 6 is not an IPv4 or IPv6 address/,
      ],
      [["eth0", "icmp", "type", "nope"], 1, /'nope' at column 11 is not an ICMP type/],
      [["nosuch0"], 1, /nosuch0/],
      [["nosuch0", "--http", "--json"], 1, /nosuch0/],
      [["eth0", "--pcap", `${dir}/missing/x.pcapng`], 1, /cannot write .*missing\/x\.pcapng/],
      [
        ["eth0", "--pcap", "/proc/belt-cannot-write.pcapng"],
        1,
        /cannot write \/proc\/belt-cannot-write/,
      ],
      [["eth0", "--pcap", dir], 1, /cannot write/], // a directory
      [["eth0", "--snaplen", "0"], 2, /--snaplen wants a whole number from 1 to 262144, got '0'/],
      [
        ["eth0", "--snaplen", "abc"],
        2,
        /--snaplen wants a whole number from 1 to 262144, got 'abc'/,
      ],
      [["eth0", "--snaplen", "-5"], 2, /--snaplen/],
      [["eth0", "--snaplen", "300000"], 2, /--snaplen wants a whole number from 1 to 262144/],
      [["eth0", "--count", "0"], 2, /--count wants a whole number >= 1, got '0'/],
      [["eth0", "--count", "1.5"], 2, /--count wants a whole number >= 1, got '1\.5'/],
      [["eth0", "--duration", "0"], 2, /--duration wants a number of seconds > 0, got '0'/],
      [["eth0", "--json", "--pcap", "-"], 2, /--json and --pcap - both want stdout/],
      [[], 2, /sniff: which interface\?/],
      [["eth0", "--frobnicate"], 2, /unknown option '--frobnicate'/],
    ];
    for (const [args, code, expected] of cases) {
      // --duration 2 added: should a bad value get through, the command still ends.
      const bound = args.some((a) => a.startsWith("--duration")) || !args.length
        ? []
        : ["--duration", "2"];
      const full = [...args, ...bound];
      const what = `sniff ${full.join(" ")}`;
      const line = assertOneLine(await belt(full), what, code, expected);
      equal(usage.test(line), code === 2, `${what}: exit 2 exactly when the line points to --help`);
      await assertNothingLeft(topo, "a", what);
    }
    // Nothing was created where it could not be written, and a user's file is left as it was.
    deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
    const mine = `${dir}/mine.pcapng`;
    await Deno.writeTextFile(mine, "a file of the user's");
    for (const args of [["nosuch0"], ["eth0", "tcp", "and", "prot", "80"]]) {
      const what = `sniff ${args.join(" ")} --pcap ${mine}`;
      assertOneLine(await belt([...args, "--pcap", mine, "--duration", "2"]), what, 1, /./);
      equal(await Deno.readTextFile(mine), "a file of the user's", `${what}: file untouched`);
      await assertNothingLeft(topo, "a", what);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

kernelTest(
  "belt sniff: SIGTERM and SIGINT end it with a summary, SIGKILL leaves nothing; " +
    "--no-promisc, --duration, a vanishing interface",
  async (t) => {
    const SUBNET = 162;
    await using topo = await Topology.pair(SUBNET);
    const b4 = `198.18.${SUBNET}.2`;
    const decoder = new TextDecoder();

    /** Starts belt in a; checks what it holds: its program, one packet socket, promiscuity. */
    const start = async (procs: Background[], args: string[], promisc = 1) => {
      const bg = await startSniff(topo, "a", args, procs);
      const held = [...progsHeldBy(bg.child.pid)];
      const progs = await sniffPrograms();
      const mine = held.filter((id) => progs.includes(id));
      equal(mine.length, 1, `belt (pid ${bg.child.pid}) holds one sniff program: ${held}`);
      equal(await packetSockets(topo, "a"), 1, "one packet socket while running");
      equal(await promiscuity(topo, "a"), promisc, "promiscuity while running");
      return { bg, prog: mine[0]! };
    };
    const gone = async (prog: number, what: string) => {
      ok(
        await eventually(async () => !(await sniffPrograms()).includes(prog), 5_000, 100),
        `${what}: program ${prog} still loaded`,
      );
      await assertNothingLeft(topo, "a", what);
    };

    await t.step("SIGTERM, --json: exit 0, the records, then the summary", async () => {
      const procs: Background[] = [];
      try {
        const { bg, prog } = await start(procs, ["eth0", "--json", "udp", "dst", "port", "7100"]);
        await topo.sendUdp("a", b4, 7100, 3);
        await sleep(300);
        const r = await stopWithin(bg, "SIGTERM");
        const { records, summary } = sniffJson(r, "SIGTERM");
        equal(records.length, 3);
        deepEqual(
          { ...summary, seen: 0 },
          { kind: "summary", iface: "eth0", seen: 0, matched: 3, passed: 3, captured: 3, drops: 0 },
        );
        ok(summary.seen >= 3);
        equal(r.stderr.trim(), "belt: sniffing eth0 (udp dst port 7100)");
        await gone(prog, "after SIGTERM");
      } finally {
        await reap(procs);
      }
    });

    await t.step("SIGINT, text: exit 0, the lines, the summary on stderr", async () => {
      const procs: Background[] = [];
      try {
        const { bg, prog } = await start(procs, ["eth0", "udp", "dst", "port", "7101"]);
        await topo.sendUdp("a", b4, 7101, 2);
        await sleep(300);
        const r = await stopWithin(bg, "SIGINT");
        equal(r.code, 0, r.stderr);
        const lines = r.stdout.trim().split("\n");
        equal(lines.length, 2, r.stdout);
        for (const line of lines) {
          match(
            line,
            new RegExp(
              `^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} out IP 198\\.18\\.${SUBNET}\\.1\\.\\d+ > ` +
                `198\\.18\\.${SUBNET}\\.2\\.7101: UDP length 43$`,
            ),
          );
        }
        match(
          r.stderr.trim().split("\n").at(-1)!,
          /^belt: 2 frames captured, 2 passed the filter of \d+ seen, 0 dropped by the kernel \(ring full\)$/,
        );
        await gone(prog, "after SIGINT");
      } finally {
        await reap(procs);
      }
    });

    await t.step(
      "SIGKILL: the kernel drops socket, filter and promiscuity with the process",
      async () => {
        const procs: Background[] = [];
        try {
          const { bg, prog } = await start(procs, ["eth0", "--http", "--pcap", "-"]);
          const r = await stopWithin(bg, "SIGKILL");
          equal(r.code, 137);
          await gone(prog, "after SIGKILL");
        } finally {
          await reap(procs);
        }
      },
    );

    await t.step("--no-promisc leaves promiscuity alone; --duration ends it", async () => {
      const procs: Background[] = [];
      try {
        const { bg, prog } = await start(procs, [
          "eth0",
          "--no-promisc",
          "--duration",
          "2",
          "--json",
        ], 0);
        const r = await bg.finished(30_000);
        equal(r.code, 0, r.stderr);
        equal(jsonLines(decoder.decode(r.stdout)).at(-1)?.kind, "summary");
        await gone(prog, "after --duration");
      } finally {
        await reap(procs);
      }
    });

    await t.step("the reader of --pcap - goes away: one line, exit 1, nothing left", async () => {
      const belt = [...BELT, "sniff", "eth0", "--pcap", "-", "udp dst port 7102"];
      const pipe = spawn([
        ...inHost(topo, "a"),
        "bash",
        "-c",
        `${belt.map((w) => `'${w}'`).join(" ")} | head -c 1 >/dev/null; ` +
        'echo "exit ${PIPESTATUS[0]}" >&2',
      ]);
      try {
        await pipe.waitFor(/^belt: sniffing eth0/m, 60_000);
        await sleep(200); // head has read its byte and gone
        await topo.sendUdp("a", b4, 7102, 5);
        const r = await pipe.finished(30_000);
        const lines = r.stderr.trim().split("\n");
        equal(lines.at(-1), "exit 1", r.stderr);
        const said = lines.slice(0, -1).filter((l) => !/^belt: sniffing/.test(l));
        equal(said.length, 1, r.stderr);
        match(said[0]!, /^belt: .*Broken pipe/);
        doesNotMatch(r.stderr, /^\s+at /m);
        await assertNothingLeft(topo, "a", "after the reader went");
      } finally {
        await reap([pipe]);
      }
    });

    await t.step("--pcap /dev/null (not a regular file) works, --count ends it", async () => {
      const procs: Background[] = [];
      try {
        const bg = await startSniff(topo, "a", [
          "eth0",
          "udp",
          "--pcap",
          "/dev/null",
          "--count",
          "3",
        ], procs);
        await topo.sendUdp("a", b4, 7103, 5);
        const r = await bg.finished(30_000);
        equal(r.code, 0, r.stderr);
        match(r.stderr, /^belt: 3 frames captured, \d+ passed the filter/m);
        await assertNothingLeft(topo, "a", "after --pcap /dev/null");
      } finally {
        await reap(procs);
      }
    });

    await t.step("the interface goes away: one line, exit 1, nothing left", async () => {
      const procs: Background[] = [];
      try {
        // A veth pair of a's own (no dummy driver needed); deleting one end removes both.
        await topo.run("a", [
          "ip",
          "link",
          "add",
          "dummy0",
          "type",
          "veth",
          "peer",
          "name",
          "dummy1",
        ]);
        await topo.run("a", ["ip", "link", "set", "dummy0", "up"]);
        const bg = await startSniff(topo, "a", ["dummy0", "--json"], procs);
        await topo.run("a", ["ip", "link", "del", "dummy0"]);
        const r = await bg.finished(30_000);
        equal(r.code, 1, r.stderr);
        const lines = r.stderr.trim().split("\n").filter((l) => !/^belt: sniffing/.test(l));
        equal(lines.length, 1, r.stderr);
        match(lines[0]!, /^belt: interface dummy0 disappeared/);
        doesNotMatch(r.stderr, /^\s+at /m);
        equal(jsonLines(decoder.decode(r.stdout)).at(-1)?.kind, "summary");
        await assertNothingLeft(topo, "a", "after the interface went", "eth0");
      } finally {
        await reap(procs);
      }
    });
  },
);

Deno.test("belt sniff --help documents every option it accepts", async () => {
  const documented = [...SNIFF_HELP.matchAll(/^\s+(--[a-z][a-z-]*)/gm)].map((m) => m[1]!);
  for (const want of ["--http", "--dns", "--tls-sni", "--snaplen", "--pcap", "--count", "--json"]) {
    ok(documented.includes(want), `SNIFF_HELP lacks ${want}: ${documented}`);
  }
  for (const args of [["sniff", "--help"], ["sniff", "-h"]]) {
    const r = await run([...BELT, ...args]);
    equal(r.code, 0, r.stderr);
    equal(r.stdout.trim(), SNIFF_HELP.trim());
  }
  const source = Deno.readTextFileSync(new URL("../cli/sniff.ts", import.meta.url));
  const block = /parseCommand\("sniff", args, \{([^]*?)\n\s*\}\);/.exec(source)?.[1];
  ok(block, "cannot find sniff's options in cli/sniff.ts");
  const parsed = [...block.matchAll(/^\s*"?([\w-]+)"?: \{ type:/gm)].map((m) => `--${m[1]}`);
  ok(parsed.length >= 8, `options read from cli/sniff.ts: ${parsed}`);
  for (const flag of parsed) ok(documented.includes(flag), `${flag} is accepted but not in --help`);
});

// ---------------------------------------------------------------------------------------------
// Malformed and truncated frames

/** Where crafted frames go: through b's MAC to addresses nobody has. */
interface Path {
  src: Uint8Array;
  dst: Uint8Array;
  subnet: number;
}

function checksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += (h[i]! << 8) | (h[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

interface Ip4 {
  proto: number;
  /** IPv4 header bytes / 4 as written (may lie). */
  ihl?: number;
  /** Options (padded by the caller to ihl). */
  options?: number[];
  /** Total length as written; default: the real one. */
  totalLen?: number;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  version?: number;
}

/** Ethernet + IPv4 header + `l4` (+ `trailer` outside the IP length when totalLen says so). */
function ip4Frame(p: Path, ip: Ip4, l4: Part[], tag?: number | number[]): Bytes {
  const options = ip.options ?? [];
  const body = cat(...l4);
  const hdrLen = 20 + options.length;
  const h = cat(
    [((ip.version ?? 4) << 4) | (ip.ihl ?? hdrLen / 4), 0],
    n16(ip.totalLen ?? hdrLen + body.length),
    [0x12, 0x34],
    n16(ip.fragOffset ?? 0),
    [64, ip.proto, 0, 0],
    [198, 18, p.subnet, 9],
    [198, 18, p.subnet, 10],
    options,
  );
  h.set(n16(checksum(h)), 10);
  // One tag (802.1Q) or two (802.1ad outside, 802.1Q inside).
  const tags = tag === undefined ? [] : Array.isArray(tag) ? tag : [tag];
  const vlan = tags.flatMap((
    t,
    i,
  ) => [...(i < tags.length - 1 ? [0x88, 0xa8] : [0x81, 0x00]), ...n16(t)]);
  return cat(p.dst, p.src, vlan, [0x08, 0x00], h, body);
}

/** Ethernet + IPv6 (+ a destination-options header if asked) + `l4`. */
function ip6Frame(p: Path, nh: number, l4: Part[], dstOpts = false): Bytes {
  const body = cat(...(dstOpts ? [[nh, 0, 1, 4, 0, 0, 0, 0]] : []), ...l4);
  const addr = (
    host: number,
  ) => [0xfd, 0, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, ...n16(p.subnet), ...n16(host)];
  return cat(
    p.dst,
    p.src,
    [0x86, 0xdd, 0x60, 0, 0, 0],
    n16(body.length),
    [dstOpts ? 60 : nh, 64],
    addr(9),
    addr(0x10),
    body,
  );
}

type Part = Uint8Array | readonly number[];

/** A TCP header (20 bytes, or the data offset given), PSH|ACK. */
function tcp(sport: number, dport: number, doff = 5): number[] {
  return [
    ...n16(sport),
    ...n16(dport),
    ...n32(1),
    ...n32(1),
    doff << 4,
    0x18,
    ...n16(65535),
    0,
    0,
    0,
    0,
  ];
}

/** A UDP header for `payload` bytes. */
function udp(sport: number, dport: number, payload: number): number[] {
  return [...n16(sport), ...n16(dport), ...n16(8 + payload), 0, 0];
}

const text = (s: string) => enc.encode(s);

/** One crafted frame and the L7 record belt must print for it (none: undefined). */
interface Case {
  name: string;
  frame: Bytes;
  /** The source port that tells its record apart (none when no L4 header is read). */
  sport?: number;
  l7?: SniffRecord["l7"];
}

/** Crafted frames: valid ones (the control), then everything the parsers must refuse. */
function cases(p: Path): Case[] {
  const out: Case[] = [];
  let port = 41000;
  const http4 = (name: string, payload: Part, l7?: Case["l7"], ip: Partial<Ip4> = {}) => {
    const sport = ++port;
    const pl = cat(payload);
    out.push({ name, sport, frame: ip4Frame(p, { proto: 6, ...ip }, [tcp(sport, 80), pl]), l7 });
  };
  const req = (target: string, host?: string) => ({
    kind: "http" as const,
    method: "GET",
    target,
    version: "HTTP/1.1",
    ...(host === undefined ? {} : { host }),
  });
  // HTTP
  http4(
    "HTTP: valid",
    text("GET /ok HTTP/1.1\r\nHost: ok.example.test\r\n\r\n"),
    req("/ok", "ok.example.test"),
  );
  http4("HTTP: cut in the version", text("GET /cut HTTP/1."));
  http4("HTTP: cut in the target", text("GET /cut-in-the-target-xx"));
  http4("HTTP: Host line cut", text("GET /h HTTP/1.1\r\nHost: cut.example"), req("/h"));
  http4("HTTP: Host line without LF", text("GET /cr HTTP/1.1\r\nHost: cr.example\r"), req("/cr"));
  http4("HTTP: a tab in the target", text("GET /a\tb HTTP/1.1\r\n\r\n"));
  http4("HTTP: HTTP/1.2", text("GET /v12 HTTP/1.2\r\n\r\n"));
  http4("HTTP: empty target", text("GET  HTTP/1.1\r\n\r\n"));
  http4("HTTP: lower-case method", text("get /low HTTP/1.1\r\n\r\n"));
  http4("HTTP: request line over 512 bytes", text(`GET /${"x".repeat(600)} HTTP/1.1\r\n\r\n`));
  http4(
    "HTTP: a space inside the Host value",
    text("GET /sp HTTP/1.1\r\nHost: a b\r\n\r\n"),
    req("/sp"),
  );
  http4(
    "HTTP: a Host byte not ASCII",
    cat(text("GET /na HTTP/1.1\r\nHost: caf"), [0xe9], text(".test\r\n\r\n")),
    req("/na"),
  );
  http4(
    "HTTP: a target byte not ASCII",
    cat(text("GET /caf"), [0xc3, 0xa9], text(" HTTP/1.1\r\n\r\n")),
    req("/caf%C3%A9"),
  );
  http4(
    "HTTP: Host after the blank line",
    text("GET /b HTTP/1.1\r\n\r\nHost: body.example\r\n"),
    req("/b"),
  );
  http4("HTTP: empty Host", text("GET /e HTTP/1.1\r\nHost:   \r\n\r\n"), req("/e"));
  {
    // The request lies past the IP datagram's end (in what would be Ethernet padding).
    const sport = ++port;
    const pl = text("GET /pad HTTP/1.1\r\nHost: pad.example\r\n\r\n");
    out.push({
      name: "HTTP: in the padding past the IP length",
      sport,
      frame: ip4Frame(p, { proto: 6, totalLen: 40 + 4 }, [tcp(sport, 80), pl]),
    });
  }
  http4(
    "HTTP: IPv4 options, valid",
    text("GET /opt HTTP/1.1\r\nHost: opt.example\r\n\r\n"),
    req("/opt", "opt.example"),
    {
      ihl: 6,
      options: [1, 1, 1, 0],
    },
  );
  {
    const sport = ++port;
    out.push({
      name: "HTTP: IPv6 with a destination-options header",
      sport,
      frame: ip6Frame(p, 6, [
        tcp(sport, 8080),
        text("PUT /six HTTP/1.0\r\nHost: six.example\r\n\r\n"),
      ], true),
      l7: { kind: "http", method: "PUT", target: "/six", version: "HTTP/1.0", host: "six.example" },
    });
    const tagged = ++port;
    out.push({
      name: "HTTP: 802.1Q tagged",
      sport: tagged,
      frame: ip4Frame(p, { proto: 6 }, [
        tcp(tagged, 80),
        text("DELETE /vlan HTTP/1.1\r\nHost: vlan.example\r\n\r\n"),
      ], 42),
      l7: {
        kind: "http",
        method: "DELETE",
        target: "/vlan",
        version: "HTTP/1.1",
        host: "vlan.example",
      },
    });
  }
  const get = text("GET /bad HTTP/1.1\r\nHost: bad.example\r\n\r\n");
  out.push({
    name: "IPv4: a later fragment",
    frame: ip4Frame(p, { proto: 6, fragOffset: 8 }, [tcp(40999, 80), get]),
  });
  out.push({
    name: "IPv4: IHL 4",
    frame: ip4Frame(p, { proto: 6, ihl: 4 }, [tcp(40998, 80), get]),
  });
  out.push({
    name: "IPv4: version 5",
    frame: ip4Frame(p, { proto: 6, version: 5 }, [tcp(40997, 80), get]),
  });
  out.push({
    name: "IPv4: IHL 15, the frame ends in the options",
    frame: ip4Frame(p, { proto: 6, ihl: 15, totalLen: 60 }, [[1, 1, 1, 1]]),
  });
  out.push({
    name: "IPv4: total length below the header",
    frame: ip4Frame(p, { proto: 6, totalLen: 12 }, [tcp(40996, 80), get]),
  });
  out.push({
    name: "TCP: header cut",
    frame: ip4Frame(p, { proto: 6 }, [tcp(40995, 80).slice(0, 10)]),
  });
  out.push({
    name: "TCP: data offset 4",
    frame: ip4Frame(p, { proto: 6 }, [tcp(40994, 80, 4), get]),
  });
  out.push({
    name: "TCP: data offset 15, frame shorter",
    frame: ip4Frame(p, { proto: 6 }, [tcp(40993, 80, 15), text("GET / HTTP/1.1\r\n")]),
  });
  out.push({ name: "Ethernet only", frame: cat(p.dst, p.src, [0x08, 0x00]) });
  out.push({
    name: "IPv4 header cut",
    frame: cat(p.dst, p.src, [0x08, 0x00, 0x45, 0, 0, 40, 0, 0]),
  });
  out.push({
    name: "IPv6 header cut",
    frame: cat(p.dst, p.src, [0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]),
  });

  // DNS
  const dns4 = (name: string, payload: Part, l7?: Case["l7"], dport = 53) => {
    const sport = ++port;
    const pl = cat(payload);
    out.push({
      name,
      sport,
      frame: ip4Frame(p, { proto: 17 }, [udp(sport, dport, pl.length), pl]),
      l7,
    });
  };
  const header = (
    id: number,
    qd = 1,
    flags = 0x0100,
  ) => [...n16(id), ...n16(flags), ...n16(qd), 0, 0, 0, 0, 0, 0];
  const q = (name: number[], qtype = 1) => [...name, ...n16(qtype), 0, 1];
  dns4("DNS: valid", dnsQuery({ id: 0x4242, name: "ok.example.test", qtype: 28 }), {
    kind: "dns",
    id: 0x4242,
    name: "ok.example.test",
    qtype: 28,
    qtypeName: "AAAA",
    qclass: 1,
  });
  dns4("DNS: a compression pointer as the name", [...header(1), ...q([0xc0, 0x0c])]);
  dns4("DNS: a compression pointer after a label", [
    ...header(2),
    ...q([3, 0x77, 0x77, 0x77, 0xc0, 0x0c]),
  ]);
  dns4("DNS: the name cut", [...header(3), 7, 0x65, 0x78, 0x61]);
  dns4("DNS: no QTYPE/QCLASS", [...header(4), ...dnsName("short.test"), 0, 1]);
  dns4("DNS: a response", dnsQuery({ id: 5, name: "resp.example.test", qtype: 1, flags: 0x8180 }));
  dns4("DNS: no question", [...header(6, 0), ...q(dnsName("zero.example.test"))]);
  dns4("DNS: a dot inside a label", [
    ...header(7),
    ...q([3, 0x61, 0x2e, 0x62, 4, 0x74, 0x65, 0x73, 0x74, 0]),
  ]);
  dns4("DNS: a label byte not printable", [...header(8), ...q([3, 0x61, 0x01, 0x62, 0])]);
  dns4("DNS: a space in a label", [...header(9), ...q([3, 0x61, 0x20, 0x62, 0])]);
  dns4("DNS: label length 0x40", [...header(10), ...q([0x40, ...Array(64).fill(0x61), 0])]);
  dns4("DNS: a name over 255 bytes", [
    ...header(11),
    ...q([...Array(5)].flatMap(() => [63, ...Array(63).fill(0x62)]).concat([0])),
  ]);
  dns4("DNS: 11 header bytes", header(12).slice(0, 11));
  dns4("DNS: to port 5353", dnsQuery({ id: 13, name: "mdns.local", qtype: 1 }), undefined, 5353);
  {
    const sport = ++port;
    const pl = dnsQuery({ id: 14, name: "padding.example.test", qtype: 1 });
    out.push({
      name: "DNS: past the IP length",
      sport,
      frame: ip4Frame(p, { proto: 17, totalLen: 20 + 8 + 20 }, [udp(sport, 53, 20), pl]),
    });
    const six = ++port;
    const pl6 = dnsQuery({ id: 15, name: "six.example.test", qtype: 16, qclass: 3 });
    out.push({
      name: "DNS: IPv6, class CH",
      sport: six,
      frame: ip6Frame(p, 17, [udp(six, 53, pl6.length), pl6]),
      l7: { kind: "dns", id: 15, name: "six.example.test", qtype: 16, qtypeName: "TXT", qclass: 3 },
    });
  }

  {
    // Tagged: the kernel moves the outer tag to metadata, belt puts it back; with --snaplen
    // the kernel keeps what the record needs, counted without the tag.
    const one = ++port;
    const edns = dnsQuery({ id: 16, name: "tagged.example.test", qtype: 33, edns: true });
    out.push({
      name: "DNS: 802.1Q tagged, EDNS",
      sport: one,
      frame: ip4Frame(p, { proto: 17 }, [udp(one, 53, edns.length), edns], 7),
      l7: {
        kind: "dns",
        id: 16,
        name: "tagged.example.test",
        qtype: 33,
        qtypeName: "SRV",
        qclass: 1,
      },
    });
    const two = ++port;
    const q2 = dnsQuery({ id: 17, name: "qinq.example.test", qtype: 1, edns: true });
    out.push({
      name: "DNS: 802.1ad + 802.1Q",
      sport: two,
      frame: ip4Frame(p, { proto: 17 }, [udp(two, 53, q2.length), q2], [100, 200]),
      l7: { kind: "dns", id: 17, name: "qinq.example.test", qtype: 1, qtypeName: "A", qclass: 1 },
    });
    const three = ++port;
    out.push({
      name: "TLS: 802.1Q tagged",
      sport: three,
      frame: ip4Frame(p, { proto: 6 }, [
        tcp(three, 443),
        clientHello({ sni: "tagged.tls.example", extsBefore: 3 }),
      ], 4094),
      l7: { kind: "tls", sni: "tagged.tls.example" },
    });
  }

  // TLS
  const tls4 = (name: string, payload: Part, l7?: Case["l7"]) => {
    const sport = ++port;
    out.push({
      name,
      sport,
      frame: ip4Frame(p, { proto: 6 }, [tcp(sport, 443), cat(payload)]),
      l7,
    });
  };
  const hello = clientHello({ sni: "ok.tls.example", extsBefore: 2, sessionId: 32 });
  // Offsets in that hello: record 5, handshake 4, version 2, random 32, sid 1+32, suites 2+10,
  // compression 2, extensions length 2, two extensions of 8, then server_name.
  const sniExt = 5 + 4 + 2 + 32 + 33 + 12 + 2 + 2 + 16;
  const patched = (at: number, bytes: number[], from = hello) => {
    const h = from.slice();
    h.set(bytes, at);
    return h;
  };
  tls4("TLS: valid", hello, { kind: "tls", sni: "ok.tls.example" });
  tls4("TLS: record shorter than the hello", patched(3, n16(10)));
  tls4("TLS: a ServerHello", patched(5, [2]));
  tls4("TLS: record version 2.x", patched(1, [2]));
  tls4("TLS: session id of 33", patched(5 + 4 + 2 + 32, [33]));
  tls4("TLS: odd cipher suites length", patched(5 + 4 + 2 + 32 + 33, n16(9)));
  tls4("TLS: extensions past the hello", patched(sniExt - 16 - 2, n16(2000)));
  tls4("TLS: server name past its extension", patched(sniExt + 4 + 3, n16(200)));
  tls4("TLS: list length not the extension's", patched(sniExt + 4, n16(3)));
  tls4("TLS: name type 1", patched(sniExt + 4 + 2, [1]));
  tls4("TLS: empty server name", clientHello({ sni: "" }));
  tls4("TLS: a space in the server name", clientHello({ sni: "a b.example" }));
  tls4("TLS: a server name byte not ASCII", cat(clientHello({ sni: "caf\u00e9.example" })));
  tls4("TLS: 33 extensions before the name", clientHello({ sni: "far.example", extsBefore: 33 }));
  tls4("TLS: 31 extensions before the name", clientHello({ sni: "near.example", extsBefore: 31 }), {
    kind: "tls",
    sni: "near.example",
  });
  tls4("TLS: cut inside the server name", hello.slice(0, sniExt + 9 + 4));
  tls4("TLS: no server name", clientHello({}));
  return out;
}

kernelTest(
  "belt sniff on malformed and truncated frames: no crash, every frame captured, " +
    "exactly the right L7 records and none for the bad ones",
  async () => {
    const SUBNET = 163;
    await using topo = await Topology.pair(SUBNET);
    const dir = await Deno.makeTempDir({ prefix: "belt-sniff-bad-" });
    const procs: Background[] = [];
    try {
      const path = { src: await macOf(topo, "a"), dst: await macOf(topo, "b"), subnet: SUBNET };
      const all = cases(path);
      const l7 = ["--http", "--dns", "--tls-sni"];
      const runs: Record<string, string[]> = {
        l7: ["eth0", ...l7, "--json"],
        l7snap: ["eth0", ...l7, "--json", "--snaplen", "60"],
        l7text: ["eth0", ...l7],
        json: ["eth0", "--json"],
        text: ["eth0"],
        pcap: ["eth0", "--pcap", `${dir}/all.pcapng`],
      };
      const names = Object.keys(runs);
      const belts = await Promise.all(names.map((n) => startSniff(topo, "b", runs[n]!, procs)));
      withNetns(topo.ns("a"), () => {
        using sock = PacketSocket.open("eth0");
        for (const c of all) sock.send(c.frame);
      });
      await sleep(700);
      const out: Record<string, Result> = {};
      for (const [i, bg] of belts.entries()) out[names[i]!] = await stopWithin(bg, "SIGINT");
      for (const [name, r] of Object.entries(out)) {
        equal(r.code, 0, `${name}: exit ${r.code}: ${r.stderr}`);
        doesNotMatch(r.stderr, /error|panic|^\s+at /im, `${name}: ${r.stderr}`);
      }

      // Every frame reached belt, byte for byte, in order.
      const frames = readPcapng(await Deno.readFile(`${dir}/all.pcapng`)).packets
        .filter((p) => !spontaneous(p.data));
      assertSameFrames(all.map((c) => c.frame), frames.map((p) => p.data), "belt --pcap");
      const selfSent = (r: SniffRecord) => r.dst === "ff02::16" || r.dst === "ff02::2";
      const records = sniffJson(out.json!, "--json").records.filter((r) => !selfSent(r));
      deepEqual(
        records.map((r) => r.len),
        all.map((c) => c.frame.length),
        "one record per frame, in order",
      );
      const byName = new Map(all.map((c, i) => [c.name, records[i]!]));
      const rec = (name: string) => byName.get(name)!;
      equal(rec("HTTP: 802.1Q tagged").vlan, 42);
      equal(rec("DNS: 802.1Q tagged, EDNS").vlan, 7);
      equal(rec("DNS: 802.1ad + 802.1Q").vlan, 100, "the outer tag");
      equal(rec("TLS: 802.1Q tagged").vlan, 4094);
      equal(rec("IPv4: a later fragment").fragment, true);
      equal(rec("IPv4: a later fragment").sport, undefined);
      for (
        const name of [
          "IPv4: IHL 4",
          "IPv4: version 5",
          "Ethernet only",
          "IPv4 header cut",
          "IPv6 header cut",
        ]
      ) {
        equal(rec(name).src, undefined, `${name}: no addresses read`);
      }
      equal(rec("TCP: header cut").src, `198.18.${SUBNET}.9`);
      equal(rec("TCP: header cut").sport, undefined, "no ports from a cut TCP header");
      equal(rec("TCP: data offset 4").sport, undefined);
      const text = out.text!.stdout.trim().split("\n").filter((l) => !/ff02::(16|2)\b/.test(l));
      equal(text.length, all.length, "one line per frame");
      for (const [i, line] of text.entries()) {
        match(line, new RegExp(` length ${all[i]!.frame.length}$`), `${all[i]!.name}: ${line}`);
      }

      // L7: exactly the expected records, by source port; nothing for anything else.
      const want = all.filter((c) => c.l7).map((c) => JSON.stringify([c.sport, c.l7]));
      ok(want.length >= 8);
      for (const name of ["l7", "l7snap"]) {
        const got = sniffJson(out[name]!, name).records;
        deepEqual(
          got.map((r) => JSON.stringify([r.sport, r.l7])).sort(),
          want.slice().sort(),
          `${name}: the L7 records`,
        );
      }
      // --snaplen 60 keeps each frame up to the end of what its record needs: a DNS question's
      // QCLASS, a TLS server name's last byte (tags the kernel had moved out counted back in).
      const bySport = new Map(all.map((c) => [c.sport, c]));
      for (const r of sniffJson(out.l7snap!, "l7snap").records) {
        const c = bySport.get(r.sport)!;
        const f = c.frame;
        equal(r.len, f.length, `${c.name}: wire length`);
        let end = f.length;
        if (r.l7!.kind === "tls") {
          const sni = enc.encode(r.l7!.sni!);
          end = f.findIndex((_, i) => sni.every((b, k) => f[i + k] === b)) + sni.length;
        }
        if (r.l7!.kind === "dns") {
          const name = r.l7!.name!;
          const l3 = r.vlan === undefined ? 14 : f[12] === 0x88 ? 22 : 18;
          end = l3 + (f[l3 - 2] === 0x86 ? 40 : 20) + 8 + 12 + name.length + 2 + 4;
        }
        const min = 60 + (r.vlan === undefined ? 0 : 4);
        equal(r.caplen, Math.max(min, end), `${c.name}: kept ${r.caplen} of ${f.length} bytes`);
      }
      const lines = out.l7text!.stdout.trim().split("\n");
      equal(lines.length, want.length, out.l7text!.stdout);
      match(out.l7text!.stdout, / > 198\.18\.163\.10\.80 GET \/caf%C3%A9 HTTP\/1\.1$/m);
      match(out.l7text!.stdout, / > 198\.18\.163\.10\.53 DNS AAAA\? ok\.example\.test$/m);
      match(out.l7text!.stdout, / > fd00:beef::a3:10\.53 DNS TXT\? six\.example\.test CLASS3$/m);
      match(
        out.l7text!.stdout,
        /^\S+ in vlan 42 IP \S+ > \S+ DELETE \/vlan HTTP\/1\.1 Host: vlan\.example$/m,
      );
    } finally {
      await reap(procs);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

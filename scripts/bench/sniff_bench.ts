/**
 * `belt sniff` side by side with tcpdump, in one run, on one topology: two
 * namespaces made by the bench (`belt-bench-<pid>-sa`, `-sb`; deleted at
 * the end, also on failure or Ctrl-C), one veth pair created inside them,
 * addresses from 198.18.0.0/15 only:
 *
 *   A sa<tag> 198.18.73.1/30 ──── B sb<tag> 198.18.73.2/30   (both captures on sb<tag>)
 *
 * A sender (native/udp_mix.c, CPU 0) offers UDP datagrams A → B, every
 * 100th to port 7777 and the rest to 64 other ports; B counts them with nft
 * at netdev ingress (after the packet taps) and drops them there, so the
 * link carries nothing else (IPv6 off, static neighbours, no ICMP back).
 * The veth has no NAPI: B's receive path, packet taps and socket filters
 * included, runs in the sender's context on CPU 0, so what a capture costs
 * in the kernel shows in the sender's CPU per packet.
 *
 *   1. Side by side: `belt sniff sb<tag> EXPR --pcap FILE --json` and
 *      `tcpdump -i sb<tag> -w FILE -B 8192 EXPR` at the same time, both on
 *      CPU 1, same datagrams; a selective filter (`udp and dst port 7777`,
 *      1% of the datagrams) and a broad one (`udp`, all), at a paced rate
 *      and flat out. Per tool: the matching frames in its file against the
 *      ground truth (B's counter), its own tally and kernel drops, its
 *      process CPU (every thread's run time, /proc/PID/task/N/schedstat, ns)
 *      from the sender's start until the captures have settled.
 *   2. Kernel cost: the sender flat out with no capture, belt alone and
 *      tcpdump alone, per filter; the sender's own CPU per datagram (its
 *      rusage: the receive path runs in its context) with and without a
 *      capture gives what each capture adds per packet in the kernel (its
 *      filter on every frame, the copy of the matching ones into its ring).
 *      Then belt once more with the kernel's BPF run statistics on: the
 *      time of belt's filter program alone.
 *
 * Both tools run as users run them, under `ip netns exec B`; rounds rotate
 * the order. Every load is bounded in datagrams and seconds; capture files
 * go to a directory of their own on /dev/shm (tmpfs: no disk writeback in
 * the measurement), removed at the end.
 */
import { join } from "node:path";
import { enableRunStats } from "../../bpf/mod.ts";
import { onCleanup } from "./cleanup.ts";
import { have, run } from "./proc.ts";
import { ip, removeStaleNetns } from "./netns.ts";
import { onCpu } from "./affinity.ts";
import { makeNetns } from "./firewall_topo.ts";
import { Background, inNs, linkStats, nft, nftCounters } from "./mirror_topo.ts";
import { countPcap, countPcapng } from "./mirror_pcap.ts";

const root = new URL("../..", import.meta.url).pathname;
const here = new URL(".", import.meta.url).pathname;

const ALLOWED = /^198\.1[89]\./;

/** Addresses of the topology. */
export const SNIFF_ADDR = { a: "198.18.73.1", b: "198.18.73.2" } as const;
/** Every EVERY-th datagram goes to MATCH_PORT, the others to OTHER_PORT..OTHER_PORT+63. */
export const MATCH_PORT = 7777;
export const OTHER_PORT = 9000;
export const EVERY = 100;
/** UDP payload: 8-byte number + padding = 60-byte Ethernet frames. */
export const PAYLOAD = 18;
/** Both captures' ring: belt's default (8 blocks of 1 MiB), and tcpdump -B in KiB. */
export const RING_KIB = 8192;
/** The sender on one CPU, both captures on the other. */
export const SENDER_CPU = 0;
export const CAPTURE_CPU = 1;

export type FilterName = "selective" | "broad";
/** The two filters, written the same for both tools. */
export const FILTERS: { name: FilterName; expr: string }[] = [
  { name: "selective", expr: `udp and dst port ${MATCH_PORT}` },
  { name: "broad", expr: "udp" },
];

/** Phase 1: offered rates (datagrams/s; 0: flat out), each for RUN_SECONDS, rounds. */
export const RATES = [100_000, 0];
export const RUN_SECONDS = 3;
export const ROUNDS = 3;
/** Bound of a flat-out run, in datagrams (the seconds bound comes first on this VM). */
export const MAX_PACKETS = 3_000_000;
/** Wait after the sender stops before the captures are read and stopped (tcpdump's timeout is 1 s). */
export const SETTLE_MS = 1500;
/** Phase 2: flat-out runs this long per configuration and filter, rounds. */
export const COST_SECONDS = 2;
export const COST_ROUNDS = 3;

/** A run starts once the machine is this quiet (cores); a kernel-cost run above it is run again. */
export const QUIET_CORES = 0.2;

export type Tool = "belt" | "tcpdump";
export type CostConfig = "none" | Tool;

/** The sender's JSON line (udp_mix.c). */
export interface SendOut {
  sent: number;
  matched: number;
  errors: number;
  ns: number;
  user_us: number;
  sys_us: number;
}

/** What one capture delivered in one run. */
export interface ToolRun {
  tool: Tool;
  /** Frames in its file. */
  frames: number;
  /** Frames in its file that the filter matches (selective: IPv4 UDP to MATCH_PORT; broad: all). */
  matching: number;
  /** Bytes after the last whole record, and belt's own reader's verdict on belt's file. */
  trailing: number;
  fileError?: string;
  /** The tool's own figures: frames it says it wrote, passed by its filter, dropped by the kernel. */
  captured: number;
  passed: number;
  drops: number;
  /** Process CPU (all threads' run time) over the window, s; voluntary context switches. */
  cpu: number;
  wakeups: number;
  /** The tool's closing line(s), as printed. */
  tally: string;
}

/** One side-by-side run (phase 1). */
export interface SideRun {
  filter: FilterName;
  /** Offered rate (0: flat out). */
  rate: number;
  round: number;
  send: SendOut;
  /** Datagrams that reached B (its ingress counter): all of them, and those to MATCH_PORT. */
  atB: number;
  atBMatch: number;
  /** Datagrams the veth dropped on the way (A's tx_dropped). */
  vethDropped: number;
  /** Ground truth for this filter: matching datagrams that reached B. */
  offered: number;
  tools: ToolRun[];
  windowSeconds: number;
  /** CPU (cores) used by anything but the sender and the two captures in the window. */
  otherCores: number;
}

/** One flat-out run for the kernel cost (phase 2). */
export interface CostRun {
  filter: FilterName;
  config: CostConfig;
  round: number;
  send: SendOut;
  /**
   * Kernel drops the capture reported (its frame count is not kept: stopped 0.3 s after the
   * sender, tcpdump has not yet read the block it was filling, which it retires after 1 s).
   */
  drops?: number;
  otherCores: number;
  /** 2 when the first try was disturbed by other work (the less disturbed kept). */
  tries?: number;
}

/** BPF run statistics of belt's filter over one flat-out run. */
export interface FilterStats {
  filter: FilterName;
  runs: number;
  ns: number;
  sent: number;
  /** Size of belt's program as the kernel holds it: eBPF instructions (8 bytes each), JIT code. */
  insns: number;
  jitedBytes: number;
  /** tcpdump's classic BPF for the same expression (`tcpdump -d`), instructions. */
  tcpdumpInsns: number;
}

/** Everything the sniff bench measured. */
export interface SniffResult {
  date: string;
  seconds: number;
  kernel: string;
  tcpdump: string;
  libpcap: string;
  side: SideRun[];
  cost: CostRun[];
  filterStats: FilterStats[];
  /** Things that went wrong with a tool (non-zero exit, missing summary, bad file). */
  problems: string[];
}

interface Topo {
  a: string;
  b: string;
  aIface: string;
  bIface: string;
}

interface Ctx {
  t: Topo;
  sender: string;
  dir: string;
  problems: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- topology

/** Creates A and B and the veth between them; B counts and drops the UDP at ingress. */
async function createSniffTopo(): Promise<Topo> {
  await removeStaleNetns(/^belt-bench-(\d+)-s[ab]$/);
  const base = `belt-bench-${Deno.pid}`;
  const tag = Deno.pid % 100000;
  const t: Topo = { a: `${base}-sa`, b: `${base}-sb`, aIface: `sa${tag}`, bIface: `sb${tag}` };
  // Unique interface names double as a guard: a capture started in the root namespace by
  // mistake fails with "no such device" instead of watching the machine's own interface.
  const rootLinks = await ip(["-o", "link", "show"]);
  if (new RegExp(`\\b(${t.aIface}|${t.bIface})[:@]`).test(rootLinks)) {
    throw new Error(`interface ${t.aIface} or ${t.bIface} exists in the root namespace`);
  }
  await makeNetns(t.a);
  await makeNetns(t.b);
  await ip([
    "-n",
    t.a,
    "link",
    "add",
    t.aIface,
    "type",
    "veth",
    "peer",
    "name",
    t.bIface,
    "netns",
    t.b,
  ]);
  for (const [ns, dev, addr] of [[t.a, t.aIface, SNIFF_ADDR.a], [t.b, t.bIface, SNIFF_ADDR.b]]) {
    if (!ALLOWED.test(addr!)) throw new Error(`${addr} is outside 198.18.0.0/15`);
    await ip(["-n", ns!, "addr", "add", `${addr}/30`, "dev", dev!]);
    await ip(["-n", ns!, "link", "set", dev!, "up"]);
  }
  const mac = async (ns: string, dev: string) =>
    JSON.parse(await ip(["-n", ns, "-j", "link", "show", "dev", dev]))[0].address as string;
  const neigh = async (ns: string, addr: string, lladdr: string, dev: string) => {
    await ip([
      "-n",
      ns,
      "neigh",
      "replace",
      addr,
      "lladdr",
      lladdr,
      "dev",
      dev,
      "nud",
      "permanent",
    ]);
  };
  await neigh(t.a, SNIFF_ADDR.b, await mac(t.b, t.bIface), t.aIface);
  await neigh(t.b, SNIFF_ADDR.a, await mac(t.a, t.aIface), t.bIface);
  // Counted and dropped at B's ingress, which comes after the packet taps: each datagram
  // counted here went past both captures' filters.
  await nft(
    t.b,
    `table netdev sink {
  counter stream_match {}
  counter stream_all {}
  chain in {
    type filter hook ingress device "${t.bIface}" priority 0;
    udp dport ${MATCH_PORT} counter name stream_match
    meta l4proto udp counter name stream_all drop
  }
}`,
  );
  const info = JSON.parse(await ip(["-n", t.b, "-j", "-d", "link", "show", "dev", t.bIface]))[0];
  if (info?.linkinfo?.info_kind !== "veth" || info.link_netnsid === undefined) {
    throw new Error(`${t.b}: ${t.bIface} is not the bench's veth`);
  }
  return t;
}

// ---------------------------------------------------------------- measuring

let clockTicks = 100;

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait). */
async function machineCpu(): Promise<number> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0]!;
  const f = line.split(/\s+/).slice(1, 9).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / clockTicks;
}

/** Waits (at most 5 s) until the machine is nearly idle: runs start on a quiet box. */
async function quiet(): Promise<void> {
  for (const deadline = Date.now() + 5_000; Date.now() < deadline;) {
    const a = await machineCpu();
    await sleep(500);
    if ((await machineCpu()) - a < 0.5 * QUIET_CORES) return;
  }
}

/** Run time of every thread of a process (ns, from schedstat) and its voluntary switches. */
async function processCpu(pid: number): Promise<{ ns: number; wakeups: number }> {
  let ns = 0, wakeups = 0;
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${task.name}`;
    ns += Number((await Deno.readTextFile(`${dir}/schedstat`).catch(() => "0")).split(" ")[0]);
    const status = await Deno.readTextFile(`${dir}/status`).catch(() => "");
    wakeups += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return { ns, wakeups };
}

/** Flat out (rate 0) or paced: `rate` × `seconds` datagrams, cut off after `seconds` + 2 s. */
async function send(c: Ctx, rate: number, seconds: number): Promise<SendOut> {
  const max = rate ? rate * seconds : MAX_PACKETS;
  const limit = rate ? seconds + 2 : seconds;
  const r = await run(
    inNs(
      c.t.a,
      onCpu([
        c.sender,
        SNIFF_ADDR.b,
        String(MATCH_PORT),
        String(OTHER_PORT),
        String(EVERY),
        String(rate),
        String(max),
        String(limit),
        String(PAYLOAD),
      ], SENDER_CPU),
    ),
    { timeoutMs: (limit + 15) * 1000 },
  );
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as SendOut;
}

const senderCpu = (s: SendOut) => (s.user_us + s.sys_us) / 1e6;

/** A running capture in B, on CAPTURE_CPU. */
class Capture {
  readonly tool: Tool;
  readonly file: string;
  readonly bg: Background;

  constructor(c: Ctx, tool: Tool, expr: string, file: string) {
    this.tool = tool;
    this.file = file;
    const words = expr.split(" ");
    const cmd = tool === "belt"
      ? [Deno.execPath(), "run", "-A", `${root}mod.ts`, "sniff", c.t.bIface, ...words]
        .concat(["--pcap", file, "--json"])
      // -Z root: Debian's tcpdump otherwise drops to user tcpdump before opening the file.
      : ["tcpdump", "-i", c.t.bIface, "-w", file, "-B", String(RING_KIB), "-Z", "root", "-n"]
        .concat(words);
    this.bg = new Background(inNs(c.t.b, onCpu(cmd, CAPTURE_CPU)));
  }

  /** `ip netns exec` and `taskset` exec: the child's pid is the tool's. */
  get pid(): number {
    return this.bg.child.pid;
  }

  async ready(): Promise<void> {
    await this.bg.waitFor(this.tool === "belt" ? /^belt: sniffing / : /listening on /m, 60_000);
  }

  /** SIGTERM; the tool's own figures (NaN where missing, with the problem recorded). */
  async stop(problems: string[], what: string) {
    const r = await this.bg.stop("SIGTERM", 20_000);
    const label = `${this.tool} ${what}`;
    if (r.killed) problems.push(`${label}: no exit within 20 s of SIGTERM (killed)`);
    else if (r.code !== 0) problems.push(`${label}: exited ${r.code}: ${r.stderr.trim()}`);
    if (this.tool === "tcpdump") {
      const n = (w: string) => Number(new RegExp(`(\\d+) packets? ${w}`).exec(r.stderr)?.[1]);
      const tally = r.stderr.trim().split("\n").filter((l) => /^\d+ packets? /.test(l)).join(", ");
      return {
        captured: n("captured"),
        passed: n("received by filter"),
        drops: n("dropped by kernel"),
        tally,
      };
    }
    const line = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
    let s: Record<string, number> | undefined;
    try {
      s = line ? JSON.parse(line) : undefined;
    } catch {
      // recorded below
    }
    if (!s || s.kind as unknown !== "summary") {
      problems.push(`${label}: no summary line on stdout`);
      return { captured: NaN, passed: NaN, drops: NaN, tally: "" };
    }
    return { captured: s.captured!, passed: s.passed!, drops: s.drops!, tally: line! };
  }
}

async function startCaptures(c: Ctx, tools: Tool[], expr: string, tag: string) {
  const caps = tools.map((tool) =>
    new Capture(c, tool, expr, join(c.dir, `${tag}-${tool}.${tool === "belt" ? "pcapng" : "pcap"}`))
  );
  try {
    await Promise.all(caps.map((cap) => cap.ready()));
  } catch (e) {
    for (const cap of caps) await cap.bg.stop("SIGKILL", 5_000);
    throw e;
  }
  return caps;
}

// ---------------------------------------------------------------- phase 1

async function sideRun(
  c: Ctx,
  filter: { name: FilterName; expr: string },
  rate: number,
  round: number,
): Promise<SideRun> {
  const tools: Tool[] = round % 2 ? ["tcpdump", "belt"] : ["belt", "tcpdump"];
  await quiet();
  const tag = `${filter.name}-${rate}-${round}`;
  const caps = await startCaptures(c, tools, filter.expr, tag);
  const what = `${filter.name} ${rate ? `${rate}/s` : "flat out"} round ${round + 1}`;
  const results: ToolRun[] = [];
  let send0: SendOut, b0: Record<string, number>, b1: Record<string, number>;
  let windowSeconds: number, otherCores: number, vethDropped: number;
  try {
    await sleep(300); // both settled after start-up
    b0 = await nftCounters(c.t.b);
    const veth0 = (await linkStats(c.t.a, c.t.aIface)).txDropped;
    const cpu0 = await Promise.all(caps.map((cap) => processCpu(cap.pid)));
    const [m0, t0] = [await machineCpu(), performance.now()];
    send0 = await send(c, rate, RUN_SECONDS);
    await sleep(SETTLE_MS);
    const cpu1 = await Promise.all(caps.map((cap) => processCpu(cap.pid)));
    const [m1, t1] = [await machineCpu(), performance.now()];
    b1 = await nftCounters(c.t.b);
    vethDropped = (await linkStats(c.t.a, c.t.aIface)).txDropped - veth0;
    windowSeconds = (t1 - t0) / 1000;
    const toolsCpu = cpu1.reduce((a, x, i) => a + (x.ns - cpu0[i]!.ns) / 1e9, 0);
    otherCores = (m1 - m0 - toolsCpu - senderCpu(send0)) / windowSeconds;
    const tallies = await Promise.all(caps.map((cap) => cap.stop(c.problems, what)));
    for (const [i, cap] of caps.entries()) {
      const bytes = await Deno.readFile(cap.file);
      const count = cap.tool === "belt"
        ? countPcapng(bytes, MATCH_PORT)
        : countPcap(bytes, MATCH_PORT);
      if (count.error) c.problems.push(`belt ${what}: file: ${count.error}`);
      if (count.trailing) c.problems.push(`${cap.tool} ${what}: ${count.trailing} stray bytes`);
      if (tallies[i]!.captured !== count.frames) {
        c.problems.push(
          `${cap.tool} ${what}: says ${
            tallies[i]!.captured
          } frames captured, its file holds ${count.frames}`,
        );
      }
      results.push({
        tool: cap.tool,
        frames: count.frames,
        matching: filter.name === "selective" ? count.stream : count.frames,
        trailing: count.trailing,
        fileError: count.error,
        ...tallies[i]!,
        cpu: (cpu1[i]!.ns - cpu0[i]!.ns) / 1e9,
        wakeups: cpu1[i]!.wakeups - cpu0[i]!.wakeups,
      });
    }
  } finally {
    for (const cap of caps) {
      await cap.bg.stop("SIGKILL", 5_000); // only if something above failed
      await Deno.remove(cap.file).catch(() => {});
    }
  }
  const atB = b1.stream_all! - b0.stream_all!;
  const atBMatch = b1.stream_match! - b0.stream_match!;
  return {
    filter: filter.name,
    rate,
    round,
    send: send0,
    atB,
    atBMatch,
    vethDropped,
    offered: filter.name === "selective" ? atBMatch : atB,
    tools: results.sort((x, y) => x.tool.localeCompare(y.tool)),
    windowSeconds,
    otherCores,
  };
}

// ---------------------------------------------------------------- phase 2

async function costOnce(
  c: Ctx,
  filter: { name: FilterName; expr: string },
  config: CostConfig,
  round: number,
): Promise<CostRun> {
  await quiet();
  const caps = config === "none"
    ? []
    : await startCaptures(c, [config], filter.expr, `cost-${filter.name}-${round}`);
  try {
    await sleep(300);
    const cpu0 = await Promise.all(caps.map((cap) => processCpu(cap.pid)));
    const [m0, t0] = [await machineCpu(), performance.now()];
    const s = await send(c, 0, COST_SECONDS);
    const cpu1 = await Promise.all(caps.map((cap) => processCpu(cap.pid)));
    const [m1, t1] = [await machineCpu(), performance.now()];
    const toolsCpu = cpu1.reduce((a, x, i) => a + (x.ns - cpu0[i]!.ns) / 1e9, 0);
    const otherCores = (m1 - m0 - toolsCpu - senderCpu(s)) / ((t1 - t0) / 1000);
    const out: CostRun = { filter: filter.name, config, round, send: s, otherCores };
    if (caps[0]) {
      await sleep(300);
      const tally = await caps[0].stop(c.problems, `cost ${filter.name} round ${round + 1}`);
      out.drops = tally.drops;
    }
    return out;
  } finally {
    for (const cap of caps) {
      await cap.bg.stop("SIGKILL", 5_000);
      await Deno.remove(cap.file).catch(() => {});
    }
  }
}

async function costRun(
  c: Ctx,
  filter: { name: FilterName; expr: string },
  config: CostConfig,
  round: number,
): Promise<CostRun> {
  const first = await costOnce(c, filter, config, round);
  if (first.otherCores <= QUIET_CORES) return first;
  const second = await costOnce(c, filter, config, round);
  return { ...(second.otherCores < first.otherCores ? second : first), tries: 2 };
}

interface ProgStat {
  name: string;
  runs: number;
  ns: number;
  xlated: number;
  jited: number;
}

async function programs(): Promise<Map<number, ProgStat>> {
  const out = JSON.parse((await run(["bpftool", "prog", "show", "-j"])).stdout) as {
    id: number;
    name?: string;
    run_cnt?: number;
    run_time_ns?: number;
    bytes_xlated?: number;
    bytes_jited?: number;
  }[];
  return new Map(out.map((p) => [p.id, {
    name: p.name ?? "",
    runs: p.run_cnt ?? 0,
    ns: p.run_time_ns ?? 0,
    xlated: p.bytes_xlated ?? 0,
    jited: p.bytes_jited ?? 0,
  }]));
}

/** belt alone, flat out, with BPF run statistics on: its filter program's own time. */
async function filterStats(
  c: Ctx,
  filter: { name: FilterName; expr: string },
): Promise<FilterStats> {
  const before = new Set((await programs()).keys());
  const [cap] = await startCaptures(c, ["belt"], filter.expr, `stats-${filter.name}`);
  try {
    const ids = [...(await programs())].filter(([id, p]) => !before.has(id) && p.name === "sniff")
      .map(([id]) => id);
    if (ids.length !== 1) {
      throw new Error(`expected belt's one 'sniff' program, found ${ids.length}`);
    }
    const id = ids[0]!;
    // BPF_ENABLE_STATS: on while the handle is open (it goes with this process, whatever happens).
    const stats = enableRunStats();
    try {
      const p0 = (await programs()).get(id)!;
      const s = await send(c, 0, COST_SECONDS);
      const p1 = (await programs()).get(id)!;
      const d = await run(["tcpdump", "-d", ...filter.expr.split(" ")], { check: false });
      return {
        filter: filter.name,
        runs: p1.runs - p0.runs,
        ns: p1.ns - p0.ns,
        sent: s.sent,
        insns: p1.xlated / 8,
        jitedBytes: p1.jited,
        tcpdumpInsns: d.stdout.split("\n").filter((l) => /^\(\d+\)/.test(l)).length,
      };
    } finally {
      stats.close();
    }
  } finally {
    await cap!.stop(c.problems, `run statistics ${filter.name}`);
    await Deno.remove(cap!.file).catch(() => {});
  }
}

// ---------------------------------------------------------------- the bench

async function buildSender(dir: string): Promise<string> {
  const out = join(dir, "udp_mix");
  await run(
    ["gcc", "-O2", "-Wall", "-I", join(here, "native"), join(here, "native/udp_mix.c"), "-o", out],
    { timeoutMs: 60_000 },
  );
  return out;
}

/** A directory for the capture files on tmpfs (removed at the end), else under `dir`. */
async function captureDir(dir: string): Promise<string> {
  const shm = await Deno.stat("/dev/shm").then((s) => s.isDirectory, () => false);
  if (!shm) return dir;
  const path = await Deno.makeTempDir({ dir: "/dev/shm", prefix: `belt-bench-${Deno.pid}-` });
  onCleanup(`remove ${path}`, () => Deno.remove(path, { recursive: true }));
  return path;
}

/** Runs the whole sniff bench; `dir` is the bench's temp dir. */
export async function sniffBench(
  dir: string,
  step: (text: string) => void = () => {},
): Promise<SniffResult> {
  const started = performance.now();
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  for (const tool of ["tcpdump", "nft", "gcc", "bpftool", "taskset"]) {
    if (!(await have(tool))) throw new Error(`the sniff bench needs ${tool}`);
  }
  if (navigator.hardwareConcurrency < 2) throw new Error("the sniff bench needs 2 CPUs");
  clockTicks = Number((await run(["getconf", "CLK_TCK"])).stdout.trim()) || 100;
  const c: Ctx = {
    t: await createSniffTopo(),
    sender: await buildSender(dir),
    dir: await captureDir(dir),
    problems: [],
  };
  await send(c, 0, 1); // warm-up: first-run costs go here
  const side: SideRun[] = [];
  const cases = FILTERS.flatMap((filter) => RATES.map((rate) => ({ filter, rate })));
  step(
    `sniff 1/2: belt and tcpdump side by side, ${cases.length} cases × ${ROUNDS} rounds (about ${
      cases.length * ROUNDS * 8
    } s)`,
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < cases.length; i++) {
      const { filter, rate } = cases[(i + round) % cases.length]!;
      side.push(await sideRun(c, filter, rate, round));
    }
  }
  step(`sniff 2/2: kernel cost per packet, none / belt / tcpdump × ${COST_ROUNDS} rounds`);
  const cost: CostRun[] = [];
  const configs: CostConfig[] = ["none", "belt", "tcpdump"];
  for (let round = 0; round < COST_ROUNDS; round++) {
    for (const filter of FILTERS) {
      for (let i = 0; i < configs.length; i++) {
        cost.push(await costRun(c, filter, configs[(i + round) % configs.length]!, round));
      }
    }
  }
  const fstats: FilterStats[] = [];
  for (const filter of FILTERS) fstats.push(await filterStats(c, filter));
  const v = await run(["tcpdump", "--version"], { check: false });
  return {
    date,
    seconds: (performance.now() - started) / 1000,
    kernel: Deno.osRelease(),
    tcpdump: /tcpdump version (\S+)/.exec(v.stdout + v.stderr)?.[1] ?? "unknown",
    libpcap: /libpcap version (\S+)/.exec(v.stdout + v.stderr)?.[1] ?? "unknown",
    side,
    cost,
    filterStats: fstats,
    problems: c.problems,
  };
}

/**
 * `belt mirror` side by side with its peers, in one run, on one topology
 * (mirror_topo.ts: namespaces A, B, C; A's eth0 is mirrored to C):
 *   1. TCP throughput A→B (iperf3) with no mirror, `belt mirror eth0 --to C`,
 *      and nftables netdev `dup to` a VXLAN device to C; rounds interleaved;
 *   2. the highest rate of a numbered UDP stream (native/udp_send.c) with no
 *      copy lost at C, belt vs nft dup, and whether B lost originals;
 *   3. `belt mirror eth0 --pcap FILE` vs `tcpdump -i eth0 -w FILE` at the
 *      same offered rate: frames in the file and CPU used;
 *   4. fidelity: both directions reach C, and whether mirroring 1514-byte
 *      frames leaves a lowered "mtu" exception on the original route.
 * belt runs as a user runs it: `ip netns exec A deno run -A mod.ts mirror
 * eth0 ... --json`, measured once its stderr says "mirroring", stopped with
 * SIGTERM. Copies are counted with kernel counters in C (nft, netdev
 * ingress), never by a user-space collector. Every load is bounded in
 * packets and seconds.
 */
import { join } from "node:path";
import { run } from "./proc.ts";
import { median } from "./stats.ts";
import {
  ADDR,
  Background,
  createMirrorTopo,
  inNs,
  linkStats,
  nftCounters,
  nftDupOff,
  nftDupOn,
  nsRun,
  routeMtu,
  snmp,
  STREAM_PORT,
  VNI,
} from "./mirror_topo.ts";
import type { MirrorTopo } from "./mirror_topo.ts";
import { countPcap, countPcapng } from "./mirror_pcap.ts";
import type { FileCount } from "./mirror_pcap.ts";

const root = new URL("../..", import.meta.url).pathname;
const here = new URL(".", import.meta.url).pathname;

/** Phase 1: rounds of the three configurations, each iperf3 run this long (after 1 s omitted). */
export const TCP_ROUNDS = 5;
export const TCP_SECONDS = 3;
/** Phase 2: offered rates tried in turn (packets/s), each for this long. */
export const LOSS_RATES = [50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000];
export const LOSS_SECONDS = 2;
/** Phase 3: offered rates and duration of the capture comparison. */
export const PCAP_RATES = [100_000, 250_000];
export const PCAP_SECONDS = 3;
/** Phase 3: wait after the sender stops before stopping the capture. */
export const PCAP_SETTLE_MS = 1500;
/** UDP payload of the stream: 8-byte number + padding = 60-byte Ethernet frames. */
export const PAYLOAD = 18;

export type TcpConfig = "none" | "belt" | "nft";

/** One iperf3 run. */
export interface TcpRun {
  config: TcpConfig;
  round: number;
  /** Receiver's figure, bits/s. */
  bps: number;
  retransmits: number;
  /** VXLAN datagrams (whole or first fragments) that reached C. */
  copies: number;
  /** Non-first fragments that reached C. */
  frags: number;
  /** Copies decapsulated by C's VXLAN device (after reassembly). */
  decap: number;
  /**
   * TCP segments that crossed A's eth0 (A's OutSegs + RetransSegs + InSegs): each should
   * give one copy.
   */
  segments: number;
  /** Originals the veth to B refused (A's eth0 tx_dropped). */
  eth0Dropped: number;
  /** Copies the veth to C refused (A's eth1 tx_dropped). */
  eth1Dropped: number;
  /** C: failed reassemblies (Ip ReasmFails) and VXLAN device rx drops + errors. */
  reasmFails: number;
  vxDropped: number;
  /** `mtu` of `ip route get B` in A right after the run (before the flush), if any. */
  routeMtu?: number;
}

/** One paced UDP trial. */
export interface RateTrial {
  /** Offered rate (0: flat out). */
  target: number;
  sent: number;
  seconds: number;
  /** sent / seconds. */
  achieved: number;
  /** Stream copies counted at C, and originals counted at B. */
  atC: number;
  atB: number;
  lostCopies: number;
  lostAtB: number;
  /** tx_dropped of A's eth1 during the trial (copies the veth refused). */
  eth1Dropped: number;
  /** 2 when the sender fell short of the rate and the trial was run again. */
  tries?: number;
  /**
   * The sender's CPU time (user+sys, s): its own syscalls plus whatever the kernel did in
   * its context — the mirror's hooks, the copy's way to C, softirq work run on return.
   */
  senderCpu: number;
}

/** Phase 2 for one tool. */
export interface LossSweep {
  trials: RateTrial[];
  /** Achieved rate of the fastest trial with 0 lost copies, and every slower trial lossless too. */
  best: number;
  /** Whether the sweep ended because the sender could not reach the offered rate. */
  senderBound: boolean;
}

/** Phase 3, one capture. */
export interface PcapRun {
  tool: "belt" | "tcpdump";
  target: number;
  sent: number;
  seconds: number;
  achieved: number;
  file: FileCount;
  fileBytes: number;
  /** CPU (user+sys, s) of the capture process from the sender's start to the settle's end. */
  cpuWindow: number;
  /** CPU of the whole process life (start-up and shutdown included), from wait4. */
  cpuTotal: number;
  /** The sender's CPU time (see RateTrial.senderCpu). */
  senderCpu: number;
  windowSeconds: number;
  /** The tool's own tally (tcpdump's "captured / received / dropped", belt's JSON). */
  tally: string;
  /** Copies the tool says it lost (tcpdump: dropped by kernel; belt: pcap_lost). */
  toolLost: number;
}

/** Phase 4, per tool. */
export interface Fidelity {
  tool: "belt" | "nft";
  pings: number;
  /** Echo requests (out) and replies (in) whose copies reached C. */
  requests: number;
  replies: number;
  /** Non-first fragments at C (each 1514-byte frame's copy is 1564 bytes on a 1500 path). */
  frags: number;
  mtuBefore?: number;
  mtuAfter?: number;
}

/** Everything the mirror bench measured. */
export interface MirrorResult {
  date: string;
  seconds: number;
  kernel: string;
  versions: { iperf3: string; nft: string; tcpdump: string };
  tcp: { runs: TcpRun[]; rounds: number; seconds: number };
  loss: { alone: RateTrial; belt: LossSweep; nft: LossSweep; seconds: number };
  pcap: { runs: PcapRun[]; seconds: number; settleMs: number };
  fidelity: Fidelity[];
  /** Things that went wrong with belt itself (non-zero exit, missing stats). */
  beltProblems: string[];
  /** belt's own JSON stats at the end of each phase (the last line of --json). */
  beltStats: Record<string, Record<string, unknown>>;
}

interface Helpers {
  udpSend: string;
  cpuWrap: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function buildHelpers(dir: string): Promise<Helpers> {
  const h = { udpSend: join(dir, "udp_send"), cpuWrap: join(dir, "cpu_wrap") };
  const gcc = (src: string, out: string) =>
    run(["gcc", "-O2", "-Wall", "-I", join(here, "native"), join(here, "native", src), "-o", out], {
      timeoutMs: 60_000,
    });
  await Promise.all([gcc("udp_send.c", h.udpSend), gcc("cpu_wrap.c", h.cpuWrap)]);
  return h;
}

async function version(cmd: string[], re: RegExp): Promise<string> {
  const r = await run(cmd, { check: false, timeoutMs: 10_000 });
  return re.exec(r.stdout + r.stderr)?.[1] ?? "unknown";
}

/** A running `belt mirror` in A. */
class Belt {
  readonly bg: Background;
  constructor(t: MirrorTopo, args: string[], wrap?: { cpuWrap: string; out: string }) {
    this.bg = new Background(inNs(t.a, [
      ...(wrap ? [wrap.cpuWrap, wrap.out] : []),
      Deno.execPath(),
      "run",
      "-A",
      `${root}mod.ts`,
      "mirror",
      "eth0",
      ...args,
      "--json",
    ]));
  }

  async ready(): Promise<void> {
    await this.bg.waitFor(/^mirroring /m, 60_000);
  }

  /** SIGTERM; returns belt's JSON stats, recording any problem in `problems`. */
  async stop(problems: string[], what: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.bg.stop("SIGTERM", 20_000);
    const line = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
    const tail = r.stderr.trim().split("\n").filter((l) => !l.startsWith("cpu_wrap ")).slice(-3)
      .join(" / ");
    if (r.killed) problems.push(`${what}: belt did not exit within 20 s of SIGTERM (killed)`);
    else if (r.code !== 0) problems.push(`${what}: belt exited ${r.code}: ${tail}`);
    if (!line) {
      problems.push(`${what}: no JSON stats on stdout`);
      return undefined;
    }
    try {
      return JSON.parse(line);
    } catch {
      problems.push(`${what}: unreadable stats: ${line.slice(0, 200)}`);
      return undefined;
    }
  }
}

// ---------------------------------------------------------------- phase 1

async function iperfServer(t: MirrorTopo): Promise<Background> {
  const bg = new Background(inNs(t.b, ["iperf3", "-s", "-B", ADDR.b]));
  const deadline = Date.now() + 10_000;
  while (!(await nsRun(t.b, ["ss", "-Hltn", "sport = :5201"])).trim()) {
    if (Date.now() > deadline) throw new Error(`iperf3 server in ${t.b} did not listen`);
    await sleep(50);
  }
  return bg;
}

async function tcpRun(t: MirrorTopo, config: TcpConfig, round: number): Promise<TcpRun> {
  await nsRun(t.a, ["ip", "route", "flush", "cache"]);
  const snap = async () => ({
    c: await nftCounters(t.c),
    a: await snmp(t.a),
    cSnmp: await snmp(t.c),
    vx: await linkStats(t.c, "vx42"),
    eth0: await linkStats(t.a, "eth0"),
    eth1: await linkStats(t.a, "eth1"),
  });
  const x = await snap();
  const r = await run(
    inNs(t.a, ["iperf3", "-c", ADDR.b, "-t", String(TCP_SECONDS), "-O", "1", "-J"]),
    { timeoutMs: (TCP_SECONDS + 15) * 1000 },
  );
  await sleep(200);
  const mtu = await routeMtu(t.a, ADDR.b);
  const y = await snap();
  const end = JSON.parse(r.stdout).end;
  const d = (k: string) => y.a[k]! - x.a[k]!;
  return {
    config,
    round,
    bps: Number(end.sum_received.bits_per_second),
    retransmits: Number(end.sum_sent.retransmits ?? 0),
    copies: y.c.copies! - x.c.copies!,
    frags: y.c.frags! - x.c.frags!,
    decap: y.vx.rxPackets - x.vx.rxPackets,
    segments: d("Tcp.InSegs") + d("Tcp.OutSegs") + d("Tcp.RetransSegs"),
    eth0Dropped: y.eth0.txDropped - x.eth0.txDropped,
    eth1Dropped: y.eth1.txDropped - x.eth1.txDropped,
    reasmFails: y.cSnmp["Ip.ReasmFails"]! - x.cSnmp["Ip.ReasmFails"]!,
    vxDropped: y.vx.rxDropped + y.vx.rxErrors - x.vx.rxDropped - x.vx.rxErrors,
    routeMtu: mtu,
  };
}

async function tcpPhase(
  t: MirrorTopo,
  problems: string[],
  stats: MirrorResult["beltStats"],
): Promise<TcpRun[]> {
  const server = await iperfServer(t);
  const runs: TcpRun[] = [];
  const orders: TcpConfig[][] = [["none", "belt", "nft"], ["belt", "nft", "none"], [
    "nft",
    "none",
    "belt",
  ]];
  try {
    for (let round = 0; round < TCP_ROUNDS; round++) {
      for (const config of orders[round % orders.length]!) {
        if (config === "nft") {
          await nftDupOn(t);
          try {
            runs.push(await tcpRun(t, config, round));
          } finally {
            await nftDupOff(t);
          }
        } else if (config === "belt") {
          const belt = new Belt(t, ["--to", ADDR.c, "--vni", String(VNI)]);
          try {
            await belt.ready();
            runs.push(await tcpRun(t, config, round));
          } finally {
            const s = await belt.stop(problems, `TCP round ${round + 1}`);
            if (s) stats[`tcp round ${round + 1}`] = s;
          }
        } else {
          runs.push(await tcpRun(t, config, round));
        }
      }
    }
  } finally {
    await server.stop("SIGTERM", 5_000);
  }
  return runs;
}

// ---------------------------------------------------------------- phase 2

/**
 * One paced run of the stream: `rate` × `seconds` datagrams (rate 0: flat out
 * for `seconds`), cut off after `limit` seconds.
 */
async function udpTrial(
  t: MirrorTopo,
  h: Helpers,
  rate: number,
  seconds: number,
  limit = seconds,
): Promise<RateTrial> {
  const b0 = await nftCounters(t.b);
  const c0 = await nftCounters(t.c);
  const e0 = await linkStats(t.a, "eth1");
  const max = rate ? rate * seconds : 2_000_000 * seconds;
  const r = await run(
    inNs(t.a, [
      h.udpSend,
      ADDR.b,
      String(STREAM_PORT),
      String(rate),
      String(max),
      String(limit),
      String(PAYLOAD),
    ]),
    { timeoutMs: (limit + 10) * 1000 },
  );
  await sleep(250); // what is still queued on the way to B and C
  const b1 = await nftCounters(t.b);
  const c1 = await nftCounters(t.c);
  const e1 = await linkStats(t.a, "eth1");
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  const sent = Number(out.sent);
  const secs = Number(out.ns) / 1e9;
  const atC = c1.stream! - c0.stream!;
  const atB = b1.stream! - b0.stream!;
  return {
    target: rate,
    sent,
    seconds: secs,
    achieved: sent / secs,
    atC,
    atB,
    lostCopies: sent - atC,
    lostAtB: sent - atB,
    eth1Dropped: e1.txDropped - e0.txDropped,
    senderCpu: (Number(out.user_us) + Number(out.sys_us)) / 1e6,
  };
}

/**
 * One tool's sweep: rates in turn until the sender cannot reach the offered
 * rate (a trial below 95% of it is tried once more, the better try kept: a
 * VM's hiccup should not end the sweep) or two rates lost copies.
 */
async function sweep(t: MirrorTopo, h: Helpers, cap: number): Promise<LossSweep> {
  const trials: RateTrial[] = [];
  let senderBound = false;
  let lossy = 0;
  for (const rate of LOSS_RATES) {
    if (rate > cap * 1.05) {
      senderBound = true;
      break;
    }
    let trial = await udpTrial(t, h, rate, LOSS_SECONDS);
    if (trial.achieved < 0.95 * rate) {
      const again = await udpTrial(t, h, rate, LOSS_SECONDS);
      again.tries = 2;
      if (again.achieved > trial.achieved) trial = again;
      else trial.tries = 2;
    }
    trials.push(trial);
    if (trial.lostCopies !== 0) lossy++;
    if (trial.achieved < 0.95 * rate) {
      senderBound = true; // the sender (with the mirror on) cannot go faster
      break;
    }
    if (lossy >= 2) break;
  }
  let best = 0;
  for (const x of trials) {
    if (x.lostCopies !== 0) break;
    best = Math.max(best, x.achieved);
  }
  return { trials, best, senderBound };
}

async function lossPhase(
  t: MirrorTopo,
  h: Helpers,
  problems: string[],
  stats: MirrorResult["beltStats"],
): Promise<MirrorResult["loss"]> {
  // The sender flat out with no mirror: the ceiling of the sweep.
  const alone = await udpTrial(t, h, 0, 1);
  const belt = new Belt(t, ["--to", ADDR.c, "--vni", String(VNI)]);
  let beltSweep: LossSweep;
  try {
    await belt.ready();
    beltSweep = await sweep(t, h, alone.achieved);
  } finally {
    const s = await belt.stop(problems, "UDP sweep");
    if (s) stats["udp sweep"] = s;
  }
  await nftDupOn(t);
  let nftSweep: LossSweep;
  try {
    nftSweep = await sweep(t, h, alone.achieved);
  } finally {
    await nftDupOff(t);
  }
  return { alone, belt: beltSweep, nft: nftSweep, seconds: LOSS_SECONDS };
}

// ---------------------------------------------------------------- phase 3

let clockTicks = 100;

async function processCpu(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks; // utime, stime
}

async function pcapRun(
  t: MirrorTopo,
  h: Helpers,
  dir: string,
  tool: "belt" | "tcpdump",
  rate: number,
  problems: string[],
  stats: MirrorResult["beltStats"],
): Promise<PcapRun> {
  const file = join(dir, `${tool}-${rate}.${tool === "belt" ? "pcapng" : "pcap"}`);
  const cpuOut = join(dir, `cpu-${tool}-${rate}.json`);
  let bg: Background;
  let belt: Belt | undefined;
  if (tool === "belt") {
    belt = new Belt(t, ["--pcap", file], { cpuWrap: h.cpuWrap, out: cpuOut });
    bg = belt.bg;
    await belt.ready();
  } else {
    // -Z root: Debian's tcpdump otherwise drops to user tcpdump before opening the file.
    bg = new Background(
      inNs(t.a, [h.cpuWrap, cpuOut, "tcpdump", "-i", "eth0", "-w", file, "-Z", "root"]),
    );
    await bg.waitFor(/^tcpdump: listening on /m);
  }
  const pid = Number((await bg.waitFor(/^cpu_wrap pid (\d+)$/m))[1]);
  const cpu0 = await processCpu(pid);
  const w0 = performance.now();
  // The same number of datagrams for both tools (given 2 s of slack to send them).
  const trial = await udpTrial(t, h, rate, PCAP_SECONDS, PCAP_SECONDS + 2);
  await sleep(PCAP_SETTLE_MS);
  const cpu1 = await processCpu(pid);
  const windowSeconds = (performance.now() - w0) / 1000;
  let tally = "";
  let toolLost = 0;
  if (belt) {
    const s = await belt.stop(problems, `--pcap at ${rate}/s`);
    if (s) {
      stats[`pcap ${rate}`] = s;
      tally =
        `pcap_copies ${s.pcap_copies}, pcap_lost ${s.pcap_lost}, pcap_written ${s.pcap_written}`;
      toolLost = Number(s.pcap_lost);
    }
  } else {
    const r = await bg.stop("SIGTERM", 20_000);
    const n = (what: string) => Number(new RegExp(`(\\d+) packets? ${what}`).exec(r.stderr)?.[1]);
    tally = `captured ${n("captured")}, received by filter ${n("received by filter")}, ` +
      `dropped by kernel ${n("dropped by kernel")}`;
    toolLost = n("dropped by kernel");
  }
  const wrap = JSON.parse(await Deno.readTextFile(cpuOut));
  const bytes = await Deno.readFile(file);
  const count = tool === "belt" ? countPcapng(bytes, STREAM_PORT) : countPcap(bytes, STREAM_PORT);
  await Deno.remove(file);
  return {
    tool,
    target: rate,
    sent: trial.sent,
    seconds: trial.seconds,
    achieved: trial.achieved,
    file: count,
    fileBytes: bytes.length,
    cpuWindow: cpu1 - cpu0,
    cpuTotal: (Number(wrap.user_us) + Number(wrap.sys_us)) / 1e6,
    senderCpu: trial.senderCpu,
    windowSeconds,
    tally,
    toolLost,
  };
}

async function pcapPhase(
  t: MirrorTopo,
  h: Helpers,
  dir: string,
  problems: string[],
  stats: MirrorResult["beltStats"],
): Promise<PcapRun[]> {
  clockTicks = Number((await run(["getconf", "CLK_TCK"])).stdout.trim()) || 100;
  const runs: PcapRun[] = [];
  for (const [i, rate] of PCAP_RATES.entries()) {
    const tools: ("belt" | "tcpdump")[] = i % 2 ? ["tcpdump", "belt"] : ["belt", "tcpdump"];
    for (const tool of tools) runs.push(await pcapRun(t, h, dir, tool, rate, problems, stats));
  }
  return runs;
}

// ---------------------------------------------------------------- phase 4

async function fidelity(
  t: MirrorTopo,
  tool: "belt" | "nft",
  problems: string[],
): Promise<Fidelity> {
  const pings = 10;
  await nsRun(t.a, ["ip", "route", "flush", "cache"]);
  const mtuBefore = await routeMtu(t.a, ADDR.b);
  const belt = tool === "belt" ? new Belt(t, ["--to", ADDR.c, "--vni", String(VNI)]) : undefined;
  if (belt) await belt.ready();
  else await nftDupOn(t);
  let c0: Record<string, number>, c1: Record<string, number>;
  let mtuAfter: number | undefined;
  try {
    c0 = await nftCounters(t.c);
    // 1472 bytes of ICMP payload: 1514-byte frames, 1564 bytes once in VXLAN (path MTU 1500).
    await nsRun(t.a, [
      "ping",
      "-q",
      "-c",
      String(pings),
      "-i",
      "0.02",
      "-W",
      "1",
      "-s",
      "1472",
      "-M",
      "do",
      ADDR.b,
    ], false);
    await sleep(200);
    c1 = await nftCounters(t.c);
    mtuAfter = await routeMtu(t.a, ADDR.b);
  } finally {
    if (belt) await belt.stop(problems, "fidelity check");
    else await nftDupOff(t);
  }
  await nsRun(t.a, ["ip", "route", "flush", "cache"]);
  return {
    tool,
    pings,
    requests: c1.echo_request! - c0.echo_request!,
    replies: c1.echo_reply! - c0.echo_reply!,
    frags: c1.frags! - c0.frags!,
    mtuBefore,
    mtuAfter,
  };
}

/** Runs the whole mirror bench; `dir` is the bench's temp dir. */
export async function mirrorBench(
  dir: string,
  step: (text: string) => void = () => {},
): Promise<MirrorResult> {
  const started = performance.now();
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  for (const tool of ["iperf3", "nft", "tcpdump", "gcc"]) {
    const r = await run(["sh", "-c", `command -v ${tool}`], { check: false });
    if (r.code !== 0) throw new Error(`the mirror bench needs ${tool}`);
  }
  const h = await buildHelpers(dir);
  const t = await createMirrorTopo();
  const problems: string[] = [];
  const stats: MirrorResult["beltStats"] = {};
  step("mirror 1/4: TCP throughput, no mirror / belt / nft dup (about 50 s)");
  const tcp = await tcpPhase(t, problems, stats);
  step("mirror 2/4: numbered UDP stream, loss at C per rate (about 30 s)");
  const loss = await lossPhase(t, h, problems, stats);
  step("mirror 3/4: --pcap vs tcpdump -w (about 30 s)");
  const pcap = await pcapPhase(t, h, dir, problems, stats);
  step("mirror 4/4: fidelity (both directions, route MTU)");
  const fid = [await fidelity(t, "nft", problems), await fidelity(t, "belt", problems)];
  const versions = {
    iperf3: await version(["iperf3", "--version"], /iperf (\S+)/),
    nft: await version(["nft", "--version"], /nftables (v\S+)/),
    tcpdump: await version(["tcpdump", "--version"], /tcpdump version (\S+)/),
  };
  return {
    date,
    seconds: (performance.now() - started) / 1000,
    kernel: Deno.osRelease(),
    versions,
    tcp: { runs: tcp, rounds: TCP_ROUNDS, seconds: TCP_SECONDS },
    loss,
    pcap: { runs: pcap, seconds: PCAP_SECONDS, settleMs: PCAP_SETTLE_MS },
    fidelity: fid,
    beltProblems: problems,
    beltStats: stats,
  };
}

/** Median throughput of one configuration, bits/s. */
export function tcpMedian(runs: TcpRun[], config: TcpConfig): number {
  return median(runs.filter((r) => r.config === config).map((r) => r.bps));
}

/**
 * `belt trace connect` side by side with bpftrace, in one run, in one
 * namespace made for it (`belt-bench-<pid>-ct`: lo up, 198.18.201.1/32 on lo).
 * A tight connect loop (native/connect_loop.c: socket/connect/close to
 * 198.18.201.1, a listener thread accepting) runs flat out for a few seconds
 * alone, under `belt trace connect --json --comm connect_loop > FILE`, and
 * under bpftrace on tracepoint:sock:inet_sock_set_state printing the same
 * fields per outcome (filtered on the port). The loop has CPU 0, the tracer
 * CPU 1. Rounds rotate the order so drift hits all three; a run disturbed by
 * other work on the machine is run once more. Measured per run: the loop's
 * connects/s and its own count (ground truth), the events in each tracer's file for the loop (count and an
 * order-free hash of the source ports: every connect exactly once), what each
 * tracer says it lost, and the tracer's CPU (/proc/PID/stat, children
 * included) from the loop's start until its output stops growing. Then a few
 * rounds with the kernel's BPF run statistics on give the programs' own time
 * (kept apart: the statistics add two clock reads per program run, which
 * would count against the tracer in the rate rounds).
 *
 * Both tracers run as users run them, under `nsenter --net` (it keeps the
 * host's /sys, where bpftrace finds the tracepoints). Every run is bounded in
 * seconds and connects; the namespace and all processes go at the end, also
 * on failure or a signal (cleanup.ts).
 */
import { join } from "node:path";
import { enableRunStats } from "../../bpf/mod.ts";
import { onCleanup } from "./cleanup.ts";
import { buildConnectLoop } from "./compile.ts";
import { have, run } from "./proc.ts";
import { ip, removeStaleNetns } from "./netns.ts";
import { Background } from "./mirror_topo.ts";
import { onCpu } from "./affinity.ts";

const root = new URL("../..", import.meta.url).pathname;

/** Where the loop connects (on lo, inside the bench's namespace only). */
export const CT_ADDR = "198.18.201.1";
export const CT_PORT = 7000;
/** The loop's command name: belt's `--comm` filter. */
export const LOOP_COMM = "connect_loop";
/** Rounds of the three configurations, each loop run this long (bounded in connects too). */
export const CT_ROUNDS = 7;
export const CT_SECONDS = 3;
export const CT_MAX_CONNECTS = 1_000_000;
/** Rounds of belt and bpftrace with BPF run statistics on. */
export const STATS_ROUNDS = 3;
/**
 * The loop on one CPU, the tracer on the other: the tracer's own work never
 * takes the loop's CPU, so the slowdown is what tracing costs in the loop's
 * context (BPF programs, the syscall tracing path, wakeups).
 */
export const LOOP_CPU = 0;
export const TRACER_CPU = 1;
/** A run with more CPU than this (cores) used by other work on the machine is run again. */
export const QUIET_CORES = 0.2;
/** A tracer has delivered everything when its file stops growing for this long. */
const SETTLE_MS = 600;

export type CtConfig = "none" | "belt" | "bpftrace";

/** The loop's own JSON line (connect_loop.c). */
export interface LoopOut {
  pid: number;
  attempts: number;
  connects: number;
  errors: number;
  last_errno: number;
  ns: number;
  rate: number;
  port_hash: string;
  slowest_us: number;
  user_us: number;
  sys_us: number;
}

/** What one tracer delivered for one loop run. */
export interface Delivery {
  /** Established connects of the loop in the output. */
  established: number;
  /** Failed attempts of the loop in the output. */
  failed: number;
  /** Whether the established events' source ports hash to the loop's own hash. */
  hashOk: boolean;
  /** The loop's connects attributed to another process. */
  misattributed: number;
  /** Lines for anything else (other ports or addresses). */
  other: number;
  /** What the tracer says it lost: belt's summary `lost`, bpftrace's "Lost N events". */
  lost: number;
  /** belt's summary `events` (undefined for bpftrace). */
  reported?: number;
  /** Tracer CPU (user+sys, children included, s) from the loop's start to the settle's end. */
  cpu: number;
  windowSeconds: number;
  /** write() calls and voluntary context switches (wakeups) of the tracer in that window. */
  writes: number;
  wakeups: number;
}

/** BPF run statistics of a tracer's programs over one loop run. */
export interface BpfCost {
  runs: number;
  ns: number;
  programs: { name: string; runs: number; ns: number }[];
}

/** One loop run. */
export interface CtRun {
  config: CtConfig;
  round: number;
  /** Whether BPF run statistics were on. */
  stats: boolean;
  loop: LoopOut;
  tracer?: Delivery;
  bpf?: BpfCost;
  /** CPU (cores) used by anything but the loop and the tracer during the run. */
  otherCores: number;
  /** 2 when the first try was disturbed by other work (the less disturbed kept). */
  tries?: number;
}

/** Everything the connect bench measured. */
export interface ConnectResult {
  date: string;
  seconds: number;
  kernel: string;
  bpftrace: string;
  rounds: number;
  runSeconds: number;
  runs: CtRun[];
  /** The bpftrace script as run. */
  script: string;
  /** Things that went wrong with a tracer (non-zero exit, missing summary). */
  problems: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- namespace

/** `belt-bench-<pid>-ct` with lo up and the loop's address on it; stale ones go first. */
async function createCtNetns(): Promise<string> {
  await removeStaleNetns(/^belt-bench-(\d+)-ct$/);
  const name = `belt-bench-${Deno.pid}-ct`;
  await ip(["netns", "add", name]);
  onCleanup(`delete netns ${name}`, async () => {
    await ip(["netns", "del", name]);
  });
  await ip(["-n", name, "link", "set", "lo", "up"]);
  await ip(["-n", name, "addr", "add", `${CT_ADDR}/32`, "dev", "lo"]);
  return name;
}

const inNs = (ns: string, cmd: string[]) => ["nsenter", `--net=/run/netns/${ns}`, ...cmd];

/** `cmd` with stdout to `file`; sh and nsenter exec, so the pid is the tracer's. */
const toFile = (file: string, cmd: string[]) => [
  "sh",
  "-c",
  'out="$1"; shift; exec "$@" > "$out"',
  "sh",
  file,
  ...cmd,
];

// ---------------------------------------------------------------- measuring

let clockTicks = 100;

/** utime + stime + cutime + cstime of a process, seconds. */
async function processCpu(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(11, 15).map(Number);
  return f.reduce((a, b) => a + b, 0) / clockTicks;
}

interface ProgStat {
  id: number;
  name: string;
  runs: number;
  ns: number;
}

async function programs(): Promise<Map<number, ProgStat>> {
  const out = JSON.parse((await run(["bpftool", "prog", "show", "-j"])).stdout) as {
    id: number;
    name?: string;
    run_cnt?: number;
    run_time_ns?: number;
  }[];
  return new Map(out.map((p) => [p.id, {
    id: p.id,
    name: p.name ?? "",
    runs: p.run_cnt ?? 0,
    ns: p.run_time_ns ?? 0,
  }]));
}

/** Waits until `file` stops growing for SETTLE_MS (at most `maxMs`). */
async function settle(file: string, maxMs = 15_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let size = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    const now = (await Deno.stat(file)).size;
    if (now !== size) [size, since] = [now, Date.now()];
    else if (Date.now() - since >= SETTLE_MS) return;
    await sleep(100);
  }
}

/** Waits until `file` holds a line matching `re` (bpftrace's BEGIN says "ready"). */
async function waitFile(file: string, re: RegExp, bg: Background, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(await Deno.readTextFile(file).catch(() => ""))) {
    if (Date.now() > deadline) throw new Error(`${bg.cmd.join(" ")}: not ready: ${bg.stderr}`);
    await sleep(50);
  }
}

// The loop's port hash (connect_loop.c: splitmix64's finaliser, summed mod 2^64).
const M64 = (1n << 64n) - 1n;
const MIXED: bigint[] = [];
function mix(port: number): bigint {
  let x = MIXED[port];
  if (x !== undefined) return x;
  x = (BigInt(port) + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return MIXED[port] = x ^ (x >> 31n);
}

/** One tracer's output for the loop (see bpftraceScript for bpftrace's lines). */
function parseOutput(text: string, loop: LoopOut, config: "belt" | "bpftrace") {
  let established = 0, failed = 0, other = 0, misattributed = 0, hash = 0n;
  let summary: { events: number; lost: number } | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line);
    if (e.kind === "summary") summary = e;
    else if (
      e.dport !== CT_PORT || e.dst !== CT_ADDR || (config === "belt" && e.kind !== "connect")
    ) {
      other++;
    } else {
      if (e.pid !== loop.pid) misattributed++;
      if (config === "belt" ? e.outcome === "established" : e.new === 1) {
        established++;
        hash = (hash + mix(e.sport)) & M64;
      } else failed++;
    }
  }
  const hashOk = String(hash) === loop.port_hash;
  return { established, failed, other, misattributed, hashOk, summary };
}

/**
 * The peer: one line per outcome of a connect to the loop's port (SYN_SENT
 * to ESTABLISHED, or to CLOSE), with the fields belt prints: time, pid, comm,
 * addresses, ports, states. BEGIN fires once every probe is attached.
 */
export function bpftraceScript(port = CT_PORT): string {
  return `BEGIN { printf("ready\\n"); }
tracepoint:sock:inet_sock_set_state
/args->protocol == 6 && args->oldstate == 2 && (args->newstate == 1 || args->newstate == 7) && args->dport == ${port}/
{
  printf("{\\"ns\\":%llu,\\"pid\\":%d,\\"comm\\":\\"%s\\",\\"src\\":\\"%s\\",\\"sport\\":%d,\\"dst\\":\\"%s\\",\\"dport\\":%d,\\"old\\":%d,\\"new\\":%d}\\n",
    nsecs, pid, comm, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport,
    args->oldstate, args->newstate);
}
`;
}

// ---------------------------------------------------------------- runs

interface Ctx {
  ns: string;
  dir: string;
  loop: string;
  problems: string[];
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait). */
async function machineCpu(): Promise<number> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0]!;
  const f = line.split(/\s+/).slice(1, 8).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / clockTicks;
}

/** Waits (at most 5 s) until the machine is nearly idle: runs start on a quiet box. */
async function quiet(): Promise<void> {
  for (const deadline = Date.now() + 5_000; Date.now() < deadline;) {
    const a = await machineCpu();
    await sleep(500);
    if ((await machineCpu()) - a < 0.5 * QUIET_CORES) return;
  }
}

/** Write syscalls (/proc/PID/io) and voluntary context switches (all threads) of a process. */
async function wakeStats(pid: number): Promise<{ writes: number; wakeups: number }> {
  const io = await Deno.readTextFile(`/proc/${pid}/io`);
  let wakeups = 0;
  for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
    const status = await Deno.readTextFile(`/proc/${pid}/task/${t.name}/status`).catch(() => "");
    wakeups += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return { writes: Number(/^syscw: (\d+)/m.exec(io)?.[1]), wakeups };
}

async function runLoop(c: Ctx): Promise<LoopOut> {
  const r = await run(
    inNs(
      c.ns,
      onCpu([
        c.loop,
        CT_ADDR,
        String(CT_PORT),
        String(CT_SECONDS),
        String(CT_MAX_CONNECTS),
      ], LOOP_CPU),
    ),
    { timeoutMs: (CT_SECONDS + 20) * 1000 },
  );
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as LoopOut;
  if (out.errors) c.problems.push(`loop: ${out.errors} failed connects (errno ${out.last_errno})`);
  return out;
}

/** Starts a tracer, waits until it is attached, returns it and its new program ids. */
async function startTracer(c: Ctx, config: "belt" | "bpftrace", file: string) {
  const before = new Set((await programs()).keys());
  const cmd = config === "belt"
    ? [
      Deno.execPath(),
      "run",
      "-A",
      `${root}mod.ts`,
      "trace",
      "connect",
      "--json",
      "--comm",
      LOOP_COMM,
    ]
    : ["bpftrace", join(c.dir, "connect.bt")];
  const bg = new Background(toFile(file, onCpu(inNs(c.ns, cmd), TRACER_CPU)));
  if (config === "belt") await bg.waitFor(/^belt: tracing TCP connects/m, 60_000);
  else await waitFile(file, /^ready$/m, bg);
  const ids = [...(await programs()).keys()].filter((id) => !before.has(id));
  if (!ids.length) throw new Error(`${config}: no new BPF program after it said it was ready`);
  return { bg, ids };
}

/** Program runs and run time over one loop run, per program of the tracer. */
function bpfCost(ids: number[], p0: Map<number, ProgStat>, p1: Map<number, ProgStat>): BpfCost {
  const cost: BpfCost = { runs: 0, ns: 0, programs: [] };
  for (const id of ids) {
    const a = p0.get(id), b = p1.get(id);
    if (!a || !b) continue;
    cost.runs += b.runs - a.runs;
    cost.ns += b.ns - a.ns;
    cost.programs.push({ name: b.name, runs: b.runs - a.runs, ns: b.ns - a.ns });
  }
  return cost;
}

async function tracedRun(c: Ctx, config: "belt" | "bpftrace", round: number, stats: boolean) {
  const file = join(c.dir, `${config}-${round}${stats ? "-stats" : ""}.out`);
  const { bg, ids } = await startTracer(c, config, file);
  const pid = bg.child.pid;
  try {
    const p0 = await programs();
    const [cpu0, w0, m0, t0] = [
      await processCpu(pid),
      await wakeStats(pid),
      await machineCpu(),
      performance.now(),
    ];
    const loop = await runLoop(c);
    await settle(file);
    const [cpu1, w1, m1] = [await processCpu(pid), await wakeStats(pid), await machineCpu()];
    const windowSeconds = (performance.now() - t0) / 1000;
    const bpf = stats ? bpfCost(ids, p0, await programs()) : undefined;
    const r = await bg.stop("SIGINT", 20_000);
    if (r.killed) c.problems.push(`${config} round ${round + 1}: no exit within 20 s of SIGINT`);
    else if (r.code !== 0) {
      c.problems.push(`${config} round ${round + 1}: exited ${r.code}: ${r.stderr.trim()}`);
    }
    const p = parseOutput(await Deno.readTextFile(file), loop, config);
    if (config === "belt" && !p.summary) {
      c.problems.push(`belt round ${round + 1}: no summary line`);
    }
    const lost = config === "belt"
      ? p.summary?.lost ?? NaN
      : [...r.stderr.matchAll(/Lost (\d+) events/g)].reduce((a, m) => a + Number(m[1]), 0);
    const cpu = cpu1 - cpu0;
    const tracer: Delivery = {
      established: p.established,
      failed: p.failed,
      hashOk: p.hashOk,
      misattributed: p.misattributed,
      other: p.other,
      lost,
      reported: config === "belt" ? p.summary?.events ?? NaN : undefined,
      cpu,
      windowSeconds,
      writes: w1.writes - w0.writes,
      wakeups: w1.wakeups - w0.wakeups,
    };
    const other = (m1 - m0 - cpu - (loop.user_us + loop.sys_us) / 1e6) / windowSeconds;
    return { config, round, stats, loop, tracer, bpf, otherCores: other };
  } finally {
    await bg.stop("SIGKILL", 5_000); // only if something above failed: it has exited otherwise
    await Deno.remove(file).catch(() => {});
  }
}

async function plainRun(c: Ctx, round: number): Promise<CtRun> {
  const [m0, t0] = [await machineCpu(), performance.now()];
  const loop = await runLoop(c);
  const [m1, seconds] = [await machineCpu(), (performance.now() - t0) / 1000];
  const other = (m1 - m0 - (loop.user_us + loop.sys_us) / 1e6) / seconds;
  return { config: "none", round, stats: false, loop, otherCores: other };
}

/**
 * One run on a quiet machine; a run that other work on the machine disturbed
 * (more than QUIET_CORES of CPU besides the loop and the tracer) is run once
 * more, and the less disturbed of the two kept.
 */
async function oneRun(c: Ctx, config: CtConfig, round: number, stats = false): Promise<CtRun> {
  const once = async () => {
    await quiet();
    return config === "none" ? await plainRun(c, round) : await tracedRun(c, config, round, stats);
  };
  const first = await once();
  if (first.otherCores <= QUIET_CORES) return first;
  const second = await once();
  const kept = second.otherCores < first.otherCores ? second : first;
  return { ...kept, tries: 2 };
}

/** Runs the whole connect bench; `dir` is the bench's temp dir. */
export async function connectBench(
  dir: string,
  step: (text: string) => void = () => {},
): Promise<ConnectResult> {
  const started = performance.now();
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  for (const tool of ["bpftrace", "bpftool", "gcc", "nsenter"]) {
    if (!(await have(tool))) throw new Error(`the connect bench needs ${tool}`);
  }
  clockTicks = Number((await run(["getconf", "CLK_TCK"])).stdout.trim()) || 100;
  const script = bpftraceScript();
  await Deno.writeTextFile(join(dir, "connect.bt"), script);
  if (navigator.hardwareConcurrency < 2) throw new Error("the connect bench needs 2 CPUs");
  const c: Ctx = {
    ns: await createCtNetns(),
    dir,
    loop: await buildConnectLoop(dir),
    problems: [],
  };
  const runs: CtRun[] = [];
  const orders: CtConfig[][] = [
    ["none", "belt", "bpftrace"],
    ["belt", "bpftrace", "none"],
    ["bpftrace", "none", "belt"],
  ];
  step(
    `connect 1/2: ${CT_ROUNDS} rounds of loop alone / belt / bpftrace (about ${CT_ROUNDS * 13} s)`,
  );
  await runLoop(c); // warm-up: first-run costs (page cache, port tables) go here
  for (let round = 0; round < CT_ROUNDS; round++) {
    for (const config of orders[round % orders.length]!) runs.push(await oneRun(c, config, round));
  }
  step(`connect 2/2: ${STATS_ROUNDS} rounds of belt / bpftrace with BPF run statistics`);
  // BPF_ENABLE_STATS: the kernel's bpf_stats_enabled, on while this handle is open
  // (it goes with this process, whatever happens to it).
  const runStats = enableRunStats();
  try {
    for (let round = 0; round < STATS_ROUNDS; round++) {
      const order: CtConfig[] = round % 2 ? ["bpftrace", "belt"] : ["belt", "bpftrace"];
      for (const config of order) runs.push(await oneRun(c, config, round, true));
    }
  } finally {
    runStats.close();
  }
  const bt = await run(["bpftrace", "--version"], { check: false });
  return {
    date,
    seconds: (performance.now() - started) / 1000,
    kernel: Deno.osRelease(),
    bpftrace: /v(\S+)/.exec(bt.stdout)?.[1] ?? "unknown",
    rounds: CT_ROUNDS,
    runSeconds: CT_SECONDS,
    runs,
    script,
    problems: c.problems,
  };
}

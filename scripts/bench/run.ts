/**
 * belt's benchmarks, each side by side with a peer in the same run:
 *   1. map lookup/update from Deno vs a C loop on libbpf (same pinned map);
 *   2. ring buffer drain into `for await` vs a libbpf consumer, and loss at ~100k/s;
 *   3. cold start: `deno run` to an attached XDP program vs bpftool;
 *   4. `belt mirror` vs nftables `dup` and tcpdump (mirror_bench.ts);
 *   5. `belt firewall` vs xdp-filter, nftables and iptables (firewall_bench.ts);
 *   6. `belt trace connect` vs bpftrace under a tight connect loop (connect_bench.ts);
 *   7. `belt sniff` vs tcpdump with the same filter on the same traffic (sniff_bench.ts).
 * Writes docs/benchmarks.md. Needs root (loads programs, pins, namespaces).
 *
 *   deno task bench
 *   deno run -A scripts/bench/run.ts --only mirror     # section 4 only, the rest of the page kept
 *   deno run -A scripts/bench/run.ts --only firewall   # section 5 only, likewise
 *   deno run -A scripts/bench/run.ts --only connect    # section 6 only, likewise
 *   deno run -A scripts/bench/run.ts --only sniff      # section 7 only, likewise
 */
import { BpfObject, kernelRelease } from "../../bpf/mod.ts";
import { measureDlopen, measureJsCosts } from "./costs.ts";
import { cleanupAll, cleanupOnSignals, onCleanup, onCleanupFirst } from "./cleanup.ts";
import { buildAll } from "./compile.ts";
import { pinBenchObject, pinDir } from "./pins.ts";
import { mapBench } from "./map_bench.ts";
import { ringBench } from "./ringbuf_bench.ts";
import { createNetns } from "./netns.ts";
import { coldStart } from "./cold_start.ts";
import { analysis } from "./analysis.ts";
import { markdown, summary } from "./report.ts";
import type { Machine } from "./report.ts";
import { killChildren, run } from "./proc.ts";
import { mirrorBench } from "./mirror_bench.ts";
import { mirrorSection, mirrorSummary, replaceMirrorSection } from "./mirror_report.ts";
import { firewallBench } from "./firewall_bench.ts";
import { firewallSection, firewallSummary, replaceFirewallSection } from "./firewall_report.ts";
import { connectBench } from "./connect_bench.ts";
import { connectSection, connectSummary, replaceConnectSection } from "./connect_report.ts";
import { sniffBench } from "./sniff_bench.ts";
import { replaceSniffSection, sniffSection, sniffSummary } from "./sniff_report.ts";

const root = new URL("../..", import.meta.url).pathname;
const OUTPUT = `${root}docs/benchmarks.md`;

function step(text: string): void {
  console.error(`[bench] ${text}`);
}

async function machine(loadAverage: string): Promise<Machine> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const libbpf = await run(["dpkg-query", "-W", "-f", "${Version}", "libbpf1"], {
    check: false,
  });
  return {
    cores: navigator.hardwareConcurrency,
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU",
    kernel: kernelRelease(),
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    libbpf: libbpf.code === 0 ? libbpf.stdout.trim() : "unknown",
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    loadAverage,
  };
}

/** Sections that `--only` runs alone. */
const ONLY = ["mirror", "firewall", "connect", "sniff"] as const;
type Only = typeof ONLY[number];

/** `--only mirror|firewall|connect|sniff`: that section alone (undefined: everything). */
function onlySection(args: string[]): Only | undefined {
  const only = args.flatMap((a, i) =>
    a === "--only" ? [args[i + 1] ?? ""] : a.startsWith("--only=") ? [a.slice(7)] : []
  );
  const unknown = args.filter((a, i) =>
    a !== "--only" && !a.startsWith("--only=") && args[i - 1] !== "--only"
  );
  if (unknown.length || only.length > 1 || only.some((o) => !ONLY.includes(o as Only))) {
    console.error(
      "usage: deno run -A scripts/bench/run.ts [--only mirror|firewall|connect|sniff]",
    );
    Deno.exit(2);
  }
  return only[0] as Only | undefined;
}

/** Section 4 only: the rest of docs/benchmarks.md stays as it is. */
async function mirrorOnly(): Promise<void> {
  cleanupOnSignals();
  onCleanupFirst("stop helper processes", killChildren);
  const tmp = await Deno.makeTempDir({ prefix: "belt-bench-" });
  onCleanup(`remove ${tmp}`, () => Deno.remove(tmp, { recursive: true }));
  const mirror = await mirrorBench(tmp, step);
  const page = await Deno.readTextFile(OUTPUT).catch(() => "# Benchmarks\n");
  await Deno.writeTextFile(OUTPUT, replaceMirrorSection(page, mirrorSection(mirror)));
  await run([Deno.execPath(), "fmt", "-q", OUTPUT], { cwd: root });
  console.log(mirrorSummary(mirror));
  console.log(`wrote section 4 of ${OUTPUT}`);
}

/** Section 5 only: the rest of docs/benchmarks.md stays as it is. */
async function firewallOnly(): Promise<void> {
  cleanupOnSignals();
  onCleanupFirst("stop helper processes", killChildren);
  const tmp = await Deno.makeTempDir({ prefix: "belt-bench-" });
  onCleanup(`remove ${tmp}`, () => Deno.remove(tmp, { recursive: true }));
  const fw = await firewallBench(tmp, step);
  const page = await Deno.readTextFile(OUTPUT).catch(() => "# Benchmarks\n");
  await Deno.writeTextFile(OUTPUT, replaceFirewallSection(page, firewallSection(fw)));
  await run([Deno.execPath(), "fmt", "-q", OUTPUT], { cwd: root });
  console.log(firewallSummary(fw));
  console.log(`wrote section 5 of ${OUTPUT}`);
}

/** Section 6 only: the rest of docs/benchmarks.md stays as it is. */
async function connectOnly(): Promise<void> {
  cleanupOnSignals();
  onCleanupFirst("stop helper processes", killChildren);
  const tmp = await Deno.makeTempDir({ prefix: "belt-bench-" });
  onCleanup(`remove ${tmp}`, () => Deno.remove(tmp, { recursive: true }));
  const ct = await connectBench(tmp, step);
  const page = await Deno.readTextFile(OUTPUT).catch(() => "# Benchmarks\n");
  await Deno.writeTextFile(OUTPUT, replaceConnectSection(page, connectSection(ct)));
  await run([Deno.execPath(), "fmt", "-q", OUTPUT], { cwd: root });
  console.log(connectSummary(ct));
  console.log(`wrote section 6 of ${OUTPUT}`);
}

/** Section 7 only: the rest of docs/benchmarks.md stays as it is. */
async function sniffOnly(): Promise<void> {
  cleanupOnSignals();
  onCleanupFirst("stop helper processes", killChildren);
  const tmp = await Deno.makeTempDir({ prefix: "belt-bench-" });
  onCleanup(`remove ${tmp}`, () => Deno.remove(tmp, { recursive: true }));
  const sn = await sniffBench(tmp, step);
  const page = await Deno.readTextFile(OUTPUT).catch(() => "# Benchmarks\n");
  await Deno.writeTextFile(OUTPUT, replaceSniffSection(page, sniffSection(sn)));
  await run([Deno.execPath(), "fmt", "-q", OUTPUT], { cwd: root });
  console.log(sniffSummary(sn));
  console.log(`wrote section 7 of ${OUTPUT}`);
}

async function main(): Promise<void> {
  if (Deno.uid() !== 0) {
    console.error("the bench loads eBPF programs, pins and creates namespaces: run it as root");
    Deno.exit(1);
  }
  const only = onlySection(Deno.args);
  if (only === "mirror") return await mirrorOnly();
  if (only === "firewall") return await firewallOnly();
  if (only === "connect") return await connectOnly();
  if (only === "sniff") return await sniffOnly();
  const dlopen = measureDlopen(); // first: nothing may have opened libbpf yet
  const started = performance.now();
  const loadAverage = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  cleanupOnSignals();
  onCleanupFirst("stop helper processes", killChildren);
  const tmp = await Deno.makeTempDir({ prefix: "belt-bench-" });
  onCleanup(`remove ${tmp}`, () => Deno.remove(tmp, { recursive: true }));

  step("compiling the bench object and C helpers");
  const built = await buildAll(tmp);
  const dir = await pinDir();
  using obj = BpfObject.open(built.benchObject);
  obj.load();
  const pins = pinBenchObject(obj, dir);

  step("1/7 map lookup and update (about 10 s)");
  const map = await mapBench(obj, pins.values, built.mapOps);
  step("2/7 ring buffer (about 60 s)");
  const ring = await ringBench(obj, pins, built);
  step("3/7 cold start (about 5 s)");
  const ns = await createNetns();
  const cold = await coldStart(ns, built.xdpCountObject, dir);
  step("4/7 mirror (about 90 s)");
  const mirror = await mirrorBench(tmp, step);
  step("5/7 firewall (about 250 s)");
  const fw = await firewallBench(tmp, step);
  step("6/7 connect tracer (about 130 s)");
  const ct = await connectBench(tmp, step);
  step("7/7 sniff (about 200 s)");
  const sn = await sniffBench(tmp, step);
  step("unit costs");
  const costs = { ...dlopen, ...(await measureJsCosts()) };

  const results = {
    machine: await machine(loadAverage),
    map,
    ring,
    cold,
    mirror,
    seconds: (performance.now() - started) / 1000,
  };
  const page = markdown(results, analysis(results, costs));
  await Deno.writeTextFile(
    OUTPUT,
    replaceSniffSection(
      replaceConnectSection(replaceFirewallSection(page, firewallSection(fw)), connectSection(ct)),
      sniffSection(sn),
    ),
  );
  // The repo's `deno fmt --check` covers docs/ too.
  await run([Deno.execPath(), "fmt", "-q", OUTPUT], { cwd: root });
  console.log(summary(results));
  console.log(firewallSummary(fw));
  console.log(connectSummary(ct));
  console.log(sniffSummary(sn));
  console.log(`wrote ${OUTPUT}`);
}

globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault(); // clean up first, then fail
  console.error(`bench failed: ${e.reason instanceof Error ? e.reason.stack : e.reason}`);
  cleanupAll().finally(() => Deno.exit(1));
});

try {
  await main();
} catch (e) {
  console.error(`bench failed: ${e instanceof Error ? e.stack ?? e.message : e}`);
  Deno.exitCode = 1;
} finally {
  await cleanupAll();
}

/**
 * `belt firewall` side by side with its peers, in one run, on one topology
 * (firewall_topo.ts: sender namespace S → receiver namespace R, the filter on
 * R's veth), for rule sets of 10, 10k and 100k source-address drop rules:
 *
 *   1. in-kernel time per packet (BPF_PROG_TEST_RUN, 1M repeats) of belt's
 *      firewall_xdp and xdp-filter's program with the same rules loaded, for a
 *      packet that hits a rule and one that matches none;
 *   2. load time of each rule set: belt (parse, verifier, install, and the CLI
 *      end to end), xdp-filter, `nft -f`, `iptables-restore` (and the legacy
 *      backend's, in a scratch namespace);
 *   3. a flood of 64-byte UDP frames from many sources (XDP frames from
 *      native/fw_xdpgen.c, S on CPU 0): every source in the rule set (all
 *      dropped), or none (all pass to a closed UDP port). R's NAPI thread does
 *      all of R's work on CPU 1; its CPU time per frame is each filter's cost
 *      (plus the veth path's, which the `xdp-drop` / `none` baselines show),
 *      and its frames per second at saturation follow from it. Rounds rotate
 *      the order of the configurations.
 *
 * Every load is bounded in frames and milliseconds; everything made (namespaces,
 * programs, the private bpffs of xdp-filter, nft and iptables state, which live
 * in R) goes at the end, also on failure or a signal (cleanup.ts).
 */
import { join } from "node:path";
import {
  attachXdp,
  BpfObject,
  bytes,
  enableRunStats,
  openProgramMap,
  programInfo,
  u64,
  withNetns,
} from "../../bpf/mod.ts";
import type { Link } from "../../bpf/mod.ts";
import { firewall, firewallMaps } from "../../plugins/mod.ts";
import { onCleanup } from "./cleanup.ts";
import { pinSelf } from "./affinity.ts";
import { have, run } from "./proc.ts";
import { median } from "./stats.ts";
import { Background } from "./mirror_topo.ts";
import {
  addrPlus,
  createFirewallTopo,
  ethtoolStats,
  FW_ADDR,
  inNs,
  makeNetns,
  napiThread,
  nsRun,
  PrivateBpffs,
  runtimeNs,
  rxPackets,
  TX_CPU,
  udpNoPorts,
  xdpOn,
} from "./firewall_topo.ts";
import type { FwTopo } from "./firewall_topo.ts";

const root = new URL("../..", import.meta.url).pathname;
const here = new URL(".", import.meta.url).pathname;

/** Rule-set sizes. */
export const SIZES = [10, 10_000, 100_000];
/** Flood rounds per size (each round: every configuration once). */
export const ROUNDS = 3;
/** One flood window. */
export const WINDOW_MS = 1500;
/** Upper bound of frames in one window (the generator also stops at WINDOW_MS). */
export const WINDOW_MAX_FRAMES = 20_000_000;
/** BPF_PROG_TEST_RUN repeats, and rounds of it (median). */
export const TEST_RUN_REPEAT = 1_000_000;
export const TEST_RUN_ROUNDS = 3;
/** `xdp-filter ip` calls timed one by one (the rest of a rule set goes in with one batch). */
export const XDPF_CLI_SAMPLE = 20;

/** What filters a flood window. */
export type Tool = "belt" | "xdp-filter" | "nft" | "iptables" | "xdp-drop" | "none";
/** hit: every source is in the rule set; pass: none is. */
export type Kind = "hit" | "pass";

/** Configurations measured per kind (xdp-drop and none are the baselines). */
export const TOOLS: Record<Kind, Tool[]> = {
  hit: ["belt", "xdp-filter", "nft", "iptables", "xdp-drop"],
  pass: ["belt", "xdp-filter", "nft", "iptables", "none"],
};

/** One flood window. */
export interface FloodWindow {
  size: number;
  kind: Kind;
  tool: Tool;
  round: number;
  /** The generator's run time, s. */
  seconds: number;
  /** Frames the generator made per second. */
  offered: number;
  /** Frames R's veth took in (the rest found its ring full). */
  processed: number;
  /** processed / seconds. */
  rate: number;
  /** Frames that reached UDP (Udp NoPorts): passed the filter. */
  passed: number;
  /** The filter's own drop count, where it has one (belt totals, XDP drops, nft counter). */
  toolDropped?: number;
  /** CPU time of R's NAPI thread in the window, ns. */
  rxNs: number;
  /** rxNs / processed. */
  nsPerFrame: number;
  /** Frames the sender's veth could not hand over (R's ring full). */
  ringFull: number;
  /**
   * XDP configurations: the program's own run time per frame in the flood (kernel BPF
   * run statistics: run_time_ns / run_cnt), caches as the flood leaves them.
   */
  progNs?: number;
}

/** One BPF_PROG_TEST_RUN measurement (median of rounds). */
export interface TestRun {
  size: number;
  prog: "belt" | "xdp-filter" | "xdp-drop";
  kind: Kind;
  harness: "Program.testRun" | "bpftool prog run";
  /** Kernel-measured average ns per run, one per round. */
  ns: number[];
  /** XDP verdict (1 drop, 2 pass). */
  retval: number;
}

/** Load times of one rule-set size, ms. */
export interface LoadTimes {
  size: number;
  belt: {
    /** firewallOptions({ file }): read + parse. */
    parseMs: number;
    /** BpfObject open + configure + load (verifier). */
    loadMs: number;
    /** plugin fill: FirewallTable.replace into the kernel maps. */
    installMs: number;
    /** `belt firewall IFACE --rules FILE` from spawn to "firewall on" (Deno start included). */
    cliMs?: number;
  };
  xdpFilter?: {
    /** `xdp-filter load` (0 when the bench loaded the program with bpftool instead). */
    loadMs: number;
    /** Median of the timed `xdp-filter ip ADDR -m src` calls. */
    perCallMs: number;
    calls: number;
    /** filter_ipv4's max_entries in xdp-filter's own object. */
    max: number;
    /** How the rest went in. */
    how: string;
    /** Time of what the bench did to load the rest (batch update, or bpftool load + batch). */
    restMs: number;
  };
  nftMs?: number;
  iptablesMs?: number;
  iptablesLegacyMs?: number;
}

/** Everything the firewall bench measured. */
export interface FirewallResult {
  date: string;
  seconds: number;
  kernel: string;
  loadAverage: string;
  cpu: string;
  versions: Record<string, string>;
  sizes: number[];
  rounds: number;
  windowMs: number;
  repeat: number;
  /** XDP mode each XDP program ran in on R's veth. */
  xdpModes: Record<string, string>;
  iptablesBackend: string;
  xdpFilterObject: string;
  loads: LoadTimes[];
  testRuns: TestRun[];
  /** Wall time of one Program.testRun call: repeat 1, repeat 2, repeat TEST_RUN_REPEAT (ms). */
  testRunWall: { repeat1: number; repeat2: number; repeatMany: number; kernelNs: number };
  windows: FloodWindow[];
  /** Peers not measured, with the reason. */
  skipped: string[];
  /** Things that went wrong (a leak of frames through a drop rule, a wrong verdict, ...). */
  problems: string[];
}

interface Helpers {
  gen: string;
  baselineObj: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function version(cmd: string[], re: RegExp): Promise<string> {
  const r = await run(cmd, { check: false, timeoutMs: 10_000 }).catch(() => undefined);
  return r ? re.exec(r.stdout + r.stderr)?.[1] ?? "unknown" : "absent";
}

async function buildHelpers(dir: string): Promise<Helpers> {
  const multiarch = (await run(["gcc", "-dumpmachine"])).stdout.trim();
  const h = { gen: join(dir, "fw_xdpgen"), baselineObj: join(dir, "fw_baseline.bpf.o") };
  await Promise.all([
    run([
      "clang",
      "-O2",
      "-g",
      "-target",
      "bpf",
      "-Wall",
      "-I",
      `/usr/include/${multiarch}`,
      "-c",
      join(here, "fw_baseline.bpf.c"),
      "-o",
      h.baselineObj,
    ], { timeoutMs: 60_000 }),
    run([
      "gcc",
      "-O2",
      "-Wall",
      "-I",
      join(here, "native"),
      join(here, "native", "fw_xdpgen.c"),
      "-lbpf",
      "-o",
      h.gen,
    ], { timeoutMs: 60_000 }),
  ]);
  return h;
}

/** xdp-filter's "allow" program with every feature (what `xdp-filter load` picks by default). */
async function xdpFilterObject(): Promise<string | undefined> {
  const multiarch = (await run(["gcc", "-dumpmachine"])).stdout.trim();
  for (
    const dir of [
      `/usr/lib/${multiarch}/bpf`,
      "/usr/lib/bpf",
      "/usr/local/lib/bpf",
      "/usr/share/xdp-tools",
    ]
  ) {
    const p = `${dir}/xdpfilt_alw_all.o`;
    if (await Deno.stat(p).then(() => true, () => false)) return p;
  }
  return undefined;
}

/** A 60-byte frame as the flood's (source `src`), for test runs. */
export function frame(src: string, dstMac = "02:00:00:00:00:02"): Uint8Array {
  const f = new Uint8Array(60);
  dstMac.split(":").forEach((b, i) => (f[i] = parseInt(b, 16)));
  f.set([0x02, 0xbe, 0x17, 0, 0, 0], 6);
  f.set([0x08, 0x00], 12);
  const ip = [
    0x45,
    0,
    0,
    46,
    0,
    0,
    0,
    0,
    64,
    17,
    0,
    0,
    ...src.split(".").map(Number),
    ...FW_ADDR.r.split(".").map(Number),
  ];
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (ip[i]! << 8) | ip[i + 1]!;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = ~sum & 0xffff;
  ip[10] = sum >> 8;
  ip[11] = sum & 0xff;
  f.set(ip, 14);
  f.set([0x9c, 0x40, 0x23, 0x28, 0, 26, 0, 0], 34);
  return f;
}

const ipBytes = (a: string) => new Uint8Array(a.split(".").map(Number));

// ------------------------------------------------------------------ one size

/** What is loaded for one size, and how to switch each configuration on and off. */
interface Loaded {
  belt: { obj: BpfObject; link?: Link };
  baseline: { obj: BpfObject; link?: Link };
  xdpf?: { bpffs: PrivateBpffs; progId: number; pin: string };
  nft: boolean;
  iptables: boolean;
}

async function writeRuleFiles(
  dir: string,
  size: number,
): Promise<{ belt: string; nft: string; ipt: string }> {
  const addrs = Array.from({ length: size }, (_, i) => addrPlus(FW_ADDR.ruleBase, i));
  const files = {
    belt: join(dir, `rules-${size}.txt`),
    nft: join(dir, `nft-${size}.nft`),
    ipt: join(dir, `iptables-${size}.rules`),
  };
  await Deno.writeTextFile(files.belt, addrs.map((a) => `deny src ${a}\n`).join(""));
  await Deno.writeTextFile(
    files.nft,
    `table netdev beltfw {\n  counter dropped {}\n  set deny {\n    type ipv4_addr\n    elements = { ${
      addrs.join(", ")
    } }\n  }\n}\n`,
  );
  await Deno.writeTextFile(
    files.ipt,
    `*raw\n:PREROUTING ACCEPT [0:0]\n:BELTFW - [0:0]\n${
      addrs.map((a) => `-A BELTFW -s ${a}/32 -j DROP\n`).join("")
    }COMMIT\n`,
  );
  return files;
}

async function timed<T>(fn: () => Promise<T> | T): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

/** belt's CLI as a user runs it, from spawn to "firewall on" (then stopped). */
async function beltCli(t: FwTopo, rules: string, problems: string[]): Promise<number | undefined> {
  const t0 = performance.now();
  const bg = new Background(inNs(t.r, [
    Deno.execPath(),
    "run",
    "-A",
    `${root}mod.ts`,
    "firewall",
    t.rIface,
    "--rules",
    rules,
    "--mode",
    "native",
  ]));
  try {
    await bg.waitFor(/^firewall on /m, 120_000);
    return performance.now() - t0;
  } catch (e) {
    problems.push(`belt CLI with ${rules}: ${(e as Error).message.slice(0, 300)}`);
    return undefined;
  } finally {
    const r = await bg.stop("SIGTERM", 20_000);
    if (r.killed) problems.push(`belt CLI with ${rules} did not exit within 20 s of SIGTERM`);
  }
}

async function loadSize(
  t: FwTopo,
  h: Helpers,
  dir: string,
  size: number,
  xdpfObj: string | undefined,
  skipped: Set<string>,
  problems: string[],
  modes: Record<string, string>,
): Promise<{ loaded: Loaded; times: LoadTimes }> {
  const files = await writeRuleFiles(dir, size);
  // belt's CLI first, while the interface is free (at the smallest and largest size).
  let cliMs: number | undefined;
  if (size === SIZES[0] || size === SIZES[SIZES.length - 1]) {
    cliMs = await beltCli(t, files.belt, problems);
  }

  // belt, in stages: parse, load, install.
  const [options, parseMs] = await timed(() => firewall.options({ file: files.belt }, "bench"));
  const [obj, loadMs] = await timed(() => {
    const o = BpfObject.open(firewall.object, { name: "firewall" });
    try {
      firewall.configure?.(o, options);
      for (const p of o.programs.values()) p.autoload = p.name === "firewall_xdp";
      o.load();
      return o;
    } catch (e) {
      o.close();
      throw e;
    }
  });
  const rulesMapId = firewallMaps(obj).rules.id;
  onCleanup("close belt's firewall object", () => {
    obj.close();
    return Deno.remove(`/run/belt/firewall-${rulesMapId}.lock`).catch(() => {});
  });
  const [, installMs] = await timed(() => firewall.fill?.(obj, options));

  const baseline = BpfObject.open(h.baselineObj, { name: "fw_baseline" });
  onCleanup("close the baseline object", () => baseline.close());
  baseline.program("fw_gen").autoload = false;
  baseline.load();

  const times: LoadTimes = { size, belt: { parseMs, loadMs, installMs, cliMs } };
  const loaded: Loaded = {
    belt: { obj },
    baseline: { obj: baseline },
    nft: false,
    iptables: false,
  };

  // xdp-filter, in a private bpffs.
  if (!skipped.has("xdp-filter") && xdpfObj) {
    const bpffs = await PrivateBpffs.start();
    const x = (cmd: string[]) => run(bpffs.cmd(t.r, cmd), { timeoutMs: 120_000 });
    const ids: number[] = [];
    let xd: LoadTimes["xdpFilter"];
    const max = 10_000; // xdpfilt_*.o: filter_ipv4 max_entries (checked below)
    if (size <= max) {
      const [, loadMs] = await timed(() =>
        x(["xdp-filter", "load", "-m", "native", "-p", "allow", t.rIface])
      );
      const on = await xdpOn(t);
      if (!on) throw new Error("xdp-filter load attached nothing");
      modes["xdp-filter"] = on.mode;
      const calls = Math.min(size, XDPF_CLI_SAMPLE);
      const each: number[] = [];
      for (let i = 0; i < calls; i++) {
        each.push(
          (await timed(() => x(["xdp-filter", "ip", addrPlus(FW_ADDR.ruleBase, i), "-m", "src"])))[
            1
          ],
        );
      }
      const [, restMs] = await timed(() => {
        using m = openProgramMap(on.id, "filter_ipv4", bytes(4), u64);
        if (!m) throw new Error("xdp-filter's program has no filter_ipv4");
        if (m.map.maxEntries !== max) {
          problems.push(`xdp-filter's filter_ipv4 holds ${m.map.maxEntries}, not ${max}`);
        }
        const rest = Array.from(
          { length: size - calls },
          (_, i) => [ipBytes(addrPlus(FW_ADDR.ruleBase, calls + i)), 1n] as const,
        );
        if (rest.length) m.map.setBatch(rest);
      });
      const name = programInfo(on.id).name;
      const pin = `/sys/fs/bpf/xdp-filter/programs/${t.rIface}/${name}`;
      await Deno.stat(`${bpffs.root}${pin}`);
      await run(["ip", "-n", t.r, "link", "set", "dev", t.rIface, "xdpdrv", "off"]);
      ids.push(on.id);
      loaded.xdpf = { bpffs, progId: on.id, pin };
      xd = {
        loadMs,
        perCallMs: median(each),
        calls,
        max,
        how: size > calls
          ? `${calls} with \`xdp-filter ip ADDR -m src\`, the other ${
            size - calls
          } by one batch update of its pinned filter_ipv4 (what the CLI writes: flags 1 on every CPU)`
          : "all with `xdp-filter ip ADDR -m src`",
        restMs,
      };
    } else {
      // xdp-filter cannot hold this many: its own program with a larger filter_ipv4.
      const d = "/sys/fs/bpf/belt-bench";
      const entries = 1 << Math.ceil(Math.log2(size));
      const [, restMs] = await timed(async () => {
        await x(["mkdir", "-p", d]);
        await x([
          "bpftool",
          "map",
          "create",
          `${d}/filter_ipv4`,
          "type",
          "percpu_hash",
          "key",
          "4",
          "value",
          "8",
          "entries",
          String(entries),
          "name",
          "filter_ipv4",
        ]);
        await x([
          "bpftool",
          "prog",
          "load",
          xdpfObj,
          `${d}/prog`,
          "type",
          "xdp",
          "map",
          "name",
          "filter_ipv4",
          "pinned",
          `${d}/filter_ipv4`,
        ]);
        const id = Number(
          JSON.parse((await x(["bpftool", "-j", "prog", "show", "pinned", `${d}/prog`])).stdout).id,
        );
        using m = openProgramMap(id, "filter_ipv4", bytes(4), u64);
        if (!m) throw new Error("xdp-filter's program has no filter_ipv4");
        m.map.setBatch(
          Array.from(
            { length: size },
            (_, i) => [ipBytes(addrPlus(FW_ADDR.ruleBase, i)), 1n] as const,
          ),
        );
        ids.push(id);
      });
      loaded.xdpf = { bpffs, progId: ids[0]!, pin: `${d}/prog` };
      xd = {
        loadMs: 0,
        perCallMs: NaN,
        calls: 0,
        max,
        how:
          `xdp-filter's CLI stops at ${max} addresses (filter_ipv4 max_entries): the bench loaded ${
            xdpfObj.split("/").pop()
          } with bpftool, its filter_ipv4 created with ${entries} entries, and filled it with one batch update`,
        restMs,
      };
    }
    times.xdpFilter = xd;
  }

  // nft: a table with the set (the chain is added per round).
  if (!skipped.has("nft")) {
    const [, ms] = await timed(() => nsRun(t.r, ["nft", "-f", files.nft]));
    times.nftMs = ms;
    loaded.nft = true;
  }

  // iptables (the default backend), a chain BELTFW in raw, jumped to from PREROUTING per round.
  if (!skipped.has("iptables")) {
    const [, ms] = await timed(() => nsRun(t.r, ["iptables-restore", files.ipt], true, 300_000));
    times.iptablesMs = ms;
    loaded.iptables = true;
    if (size > 10 && !skipped.has("iptables-legacy")) {
      const scratch = `belt-bench-${Deno.pid}-fl`;
      await makeNetns(scratch);
      const [, legacy] = await timed(() =>
        nsRun(scratch, ["iptables-legacy-restore", files.ipt], true, 300_000)
      );
      times.iptablesLegacyMs = legacy;
      await run(["ip", "netns", "del", scratch]);
    }
  }
  return { loaded, times };
}

async function unloadSize(t: FwTopo, l: Loaded): Promise<void> {
  l.belt.link?.close();
  l.baseline.link?.close();
  l.belt.obj.close();
  l.baseline.obj.close();
  if (l.xdpf) {
    await run(["ip", "-n", t.r, "link", "set", "dev", t.rIface, "xdpdrv", "off"], { check: false });
    await l.xdpf.bpffs.stop();
  }
  if (l.nft) await nsRun(t.r, ["nft", "delete", "table", "netdev", "beltfw"], false);
  if (l.iptables) {
    await nsRun(t.r, ["iptables", "-t", "raw", "-F"], false, 300_000);
    await nsRun(t.r, ["iptables", "-t", "raw", "-X"], false);
  }
}

async function enable(t: FwTopo, l: Loaded, tool: Tool): Promise<void> {
  const attach = (obj: BpfObject, prog: string) =>
    withNetns(t.r, () => attachXdp(obj.program(prog), t.rIface, { mode: "native" }));
  if (tool === "belt") l.belt.link = attach(l.belt.obj, "firewall_xdp");
  else if (tool === "xdp-drop") l.baseline.link = attach(l.baseline.obj, "baseline_drop");
  else if (tool === "xdp-filter") {
    await run(
      l.xdpf!.bpffs.cmd(t.r, [
        "ip",
        "link",
        "set",
        "dev",
        t.rIface,
        "xdpdrv",
        "pinned",
        l.xdpf!.pin,
      ]),
    );
  } else if (tool === "nft") {
    await nsRun(t.r, [
      "nft",
      `add chain netdev beltfw in { type filter hook ingress device "${t.rIface}" priority 0; }; ` +
      "add rule netdev beltfw in ip saddr @deny counter name dropped drop",
    ]);
  } else if (tool === "iptables") {
    await nsRun(t.r, [
      "iptables",
      "-t",
      "raw",
      "-I",
      "PREROUTING",
      "1",
      "-i",
      t.rIface,
      "-j",
      "BELTFW",
    ]);
  }
}

async function disable(t: FwTopo, l: Loaded, tool: Tool): Promise<void> {
  if (tool === "belt") {
    l.belt.link?.close();
    l.belt.link = undefined;
  } else if (tool === "xdp-drop") {
    l.baseline.link?.close();
    l.baseline.link = undefined;
  } else if (tool === "xdp-filter") {
    await run(["ip", "-n", t.r, "link", "set", "dev", t.rIface, "xdpdrv", "off"]);
  } else if (tool === "nft") {
    await nsRun(t.r, ["nft", "flush chain netdev beltfw in; delete chain netdev beltfw in"]);
  } else if (tool === "iptables") {
    await nsRun(t.r, ["iptables", "-t", "raw", "-D", "PREROUTING", "1"], true, 120_000);
  }
}

async function toolDropped(t: FwTopo, l: Loaded, tool: Tool): Promise<number | undefined> {
  if (tool === "belt") return Number(firewall.stats!(l.belt.obj).dropped_in ?? NaN);
  if (tool === "xdp-filter" || tool === "xdp-drop") {
    return (await ethtoolStats(t.r, t.rIface))["rx_queue_0_xdp_drops"];
  }
  if (tool === "nft") {
    const j = JSON.parse(
      await nsRun(t.r, ["nft", "-j", "list", "counter", "netdev", "beltfw", "dropped"]),
    );
    return Number(j.nftables.find((x: { counter?: unknown }) => x.counter).counter.packets);
  }
  return undefined;
}

async function floodWindow(
  t: FwTopo,
  h: Helpers,
  l: Loaded,
  size: number,
  kind: Kind,
  tool: Tool,
  round: number,
): Promise<FloodWindow> {
  const pid = await napiThread(t);
  const base = kind === "hit" ? FW_ADDR.ruleBase : FW_ADDR.passBase;
  const count = kind === "hit" ? size : Math.min(size, FW_ADDR.passMax);
  const prog = () => {
    if (tool === "belt") return l.belt.obj.program("firewall_xdp").stats();
    if (tool === "xdp-drop") return l.baseline.obj.program("baseline_drop").stats();
    if (tool === "xdp-filter") return programInfo(l.xdpf!.progId);
    return undefined;
  };
  const snap = async () => ({
    prog: prog(),
    rx: await rxPackets(t),
    rt: await runtimeNs(pid),
    passed: await udpNoPorts(t),
    tool: await toolDropped(t, l, tool),
    sx: (await ethtoolStats(t.s, t.sIface))["tx_queue_0_xdp_xmit_errors"] ?? 0,
  });
  const a = await snap();
  const r = await run(
    inNs(t.s, [
      "taskset",
      "-c",
      String(TX_CPU),
      h.gen,
      h.baselineObj,
      t.sIface,
      t.rMac,
      FW_ADDR.r,
      base,
      String(count),
      "0",
      String(WINDOW_MAX_FRAMES),
      String(WINDOW_MS),
    ]),
    { timeoutMs: WINDOW_MS + 30_000 },
  );
  await sleep(100); // what is still in R's ring
  const b = await snap();
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  const seconds = Number(out.ns) / 1e9;
  const processed = b.rx - a.rx;
  const rxNs = b.rt - a.rt;
  return {
    size,
    kind,
    tool,
    round,
    seconds,
    offered: Number(out.sent) / seconds,
    processed,
    rate: processed / seconds,
    passed: b.passed - a.passed,
    toolDropped: a.tool === undefined || b.tool === undefined ? undefined : b.tool - a.tool,
    rxNs,
    nsPerFrame: processed ? rxNs / processed : NaN,
    ringFull: b.sx - a.sx,
    progNs: a.prog && b.prog && b.prog.runCount > a.prog.runCount
      ? Number(b.prog.runTimeNs - a.prog.runTimeNs) / Number(b.prog.runCount - a.prog.runCount)
      : undefined,
  };
}

/** Rounds of every configuration, the order rotating from round to round. */
async function floodSize(
  t: FwTopo,
  h: Helpers,
  l: Loaded,
  size: number,
  skipped: Set<string>,
  problems: string[],
  modes: Record<string, string>,
): Promise<FloodWindow[]> {
  const tools = (["belt", "xdp-filter", "nft", "iptables", "xdp-drop", "none"] as Tool[]).filter((
    x,
  ) => !skipped.has(x));
  const out: FloodWindow[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = [...tools.slice(round % tools.length), ...tools.slice(0, round % tools.length)];
    for (const tool of order) {
      await enable(t, l, tool);
      try {
        if (["belt", "xdp-filter", "xdp-drop"].includes(tool)) {
          const on = await xdpOn(t);
          modes[tool] = on?.mode ?? "none";
          if (on?.mode !== "native") {
            problems.push(`${tool} at ${size}: XDP mode ${on?.mode}, not native`);
          }
        } else if (await xdpOn(t)) {
          problems.push(`${tool} at ${size}: an XDP program was still attached`);
        }
        for (const kind of ["hit", "pass"] as Kind[]) {
          if (!TOOLS[kind].includes(tool)) continue;
          const w = await floodWindow(t, h, l, size, kind, tool, round);
          out.push(w);
          if (kind === "hit" && w.passed > 0) {
            problems.push(
              `${tool} at ${size} rules: ${w.passed} of ${w.processed} frames from denied sources passed`,
            );
          }
          if (kind === "pass" && w.passed !== w.processed) {
            problems.push(
              `${tool} at ${size} rules: ${
                w.processed - w.passed
              } of ${w.processed} unlisted frames did not pass`,
            );
          }
        }
      } finally {
        await disable(t, l, tool);
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------ test runs

function bpftoolRun(
  id: number,
  file: string,
  repeat: number,
): Promise<{ retval: number; ns: number }> {
  return run([
    "bpftool",
    "prog",
    "run",
    "id",
    String(id),
    "data_in",
    file,
    "repeat",
    String(repeat),
  ], {
    timeoutMs: 120_000,
  }).then((r) => {
    const m = /Return value: (\d+), duration(?: \(average\))?: (\d+)ns/.exec(r.stdout + r.stderr);
    if (!m) throw new Error(`bpftool prog run: ${r.stdout}${r.stderr}`);
    return { retval: Number(m[1]), ns: Number(m[2]) };
  });
}

async function testRuns(
  dir: string,
  l: Loaded,
  size: number,
  problems: string[],
): Promise<TestRun[]> {
  const frames: Record<Kind, Uint8Array> = {
    hit: frame(addrPlus(FW_ADDR.ruleBase, Math.floor(size / 2))),
    pass: frame(FW_ADDR.passBase),
  };
  const files: Record<Kind, string> = { hit: join(dir, "hit.bin"), pass: join(dir, "pass.bin") };
  for (const k of ["hit", "pass"] as Kind[]) await Deno.writeFile(files[k], frames[k]);
  const beltProg = l.belt.obj.program("firewall_xdp");
  const beltId = beltProg.stats().id;
  const out: TestRun[] = [];
  const want = (k: Kind) => (k === "hit" ? 1 : 2);
  for (const kind of ["hit", "pass"] as Kind[]) {
    const rows: TestRun[] = [
      { size, prog: "belt", kind, harness: "Program.testRun", ns: [], retval: -1 },
      { size, prog: "belt", kind, harness: "bpftool prog run", ns: [], retval: -1 },
    ];
    if (l.xdpf) {
      rows.push({
        size,
        prog: "xdp-filter",
        kind,
        harness: "bpftool prog run",
        ns: [],
        retval: -1,
      });
    }
    if (kind === "hit") {
      rows.push({ size, prog: "xdp-drop", kind, harness: "Program.testRun", ns: [], retval: -1 });
    }
    for (let round = 0; round < TEST_RUN_ROUNDS; round++) {
      for (const row of rows) {
        if (row.prog === "belt" && row.harness === "Program.testRun") {
          const r = beltProg.testRun(frames[kind], { repeat: TEST_RUN_REPEAT });
          row.ns.push(r.durationNs);
          row.retval = r.retval;
        } else if (row.prog === "xdp-drop") {
          const r = l.baseline.obj.program("baseline_drop").testRun(frames[kind], {
            repeat: TEST_RUN_REPEAT,
          });
          row.ns.push(r.durationNs);
          row.retval = r.retval;
        } else {
          const r = await bpftoolRun(
            row.prog === "belt" ? beltId : l.xdpf!.progId,
            files[kind],
            TEST_RUN_REPEAT,
          );
          row.ns.push(r.ns);
          row.retval = r.retval;
        }
      }
    }
    for (const row of rows) {
      if (row.prog !== "xdp-drop" && row.retval !== want(kind)) {
        problems.push(
          `test run: ${row.prog} returned ${row.retval} for the ${kind} packet at ${size} rules`,
        );
      }
    }
    out.push(...rows);
  }
  return out;
}

/** Wall time of Program.testRun at repeat 1, 2 and many: is there a fixed cost per call? */
function testRunWall(l: Loaded): FirewallResult["testRunWall"] {
  const p = l.belt.obj.program("firewall_xdp");
  const f = frame(FW_ADDR.passBase);
  const wall = (repeat: number) => {
    const best: number[] = [];
    let kernelNs = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      kernelNs = p.testRun(f, { repeat }).durationNs;
      best.push(performance.now() - t0);
    }
    return { ms: Math.min(...best), kernelNs };
  };
  const many = wall(TEST_RUN_REPEAT);
  return { repeat1: wall(1).ms, repeat2: wall(2).ms, repeatMany: many.ms, kernelNs: many.kernelNs };
}

// ------------------------------------------------------------------ main

/** Runs the whole firewall bench; `dir` is the bench's temp dir. */
export async function firewallBench(
  dir: string,
  step: (text: string) => void = () => {},
): Promise<FirewallResult> {
  const started = performance.now();
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const loadAverage = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  for (const tool of ["clang", "gcc", "ethtool", "unshare", "nsenter", "taskset", "chrt"]) {
    if (!(await have(tool))) {
      throw new Error(
        `the firewall bench needs ${tool}${tool === "ethtool" ? " (apt-get install ethtool)" : ""}`,
      );
    }
  }
  if (navigator.hardwareConcurrency < 2) {
    throw new Error("the firewall bench needs 2 CPUs (sender and receiver)");
  }
  const skipped = new Set<string>();
  const skippedWhy: string[] = [];
  const skip = (what: string, why: string) => {
    skipped.add(what);
    skippedWhy.push(`${what}: ${why}`);
  };
  const xdpfObj = await xdpFilterObject();
  if (!(await have("xdp-filter"))) skip("xdp-filter", "not installed (apt-get install xdp-tools)");
  else if (!(await have("bpftool"))) {
    skip("xdp-filter", "bpftool (for its test runs) not installed");
  } else if (!xdpfObj) skip("xdp-filter", "xdpfilt_alw_all.o not found (libxdp1's BPF objects)");
  if (!(await have("nft"))) skip("nft", "not installed (apt-get install nftables)");
  if (!(await have("iptables-restore"))) {
    skip("iptables", "not installed (apt-get install iptables)");
  }
  if (!(await have("iptables-legacy-restore"))) {
    skip("iptables-legacy", "iptables-legacy-restore not installed");
  }

  const versions = {
    nft: await version(["nft", "--version"], /nftables (v\S+)/),
    iptables: await version(["iptables", "--version"], /(v\S+ \(\S+\))/),
    "xdp-filter": await version(["xdp-filter", "load", "--version"], /version (\S+)/),
    bpftool: await version(["bpftool", "version"], /bpftool (v\S+)/),
  };
  const iptablesBackend = /\((\S+)\)/.exec(versions.iptables)?.[1] ?? "unknown";
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const h = await buildHelpers(dir);
  const t = await createFirewallTopo();
  const problems: string[] = [];
  const modes: Record<string, string> = {};
  const loads: LoadTimes[] = [];
  const runs: TestRun[] = [];
  const windows: FloodWindow[] = [];
  let wall: FirewallResult["testRunWall"] | undefined;
  // The bench itself and every command it starts stay on the sender's CPU.
  const restore = await pinSelf(TX_CPU);
  // Kernel run statistics of BPF programs (run_cnt, run_time_ns), on for the whole flood.
  const runStats = enableRunStats();
  try {
    for (const [i, size] of SIZES.entries()) {
      step(`firewall ${i + 1}/${SIZES.length}: ${size} rules: load, test runs, flood`);
      const { loaded, times } = await loadSize(t, h, dir, size, xdpfObj, skipped, problems, modes);
      try {
        loads.push(times);
        wall ??= testRunWall(loaded);
        runs.push(...await testRuns(dir, loaded, size, problems));
        windows.push(...await floodSize(t, h, loaded, size, skipped, problems, modes));
      } finally {
        await unloadSize(t, loaded);
      }
    }
  } finally {
    runStats.close();
    await restore();
  }
  return {
    date,
    seconds: (performance.now() - started) / 1000,
    kernel: Deno.osRelease(),
    loadAverage,
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU",
    versions,
    sizes: SIZES,
    rounds: ROUNDS,
    windowMs: WINDOW_MS,
    repeat: TEST_RUN_REPEAT,
    xdpModes: modes,
    iptablesBackend,
    xdpFilterObject: xdpfObj ?? "absent",
    loads,
    testRuns: runs,
    testRunWall: wall ?? { repeat1: NaN, repeat2: NaN, repeatMany: NaN, kernelNs: NaN },
    windows,
    skipped: skippedWhy,
    problems,
  };
}

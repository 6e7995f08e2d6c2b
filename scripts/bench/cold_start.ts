/**
 * Cold start: process start to an XDP program attached in the bench's
 * namespace. belt: `deno run -A cold_start_belt.ts` (embedded object, open,
 * load, attach). Peer: `bpftool prog load X.o PIN type xdp && bpftool net
 * attach xdp pinned PIN dev IF`, X.o built from the same source. Both go
 * through `nsenter --net=` (which, unlike `ip netns exec`, keeps /sys/fs/bpf
 * visible). One warm-up, then N samples each, interleaved; medians. With
 * hyperfine on PATH, it times the whole commands; belt's time to "attached"
 * is always read from its output here.
 */
import { join } from "node:path";
import type { BenchNetns } from "./netns.ts";
import { xdpProgId } from "./netns.ts";
import { have, killQuietly, run, spawnPiped } from "./proc.ts";
import { median } from "./stats.ts";

const here = new URL(".", import.meta.url).pathname;

/** Cold start figures, in milliseconds (medians). */
export interface ColdResult {
  runs: number;
  timer: string;
  /** belt: spawn to the "attached" line. */
  beltAttached: number;
  /** belt: spawn to exit (the link goes with the process). */
  beltExit: number;
  /** `deno run -A` of the same script, exiting after its imports. */
  beltImports: number;
  /** bpftool load && attach: spawn to exit (attached then). */
  bpftool: number;
  /** `nsenter ... true`: the cost of starting anything at all. */
  spawn: number;
  /** `deno run -A` of an empty module: Deno's own start. */
  denoEmpty: number;
  /** Inside the belt process, ms since the runtime started (medians). */
  phases: BeltPhases;
  beltMode: string;
  bpftoolMode: string;
}

/** Phase ends inside the belt process, ms from the runtime's start. */
export interface BeltPhases {
  imported: number;
  opened: number;
  loaded: number;
  attached: number;
}

interface Timed {
  markerMs: number;
  exitMs: number;
  stdout: string;
}

async function timed(cmd: string[], marker?: string, timeoutMs = 30_000): Promise<Timed> {
  const t0 = performance.now();
  const child = spawnPiped(cmd);
  const timer = setTimeout(() => killQuietly(child), timeoutMs);
  const stderr = new Response(child.stderr).text();
  let text = "";
  let markerMs = NaN;
  const decoder = new TextDecoder();
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (marker && Number.isNaN(markerMs) && text.includes(marker)) {
        markerMs = performance.now() - t0;
      }
    }
    const status = await child.status;
    const exitMs = performance.now() - t0;
    if (!status.success) {
      throw new Error(`${cmd.join(" ")} exited ${status.code}: ${(await stderr).trim()}`);
    }
    return { markerMs, exitMs, stdout: text };
  } finally {
    clearTimeout(timer);
  }
}

function xdpMode(linkShow: string): string {
  return /xdpgeneric/.test(linkShow)
    ? "generic"
    : /xdpoffload/.test(linkShow)
    ? "offload"
    : "native";
}

/** Measures both sides `runs` times after one warm-up each. */
export async function coldStart(
  ns: BenchNetns,
  xdpObject: string,
  pinDir: string,
  runs = 5,
): Promise<ColdResult> {
  const enter = ["nsenter", `--net=${ns.path}`];
  const pin = join(pinDir, "cold_xdp");
  const belt = [...enter, Deno.execPath(), "run", "-A", join(here, "cold_start_belt.ts"), ns.iface];
  const beltImports = [...belt, "--imports-only"];
  const bpftoolScript = `bpftool prog load ${xdpObject} ${pin} type xdp && ` +
    `bpftool net attach xdp pinned ${pin} dev ${ns.iface}`;
  const bpftool = [...enter, "sh", "-c", bpftoolScript];
  const spawnOnly = [...enter, "true"];
  const denoEmpty = [...enter, Deno.execPath(), "run", "-A", "data:application/javascript,"];
  let beltMode = "", bpftoolMode = "";

  // The bpftool sample leaves its program attached and pinned: undone before the next one.
  const undo = [...enter, "sh", "-c", `bpftool net detach xdp dev ${ns.iface}; rm -f ${pin}`];
  const undoBpftool = async () => {
    await run(undo, { check: false });
  };
  const sample = {
    belt: async () => {
      const t = await timed(belt, "attached");
      beltMode = /attached (\S+)/.exec(t.stdout)?.[1] ?? "?";
      if (!/id [1-9]\d*/.test(t.stdout)) throw new Error(`belt did not attach: ${t.stdout}`);
      if (await xdpProgId(ns)) throw new Error("belt's XDP link outlived its process");
      return t;
    },
    bpftool: async () => {
      const t = await timed(bpftool);
      const id = await xdpProgId(ns);
      if (!id) throw new Error("bpftool did not attach");
      const show = await run(["ip", "-n", ns.name, "link", "show", "dev", ns.iface]);
      bpftoolMode = xdpMode(show.stdout);
      await undoBpftool();
      return t;
    },
  };

  await undoBpftool();
  await sample.belt(); // warm-up: Deno's module cache, page cache
  await sample.bpftool();
  await timed(beltImports);
  await timed(denoEmpty);
  const times = { attached: [] as number[], exit: [] as number[], imports: [] as number[] };
  const bpftoolTimes: number[] = [];
  const spawnTimes: number[] = [];
  const emptyTimes: number[] = [];
  const phases: BeltPhases[] = [];
  for (let i = 0; i < runs; i++) {
    const b = await sample.belt();
    times.attached.push(b.markerMs);
    times.exit.push(b.exitMs);
    phases.push(JSON.parse(/\{.*\}/.exec(b.stdout)![0]));
    bpftoolTimes.push((await sample.bpftool()).exitMs);
    times.imports.push((await timed(beltImports)).exitMs);
    spawnTimes.push((await timed(spawnOnly)).exitMs);
    emptyTimes.push((await timed(denoEmpty)).exitMs);
  }
  const phase = (k: keyof BeltPhases) => median(phases.map((p) => p[k]));
  const result: ColdResult = {
    runs,
    timer: "an in-process timer (hyperfine is not installed)",
    beltAttached: median(times.attached),
    beltExit: median(times.exit),
    beltImports: median(times.imports),
    bpftool: median(bpftoolTimes),
    spawn: median(spawnTimes),
    denoEmpty: median(emptyTimes),
    phases: {
      imported: phase("imported"),
      opened: phase("opened"),
      loaded: phase("loaded"),
      attached: phase("attached"),
    },
    beltMode,
    bpftoolMode,
  };
  if (await have("hyperfine")) {
    const h = await hyperfine(runs, [
      { cmd: belt },
      { cmd: bpftool, prepare: undo },
      { cmd: beltImports },
      { cmd: spawnOnly },
      { cmd: denoEmpty },
    ]);
    await undoBpftool(); // the last bpftool run stays attached
    Object.assign(result, {
      timer: 'hyperfine for whole commands, an in-process timer for belt\'s time to "attached"',
      beltExit: h[0],
      bpftool: h[1],
      beltImports: h[2],
      spawn: h[3],
      denoEmpty: h[4],
    });
  }
  return result;
}

/** Median wall times (ms) of each command from hyperfine, one warm-up, `runs` runs. */
async function hyperfine(
  runs: number,
  commands: { cmd: string[]; prepare?: string[] }[],
): Promise<number[]> {
  const out: number[] = [];
  const dir = await Deno.makeTempDir({ prefix: "belt-bench-hf-" });
  try {
    for (const [i, { cmd, prepare }] of commands.entries()) {
      const json = join(dir, `${i}.json`);
      const args = ["hyperfine", "-N", "--warmup", "1", "--runs", String(runs)];
      args.push("--export-json", json);
      if (prepare) args.push("--prepare", prepare.map(shellQuote).join(" "));
      args.push(cmd.map(shellQuote).join(" "));
      await run(args, { timeoutMs: 120_000 });
      const parsed = JSON.parse(await Deno.readTextFile(json));
      out.push(parsed.results[0].median * 1000);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return out;
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

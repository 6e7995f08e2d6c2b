/** `belt chain show IFACE`: what runs on the interface's TC hooks, in order. */
import { BeltError, enableRunStats } from "../bpf/mod.ts";
import { seconds } from "./stop.ts";
import { builtinPlugins, describeChain } from "../plugins/mod.ts";
import type { ChainEntry, Stats } from "../plugins/mod.ts";
import { parseCommand } from "./args.ts";
import { jsonLine, table } from "./output.ts";

/** Help text of `belt chain`. */
export const CHAIN_HELP =
  `belt chain show — the TC chain of an interface, both directions, in run order

Usage: belt chain show IFACE [--stats S] [--json]

Lists every program on IFACE's ingress and egress hooks: position, mechanism
(tcx or cls_bpf), priority, the belt plugin that attached it (or "foreign"
for anyone else's), program name and id, link id, and run count / average ns
when kernel BPF statistics are on: --stats S turns them on for S seconds
before listing (or sysctl kernel.bpf_stats_enabled=1 keeps them on).`;

/** Runs `belt chain`. */
export async function chainCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("chain", args, { stats: { type: "string" } });
  if (values.help) {
    console.log(CHAIN_HELP);
    return 0;
  }
  const [sub, iface, ...rest] = positionals;
  if (sub !== "show" || !iface || rest.length) {
    throw new BeltError("chain: use `belt chain show IFACE`", { hint: "see `belt chain --help`" });
  }
  const statsFor = seconds(values.stats, "--stats");
  if (statsFor !== undefined) {
    using _stats = enableRunStats();
    await new Promise((resolve) => setTimeout(resolve, statsFor * 1000));
  }
  const entries = describeChain(iface);
  if (values.json) {
    for (const e of entries) console.log(jsonLine({ iface, ...e, stats: pluginStats(e) }));
    return 0;
  }
  if (!entries.length) {
    console.log(`${iface}: no TC programs`);
    return 0;
  }
  console.log(table(
    ["dir", "#", "mode", "prio", "owner", "program", "prog id", "link id", "runs", "avg ns"],
    entries.map((e) => [
      e.direction,
      String(e.position),
      e.mode,
      e.priority === null ? "-" : String(e.priority),
      e.owner,
      e.program,
      String(e.progId),
      e.linkId ? String(e.linkId) : "-",
      String(e.runCount),
      e.avgNs ? String(e.avgNs) : "-",
    ]),
  ));
  // A plugin's own counters, read from the kernel (e.g. what a mirror copied).
  for (const e of entries) {
    const stats = pluginStats(e);
    if (!stats) continue;
    const text = Object.entries(stats).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`);
    console.log(`${e.direction} #${e.position} ${e.owner}: ${text.join(" · ") || "all zero"}`);
  }
  return 0;
}

function pluginStats(e: ChainEntry): Stats | undefined {
  try {
    return builtinPlugins.get(e.owner)?.statsOfProgram?.(e.progId);
  } catch {
    return undefined; // the program went away meanwhile
  }
}

/** `belt run belt.json`: start a described set of plugins, until stopped. */
import { BeltError, interfaceIndex } from "../bpf/mod.ts";
import { resolvePlugin, startPlugin } from "../plugins/mod.ts";
import type { Plugin, RunningPlugin } from "../plugins/mod.ts";
import { parseCommand } from "./args.ts";
import { loadConfig } from "./config.ts";
import { interfacesGone, seconds, stopCode, untilStopped } from "./stop.ts";
import { jsonLine, table } from "./output.ts";

/** Help text of `belt run`. */
export const RUN_HELP = `belt run — start the plugins a belt.json describes, until stopped

Usage: belt run FILE [--duration S] [--pin] [--json]

FILE maps interfaces to ordered plugin lists (see docs/cli.md). Every entry
is validated first (errors name the file and key), then plugins start in
order; if one fails, those already started are detached. Runs until Ctrl-C,
SIGTERM or --duration seconds, then prints each plugin's stats. With --pin
the plugins stay attached after belt exits (pinned under /sys/fs/bpf/belt/)
until \`belt detach IFACE\`.`;

/** Runs `belt run`. */
export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("run", args, {
    duration: { type: "string" },
    pin: { type: "boolean" },
  });
  if (values.help) {
    console.log(RUN_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new BeltError("run: give one config file", { hint: "see `belt run --help`" });
  }
  const config = loadConfig(positionals[0]!);
  const duration = seconds(values.duration, "--duration");
  // Everything that can fail without touching the kernel happens first.
  const plugins: Plugin<unknown>[] = [];
  for (const p of config.placements) {
    interfaceIndex(p.iface);
    plugins.push(await resolvePlugin(p.plugin, `${p.where}.plugin`));
  }
  const running: RunningPlugin[] = [];
  try {
    config.placements.forEach((p, i) => {
      running.push(startPlugin(plugins[i]!, {
        iface: p.iface,
        priority: p.priority,
        direction: p.direction,
        options: p.options,
        where: `${p.where}.options`,
        tcMode: config.tcMode,
      }));
    });
    if (values.pin) {
      // All or nothing: if one plugin cannot be pinned, none stays behind.
      const pinned: RunningPlugin[] = [];
      try {
        for (const r of running) {
          const dir = r.pin();
          pinned.push(r);
          const record = {
            iface: r.iface,
            plugin: r.plugin.name,
            priority: r.priority,
            pinned: dir,
          };
          console.log(
            values.json
              ? jsonLine(record)
              : `${r.plugin.name} stays on ${r.iface} at priority ${r.priority}, pinned at ${dir}`,
          );
        }
      } catch (e) {
        for (const r of pinned) r.unpin();
        throw e;
      }
      for (const r of running) r.keep();
      return 0;
    }
    if (!values.json) {
      console.error(
        `belt: running ${
          running.map((r) => `${r.plugin.name}@${r.iface}:${r.priority}`).join(", ")
        }`,
      );
    }
    const reason = await untilStopped(
      duration,
      () =>
        running.map((r) => `${r.plugin.name}@${r.iface}:${r.priority} ${summary(r)}`).join(" · "),
      interfacesGone([...new Set(running.map((r) => r.iface))]),
    );
    for (const r of running) r.detach(); // final stats: nothing changes them any more
    const rows = running.map((r) => ({
      iface: r.iface,
      plugin: r.plugin.name,
      priority: r.priority,
      ...r.stats(),
    }));
    if (values.json) { for (const row of rows) console.log(jsonLine(row)); }
    else {
      console.log(
        table(
          ["iface", "plugin", "prio", "stats"],
          rows.map((
            r,
          ) => [r.iface, r.plugin, String(r.priority), summary(running[rows.indexOf(r)]!)]),
        ),
      );
    }
    return stopCode(reason);
  } finally {
    for (const r of running.reverse()) r.close();
  }
}

function summary(r: RunningPlugin): string {
  return Object.entries(r.stats()).map(([k, v]) => `${k}=${v}`).join(" ");
}

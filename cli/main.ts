/**
 * belt's command line: dispatches to a command, turns any error into one
 * line on stderr and a non-zero exit (a stack trace only with --verbose).
 *
 * @module
 */
import { BeltError, closeTracked, setVerbose, VerifierError } from "../bpf/mod.ts";
import { probe } from "./probe.ts";
import { builtinPlugins } from "../plugins/mod.ts";

function pluginCommands(): string[] {
  return [...builtinPlugins.values()].filter((p) => p.cli).map((p) => p.name);
}
import { chainCommand } from "./chain.ts";
import { runCommand } from "./run.ts";
import { detachCommand } from "./detach.ts";
import { pluginCommand } from "./plugin_new.ts";

/**
 * The version printed by `belt version`; kept equal to deno.json's.
 *
 * @example
 * ```ts
 * import { VERSION } from "@belt/belt";
 * console.log(VERSION);
 * ```
 */
export const VERSION = "0.1.0";

const HELP = `belt ${VERSION} — eBPF networking from Deno

Usage: belt <command> [options]

Commands:
  chain      show an interface's TC chain, both directions, in run order
  collect    receive mirrored VXLAN traffic and write pcapng, with per-sender stats
  count      packets and bytes per protocol and direction on an interface
  detach     remove what killed belt processes left on an interface
  firewall   drop traffic in XDP by address, port, MAC (add, del, list change a running one)
  mirror     copy every frame of an interface to VXLAN collectors or a pcapng file
  plugin     plugin new NAME: scaffold a plugin of your own
  probe      what this kernel lets belt do (TCX, kprobes, fentry, ...)
  run        start the plugins a belt.json describes, until stopped
  sniff      capture through an eBPF socket filter: expression, HTTP/DNS/TLS SNI, pcapng
  trace      trace connect: every TCP connection attempt, who made it and how it ended
  version    print the version

Options on every command:
  -h, --help     help for the command
  -v, --verbose  libbpf and verifier detail, stack traces on errors
      --json     JSON lines instead of tables

Exit codes: 0 success, 1 error (one line on stderr), 2 usage error.`;

const COMMANDS: Record<string, (args: string[]) => number | Promise<number>> = {
  chain: chainCommand,
  collect: async (args) => (await import("./collect.ts")).collectCommand(args),
  detach: detachCommand,
  plugin: pluginCommand,
  probe,
  run: runCommand,
  sniff: async (args) => (await import("./sniff.ts")).sniffCommand(args),
  trace: async (args) => (await import("./trace.ts")).traceCommand(args),
  version: () => {
    console.log(VERSION);
    return 0;
  },
};

/**
 * Runs the CLI with `args`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "@belt/belt";
 * Deno.exit(await main(["probe", "--json"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const verbose = args.includes("--verbose") || args.includes("-v");
  setVerbose(verbose);
  const [command, ...rest] = args;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(HELP);
    return command ? 0 : 2;
  }
  // Built-in plugins that declare a CLI are commands too (`belt count ...`).
  const run = COMMANDS[command] ?? builtinPlugins.get(command)?.cli?.run;
  if (!run) {
    const names = [...Object.keys(COMMANDS), ...pluginCommands()].sort();
    console.error(`belt: unknown command '${command}' (commands: ${names.join(", ")})`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (verbose) {
      // The whole verifier log: inspecting the error would cut it after 10,000 characters.
      if (e instanceof VerifierError) console.error(`${e.log}\n${e.stack}`);
      else console.error(e);
    }
    const line = e instanceof BeltError ? e.oneLine() : (e as Error).message ?? String(e);
    console.error(`belt: ${line}`);
    return e instanceof BeltError && /see `belt/.test(e.hint) ? 2 : 1;
  } finally {
    closeTracked(); // nothing of ours stays attached after an error
  }
}

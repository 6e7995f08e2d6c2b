/**
 * The plugin contract: one eBPF object plus a TypeScript description of
 * where its programs go, how options become read-only globals and map
 * entries, and what it reports. belt runs the lifecycle (open → configure →
 * load → fill maps → attach → run → detach), not the plugin.
 *
 * @module
 */
import type { BpfObject, GlobalValue, Link, TcMode } from "../bpf/mod.ts";

/**
 * Where a plugin's program attaches. TC hooks take part in priority chains;
 * "trace" attaches where the program's section says (tp_btf/, raw_tp/,
 * tracepoint/, kprobe/, fentry/, ...) and needs no interface.
 */
export type Hook = "tc-ingress" | "tc-egress" | "xdp" | "trace";

/** One program of the plugin's object and its hook. */
export interface ProgramSpec {
  /** The C function name. */
  program: string;
  /** Where it attaches. */
  hook: Hook;
}

/** A stat: a name and a number (bigint for counters). */
export type Stats = Record<string, number | bigint>;

/**
 * What a plugin declares. `O` is its options type.
 *
 * @example A plugin that counts packets on both TC hooks
 * ```ts ignore
 * import { definePlugin } from "@belt/belt";
 * import { countObject } from "./count.bpf.ts";
 * export const count = definePlugin({
 *   name: "count",
 *   description: "packets and bytes per protocol and direction",
 *   object: countObject,
 *   programs: [
 *     { program: "count_ingress", hook: "tc-ingress" },
 *     { program: "count_egress", hook: "tc-egress" },
 *   ],
 *   options: () => ({}),
 *   stats: (obj) => ({ entries: [...obj.map("counts").typed(key, value).keys()].length }),
 * });
 * ```
 */
export interface Plugin<O = Record<string, unknown>> {
  /** Unique name: CLI command, config key, pin directory. */
  name: string;
  /** One line for `belt --help` and `belt chain show`. */
  description: string;
  /** The compiled eBPF object (a generated `*.bpf.ts` export). */
  object: Uint8Array;
  /** Programs and hooks; programs not listed here are not loaded. */
  programs: ProgramSpec[];
  /**
   * Turns raw options (from a config file or a script) into typed ones;
   * throws a BeltError naming `where` (e.g. "belt.json: eth0[0].options.port").
   */
  options(raw: Record<string, unknown>, where: string): O;
  /**
   * Sets up what the programs need outside their object, before it is
   * opened, in the interface's network namespace (e.g. a tunnel device whose
   * ifindex becomes a global). Returns the options to use from then on and
   * what undoes the set-up; belt undoes it after detaching the programs.
   */
  prepare?(options: O, iface: string): { options: O; close(): void };
  /** Read-only globals to set before load. */
  globals?(options: O): Record<string, GlobalValue>;
  /** Open-stage settings other than globals (e.g. a ring buffer's size). */
  configure?(obj: BpfObject, options: O): void;
  /**
   * Attachments outside the interface's chain (e.g. on a device of the
   * plugin's own), made after the chain's; they close with the plugin.
   * `tcMode` is the TC mode asked for the chain (undefined or "auto": pick
   * per kernel), for TC attachments to follow it.
   */
  attachExtra?(obj: BpfObject, options: O, iface: string, tcMode?: TcMode): Link[];
  /** Programs that attachExtra() attaches (loaded along with `programs`). */
  extraPrograms?: string[];
  /** Fills maps after load, before attach. */
  fill?(obj: BpfObject, options: O): void;
  /**
   * Maps shared by name with every other running plugin that declares the
   * same name (same type, key, value and size): the first to start creates
   * it, the others reuse it, it lives while any of them runs.
   */
  sharedMaps?: string[];
  /** Current stats, read from the plugin's maps. */
  stats?(obj: BpfObject): Stats;
  /**
   * The same stats read from the kernel through one of its programs' ids,
   * from any process (`belt chain show` uses it); undefined when unreadable.
   */
  statsOfProgram?(progId: number): Stats | undefined;
  /**
   * Events the kernel side sends through a ring buffer: the map's name and
   * how bytes become a record. `running.events()` yields the records.
   */
  events?: { map: string; decode(bytes: Uint8Array): unknown };
  /** Its own CLI command, `belt <name> ...` (help text and runner). */
  cli?: { help: string; run(args: string[]): Promise<number> | number };
}

/**
 * Declares a plugin (a typed identity function: it checks the shape).
 *
 * @example
 * ```ts ignore
 * import { definePlugin } from "@belt/belt";
 * export const myPlugin = definePlugin({ name: "mine", description: "…", object, programs, options: () => ({}) });
 * ```
 */
export function definePlugin<O>(plugin: Plugin<O>): Plugin<O> {
  return plugin;
}

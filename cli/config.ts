/**
 * belt.json: plugins on interfaces, validated with errors that name the file
 * and the key (e.g. `belt.json: interfaces.eth0[1].priority: ...`).
 *
 * {
 *   "tcMode": "auto",
 *   "interfaces": {
 *     "eth0": [
 *       { "plugin": "count", "priority": 10, "direction": "both" },
 *       { "plugin": "./plugins/mine/mod.ts", "priority": 20, "options": { "port": 53 } }
 *     ]
 *   }
 * }
 */
import { BeltError } from "../bpf/mod.ts";
import type { TcMode } from "../bpf/mod.ts";
import type { Direction } from "../plugins/mod.ts";

/** One plugin placement from the file. */
export interface PlacementConfig {
  iface: string;
  plugin: string;
  priority: number;
  direction: Direction;
  options: Record<string, unknown>;
  /** "belt.json: interfaces.eth0[0]", for messages. */
  where: string;
}

/** The whole file. */
export interface RunConfig {
  tcMode: TcMode;
  placements: PlacementConfig[];
}

function fail(where: string, what: string): never {
  throw new BeltError(`${where}: ${what}`, { hint: "see docs/cli.md for the belt.json format" });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function onlyKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(obj).find((k) => !allowed.includes(k));
  if (extra) fail(`${where}.${extra}`, `unknown key (allowed: ${allowed.join(", ")})`);
}

/** Reads and validates a config file. */
export function loadConfig(path: string): RunConfig {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new BeltError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw, path);
}

/** Validates a parsed config; `file` names it in errors. */
export function parseConfig(raw: unknown, file: string): RunConfig {
  if (!isObject(raw)) fail(file, "must be a JSON object");
  onlyKeys(raw, ["interfaces", "tcMode"], file);
  const tcMode = raw.tcMode ?? "auto";
  if (!["auto", "tcx", "cls_bpf"].includes(tcMode as string)) {
    fail(`${file}: tcMode`, "must be auto, tcx or cls_bpf");
  }
  if (!isObject(raw.interfaces)) {
    fail(`${file}: interfaces`, "must be an object of interface name → list of plugins");
  }
  const placements: PlacementConfig[] = [];
  for (const [iface, list] of Object.entries(raw.interfaces)) {
    const base = `${file}: interfaces.${iface}`;
    if (!Array.isArray(list) || list.length === 0) {
      fail(base, "must be a non-empty list of plugins");
    }
    const seen = new Map<number, string>();
    list.forEach((item, i) => {
      const where = `${base}[${i}]`;
      if (!isObject(item)) fail(where, 'must be an object with at least "plugin"');
      onlyKeys(item, ["plugin", "priority", "direction", "options"], where);
      if (typeof item.plugin !== "string" || !item.plugin) {
        fail(`${where}.plugin`, "must be a plugin name or module path");
      }
      const priority = item.priority ?? 1000;
      if (
        typeof priority !== "number" || !Number.isInteger(priority) || priority < 1 ||
        priority > 65535
      ) {
        fail(`${where}.priority`, "must be an integer from 1 to 65535");
      }
      const clash = seen.get(priority);
      if (clash) fail(`${where}.priority`, `${priority} is taken by ${clash} on ${iface}`);
      seen.set(priority, `${base}[${i}] (${item.plugin})`);
      const direction = item.direction ?? "both";
      if (!["in", "out", "both"].includes(direction as string)) {
        fail(`${where}.direction`, "must be in, out or both");
      }
      const options = item.options ?? {};
      if (!isObject(options)) fail(`${where}.options`, "must be an object");
      placements.push({
        iface,
        plugin: item.plugin,
        priority,
        direction: direction as Direction,
        options,
        where,
      });
    });
  }
  return { tcMode: tcMode as TcMode, placements };
}

/**
 * firewall: drops unwanted traffic in XDP, before the kernel allocates
 * anything for it, and on egress from a TC program in belt's chain. Rules
 * match addresses (IPv4/IPv6 CIDR), protocols, ports and ranges, ICMP
 * types, MACs and VLANs, in any combination; the first matching rule
 * decides (allow, deny, or a per-source rate limit); rule changes are
 * atomic and need no reload.
 *
 * @module
 */
import { BeltError, openProgramMap, programInfo, queryXdp, u32 } from "../../bpf/mod.ts";
import type { BpfObject, Codec, TypedMap } from "../../bpf/mod.ts";
import { definePlugin } from "../plugin.ts";
import type { Plugin, Stats } from "../plugin.ts";
import { firewallObject } from "./firewall.bpf.ts";
import {
  FIREWALL,
  fwConfig,
  fwCounter,
  fwHostKey,
  fwNetKey,
  fwRule,
  fwSlots,
  fwTotals,
} from "./layout.ts";
import { firewallRuleOf, parseFirewallRule, parseRulesFile } from "./rule.ts";
import type { FirewallAction, FirewallRule } from "./rule.ts";
import { FirewallTable } from "./table.ts";
import type { FirewallMaps } from "./table.ts";

/**
 * Options of the firewall plugin (from `belt firewall` flags or belt.json).
 *
 * @example
 * ```ts
 * import { firewall } from "@belt/belt";
 * const o = firewall.options({ deny: ["tcp:23"], default: "allow" }, "example");
 * console.log(o.rules.length, o.defaultIn); // 1 allow
 * ```
 */
export interface FirewallOptions {
  /** Rules given directly (command line), in order. */
  rules: FirewallRule[];
  /** Rules file, if any. */
  file?: string;
  /** The rules file's rules as read at start. */
  fileRules: FirewallRule[];
  /** Verdict on ingress when no rule matches. */
  defaultIn: "allow" | "deny";
  /** Let ARP and IPv6 neighbour discovery through when only the default would drop them. */
  keepNd: boolean;
  /** Rule slots (max rules). */
  capacity: number;
  /** Whether the egress program is attached (rules with `out`). */
  egress: boolean;
}

/**
 * Raw options: `{ allow: [...], deny: [...], limit: [...] }` (each a list of
 * match texts, `limit` ones starting with the rate), or `rules` (a list of
 * full rule texts, in order), plus `file`, `default`, `keepNd`, `capacity`,
 * `egress`.
 *
 * @example
 * ```ts
 * import { firewallOptions } from "@belt/belt";
 * const o = firewallOptions({ rules: ["allow tcp dport 22", "deny tcp"] }, "x");
 * console.log(o.rules.map((r) => r.action)); // [ "allow", "deny" ]
 * ```
 */
export function firewallOptions(raw: Record<string, unknown>, where: string): FirewallOptions {
  const list = (key: string): string[] => {
    const v = raw[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw new BeltError(`${where}: ${key} must be a list of rule texts`);
    }
    return v as string[];
  };
  const rules: FirewallRule[] = [];
  const wrap = (fn: () => FirewallRule) => {
    try {
      rules.push(fn());
    } catch (e) {
      if (e instanceof BeltError) throw new BeltError(`${where}: ${e.message}`, { hint: e.hint });
      throw e;
    }
  };
  for (const text of list("rules")) wrap(() => parseFirewallRule(text));
  for (const action of ["allow", "deny", "limit"] as FirewallAction[]) {
    for (const text of list(action)) wrap(() => firewallRuleOf(action, text));
  }
  const file = raw.file === undefined ? undefined : String(raw.file);
  let fileRules: FirewallRule[] = [];
  if (file !== undefined) fileRules = readRulesFile(file);
  const def = raw.default ?? "allow";
  if (def !== "allow" && def !== "deny") {
    throw new BeltError(`${where}: default must be allow or deny, got '${def}'`, {
      hint: "--default allow (the default) or --default deny",
    });
  }
  const capacity = raw.capacity === undefined ? FIREWALL.capacity : Number(raw.capacity);
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
    throw new BeltError(`${where}: capacity must be 1-16777216 rules, got '${raw.capacity}'`);
  }
  const total = rules.length + fileRules.length;
  if (total > capacity) {
    throw new BeltError(`${where}: ${total} rules do not fit in ${capacity} slots`, {
      hint: "raise --capacity",
    });
  }
  const egress = raw.egress === true ||
    [...rules, ...fileRules].some((r) => r.match.direction === 2);
  return { rules, file, fileRules, defaultIn: def, keepNd: raw.keepNd !== false, capacity, egress };
}

/**
 * Reads and parses a rules file; errors name the file and line.
 *
 * @example
 * ```ts ignore
 * import { readRulesFile } from "@belt/belt";
 * console.log(readRulesFile("/etc/belt/eth0.rules").length);
 * ```
 */
export function readRulesFile(path: string): FirewallRule[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new BeltError(`cannot read rules file ${path}: ${(e as Error).message}`, {
      hint: "give a readable file, one rule per line",
    });
  }
  return parseRulesFile(text, path);
}

/**
 * The firewall's maps of a loaded object, typed.
 *
 * @example
 * ```ts ignore
 * const table = new FirewallTable(firewallMaps(running.object));
 * ```
 */
export function firewallMaps(obj: BpfObject): FirewallMaps {
  return mapsOf((name, key, value) => obj.map(name).typed(key, value));
}

/** The five maps a FirewallTable needs, each opened by `open` (from an object or a program id). */
function mapsOf(
  open: <K, V>(name: string, key: Codec<K>, value: Codec<V>) => TypedMap<K, V>,
): FirewallMaps {
  return {
    rules: open("fw_rules", u32, fwRule),
    counters: open("fw_counters", u32, fwCounter),
    hosts: open("fw_hosts", fwHostKey, fwSlots),
    nets: open("fw_nets", fwNetKey, fwSlots),
    config: open("fw_config", u32, fwConfig),
  };
}

/**
 * Opens the maps of the belt firewall on an interface (this or another
 * process's, or one kept with --pin), found through its XDP program.
 * Close the handle after use.
 *
 * @example
 * ```ts ignore
 * using fw = openFirewall("eth0");
 * console.log(fw.table.installed().length);
 * ```
 */
export function openFirewall(
  iface: string,
): {
  table: FirewallTable;
  maps: FirewallMaps;
  totals: () => Stats;
  close(): void;
  [Symbol.dispose](): void;
} {
  const { progId } = queryXdp(iface);
  let name = "";
  try {
    name = progId ? programInfo(progId).name : "";
  } catch {
    // gone meanwhile
  }
  if (name !== "firewall_xdp") {
    throw new BeltError(`no belt firewall runs on ${iface}`, {
      hint:
        `start one with \`belt firewall ${iface} ...\` (add --pin to keep it without a process)`,
    });
  }
  const opened: { close(): void }[] = [];
  const open = <K, V>(map: string, key: Codec<K>, value: Codec<V>) => {
    const h = openProgramMap(progId, map, key, value);
    if (!h) {
      throw new BeltError(`the firewall on ${iface} has no map ${map}`, {
        hint: "is it another belt version?",
      });
    }
    opened.push(h);
    return h.map;
  };
  const close = () => opened.forEach((h) => h.close());
  try {
    const maps = mapsOf(open);
    const totals = open("fw_totals", u32, fwTotals);
    return {
      table: new FirewallTable(maps),
      maps,
      totals: () => totalsStats(totals.getSum(0)),
      close,
      [Symbol.dispose]: close,
    };
  } catch (e) {
    close();
    throw e;
  }
}

function totalsStats(t: ReturnType<typeof fwTotals.unpack> | undefined): Stats {
  if (!t) return {};
  return {
    packets_in: t.packets[0]!,
    packets_out: t.packets[1]!,
    bytes_in: t.bytes[0]!,
    bytes_out: t.bytes[1]!,
    dropped_in: t.dropped[0]!,
    dropped_out: t.dropped[1]!,
    default_passed_in: t.default_passed[0]!,
    default_dropped_in: t.default_dropped[0]!,
    default_passed_out: t.default_passed[1]!,
    default_dropped_out: t.default_dropped[1]!,
    kept_nd: t.kept_nd,
    fragments: t.fragments,
    malformed: t.malformed,
  };
}

/**
 * Help text of `belt firewall`.
 *
 * @example
 * ```ts
 * import { FIREWALL_HELP } from "@belt/belt";
 * console.log(FIREWALL_HELP.split("\n")[0]);
 * ```
 */
export const FIREWALL_HELP = `belt firewall — drop unwanted traffic in XDP (and on egress in TC)

Usage: belt firewall IFACE [--allow M] [--deny M] [--limit "RATE M"] [--rules FILE]
                           [--default allow|deny] [--mode auto|native|generic]
                           [--egress] [--capacity N] [--pin] [--duration S] [--json]
       belt firewall IFACE add RULE...      add rules to the firewall running on IFACE
       belt firewall IFACE del RULE|N...    remove rules (by text or by number in list)
       belt firewall IFACE list             rules with their counters, in order

Rules (M is a match, as in \`belt mirror --filter\`):
  allow|deny MATCH               e.g. deny src 203.0.113.0/24, allow tcp dport 22
  limit RATE/s [burst N] MATCH   per source address: up to RATE packets/s pass
                                 (frames without an IP source share one bucket)
  MATCH terms: tcp udp icmp icmp6 arp ip ip6, [src|dst] host|net ADDR[/LEN],
    [src|dst] port P[-Q], sport, dport, vlan [ID], ether src|dst|host MAC,
    icmp type T [code C], proto N, in, out; all must hold.
  Shorthands: a bare address or CIDR is the remote side (source; destination
    with out); tcp:P and udp:P are destination ports.

Order and precedence: the first matching rule decides. Rules from the command
line come first (in the order given), then the rules file's (in file order),
then rules added with \`add\`. No match: --default (allow) on ingress; egress
is allowed unless an \`out\` rule denies it. With --default deny, ARP and IPv6
neighbour discovery still pass unless a rule matches them.

Fragments: non-first fragments have no ports: port and ICMP-type conditions
never match them, address and protocol conditions do.

Options:
  --rules FILE   one rule per line, # comments; reloaded when it changes (a
                 bad file is refused with its line number, the rules in force stay)
  --mode         XDP mode (auto: native when the driver has it)
  --egress       attach the egress TC program even without \`out\` rules,
                 so that \`add\` can add them later
  --capacity N   rule slots (default ${FIREWALL.capacity})
  --pin          keep the firewall after belt exits (remove: belt detach IFACE)`;

/**
 * The firewall plugin: `firewall_xdp` on XDP, `firewall_egress` on the TC
 * egress chain (attached with direction "both", left out with "in").
 *
 * @example
 * ```ts ignore
 * import { firewall, startPlugin } from "@belt/belt";
 * using fw = startPlugin(firewall, { iface: "eth0", options: { deny: ["tcp:23"] } });
 * ```
 */
export const firewall: Plugin<FirewallOptions> = definePlugin<FirewallOptions>({
  name: "firewall",
  description: "drop unwanted traffic in XDP (and on egress in TC) by address, port, MAC",
  object: firewallObject,
  programs: [
    { program: "firewall_xdp", hook: "xdp" },
    { program: "firewall_egress", hook: "tc-egress" },
  ],
  options: firewallOptions,
  configure(obj, options) {
    obj.map("fw_rules").maxEntries = options.capacity;
    obj.map("fw_counters").maxEntries = options.capacity;
    // Two generations, and `net`/`host` rules sit on both sides.
    obj.map("fw_hosts").maxEntries = options.capacity * 4;
    obj.map("fw_nets").maxEntries = options.capacity * 4;
  },
  fill(obj, options) {
    const maps = firewallMaps(obj);
    maps.config.set(0, {
      default_in: options.defaultIn === "deny" ? FIREWALL.drop : FIREWALL.pass,
      default_out: FIREWALL.pass,
      keep_nd: options.keepNd ? 1 : 0,
      gen: 0,
      egress: options.egress ? 1 : 0,
      present: [0, 0, 0, 0, 0, 0, 0, 0],
      pad: undefined,
      slots_used: 0,
    });
    const table = new FirewallTable(maps);
    table.replace("command", options.rules);
    if (options.fileRules.length) table.replace("file", options.fileRules);
  },
  stats: (obj) => totalsStats(obj.map("fw_totals").typed(u32, fwTotals).getSum(0)),
  statsOfProgram(progId) {
    using totals = openProgramMap(progId, "fw_totals", u32, fwTotals);
    return totals ? totalsStats(totals.map.getSum(0)) : undefined;
  },
  cli: {
    help: FIREWALL_HELP,
    run: async (args) => (await import("../../cli/firewall.ts")).firewallCommand(args),
  },
});

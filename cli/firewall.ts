/** `belt firewall IFACE`: XDP firewall; `add`, `del` and `list` change or show a running one. */
import { BeltError, interfaceIndex } from "../bpf/mod.ts";
import type { TcMode, XdpMode } from "../bpf/mod.ts";
import {
  firewall,
  FIREWALL_HELP,
  firewallMaps,
  FirewallTable,
  formatFirewallRule,
  openFirewall,
  parseFirewallRule,
  readRulesFile,
  ruleDirection,
  startPlugin,
} from "../plugins/mod.ts";
import type { FirewallRule, InstalledRule, RunningPlugin, Stats } from "../plugins/mod.ts";
import { parseCommand } from "./args.ts";
import { interfacesGone, seconds, stopCode, untilStopped } from "./stop.ts";
import { jsonLine, table } from "./output.ts";

const RULE_FLAGS = ["--allow", "--deny", "--limit"];

/** The --allow/--deny/--limit values in the order given (parseArgs groups them by flag). */
function rulesInOrder(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (!RULE_FLAGS.includes(flag)) continue;
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) {
      throw new BeltError(`firewall: ${flag} needs a rule`, { hint: "see `belt firewall --help`" });
    }
    out.push(`${flag.slice(2)} ${value}`);
  }
  return out;
}

/** Runs `belt firewall`. */
export async function firewallCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("firewall", args, {
    allow: { type: "string", multiple: true },
    deny: { type: "string", multiple: true },
    limit: { type: "string", multiple: true },
    rules: { type: "string" },
    default: { type: "string" },
    mode: { type: "string" },
    egress: { type: "boolean" },
    capacity: { type: "string" },
    pin: { type: "boolean" },
    duration: { type: "string" },
    priority: { type: "string" },
    "tc-mode": { type: "string" },
  });
  if (values.help) {
    console.log(FIREWALL_HELP);
    return 0;
  }
  const [iface, sub, ...rest] = positionals;
  if (!iface) {
    throw new BeltError("firewall: give an interface", { hint: "see `belt firewall --help`" });
  }
  interfaceIndex(iface);
  const json = values.json ?? false;
  if (sub === "list") return listCommand(iface, json);
  if (sub === "add") return addCommand(iface, rest, json);
  if (sub === "del" || sub === "delete") return delCommand(iface, rest, json);
  if (sub !== undefined) {
    throw new BeltError(`firewall: unknown subcommand '${sub}'`, {
      hint: "use add, del or list, or no subcommand to start a firewall",
    });
  }
  const mode = values.mode ?? "auto";
  if (!["auto", "native", "generic"].includes(mode)) {
    throw new BeltError(`firewall: unknown --mode '${mode}'`, {
      hint: "use auto, native or generic",
    });
  }
  const duration = seconds(values.duration, "--duration");
  const raw = {
    rules: rulesInOrder(args),
    file: values.rules,
    default: values.default,
    capacity: values.capacity,
    egress: values.egress ?? false,
  };
  const options = firewall.options(raw, "firewall");
  const running = startPlugin(firewall, {
    iface,
    options: raw,
    direction: options.egress ? "both" : "in",
    priority: values.priority === undefined ? undefined : Number(values.priority),
    xdpMode: mode as XdpMode,
    tcMode: values["tc-mode"] as TcMode | undefined,
  });
  try {
    const count = options.rules.length + options.fileRules.length;
    const xdp = running.links[0]!.info.detail;
    if (values.pin) {
      const dir = running.pin();
      running.keep();
      console.log(
        json
          ? jsonLine({ iface, plugin: "firewall", rules: count, mode: xdp, pinned: dir })
          : `firewall stays on ${iface} (${count} rules, XDP ${xdp}), pinned at ${dir}\n` +
            `change it with \`belt firewall ${iface} add|del|list\`, remove it with \`belt detach ${iface}\``,
      );
      return 0;
    }
    console.error(
      `firewall on ${iface}: ${count} rules, XDP ${xdp}${
        options.egress ? " + TC egress" : ""
      }, default ${options.defaultIn}`,
    );
    const tableOf = new FirewallTable(firewallMaps(running.object));
    const watcher = options.file ? watchRules(options.file, tableOf) : undefined;
    const reason = await untilStopped(
      duration,
      () => liveLine(iface, running.stats()),
      interfacesGone([iface]),
    );
    watcher?.close();
    running.detach(); // the report below then holds every packet
    report(iface, running, tableOf, json);
    return stopCode(reason);
  } finally {
    running.close();
  }
}

/** Reloads the rules file when it changes; a bad file keeps the rules in force. */
function watchRules(path: string, rules: FirewallTable): { close(): void } {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const watcher = Deno.watchFs(dir, { recursive: false });
  const name = path.slice(path.lastIndexOf("/") + 1);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = Deno.readTextFileSync(path);
  const reload = () => {
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch {
      return; // being replaced: the next event brings it back
    }
    if (text === last) return;
    last = text;
    try {
      const next = readRulesFile(path);
      rules.replace("file", next);
      console.error(`belt: ${path} reloaded: ${next.length} rules`);
    } catch (e) {
      const line = e instanceof BeltError ? e.oneLine() : String(e);
      console.error(`belt: ${line}; the rules in force stay`);
    }
  };
  (async () => {
    for await (const event of watcher) {
      if (!event.paths.some((p) => p.endsWith(`/${name}`) || p === name)) continue;
      clearTimeout(timer);
      timer = setTimeout(reload, 100); // editors write in several steps
    }
  })().catch(() => {});
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

function liveLine(iface: string, s: Stats): string {
  return `${iface}: in ${s.packets_in} dropped ${s.dropped_in} · out ${s.packets_out} dropped ${s.dropped_out}`;
}

interface RuleRow {
  n: number;
  rule: string;
  origin: string;
  packets: bigint;
  bytes: bigint;
  limited: bigint;
}

function ruleRows(rules: FirewallTable): RuleRow[] {
  const counters = rules.counters();
  return rules.installed().map((r: InstalledRule, i) => {
    const c = counters.get(r.slot);
    return {
      n: i + 1,
      rule: formatFirewallRule(r),
      origin: r.origin,
      packets: c?.packets ?? 0n,
      bytes: c?.bytes ?? 0n,
      limited: c?.limited ?? 0n,
    };
  });
}

function printRows(rows: RuleRow[], json: boolean): void {
  if (json) {
    for (const r of rows) console.log(jsonLine(r));
    return;
  }
  if (!rows.length) {
    console.log("no rules");
    return;
  }
  const limits = rows.some((r) => r.limited);
  console.log(table(
    ["#", "rule", "from", "packets", "bytes", ...(limits ? ["limited"] : [])],
    rows.map((r) => [
      String(r.n),
      r.rule,
      r.origin,
      String(r.packets),
      String(r.bytes),
      ...(limits ? [String(r.limited)] : []),
    ]),
  ));
}

function report(iface: string, running: RunningPlugin, rules: FirewallTable, json: boolean): void {
  const totals = running.stats();
  const rows = ruleRows(rules);
  if (json) {
    console.log(jsonLine({ iface, ...totals, rules: rows }));
    return;
  }
  printRows(rows, false);
  console.log(
    `in: ${totals.packets_in} packets, ${totals.dropped_in} dropped (${totals.default_dropped_in} by default) · ` +
      `out: ${totals.packets_out} packets, ${totals.dropped_out} dropped · ARP/ND kept ${totals.kept_nd}`,
  );
}

function listCommand(iface: string, json: boolean): number {
  using fw = openFirewall(iface);
  printRows(ruleRows(fw.table), json);
  return 0;
}

function parseRules(texts: string[]): FirewallRule[] {
  if (!texts.length) {
    throw new BeltError("firewall add: give one or more rules", {
      hint: "e.g. belt firewall eth0 add 'deny src 203.0.113.0/24'",
    });
  }
  return texts.map(parseFirewallRule);
}

function addCommand(iface: string, texts: string[], json: boolean): number {
  const rules = parseRules(texts);
  using fw = openFirewall(iface);
  if (rules.some((r) => ruleDirection(r) === 2) && !fw.maps.config.get(0)?.egress) {
    throw new BeltError(`the firewall on ${iface} has no egress program for 'out' rules`, {
      hint: "restart it with --egress (or with an out rule)",
    });
  }
  const now = fw.table.add(rules);
  if (json) {
    console.log(jsonLine({ iface, added: rules.map(formatFirewallRule), rules: now.length }));
  } else {console.log(
      `added ${rules.length} rule${rules.length === 1 ? "" : "s"}; ${now.length} in force`,
    );}
  return 0;
}

function delCommand(iface: string, which: string[], json: boolean): number {
  if (!which.length) {
    throw new BeltError("firewall del: give rules or their numbers", {
      hint: "`belt firewall IFACE list` shows both",
    });
  }
  using fw = openFirewall(iface);
  const now = fw.table.installed();
  const positions = new Set<number>();
  for (const w of which) {
    let at: number;
    if (/^\d+$/.test(w)) {
      at = Number(w) - 1;
      if (at < 0 || at >= now.length) {
        throw new BeltError(`there is no rule ${w} (${now.length} rules)`, {
          hint: "`belt firewall IFACE list` numbers them",
        });
      }
    } else {
      const text = formatFirewallRule(parseFirewallRule(w));
      at = now.findIndex((r) => formatFirewallRule(r) === text);
      if (at < 0) {
        throw new BeltError(`rule '${text}' is not in the rule set`, {
          hint: "`belt firewall IFACE list` shows the rules",
        });
      }
    }
    positions.add(at);
  }
  const ids = new Set([...positions].map((i) => now[i]!.id));
  const gone = fw.table.remove((r) => ids.has(r.id));
  if (json) console.log(jsonLine({ iface, removed: gone.map(formatFirewallRule) }));
  else for (const r of gone) console.log(`removed ${formatFirewallRule(r)}`);
  return 0;
}

/**
 * The plugin contract, the runner, and the built-in plugins.
 *
 * @module
 */
import { BeltError } from "../bpf/mod.ts";
import type { Plugin } from "./plugin.ts";
import { count } from "./count/mod.ts";
import { mirror } from "./mirror/mod.ts";
import { firewall } from "./firewall/mod.ts";

export { definePlugin } from "./plugin.ts";
export type { Hook, Plugin, ProgramSpec, Stats } from "./plugin.ts";
export { interfacePinDir, removePinnedXdp, RunningPlugin, startPlugin } from "./runner.ts";
export type { Direction, StartOptions } from "./runner.ts";
export { describeChain } from "./chain.ts";
export type { ChainEntry } from "./chain.ts";
export { count, COUNT_HELP, countKey, countRows, countValue } from "./count/mod.ts";
export type { CountRow } from "./count/mod.ts";
export {
  collectorLabel,
  mirror,
  MIRROR_HELP,
  MIRROR_LIMITS,
  mirrorCollector,
  mirrorCollectorStats,
  mirrorOptions,
  mirrorRecord,
  mirrorReport,
  mirrorStatsCodec,
  parseCollector,
  splitHostPort,
  VXLAN_PORT,
} from "./mirror/mod.ts";
export type {
  Collector,
  CollectorStats,
  MirrorOptions,
  MirrorReport,
  MirrorTotals,
} from "./mirror/mod.ts";
export { VXLAN_HEADER, VxlanCollector, vxlanVni } from "./mirror/collect.ts";
export type { SenderStats } from "./mirror/collect.ts";
export { openTunnelDevice, removeIdleTunnelDevices } from "./mirror/vxlan.ts";
export { routeTo } from "./mirror/iproute.ts";
export type { TunnelDevice } from "./mirror/vxlan.ts";
export { formatIp, isMappedIpv4, parseIp } from "./addr.ts";
export {
  firewall,
  FIREWALL_HELP,
  firewallMaps,
  firewallOptions,
  openFirewall,
  readRulesFile,
} from "./firewall/mod.ts";
export type { FirewallOptions } from "./firewall/mod.ts";
export {
  CONNECT,
  CONNECT_HELP,
  connectPrograms,
  ConnectTracer,
  ctEvent,
  ctFilter,
  decodeConnectEvents,
  FAILED_OUTCOMES,
  packConnectFilter,
} from "./connect/mod.ts";
export type {
  ConnectEvent,
  ConnectFilter,
  ConnectHook,
  ConnectOutcome,
  ConnectTracerOptions,
  CtEventStruct,
  CtFilterStruct,
  CtNetStruct,
  SkippedHook,
} from "./connect/mod.ts";
export {
  FIREWALL,
  fwConfig,
  fwCounter,
  fwHostKey,
  fwNetKey,
  fwRule,
  fwSlots,
  fwTotals,
} from "./firewall/layout.ts";
export type {
  FwConfig,
  FwCounter,
  FwHostKey,
  FwNetKey,
  FwRule,
  FwSlots,
} from "./firewall/layout.ts";
export {
  firewallRuleOf,
  formatFirewallRule,
  parseFirewallMatch,
  parseFirewallRule,
  parseRulesFile,
  ruleDirection,
} from "./firewall/rule.ts";
export type { FirewallAction, FirewallRule } from "./firewall/rule.ts";
export { FirewallTable } from "./firewall/table.ts";
export { firewallDecision, firewallVerdict, isNeighbourDiscovery } from "./firewall/reference.ts";
export type { FirewallDecision, FirewallPolicy, OverRate } from "./firewall/reference.ts";
export type { FirewallMaps, InstalledRule, RuleOrigin, WantedRule } from "./firewall/table.ts";
export {
  BELT_DIR_IN,
  BELT_DIR_OUT,
  BELT_F_L2,
  BELT_F_L3,
  BELT_F_L4,
  BELT_F_VLAN,
  BELT_M_ANY,
  BELT_M_DIR,
  BELT_M_DMAC,
  BELT_M_DPORT,
  BELT_M_DST,
  BELT_M_ETH,
  BELT_M_ICMP_CODE,
  BELT_M_ICMP_TYPE,
  BELT_M_L4,
  BELT_M_MAC,
  BELT_M_PORT,
  BELT_M_SMAC,
  BELT_M_SPORT,
  BELT_M_SRC,
  BELT_M_VLAN,
  BELT_VLAN_ANY,
  beltPacket,
  beltRule,
  formatRule,
  icmpTypeName,
  packRules,
  parseRule,
  parseRuleList,
  ruleFromStruct,
  ruleMatches,
  ruleToStruct,
} from "./rules.ts";
export type { BeltPacket, BeltRuleStruct, ParsedPacket, Rule } from "./rules.ts";
export { PcapngWriter, readPcapng } from "./pcapng.ts";
export {
  decodeFrame,
  dnsTypeName,
  formatFrame,
  formatL7,
  frameRecord,
  HTTP_METHODS,
  L7_DNS,
  L7_HTTP,
  L7_TLS,
  l7End,
  readFrameHeaders,
  readL7,
  readL7Fields,
  SNIFF,
  SNIFF_HELP,
  Sniffer,
  sniffStats,
  tcpFlagsText,
} from "./sniff/mod.ts";
export type {
  DnsRecord,
  FrameHeaders,
  FrameRecord,
  HttpRecord,
  L7Fields,
  L7Record,
  SnifferOptions,
  SniffL7,
  SniffStats,
  SniffStatsStruct,
  TlsRecord,
} from "./sniff/mod.ts";
export type {
  PcapngCapture,
  PcapngDirection,
  PcapngInterface,
  PcapngSink,
  PcapngWriterOptions,
} from "./pcapng.ts";

/**
 * The plugins that ship with belt, by name.
 *
 * @example
 * ```ts
 * import { builtinPlugins } from "@belt/belt";
 * console.log([...builtinPlugins.keys()]); // ["count", "mirror", "firewall"]
 * ```
 */
export const builtinPlugins: ReadonlyMap<string, Plugin<unknown>> = new Map<
  string,
  Plugin<unknown>
>([
  [count.name, count as Plugin<unknown>],
  [mirror.name, mirror as Plugin<unknown>],
  [firewall.name, firewall as Plugin<unknown>],
]);

/**
 * A plugin by name, or from a module path (a user's plugin: its default
 * export, or the first export that looks like a plugin).
 *
 * @example
 * ```ts ignore
 * import { resolvePlugin } from "@belt/belt";
 * const mine = await resolvePlugin("./myplugin/mod.ts");
 * ```
 */
export async function resolvePlugin(ref: string, where = "plugin"): Promise<Plugin<unknown>> {
  const builtin = builtinPlugins.get(ref);
  if (builtin) return builtin;
  if (!/[/.]/.test(ref)) {
    throw new BeltError(`${where}: unknown plugin '${ref}'`, {
      hint: `built-in plugins: ${
        [...builtinPlugins.keys()].join(", ")
      }; or give a path to a plugin module`,
    });
  }
  const url = new URL(ref, `file://${Deno.cwd()}/`).href;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (e) {
    throw new BeltError(
      `${where}: cannot import plugin module ${ref}: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const found = [module.default, ...Object.values(module)].find(isPlugin);
  if (!found) {
    throw new BeltError(`${where}: ${ref} exports no plugin`, {
      hint: "export the definePlugin() result",
    });
  }
  if (builtinPlugins.has(found.name)) {
    throw new BeltError(`${where}: plugin name '${found.name}' clashes with a built-in plugin`, {
      hint: "rename your plugin",
    });
  }
  return found;
}

function isPlugin(x: unknown): x is Plugin<unknown> {
  const p = x as Plugin<unknown> | undefined;
  return !!p && typeof p.name === "string" && p.object instanceof Uint8Array &&
    Array.isArray(p.programs) &&
    typeof p.options === "function";
}

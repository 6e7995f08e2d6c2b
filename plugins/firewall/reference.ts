/**
 * The firewall's decision in TypeScript: what `fw_decide()` in
 * plugins/firewall/firewall.bpf.c does with one parsed packet, written as
 * plainly as possible (every rule, in order, no indexes), so that tests can
 * compare the kernel's verdicts with it and users can ask "what would the
 * firewall do with this packet?" without a kernel.
 *
 * - Rules apply to one direction: those with `out` on egress (2), all
 *   others on ingress (1) ({@linkcode ruleDirection}).
 * - Among the rules of the direction that match (`ruleMatches()` of
 *   plugins/rules.ts, the TypeScript twin of `belt_rule_match()`), the first
 *   in order decides: `allow` passes, `deny` drops, `limit` passes while the
 *   packet's source is within the rule's rate and drops above it.
 * - No rule matches: the default of the direction (`defaultIn`, and
 *   `defaultOut`, allow unless said otherwise); when that default is deny
 *   and `keepNd` is on, ARP and IPv6 neighbour discovery (ICMPv6 types
 *   133-137 with a complete ICMPv6 header) pass anyway.
 *
 * The order of `rules` is the firewall's: command-line rules, then the
 * rules file's, then added ones (`FirewallTable.installed()` returns them
 * so).
 *
 * @module
 */
import { BELT_F_L4, ruleMatches } from "../rules.ts";
import type { ParsedPacket } from "../rules.ts";
import { ruleDirection } from "./rule.ts";
import type { FirewallRule } from "./rule.ts";

/**
 * The policy part of a firewall's configuration (`struct fw_config`).
 *
 * @example
 * ```ts
 * import type { FirewallPolicy } from "@belt/belt";
 * const strict: FirewallPolicy = { defaultIn: "deny", keepNd: true };
 * console.log(strict.defaultOut ?? "allow"); // "allow"
 * ```
 */
export interface FirewallPolicy {
  /** Verdict on ingress when no rule matches. */
  defaultIn: "allow" | "deny";
  /** Let ARP and IPv6 neighbour discovery through when only the default would drop them. */
  keepNd: boolean;
  /** Verdict on egress when no rule matches; allow when absent (as `belt firewall` sets it). */
  defaultOut?: "allow" | "deny";
}

/**
 * Whether a packet exceeds the rate of the `limit` rule that matched it:
 * `rule` is `rules[index]`. The kernel keeps one token bucket per rule and
 * source address; a model of it belongs to the caller (the answer depends
 * on time).
 */
export type OverRate = (rule: FirewallRule, index: number, pkt: ParsedPacket) => boolean;

/**
 * How the firewall decided on one packet (see {@linkcode firewallDecision}).
 *
 * @example
 * ```ts
 * import type { FirewallDecision } from "@belt/belt";
 * const d: FirewallDecision = { verdict: "pass", rule: -1, reason: "default" };
 * console.log(d.reason); // "default"
 * ```
 */
export interface FirewallDecision {
  /** What happens to the packet. */
  verdict: "pass" | "drop";
  /** Index in `rules` of the rule that decided (its counters count the packet), or -1. */
  rule: number;
  /**
   * `rule`: an allow, deny or limit rule within its rate; `limited`: a limit rule, over its
   * rate; `default`: no rule matched; `kept-nd`: no rule matched and the default deny was
   * waived for ARP or neighbour discovery.
   */
  reason: "rule" | "limited" | "default" | "kept-nd";
}

const ETH_P_ARP = 0x0806;
const IPPROTO_ICMPV6 = 58;

/**
 * ARP, or IPv6 neighbour discovery (router and neighbour solicitation and
 * advertisement, redirect: ICMPv6 types 133-137) with a complete ICMPv6
 * header: what the firewall keeps when only its default would drop it
 * (`fw_is_nd()`).
 *
 * @example
 * ```ts
 * import { BELT_F_L2, isNeighbourDiscovery } from "@belt/belt";
 * const none = new Uint8Array(16), mac = new Uint8Array(6);
 * const arp = {
 *   flags: BELT_F_L2, ethProto: 0x0806, l4Proto: 0, srcAddr: none, dstAddr: none,
 *   srcPort: 0, dstPort: 0, vlanOuter: 0, srcMac: mac, dstMac: mac, icmpType: 0, icmpCode: 0,
 * };
 * console.log(isNeighbourDiscovery(arp)); // true
 * ```
 */
export function isNeighbourDiscovery(pkt: ParsedPacket): boolean {
  if (pkt.ethProto === ETH_P_ARP) return true;
  return (pkt.flags & BELT_F_L4) !== 0 && pkt.l4Proto === IPPROTO_ICMPV6 &&
    pkt.icmpType >= 133 && pkt.icmpType <= 137;
}

/**
 * What the firewall does with `pkt` (a parsed `struct belt_packet`, e.g.
 * `beltPacket.unpack()` of what belt_parse() wrote) seen in `direction`
 * (1 in, 2 out), and which rule decided: the first rule of the direction
 * that matches, else the default. `overRate` answers for `limit` rules
 * (default: never over, as for the first packet of a source).
 *
 * @example
 * ```ts
 * import { BELT_F_L2, BELT_F_L3, BELT_F_L4, firewallDecision, parseFirewallRule } from "@belt/belt";
 * const v4 = (a: number[]) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...a]);
 * const pkt = {
 *   flags: BELT_F_L2 | BELT_F_L3 | BELT_F_L4, ethProto: 0x0800, l4Proto: 6, vlanOuter: 0,
 *   srcAddr: v4([198, 18, 0, 1]), dstAddr: v4([198, 19, 0, 1]), srcPort: 40000, dstPort: 22,
 *   srcMac: new Uint8Array(6), dstMac: new Uint8Array(6), icmpType: 0, icmpCode: 0,
 * };
 * const rules = ["deny out tcp", "allow src 198.18.0.0/15 tcp:22", "deny tcp"]
 *   .map(parseFirewallRule);
 * console.log(firewallDecision(rules, { defaultIn: "deny", keepNd: true }, pkt, 1));
 * // { verdict: "pass", rule: 1, reason: "rule" }
 * ```
 */
export function firewallDecision(
  rules: readonly FirewallRule[],
  policy: FirewallPolicy,
  pkt: ParsedPacket,
  direction: 1 | 2,
  overRate: OverRate = () => false,
): FirewallDecision {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (ruleDirection(rule) !== direction || !ruleMatches(rule.match, pkt, direction)) continue;
    if (rule.action === "allow") return { verdict: "pass", rule: i, reason: "rule" };
    if (rule.action === "deny") return { verdict: "drop", rule: i, reason: "rule" };
    return overRate(rule, i, pkt)
      ? { verdict: "drop", rule: i, reason: "limited" }
      : { verdict: "pass", rule: i, reason: "rule" };
  }
  const def = direction === 1 ? policy.defaultIn : policy.defaultOut ?? "allow";
  if (def === "allow") return { verdict: "pass", rule: -1, reason: "default" };
  if (policy.keepNd && isNeighbourDiscovery(pkt)) {
    return { verdict: "pass", rule: -1, reason: "kept-nd" };
  }
  return { verdict: "drop", rule: -1, reason: "default" };
}

/**
 * The firewall's verdict on `pkt` seen in `direction` (1 in, 2 out):
 * {@linkcode firewallDecision} without the why. `rules` are in the
 * firewall's order (command line, rules file, added).
 *
 * @example
 * ```ts
 * import { BELT_F_L2, firewallVerdict, parseFirewallRule } from "@belt/belt";
 * const none = new Uint8Array(16), mac = new Uint8Array(6);
 * const arp = {
 *   flags: BELT_F_L2, ethProto: 0x0806, l4Proto: 0, srcAddr: none, dstAddr: none,
 *   srcPort: 0, dstPort: 0, vlanOuter: 0, srcMac: mac, dstMac: mac, icmpType: 0, icmpCode: 0,
 * };
 * const policy = { defaultIn: "deny", keepNd: true } as const;
 * console.log(firewallVerdict([], policy, arp, 1)); // "pass" (kept: ARP)
 * console.log(firewallVerdict([parseFirewallRule("deny arp")], policy, arp, 1)); // "drop"
 * ```
 */
export function firewallVerdict(
  rules: readonly FirewallRule[],
  policy: FirewallPolicy,
  pkt: ParsedPacket,
  direction: 1 | 2,
  overRate?: OverRate,
): "pass" | "drop" {
  return firewallDecision(rules, policy, pkt, direction, overRate).verdict;
}

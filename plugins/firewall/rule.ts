/**
 * Firewall rules as text: an action, then a match in the shared rule
 * language of plugins/rules.ts (`tcp dport 22 src 198.18.0.0/15`, ...).
 *
 *     allow src 198.18.0.0/15 tcp dport 22
 *     deny 203.0.113.0/24            # bare address: the remote side
 *     deny tcp:23                    # PROTO:PORT: destination port
 *     limit 1000/s burst 200 udp dport 53
 *     deny out dst 192.0.2.0/24      # egress
 *
 * Actions: `allow` (or `pass`, `accept`), `deny` (or `drop`, `block`),
 * `limit RATE[/s] [burst N]` (per source address: up to RATE packets a
 * second pass, bursts of N, the rest are dropped). Shorthands, firewall
 * only: a bare address or CIDR is the remote side (source on ingress,
 * destination with `out`); `tcp:P[-Q]` and `udp:P[-Q]` are `tcp dport P`.
 *
 * @module
 */
import { BeltError } from "../../bpf/mod.ts";
import {
  BELT_DIR_OUT,
  BELT_M_DIR,
  BELT_M_DST,
  BELT_M_SRC,
  formatRule,
  parseRule,
} from "../rules.ts";
import { parseIp } from "../addr.ts";
import type { Rule } from "../rules.ts";

/** What a matching rule does. */
export type FirewallAction = "allow" | "deny" | "limit";

/**
 * One firewall rule: action and match.
 *
 * @example
 * ```ts
 * import { parseFirewallRule } from "@belt/belt";
 * const r = parseFirewallRule("limit 100/s udp dport 53");
 * console.log(r.action, r.rate, r.burst); // limit 100 100
 * ```
 */
export interface FirewallRule {
  /** allow, deny or limit. */
  action: FirewallAction;
  /** limit: packets per second per source address (0 otherwise). */
  rate: number;
  /** limit: packets a source may send at once before the rate applies (0 otherwise). */
  burst: number;
  /** The conditions, all of which must hold. */
  match: Rule;
}

const ACTIONS = new Map<string, FirewallAction>([
  ["allow", "allow"],
  ["pass", "allow"],
  ["accept", "allow"],
  ["deny", "deny"],
  ["drop", "deny"],
  ["block", "deny"],
  ["limit", "limit"],
]);

const HINT_ACTION = "start with allow, deny or limit RATE/s, e.g. 'deny src 203.0.113.0/24'";
const ADDRESS = /^[0-9a-f:.]+(\/\d+)?$/i;
const SIDE_WORDS = new Set(["src", "dst", "host", "net"]);

/** Applies the firewall's shorthands (bare address, PROTO:PORT) to a match text. */
function expandShorthands(text: string): string {
  const words = text.split(/\s+/).filter(Boolean);
  const out = words.some((w) => /^(out|outbound)$/i.test(w));
  return words.map((w, i) => {
    const port = /^(tcp|udp):(\d+(?:-\d+)?)$/i.exec(w);
    if (port) return `${port[1]} dport ${port[2]}`;
    const prev = words[i - 1]?.toLowerCase() ?? "";
    if (ADDRESS.test(w) && /[.:]/.test(w) && !SIDE_WORDS.has(prev)) {
      return `${out ? "dst" : "src"} ${w}`;
    }
    return w;
  }).join(" ");
}

/**
 * The match part of a rule (no action), with the firewall's shorthands.
 *
 * @example
 * ```ts
 * import { formatRule, parseFirewallMatch } from "@belt/belt";
 * console.log(formatRule(parseFirewallMatch("tcp:23"))); // "tcp dport 23"
 * ```
 */
export function parseFirewallMatch(text: string): Rule {
  if (!text.trim()) {
    throw new BeltError("a firewall rule needs a match", {
      hint: "e.g. 'src 203.0.113.0/24', 'tcp dport 23' or 'arp'",
    });
  }
  const rule = parseRule(expandShorthands(text));
  rule.text = text.trim();
  return rule;
}

function parseRate(word: string | undefined): number {
  const m = /^(\d+)(?:\/s)?$/.exec(word ?? "");
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 1 && n <= 1e9)) {
    throw new BeltError(`limit needs a rate, got '${word ?? ""}'`, {
      hint: "write packets per second per source, 1-1000000000, e.g. 'limit 100/s udp'",
    });
  }
  return n;
}

const ZERO16 = new Uint8Array(16);
const ZERO6 = new Uint8Array(6);
const SIMPLE =
  /^(allow|pass|accept|deny|drop|block)\s+(?:(src|dst)\s+)?(\d+\.\d+\.\d+\.\d+|[0-9a-f:]*:[0-9a-f:.]*)(?:\/(\d+))?$/i;

/** a.b.c.d as a 16-byte IPv4-mapped address, quickly (the common case of large block lists). */
function parseDottedQuad(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(16);
  out[10] = out[11] = 0xff;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[12 + i] = Number(p);
  }
  return out;
}

/**
 * `ACTION [src|dst] ADDR[/LEN]` without the full parser: rules files of
 * 100k blocked networks are this shape. Anything unusual (a bad address,
 * host bits set) returns undefined and goes to the full parser, which
 * explains the problem. Unused address fields share one zero array: rules
 * are never changed after parsing.
 */
function simpleRule(text: string): FirewallRule | undefined {
  const m = SIMPLE.exec(text);
  if (!m) return undefined;
  const addr = parseDottedQuad(m[3]!) ?? parseIp(m[3]!);
  if (!addr) return undefined;
  const v4 = m[3]!.includes(".") && !m[3]!.includes(":");
  const max = v4 ? 32 : 128;
  const given = m[4] === undefined ? max : Number(m[4]);
  if (!(given <= max)) return undefined;
  const len = given + (v4 ? 96 : 0);
  for (let bit = len; bit < 128; bit++) {
    if (addr[bit >> 3]! & (0x80 >> (bit & 7))) return undefined; // host bits: let parseRule say so
  }
  const dst = m[2]?.toLowerCase() === "dst";
  const action = ACTIONS.get(m[1]!.toLowerCase())!;
  return {
    action,
    rate: 0,
    burst: 0,
    match: {
      text: text.slice(m[1]!.length).trim(),
      fields: dst ? BELT_M_DST : BELT_M_SRC,
      ethProto: 0,
      l4Proto: 0,
      direction: 0,
      vlan: 0,
      sportLo: 0,
      sportHi: 0,
      dportLo: 0,
      dportHi: 0,
      portLo: 0,
      portHi: 0,
      srcLen: dst ? 0 : len,
      dstLen: dst ? len : 0,
      anyLen: 0,
      src: dst ? ZERO16 : addr,
      dst: dst ? addr : ZERO16,
      any: ZERO16,
      srcMac: ZERO6,
      dstMac: ZERO6,
      anyMac: ZERO6,
      icmpType: 0,
      icmpCode: 0,
    },
  };
}

/**
 * Parses `ACTION MATCH` (see the module documentation).
 *
 * @example
 * ```ts
 * import { formatFirewallRule, parseFirewallRule } from "@belt/belt";
 * console.log(formatFirewallRule(parseFirewallRule("drop 203.0.113.0/24"))); // "deny src 203.0.113.0/24"
 * ```
 */
export function parseFirewallRule(text: string): FirewallRule {
  const simple = simpleRule(text.trim());
  if (simple) return simple;
  const words = text.trim().split(/\s+/);
  const action = ACTIONS.get(words[0]?.toLowerCase() ?? "");
  if (!action) {
    throw new BeltError(`'${words[0] ?? ""}' is not a firewall action`, { hint: HINT_ACTION });
  }
  if (action !== "limit") {
    return { action, rate: 0, burst: 0, match: parseFirewallMatch(words.slice(1).join(" ")) };
  }
  const rate = parseRate(words[1]);
  let burst = rate, rest = 2;
  if (words[2]?.toLowerCase() === "burst") {
    const n = Number(words[3]);
    if (!/^\d+$/.test(words[3] ?? "") || n < 1 || n > 1e9) {
      throw new BeltError(`burst needs a packet count, got '${words[3] ?? ""}'`, {
        hint: "e.g. 'limit 100/s burst 20 udp dport 53'",
      });
    }
    burst = n;
    rest = 4;
  }
  return { action, rate, burst, match: parseFirewallMatch(words.slice(rest).join(" ")) };
}

/**
 * A rule made from a CLI option: `--deny MATCH` is `deny MATCH`, and
 * `--limit "RATE MATCH"` is `limit RATE MATCH`.
 *
 * @example
 * ```ts
 * import { firewallRuleOf } from "@belt/belt";
 * console.log(firewallRuleOf("deny", "tcp:23").match.dportLo); // 23
 * ```
 */
export function firewallRuleOf(action: FirewallAction, text: string): FirewallRule {
  return parseFirewallRule(`${action} ${text}`);
}

/**
 * The canonical text of a rule: same rule, same text.
 *
 * @example
 * ```ts
 * import { formatFirewallRule, parseFirewallRule } from "@belt/belt";
 * console.log(formatFirewallRule(parseFirewallRule("limit 5 burst 10 icmp"))); // "limit 5/s burst 10 icmp"
 * ```
 */
export function formatFirewallRule(r: FirewallRule): string {
  const head = r.action === "limit"
    ? `limit ${r.rate}/s${r.burst === r.rate ? "" : ` burst ${r.burst}`}`
    : r.action;
  return `${head} ${formatRule(r.match)}`;
}

/**
 * The direction a rule applies to: 2 (egress) when it says `out`, else 1.
 *
 * @example
 * ```ts
 * import { parseFirewallRule, ruleDirection } from "@belt/belt";
 * console.log(ruleDirection(parseFirewallRule("deny out tcp:25"))); // 2
 * ```
 */
export function ruleDirection(r: FirewallRule): 1 | 2 {
  return (r.match.fields & BELT_M_DIR) && r.match.direction === BELT_DIR_OUT ? 2 : 1;
}

/**
 * Parses a rules file: one rule per line, `#` starts a comment, blank lines
 * are skipped. An error names the file and line.
 *
 * @example
 * ```ts
 * import { parseRulesFile } from "@belt/belt";
 * const rules = parseRulesFile("# web\nallow tcp dport 80\ndeny tcp\n", "fw.rules");
 * console.log(rules.length); // 2
 * ```
 */
export function parseRulesFile(text: string, path: string): FirewallRule[] {
  const out: FirewallRule[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    try {
      out.push(parseFirewallRule(line));
    } catch (e) {
      if (!(e instanceof BeltError)) throw e;
      throw new BeltError(`${path}:${i + 1}: ${e.message}`, { hint: e.hint });
    }
  });
  return out;
}

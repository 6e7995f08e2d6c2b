/**
 * The firewall's rule set in the kernel: reading it back, and changing it
 * atomically while packets flow.
 *
 * The kernel maps are the only copy of the rule set, so any process (the
 * running `belt firewall`, `belt firewall IFACE add` in another shell, a
 * script) reads the current state, computes the change and writes it,
 * under a file lock that keeps writers in turn.
 *
 * A change never shows the program a mix of two rule sets: the indexes
 * exist twice (generations, see firewall.h); the change is written into the
 * copy not in use, the live generation flips with a one-byte write, and the
 * other copy is then brought up to date. New rules go into free slots
 * before anything refers to them; the slots of removed rules are marked
 * free only after neither generation refers to them.
 *
 * @module
 */
import { BeltError, possibleCpuCount } from "../../bpf/mod.ts";
import type { TypedMap } from "../../bpf/mod.ts";
import { BELT_M_ANY, BELT_M_DST, BELT_M_SRC } from "../rules.ts";
import { formatIp, isMappedIpv4 } from "../addr.ts";
import { FIREWALL, fwHostKey, fwNetKey, fwRule, fwSlots } from "./layout.ts";
import { readRule, writeIndexKey, writeIndexValue, writeRule } from "./wire.ts";
import type { IndexEntry } from "./wire.ts";
import type { FwConfig, FwCounter, FwHostKey, FwNetKey, FwRule, FwSlots } from "./layout.ts";
import { formatFirewallRule, ruleDirection } from "./rule.ts";
import type { FirewallRule } from "./rule.ts";

/** Where a rule came from; it also sets the rule's place in the order. */
export type RuleOrigin = "command" | "file" | "added";

const ORIGIN_CODE: Record<RuleOrigin, number> = { command: 0, file: 1, added: 2 };
const ORIGINS: RuleOrigin[] = ["command", "file", "added"];
/** order = origin << 28 | sequence: command-line rules, then the file's, then added ones. */
const ORDER_SHIFT = 2 ** 28;

/**
 * A rule as the kernel holds it.
 *
 * @example
 * ```ts ignore
 * for (const r of table.installed()) console.log(r.order, formatFirewallRule(r));
 * ```
 */
export interface InstalledRule extends FirewallRule {
  /** Index in fw_rules. */
  slot: number;
  /** Place in the order (lower first). */
  order: number;
  /** Unique id (keys rate-limit buckets). */
  id: number;
  /** Where it came from. */
  origin: RuleOrigin;
}

/** A rule wanted in the next rule set, with its place. */
export interface WantedRule {
  /** The rule. */
  rule: FirewallRule;
  /** Where it comes from. */
  origin: RuleOrigin;
  /** Its place among rules of the same origin. */
  seq: number;
}

/**
 * The firewall's maps, typed (from a loaded object, a program id or pins).
 */
export interface FirewallMaps {
  /** fw_rules: slot → struct fw_rule. */
  rules: TypedMap<number, FwRule>;
  /** fw_counters (per CPU). */
  counters: TypedMap<number, FwCounter>;
  /** fw_hosts. */
  hosts: TypedMap<FwHostKey, FwSlots>;
  /** fw_nets. */
  nets: TypedMap<FwNetKey, FwSlots>;
  /** fw_config. */
  config: TypedMap<number, FwConfig>;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const hex = (a: Uint8Array) => {
  let out = "";
  for (let i = 0; i < a.length; i++) out += HEX[a[i]!];
  return out;
};

/** The index entries (one generation) of a rule set. */
function indexOf(rules: InstalledRule[]): Map<string, IndexEntry> {
  const index = new Map<string, IndexEntry>();
  const put = (
    dir: number,
    side: number,
    addr: Uint8Array,
    len: number,
    slot: number,
    order: number,
  ) => {
    const kind = len === 128 ? "host" : "net";
    const key = `${kind}|${dir}|${side}|${len}|${hex(addr)}`;
    let e = index.get(key);
    if (!e) index.set(key, e = { kind, dir, side, len, addr, slots: [] });
    e.slots.push(slot);
    orders.set(slot, order);
  };
  const orders = new Map<number, number>();
  for (const rule of rules) {
    const { slot, order } = rule;
    const m = rule.match;
    const dir = ruleDirection(rule);
    if (m.fields & BELT_M_SRC) put(dir, FIREWALL.sideSrc, m.src, m.srcLen, slot, order);
    else if (m.fields & BELT_M_DST) put(dir, FIREWALL.sideDst, m.dst, m.dstLen, slot, order);
    else if (m.fields & BELT_M_ANY) {
      put(dir, FIREWALL.sideSrc, m.any, m.anyLen, slot, order);
      put(dir, FIREWALL.sideDst, m.any, m.anyLen, slot, order);
    } else put(dir, FIREWALL.sideSrc, new Uint8Array(16), 0, slot, order);
  }
  for (const e of index.values()) {
    if (e.slots.length > 1) e.slots.sort((a, b) => orders.get(a)! - orders.get(b)!);
  }
  return index;
}

function sameEntry(a: IndexEntry, b: IndexEntry): boolean {
  return a.slots.length === b.slots.length && a.slots.every((s, i) => s === b.slots[i]);
}

/** fw_config.present of an index: FW_PRESENT(dir, side, net) = ((dir - 1) * 2 + side) * 2 + net. */
function presentOf(index: Map<string, IndexEntry>): number[] {
  const present = [0, 0, 0, 0, 0, 0, 0, 0];
  for (const e of index.values()) {
    present[((e.dir - 1) * 2 + e.side) * 2 + (e.kind === "net" ? 1 : 0)] = 1;
  }
  return present;
}

/** What a too-full index entry holds, for the error message. */
function describeEntry(e: IndexEntry): string {
  const where = e.dir === 2 ? " on egress" : "";
  if (e.len === 0 && e.side === FIREWALL.sideSrc) return `rules without an address${where}`;
  const side = e.side === FIREWALL.sideSrc ? "source" : "destination";
  const v4 = isMappedIpv4(e.addr) && e.len >= 96;
  return `rules with the ${side} prefix ${formatIp(e.addr)}/${v4 ? e.len - 96 : e.len}${where}`;
}

/** Sleeps without yielding to the event loop (the table API is synchronous). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Reads and changes a firewall's rule set in the kernel.
 *
 * @example
 * ```ts ignore
 * import { FirewallTable, parseFirewallRule } from "@belt/belt";
 * const table = new FirewallTable(maps);
 * table.add([parseFirewallRule("deny tcp:23")]);
 * console.log(table.installed().length);
 * ```
 */
export class FirewallTable {
  readonly #maps: FirewallMaps;
  readonly #capacity: number;

  /** Wraps the maps of one firewall. */
  constructor(maps: FirewallMaps) {
    this.#maps = maps;
    this.#capacity = maps.rules.maxEntries;
  }

  /** Number of rule slots. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The rules in the kernel, in order. */
  installed(): InstalledRule[] {
    const out: InstalledRule[] = [];
    // Slots past slots_used are free: the scan stops there (array keys come in order).
    const used = this.#maps.config.get(0)?.slots_used ?? this.#capacity;
    const whole = this.#maps.rules.scanBatch((k, ko, v, vo) => {
      const slot = k.getUint32(ko, true);
      if (slot >= used) return false;
      const r = readRule(v, vo); // only slots in use are decoded
      if (!r) return true;
      const { origin, ...rest } = r;
      out.push({ ...rest, slot, origin: ORIGINS[origin] ?? "added" });
      return true;
    }, Math.max(1, Math.min(8192, used)));
    if (!whole) {
      throw new BeltError("this kernel cannot read maps in batches (BPF_MAP_LOOKUP_BATCH)");
    }
    return out.sort((a, b) => a.order - b.order);
  }

  /** Per-rule counters (all CPUs), by slot. */
  counters(slots?: Iterable<number>): Map<number, FwCounter> {
    const wanted = slots ? new Set(slots) : undefined;
    const keep = wanted && ((k: DataView, ko: number) => wanted.has(k.getUint32(ko, true)));
    return new Map(this.#maps.counters.getBatch(8192, keep));
  }

  /** Appends rules (origin "added"); refuses one already there. */
  add(rules: FirewallRule[]): InstalledRule[] {
    return this.#locked(() => {
      const now = this.installed();
      const present = new Map(now.map((r) => [formatFirewallRule(r), r]));
      const seen = new Set<string>();
      for (const r of rules) {
        const text = formatFirewallRule(r);
        const had = present.get(text);
        if (had || seen.has(text)) {
          throw new BeltError(`rule '${text}' is already in the rule set`, {
            hint: "each rule once; `belt firewall IFACE list` shows them",
          });
        }
        seen.add(text);
      }
      let seq = now.filter((r) => r.origin === "added").reduce(
        (m, r) => Math.max(m, r.order % ORDER_SHIFT + 1),
        0,
      );
      const wanted = [
        ...now.map(unchanged),
        ...rules.map((rule) => ({ rule, origin: "added" as const, seq: seq++ })),
      ];
      return this.#apply(now, wanted);
    });
  }

  /** Removes the rules `which` picks; returns them. */
  remove(which: (r: InstalledRule, position: number) => boolean): InstalledRule[] {
    return this.#locked(() => {
      const now = this.installed();
      const gone = now.filter(which);
      const wanted = now.filter((r, i) => !which(r, i)).map(unchanged);
      this.#apply(now, wanted);
      return gone;
    });
  }

  /** Replaces every rule of one origin (e.g. a reloaded rules file) with `rules`. */
  replace(origin: RuleOrigin, rules: FirewallRule[]): InstalledRule[] {
    return this.#locked(() => {
      const now = this.installed();
      if (origin !== "added" && rules.length >= ORDER_SHIFT) {
        throw new BeltError(`too many rules (${rules.length})`);
      }
      const wanted: WantedRule[] = [
        ...now.filter((r) => r.origin !== origin).map(unchanged),
        ...rules.map((rule, seq) => ({ rule, origin, seq })),
      ];
      return this.#apply(now, wanted);
    });
  }

  #locked<T>(fn: () => T): T {
    // One lock for every firewall on the host: changes take milliseconds, and
    // a file per firewall would outlive it.
    Deno.mkdirSync("/run/belt", { recursive: true });
    using file = Deno.openSync("/run/belt/firewall.lock", { create: true, write: true });
    file.lockSync(true);
    try {
      return fn();
    } finally {
      file.unlockSync();
    }
  }

  /** Makes the kernel hold exactly `wanted`; nothing changes if it cannot. */
  #apply(now: InstalledRule[], wanted: WantedRule[]): InstalledRule[] {
    // A rule keeps its slot (and counters) when it is the installed rule
    // itself, or has the same text at the same place in the order.
    const atOrder = new Map(now.map((r) => [r.order, r]));
    const used = new Set(now.map((r) => r.slot));
    const kept = new Set<number>();
    const result: InstalledRule[] = [];
    const fresh: InstalledRule[] = [];
    for (const w of wanted) {
      const order = orderOf(w.origin, w.seq);
      const same = atOrder.get(order);
      if (
        same && !kept.has(same.slot) &&
        (w.rule === same || formatFirewallRule(w.rule) === formatFirewallRule(same))
      ) {
        kept.add(same.slot);
        result.push(same);
        continue;
      }
      const r: InstalledRule = { ...w.rule, slot: -1, order, id: 0, origin: w.origin };
      fresh.push(r);
      result.push(r);
    }
    // A rule that only moved (a line inserted above it in the rules file) keeps its counters.
    const carry = new Map<InstalledRule, InstalledRule>();
    const movable = now.filter((r) => !kept.has(r.slot));
    if (fresh.length && movable.length) {
      const byText = new Map<string, InstalledRule[]>();
      for (const r of movable) {
        const t = formatFirewallRule(r);
        byText.set(t, [...(byText.get(t) ?? []), r]);
      }
      for (const r of fresh) {
        const old = byText.get(formatFirewallRule(r))?.shift();
        if (old) carry.set(r, old);
      }
    }
    let nextFree = 0, nextId = now.reduce((m, r) => Math.max(m, r.id), 0) + 1;
    for (const r of fresh) {
      while (nextFree < this.#capacity && used.has(nextFree)) nextFree++;
      if (nextFree >= this.#capacity) {
        throw new BeltError(`the firewall's rule table is full (${this.#capacity} rules)`, {
          hint: "remove rules, or start the firewall with a larger --capacity",
        });
      }
      used.add(nextFree);
      r.slot = nextFree++;
      r.id = carry.get(r)?.id ?? nextId++;
    }
    const oldIndex = indexOf(now);
    const newIndex = indexOf(result);
    for (const e of newIndex.values()) {
      if (e.slots.length > FIREWALL.slotsPerEntry) {
        throw new BeltError(
          `more than ${FIREWALL.slotsPerEntry} ${describeEntry(e)}`,
          {
            hint:
              "merge them (port ranges, wider prefixes) or give them different address prefixes",
          },
        );
      }
    }
    // 1. New rules into free slots (their counters are zero: freed slots are zeroed below).
    if (fresh.length) this.#writeRules(fresh);
    if (carry.size) {
      const counts = this.counters([...carry.values()].map((r) => r.slot));
      // Per CPU: the carried sum on one CPU, zero on the others (one value would go to each).
      const zero = { packets: 0n, bytes: 0n, limited: 0n };
      const cpus = possibleCpuCount();
      this.#maps.counters.setBatch([...carry].map(([r, old]) => {
        const perCpu = Array.from(
          { length: cpus },
          (_, i) => i === 0 ? counts.get(old.slot)! : zero,
        );
        return [r.slot, perCpu] as const;
      }));
    }
    // 2. Both generations of the indexes, the idle one first.
    const config = this.#maps.config.get(0) ?? {
      default_in: FIREWALL.pass,
      default_out: FIREWALL.pass,
      keep_nd: 1,
      gen: 0,
      egress: 0,
      present: [0, 0, 0, 0, 0, 0, 0, 0],
      pad: undefined,
      slots_used: 0,
    };
    const live = config.gen & 1, idle = live ^ 1;
    // Which indexes hold entries: while both generations change, those of either.
    const present = presentOf(newIndex);
    const during = presentOf(oldIndex).map((p, i) => p | present[i]!);
    const slotsUsed = result.reduce((m, r) => Math.max(m, r.slot + 1), 0);
    // Before new slots are referenced, so a reader never stops short of a rule in force.
    if (slotsUsed > config.slots_used) {
      this.#maps.config.set(0, { ...config, present: during, slots_used: slotsUsed });
    }
    const changed = [...newIndex].filter(([k, e]) =>
      !oldIndex.has(k) || !sameEntry(oldIndex.get(k)!, e)
    ).map(([, e]) => e);
    const removed = [...oldIndex].filter(([k]) => !newIndex.has(k)).map(([, e]) => e);
    if (changed.length || removed.length) {
      this.#writeIndex(idle, changed, removed);
      this.#maps.config.set(0, {
        ...config,
        gen: idle,
        present: during,
        slots_used: Math.max(slotsUsed, config.slots_used),
      });
      pause(2); // packets that read the old generation finish with it
      this.#writeIndex(live, changed, removed);
    }
    // 3. Slots nothing refers to any more: rule and counters zeroed.
    const stillUsed = new Set(result.map((r) => r.slot));
    const freed = now.filter((r) => !stillUsed.has(r.slot));
    if (freed.length) {
      const empty = fwRule.unpack(new Uint8Array(fwRule.size));
      this.#maps.rules.setBatch(freed.map((r) => [r.slot, empty]));
      const zero = { packets: 0n, bytes: 0n, limited: 0n };
      this.#maps.counters.setBatch(freed.map((r) => [r.slot, zero]));
    }
    const flipped = changed.length || removed.length;
    this.#maps.config.set(0, {
      ...config,
      gen: flipped ? idle : live,
      present,
      slots_used: slotsUsed,
    });
    return result.sort((a, b) => a.order - b.order);
  }

  #writeRules(rules: InstalledRule[]): void {
    const keys = new Uint8Array(rules.length * 4);
    const values = new Uint8Array(rules.length * fwRule.size);
    const kv = new DataView(keys.buffer), vv = new DataView(values.buffer);
    rules.forEach((r, i) => {
      kv.setUint32(i * 4, r.slot, true);
      writeRule(vv, i * fwRule.size, { ...r, origin: ORIGIN_CODE[r.origin] });
    });
    this.#maps.rules.setBatchRaw(keys, values);
  }

  #writeIndex(gen: number, set: IndexEntry[], del: IndexEntry[]): void {
    for (const kind of ["host", "net"] as const) {
      const map = kind === "host" ? this.#maps.hosts : this.#maps.nets;
      const keySize = kind === "host" ? fwHostKey.size : fwNetKey.size;
      const entries = set.filter((e) => e.kind === kind);
      if (entries.length) {
        const keys = new Uint8Array(entries.length * keySize);
        const values = new Uint8Array(entries.length * fwSlots.size);
        const kv = new DataView(keys.buffer), vv = new DataView(values.buffer);
        entries.forEach((e, i) => {
          writeIndexKey(kv, i * keySize, e, gen);
          writeIndexValue(vv, i * fwSlots.size, e);
        });
        map.setBatchRaw(keys, values);
      }
    }
    const key = new Uint8Array(Math.max(fwHostKey.size, fwNetKey.size));
    const view = new DataView(key.buffer);
    for (const e of del) {
      writeIndexKey(view, 0, e, gen);
      const map = e.kind === "host" ? this.#maps.hosts : this.#maps.nets;
      map.deleteRaw(key.subarray(0, e.kind === "host" ? fwHostKey.size : fwNetKey.size));
    }
  }
}

function orderOf(origin: RuleOrigin, seq: number): number {
  return ORIGIN_CODE[origin] * ORDER_SHIFT + seq;
}

/** An installed rule wanted again at the same place (it keeps its slot and counters). */
function unchanged(r: InstalledRule): WantedRule {
  return { rule: r, origin: r.origin, seq: r.order % ORDER_SHIFT };
}

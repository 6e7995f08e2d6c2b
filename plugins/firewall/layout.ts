/**
 * The firewall's structs as codecs, member for member with
 * plugins/firewall/firewall.h (tests/layout_test.ts checks them against
 * the object's BTF).
 *
 * @module
 */
import { array, bytes, pad, struct, u32, u64, u8 } from "../../bpf/mod.ts";
import type { StructCodec } from "../../bpf/mod.ts";
import { beltRule } from "../rules.ts";
import type { BeltRuleStruct } from "../rules.ts";

/**
 * Limits and constants of firewall.h.
 *
 * @example
 * ```ts
 * import { FIREWALL } from "@belt/belt";
 * console.log(FIREWALL.slotsPerEntry); // 32
 * ```
 */
export const FIREWALL = {
  /** Rules per index entry: per address prefix, side and direction (FW_SLOTS). */
  slotsPerEntry: 32,
  /** Default number of rule slots (FW_CAPACITY); `--capacity` changes it. */
  capacity: 131072,
  /** FW_NO_MATCH. */
  noMatch: 0xffffffff,
  /** Bits of fw_net_key.prefixlen before the address (FW_NET_KEY_BITS). */
  netKeyBits: 24,
  /** FW_SIDE_SRC. */
  sideSrc: 0,
  /** FW_SIDE_DST. */
  sideDst: 1,
  /** FW_ACT_PASS. */
  pass: 1,
  /** FW_ACT_DROP. */
  drop: 2,
  /** FW_ACT_LIMIT. */
  limit: 3,
} as const;

/**
 * struct fw_rule: one rule in the `fw_rules` array; `match` is a
 * `struct belt_rule` (plugins/rules.ts).
 *
 * @example
 * ```ts
 * import { fwRule } from "@belt/belt";
 * console.log(fwRule.size); // 136
 * ```
 */
export const fwRule: StructCodec<{
  match: BeltRuleStruct;
  order: number;
  id: number;
  action: number;
  in_use: number;
  origin: number;
  pad: undefined;
  rate: number;
  interval_ns: bigint;
  tolerance_ns: bigint;
}> = struct({
  match: beltRule,
  order: u32,
  id: u32,
  action: u8,
  in_use: u8,
  origin: u8,
  pad: pad(1),
  rate: u32,
  interval_ns: u64,
  tolerance_ns: u64,
});

/**
 * struct fw_host_key: key of the exact-address index `fw_hosts`.
 *
 * @example
 * ```ts
 * import { fwHostKey } from "@belt/belt";
 * console.log(fwHostKey.size); // 20
 * ```
 */
export const fwHostKey: StructCodec<{
  gen: number;
  dir: number;
  side: number;
  pad: undefined;
  addr: Uint8Array;
}> = struct({ gen: u8, dir: u8, side: u8, pad: pad(1), addr: bytes(16) });

/**
 * struct fw_net_key: key of the prefix index `fw_nets` (an LPM trie).
 *
 * @example
 * ```ts
 * import { fwNetKey } from "@belt/belt";
 * console.log(fwNetKey.size); // 24
 * ```
 */
export const fwNetKey: StructCodec<{
  prefixlen: number;
  gen: number;
  dir: number;
  side: number;
  addr: Uint8Array;
  pad: undefined;
}> = struct({ prefixlen: u32, gen: u8, dir: u8, side: u8, addr: bytes(16), pad: pad(1) });

/**
 * struct fw_slots: value of both indexes, the rule slots of one prefix by order.
 *
 * @example
 * ```ts
 * import { fwSlots } from "@belt/belt";
 * console.log(fwSlots.size); // 132
 * ```
 */
export const fwSlots: StructCodec<{
  len: number;
  count: number;
  pad: undefined;
  slots: number[];
}> = struct({ len: u8, count: u8, pad: pad(2), slots: array(u32, 32) });

/**
 * struct fw_counter: per-rule counters (per CPU, summed when read).
 *
 * @example
 * ```ts
 * import { fwCounter } from "@belt/belt";
 * console.log(fwCounter.size); // 24
 * ```
 */
export const fwCounter: StructCodec<{ packets: bigint; bytes: bigint; limited: bigint }> = struct({
  packets: u64,
  bytes: u64,
  limited: u64,
});

/**
 * struct fw_totals: per-CPU totals; arrays are [in, out].
 *
 * @example
 * ```ts
 * import { fwTotals } from "@belt/belt";
 * console.log(fwTotals.size); // 104
 * ```
 */
export const fwTotals: StructCodec<{
  packets: bigint[];
  bytes: bigint[];
  dropped: bigint[];
  default_passed: bigint[];
  default_dropped: bigint[];
  kept_nd: bigint;
  fragments: bigint;
  malformed: bigint;
}> = struct({
  packets: array(u64, 2),
  bytes: array(u64, 2),
  dropped: array(u64, 2),
  default_passed: array(u64, 2),
  default_dropped: array(u64, 2),
  kept_nd: u64,
  fragments: u64,
  malformed: u64,
});

/**
 * struct fw_config: policy and the live index generation.
 *
 * @example
 * ```ts
 * import { fwConfig } from "@belt/belt";
 * console.log(fwConfig.size); // 20
 * ```
 */
export const fwConfig: StructCodec<{
  default_in: number;
  default_out: number;
  keep_nd: number;
  gen: number;
  egress: number;
  present: number[];
  pad: undefined;
  slots_used: number;
}> = struct({
  default_in: u8,
  default_out: u8,
  keep_nd: u8,
  gen: u8,
  egress: u8,
  present: array(u8, 8),
  pad: pad(3),
  slots_used: u32,
});

/**
 * A decoded struct fw_rule.
 *
 * @example
 * ```ts
 * import { fwRule } from "@belt/belt";
 * import type { FwRule } from "@belt/belt";
 * const r: FwRule = fwRule.unpack(new Uint8Array(fwRule.size));
 * console.log(r.in_use); // 0
 * ```
 */
export type FwRule = ReturnType<typeof fwRule.unpack>;
/**
 * A decoded struct fw_counter (summed over CPUs when read).
 *
 * @example
 * ```ts
 * import type { FwCounter } from "@belt/belt";
 * const c: FwCounter = { packets: 1n, bytes: 64n, limited: 0n };
 * console.log(c.packets);
 * ```
 */
export type FwCounter = ReturnType<typeof fwCounter.unpack>;
/**
 * A decoded struct fw_host_key.
 *
 * @example
 * ```ts
 * import type { FwHostKey } from "@belt/belt";
 * const k: FwHostKey = { gen: 0, dir: 1, side: 0, pad: undefined, addr: new Uint8Array(16) };
 * console.log(k.dir);
 * ```
 */
export type FwHostKey = ReturnType<typeof fwHostKey.unpack>;
/**
 * A decoded struct fw_net_key.
 *
 * @example
 * ```ts
 * import type { FwNetKey } from "@belt/belt";
 * const k: FwNetKey = { prefixlen: 24, gen: 0, dir: 1, side: 0, addr: new Uint8Array(16), pad: undefined };
 * console.log(k.prefixlen);
 * ```
 */
export type FwNetKey = ReturnType<typeof fwNetKey.unpack>;
/**
 * A decoded struct fw_slots.
 *
 * @example
 * ```ts
 * import type { FwSlots } from "@belt/belt";
 * const v: FwSlots = { len: 0, count: 0, pad: undefined, slots: [] };
 * console.log(v.count);
 * ```
 */
export type FwSlots = ReturnType<typeof fwSlots.unpack>;
/**
 * A decoded struct fw_config.
 *
 * @example
 * ```ts
 * import { fwConfig } from "@belt/belt";
 * import type { FwConfig } from "@belt/belt";
 * const c: FwConfig = fwConfig.unpack(new Uint8Array(fwConfig.size));
 * console.log(c.gen); // 0
 * ```
 */
export type FwConfig = ReturnType<typeof fwConfig.unpack>;

/**
 * What sniff.bpf.c shares with user space: limits and struct sniff_stats
 * (plugins/sniff/sniff.h; tests/layout_test.ts checks it against the BTF).
 *
 * @module
 */
import { struct, u64 } from "../../bpf/mod.ts";
import type { StructCodec } from "../../bpf/mod.ts";

/**
 * Limits and flag bits of the sniff program (sniff.h).
 *
 * @example
 * ```ts
 * import { SNIFF } from "@belt/belt";
 * console.log(SNIFF.maxRules); // 16
 * ```
 */
export const SNIFF = {
  /** Terms of an expression joined by `or`. */
  maxRules: 16,
  /** Largest --snaplen (tcpdump's default and maximum). */
  maxSnaplen: 262144,
  /** l7_mask bits: 1 << BELT_L7_*. */
  l7: { http: 1 << 1, dns: 1 << 2, tls: 1 << 3 },
} as const;

/** struct sniff_stats, one per CPU. */
export interface SniffStatsStruct {
  /** Frames the filter ran on. */
  seen: bigint;
  /** ... that matched the expression. */
  matched: bigint;
  /** ... and the L7 condition: handed to the socket. */
  passed: bigint;
  /** Bytes handed to the socket (after the snap length). */
  bytes: bigint;
}

/**
 * Codec of struct sniff_stats.
 *
 * @example
 * ```ts
 * import { sniffStats } from "@belt/belt";
 * console.log(sniffStats.size); // 32
 * ```
 */
export const sniffStats: StructCodec<SniffStatsStruct> = struct({
  seen: u64,
  matched: u64,
  passed: u64,
  bytes: u64,
});

/**
 * The connect tracer's structs as codecs, member for member with
 * plugins/connect/connect.h (tests/connect_layout_test.ts checks them
 * against the object's BTF).
 *
 * @module
 */
import { array, bytes, cstring, i32, pad, struct, u16, u32, u64, u8 } from "../../bpf/mod.ts";
import type { StructCodec } from "../../bpf/mod.ts";

/**
 * Constants of connect.h: hooks, event kinds and outcomes.
 *
 * @example
 * ```ts
 * import { CONNECT } from "@belt/belt";
 * console.log(CONNECT.outcomes[CONNECT.refused]); // "refused"
 * ```
 */
export const CONNECT = {
  /** CT_HOOK_* by name. */
  hooks: { kprobe: 1, fentry: 2, tracepoint: 3 } as const,
  /** ct_event.kind, indexed by its value. */
  kinds: ["", "connect", "accept", "close"] as const,
  /** ct_event.outcome, indexed by its value. */
  outcomes: ["", "established", "refused", "timeout", "error", "aborted", "closed"] as const,
  /** CT_REFUSED. */
  refused: 2,
  /** Destination networks in a filter (CT_MAX_NETS). */
  maxNets: 8,
  /** Destination ports in a filter (CT_MAX_PORTS). */
  maxPorts: 8,
} as const;

/** struct ct_event as read from the ring buffer. */
export interface CtEventStruct {
  /** CLOCK_MONOTONIC ns. */
  ts_ns: bigint;
  /** See connect.h. */
  latency_ns: bigint;
  /** cgroup v2 id. */
  cgroup_id: bigint;
  /** Bytes acknowledged by the peer (close events). */
  bytes_sent: bigint;
  /** Bytes received (close events). */
  bytes_received: bigint;
  /** Owner process. */
  pid: number;
  /** Owner thread. */
  tid: number;
  /** Owner uid. */
  uid: number;
  /** Network namespace inode. */
  netns: number;
  /** Task running when the outcome was seen. */
  context_pid: number;
  /** errno, positive. */
  error: number;
  /** Source address, 16 bytes (IPv4 mapped). */
  saddr: Uint8Array;
  /** Destination address, 16 bytes (IPv4 mapped). */
  daddr: Uint8Array;
  /** Source port. */
  sport: number;
  /** Destination port. */
  dport: number;
  /** AF_INET or AF_INET6. */
  family: number;
  /** CT_KIND_*. */
  kind: number;
  /** CT_*. */
  outcome: number;
  /** CT_HOOK_*. */
  hook: number;
  /** Padding. */
  pad: undefined;
  /** Owner command name. */
  comm: string;
}

/**
 * struct ct_event.
 *
 * @example
 * ```ts
 * import { ctEvent } from "@belt/belt";
 * console.log(ctEvent.size); // 128
 * ```
 */
export const ctEvent: StructCodec<CtEventStruct> = struct({
  ts_ns: u64,
  latency_ns: u64,
  cgroup_id: u64,
  bytes_sent: u64,
  bytes_received: u64,
  pid: u32,
  tid: u32,
  uid: u32,
  netns: u32,
  context_pid: u32,
  error: i32,
  saddr: bytes(16),
  daddr: bytes(16),
  sport: u16,
  dport: u16,
  family: u16,
  kind: u8,
  outcome: u8,
  hook: u8,
  pad: pad(7),
  comm: cstring(16),
});

/** struct ct_net. */
export interface CtNetStruct {
  /** Network address, 16 bytes (IPv4 mapped). */
  addr: Uint8Array;
  /** Prefix length over 128 bits. */
  len: number;
  /** Padding. */
  pad: undefined;
}

/** struct ct_filter. */
export interface CtFilterStruct {
  /** Process id, 0: any. */
  pid: number;
  /** User id, used when has_uid is 1. */
  uid: number;
  /** 1 when uid filters. */
  has_uid: number;
  /** Ports used in `ports`. */
  nports: number;
  /** Networks used in `nets`. */
  nnets: number;
  /** Padding. */
  pad: undefined;
  /** Bit (1 << outcome) per wanted connect outcome; 0: all. */
  outcomes: number;
  /** Destination ports. */
  ports: number[];
  /** Command name, "" for any. */
  comm: string;
  /** Destination networks. */
  nets: CtNetStruct[];
}

const ctNet: StructCodec<CtNetStruct> = struct({ addr: bytes(16), len: u8, pad: pad(3) });

/**
 * struct ct_filter, the kernel-side filters (the `filter` global).
 *
 * @example
 * ```ts
 * import { ctFilter } from "@belt/belt";
 * console.log(ctFilter.size); // 208
 * ```
 */
export const ctFilter: StructCodec<CtFilterStruct> = struct({
  pid: u32,
  uid: u32,
  has_uid: u8,
  nports: u8,
  nnets: u8,
  pad: pad(1),
  outcomes: u32,
  ports: array(u16, CONNECT.maxPorts),
  comm: cstring(16),
  nets: array(ctNet, CONNECT.maxNets),
});

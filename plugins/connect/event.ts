/**
 * One connect tracer event as users see it: names instead of numbers,
 * addresses as text, wall-clock time.
 *
 * @module
 */
import { decode, errnoName } from "../../bpf/mod.ts";
import { formatIp } from "../addr.ts";
import { CONNECT, ctEvent } from "./layout.ts";

/** A hook set that can see connect attempts begin. */
export type ConnectHook = "kprobe" | "fentry" | "tracepoint";

/** One event: an attempt's outcome, an accept, or a connection's close. */
export interface ConnectEvent {
  /** Wall-clock time belt saw it, ms since the epoch (fractional). */
  time: number;
  /** "connect": an outbound attempt ended; "accept"; "close" (with bytes and lifetime). */
  kind: "connect" | "accept" | "close";
  /** connect: how it ended; accept and close: "closed". */
  outcome: "established" | "refused" | "timeout" | "error" | "aborted" | "closed";
  /** The hook set that saw it begin. */
  hook: ConnectHook;
  /** The process that connected (or accepted), even when the outcome arrived in softirq. */
  pid: number;
  /** Its thread. */
  tid: number;
  /** Its user id. */
  uid: number;
  /** Its command name. */
  comm: string;
  /** Its cgroup v2 id. */
  cgroup: number;
  /** Inode of the socket's network namespace (as in /proc/PID/ns/net). */
  netns: number;
  /** 4 or 6: the socket's family (an IPv6 socket may reach an IPv4-mapped address). */
  family: 4 | 6;
  /** Where the connection came from (for an accept, the remote client). */
  src: string;
  /** Its port. */
  sport: number;
  /** Where it went. */
  dst: string;
  /** Its port. */
  dport: number;
  /** connect: SYN sent to outcome; accept: time in the accept queue; close: lifetime. In µs. */
  latencyUs: number;
  /** errno of a failure (0 when none), e.g. 111. */
  errno: number;
  /** Its name, e.g. "ECONNREFUSED"; "" when none. */
  error: string;
  /** close: bytes the peer acknowledged. */
  bytesSent: number;
  /** close: bytes received. */
  bytesReceived: number;
  /** The task that was running when the kernel reported the outcome (0: idle). */
  contextPid: number;
}

const HOOK_NAMES: Record<number, ConnectHook> = { 1: "kprobe", 2: "fentry", 3: "tracepoint" };

/**
 * Decodes one ring buffer record; `clockOffsetNs` turns the kernel's
 * monotonic time into wall-clock time (see monotonicToRealtimeNs).
 *
 * @example
 * ```ts ignore
 * import { decodeConnectEvent } from "@belt/belt";
 * const event = decodeConnectEvent(bytes, offset);
 * console.log(event.comm, event.dst, event.outcome);
 * ```
 */
export function decodeConnectEvent(bytes: Uint8Array, clockOffsetNs: bigint): ConnectEvent {
  const raw = decode(ctEvent, bytes);
  return {
    time: Number((raw.ts_ns + clockOffsetNs) / 1000n) / 1000,
    kind: CONNECT.kinds[raw.kind] as ConnectEvent["kind"],
    outcome: CONNECT.outcomes[raw.outcome] as ConnectEvent["outcome"],
    hook: HOOK_NAMES[raw.hook] ?? "tracepoint",
    pid: raw.pid,
    tid: raw.tid,
    uid: raw.uid,
    comm: raw.comm,
    cgroup: Number(raw.cgroup_id),
    netns: raw.netns,
    family: raw.family === 10 ? 6 : 4,
    src: formatIp(raw.saddr),
    sport: raw.sport,
    dst: formatIp(raw.daddr),
    dport: raw.dport,
    latencyUs: Number(raw.latency_ns) / 1000,
    errno: raw.error,
    error: raw.error ? errnoName(raw.error) : "",
    bytesSent: Number(raw.bytes_sent),
    bytesReceived: Number(raw.bytes_received),
    contextPid: raw.context_pid,
  };
}

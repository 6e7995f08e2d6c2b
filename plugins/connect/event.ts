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

/** Byte offsets of ct_event's members, from the codec (which the layout test checks against BTF). */
const AT = Object.fromEntries(ctEvent.layout.map((f) => [f.name, f.offset])) as Record<
  string,
  number
>;

/** A NUL-terminated ASCII name without a TextDecoder per event (comm is almost always ASCII). */
function commOf(bytes: Uint8Array, at: number): string {
  let text = "";
  for (let i = at; i < at + 16; i++) {
    const c = bytes[i]!;
    if (c === 0) break;
    if (c > 0x7e) return decode(ctEvent, bytes).comm; // rare: not ASCII
    text += String.fromCharCode(c);
  }
  return text;
}

/**
 * Decodes ring buffer records (views into one buffer, as RingBuffer.drain
 * hands them out); `clockOffsetNs` turns the kernel's monotonic time into
 * wall-clock time (see monotonicToRealtimeNs). Reads members at fixed
 * offsets through one DataView per buffer: a view or a codec per event
 * costs microseconds, and a tracer decodes tens of thousands per second.
 *
 * @example
 * ```ts ignore
 * import { decodeConnectEvents, monotonicToRealtimeNs } from "@belt/belt";
 * const offset = monotonicToRealtimeNs();
 * for (const e of decodeConnectEvents(ring.drain(), offset)) console.log(e.comm, e.dst, e.outcome);
 * ```
 */
export function decodeConnectEvents(records: Uint8Array[], clockOffsetNs: bigint): ConnectEvent[] {
  const out: ConnectEvent[] = new Array(records.length);
  let view: DataView | undefined;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (view?.buffer !== r.buffer) view = new DataView(r.buffer);
    out[i] = decodeAt(view, r, clockOffsetNs);
  }
  return out;
}

function decodeAt(v: DataView, r: Uint8Array, clockOffsetNs: bigint): ConnectEvent {
  const o = r.byteOffset;
  const bytes = new Uint8Array(r.buffer, o, ctEvent.size);
  const error = v.getInt32(o + AT.error!, true);
  const family = v.getUint16(o + AT.family!, true);
  return {
    time: Number((v.getBigUint64(o + AT.ts_ns!, true) + clockOffsetNs) / 1000n) / 1000,
    kind: CONNECT.kinds[v.getUint8(o + AT.kind!)] as ConnectEvent["kind"],
    outcome: CONNECT.outcomes[v.getUint8(o + AT.outcome!)] as ConnectEvent["outcome"],
    hook: HOOK_NAMES[v.getUint8(o + AT.hook!)] ?? "tracepoint",
    pid: v.getUint32(o + AT.pid!, true),
    tid: v.getUint32(o + AT.tid!, true),
    uid: v.getUint32(o + AT.uid!, true),
    comm: commOf(bytes, AT.comm!),
    cgroup: Number(v.getBigUint64(o + AT.cgroup_id!, true)),
    netns: v.getUint32(o + AT.netns!, true),
    family: family === 10 ? 6 : 4,
    src: formatIp(bytes.subarray(AT.saddr!, AT.saddr! + 16)),
    sport: v.getUint16(o + AT.sport!, true),
    dst: formatIp(bytes.subarray(AT.daddr!, AT.daddr! + 16)),
    dport: v.getUint16(o + AT.dport!, true),
    latencyUs: Number(v.getBigUint64(o + AT.latency_ns!, true)) / 1000,
    errno: error,
    error: error ? errnoName(error) : "",
    bytesSent: Number(v.getBigUint64(o + AT.bytes_sent!, true)),
    bytesReceived: Number(v.getBigUint64(o + AT.bytes_received!, true)),
    contextPid: v.getUint32(o + AT.context_pid!, true),
  };
}

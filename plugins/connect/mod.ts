/**
 * The connect tracer: every outbound TCP connection attempt, who made it
 * and how it ended (like bcc's tcpconnect and tcpconnlat together), and
 * optionally accepts and per-connection summaries at close (like tcplife).
 *
 * @module
 */
export { connectPrograms, ConnectTracer } from "./tracer.ts";
export type { ConnectTracerOptions, SkippedHook } from "./tracer.ts";
export { decodeConnectEvents } from "./event.ts";
export type { ConnectEvent, ConnectHook } from "./event.ts";
export { FAILED_OUTCOMES, packConnectFilter } from "./filter.ts";
export type { ConnectFilter, ConnectOutcome } from "./filter.ts";
export { CONNECT, ctEvent, ctFilter } from "./layout.ts";
export type { CtEventStruct, CtFilterStruct, CtNetStruct } from "./layout.ts";

/**
 * `belt trace connect --help`.
 *
 * @example
 * ```ts
 * import { CONNECT_HELP } from "@belt/belt";
 * console.log(CONNECT_HELP.split("\n")[0]);
 * ```
 */
export const CONNECT_HELP =
  `belt trace connect — every TCP connection attempt: who, where, how it ended

Usage: belt trace connect [options]

Reports each outbound TCP connect (IPv4 and IPv6, every network namespace)
when its outcome is known: established (latency: SYN sent to established),
refused (RST), timeout, aborted (closed before an answer), or error (the
errno connect() returned or an ICMP error ended it). The pid is the process
that called connect(), also when the answer arrives in softirq.

Options:
      --accept          also report inbound connections when a process accepts them
                        (latency: time spent in the accept queue)
      --close           also report each connection when it closes: bytes sent
                        (acknowledged) and received, and its lifetime
      --pid N           only this process
      --uid U           only this user (name or number)
      --comm NAME       only this command name (exact, at most 15 bytes)
      --dst CIDR        only connections to this network or address (repeat, or
                        comma-separate: up to 8); for accepts, the local address
      --port P          only this destination port (repeat or comma-separate: up to 8)
      --failed          only failed attempts (refused, timeout, error, aborted)
      --outcome LIST    only these outcomes: established,refused,timeout,error,aborted
      --hook H          auto (default), kprobe, fentry or tracepoint: what sees an
                        attempt begin; auto takes the first that works here
      --count N         stop after N events
      --duration S      stop after S seconds
      --json            JSON lines (each with "hook"), then a summary line

Filters run in the kernel: events that do not match never reach belt.
Events the kernel had to drop (ring buffer full) are counted and reported.

Examples:
  belt trace connect
  belt trace connect --failed --json
  belt trace connect --dst 198.18.0.0/15 --port 80,443 --close`;

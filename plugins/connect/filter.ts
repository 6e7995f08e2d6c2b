/**
 * The connect tracer's kernel-side filters: from what a user writes
 * (`--pid`, `--uid`, `--comm`, `--dst`, `--port`, `--failed`) to the
 * `filter` global of connect.bpf.c.
 *
 * @module
 */
import { BeltError, encode } from "../../bpf/mod.ts";
import { parseRule } from "../rules.ts";
import { CONNECT, ctFilter } from "./layout.ts";
import type { CtFilterStruct } from "./layout.ts";

/** How a connect attempt ended (connect events). */
export type ConnectOutcome = "established" | "refused" | "timeout" | "error" | "aborted";

/** Every connect outcome, in the order the kernel numbers them. */
const CONNECT_OUTCOMES: readonly ConnectOutcome[] = [
  "established",
  "refused",
  "timeout",
  "error",
  "aborted",
];

/**
 * Outcomes `--failed` keeps: all but established.
 *
 * @example
 * ```ts
 * import { FAILED_OUTCOMES } from "@belt/belt";
 * console.log(FAILED_OUTCOMES.join(",")); // "refused,timeout,error,aborted"
 * ```
 */
export const FAILED_OUTCOMES: readonly ConnectOutcome[] = CONNECT_OUTCOMES.slice(1);

/** What to keep; every field is optional and an absent one keeps everything. */
export interface ConnectFilter {
  /** Only this process (its tgid). */
  pid?: number;
  /** Only this user id. */
  uid?: number;
  /** Only this command name (exact, as in /proc/PID/comm, at most 15 bytes). */
  comm?: string;
  /** Only connections to these networks ("198.18.0.0/15", "fd00:beef::/64", an address). */
  dst?: string[];
  /** Only connections to these destination ports (for accepts: the local port). */
  ports?: number[];
  /** Only connect events with these outcomes (accept and close events pass). */
  outcomes?: ConnectOutcome[];
}

function fail(what: string, hint: string): never {
  throw new BeltError(what, { hint });
}

function wholeNumber(value: number, flag: string, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    fail(
      `${flag} wants a whole number 0-${max}, got '${value}'`,
      "see `belt trace connect --help`",
    );
  }
  return value;
}

/** A network in the shared rule syntax's terms; errors name the flag, not a column. */
function parseNet(text: string): { addr: Uint8Array; len: number } {
  try {
    const rule = parseRule(`dst net ${text}`);
    return { addr: rule.dst, len: rule.dstLen };
  } catch (e) {
    if (!(e instanceof BeltError)) throw e;
    const reason = e.message.replace(/^filter '[^']*': /, "").replace(/ at column \d+/, "");
    return fail(`--dst: ${reason}`, "e.g. --dst 198.18.0.0/15; see `belt trace connect --help`");
  }
}

/**
 * Checks a filter and packs it into struct ct_filter's bytes; a bad value
 * throws a BeltError that names the option.
 *
 * @example
 * ```ts
 * import { packConnectFilter } from "@belt/belt";
 * const bytes = packConnectFilter({ dst: ["198.18.0.0/15"], ports: [80, 443] });
 * console.log(bytes.length); // 208
 * ```
 */
export function packConnectFilter(f: ConnectFilter): Uint8Array<ArrayBuffer> {
  const dst = f.dst ?? [];
  const ports = f.ports ?? [];
  if (dst.length > CONNECT.maxNets) {
    fail(`--dst: at most ${CONNECT.maxNets} networks, got ${dst.length}`, "use a shorter prefix");
  }
  if (ports.length > CONNECT.maxPorts) {
    fail(
      `--port: at most ${CONNECT.maxPorts} ports, got ${ports.length}`,
      "trace without --port and filter the output",
    );
  }
  const comm = f.comm ?? "";
  if (new TextEncoder().encode(comm).length > 15) {
    fail(
      `--comm '${comm}' is longer than 15 bytes`,
      "the kernel keeps 15 bytes of a command name: give those",
    );
  }
  const outcomes = f.outcomes ?? [];
  for (const o of outcomes) {
    if (!CONNECT_OUTCOMES.includes(o)) {
      fail(
        `unknown outcome '${o}'`,
        `outcomes: ${CONNECT_OUTCOMES.join(", ")}; see \`belt trace connect --help\``,
      );
    }
  }
  const nets = dst.map(parseNet);
  const value: CtFilterStruct = {
    pid: f.pid === undefined ? 0 : wholeNumber(f.pid, "--pid", 0x3fffffff),
    uid: f.uid === undefined ? 0 : wholeNumber(f.uid, "--uid", 0xfffffffe),
    has_uid: f.uid === undefined ? 0 : 1,
    nports: ports.length,
    nnets: nets.length,
    pad: undefined,
    outcomes: outcomes.reduce((bits, o) => bits | (1 << (CONNECT_OUTCOMES.indexOf(o) + 1)), 0),
    ports: Array.from(
      { length: CONNECT.maxPorts },
      (_, i) => i < ports.length ? wholeNumber(ports[i]!, "--port", 65535) : 0,
    ),
    comm,
    nets: Array.from({ length: CONNECT.maxNets }, (_, i) => ({
      addr: nets[i]?.addr ?? new Uint8Array(16),
      len: nets[i]?.len ?? 0,
      pad: undefined,
    })),
  };
  if (f.pid === 0) fail("--pid wants a process id > 0", "see `belt trace connect --help`");
  return encode(ctFilter, value);
}

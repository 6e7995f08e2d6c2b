/**
 * The sniffer: sniff.bpf.c loaded as a socket filter on a memory-mapped
 * AF_PACKET receive ring (TPACKET_V3, as libpcap uses). The kernel runs the
 * expression and the L7 condition on every frame and hands over only the
 * matching ones, cut to the snap length; the traffic itself is not touched.
 *
 * @module
 */
import { BeltError, BpfObject, PacketRing, u32 } from "../../bpf/mod.ts";
import type { CapturedFrame } from "../../bpf/mod.ts";
import { packRules, parseRuleList } from "../rules.ts";
import type { Rule } from "../rules.ts";
import { SNIFF, sniffStats } from "./layout.ts";
import { sniffObject } from "./sniff.bpf.ts";

/** The L7 conditions of {@linkcode SnifferOptions.l7}. */
export type SniffL7 = "http" | "dns" | "tls";

/** Options of {@linkcode Sniffer.open}. */
export interface SnifferOptions {
  /**
   * Filter expression (plugins/rules.ts syntax, terms joined by `and`,
   * rules by `or`), e.g. `"tcp and dst port 80 or udp port 53"`. Empty or
   * absent: every frame.
   */
  expression?: string;
  /** Only frames carrying one of these: an HTTP/1.x request line, a DNS query, a TLS ClientHello with a server name. */
  l7?: SniffL7[];
  /**
   * Bytes kept of each frame (1 to 262144); 0 or absent: the whole frame.
   * With an L7 condition, at least the bytes the L7 record needs are kept.
   */
  snaplen?: number;
  /** Puts the interface into promiscuous mode while open (default true, as tcpdump). */
  promiscuous?: boolean;
  /** Receive ring geometry: bytes per block (default 1 MiB). */
  blockSize?: number;
  /** Receive ring geometry: blocks (default 8). */
  blockCount?: number;
  /**
   * Longest time a block that is not full waits before it is handed over,
   * in ms (default 50): the delay before a quiet link's frames show up, and
   * how often the reader wakes while frames trickle in.
   */
  retireTimeoutMs?: number;
}

/** Counters of a {@linkcode Sniffer}. */
export interface SniffStats {
  /** Frames the kernel filter ran on. */
  seen: number;
  /** ... that matched the expression. */
  matched: number;
  /** ... and the L7 condition: handed to the socket. */
  passed: number;
  /** Frames read from the ring so far. */
  captured: number;
  /** Frames the socket dropped because the ring was full (the reader fell behind). */
  drops: number;
}

/** Parses and checks the options before anything is loaded. */
function checked(options: SnifferOptions): { rules: Rule[]; mask: number; snaplen: number } {
  const rules = options.expression?.trim() ? parseRuleList(options.expression) : [];
  if (rules.length > SNIFF.maxRules) {
    throw new BeltError(`expression: at most ${SNIFF.maxRules} alternatives joined by 'or'`, {
      hint: "merge alternatives with wider networks or port ranges",
    });
  }
  const snaplen = options.snaplen ?? 0;
  if (!Number.isInteger(snaplen) || snaplen < 0 || snaplen > SNIFF.maxSnaplen) {
    throw new BeltError(`snaplen must be 0 to ${SNIFF.maxSnaplen}, got ${snaplen}`, {
      hint: "0 keeps whole frames",
    });
  }
  let mask = 0;
  for (const l7 of options.l7 ?? []) {
    const bit = SNIFF.l7[l7];
    if (bit === undefined) {
      throw new BeltError(`unknown L7 condition '${l7}'`, { hint: "use http, dns or tls" });
    }
    mask |= bit;
  }
  return { rules, mask, snaplen };
}

/**
 * A running capture on one interface of the current network namespace.
 *
 * @example Capture DNS queries and HTTP requests to a /15, five seconds
 * ```ts ignore
 * import { Sniffer } from "@belt/belt";
 * using sniffer = Sniffer.open("eth0", { expression: "net 198.18.0.0/15", l7: ["dns", "http"] });
 * setTimeout(() => sniffer.close(), 5000);
 * for await (const frames of sniffer.batches()) console.log(frames.length);
 * console.log(sniffer.stats());
 * ```
 */
export class Sniffer implements Disposable, AsyncDisposable {
  /** The interface, by name. */
  readonly iface: string;
  /** The parsed expression, one rule per `or` alternative. */
  readonly rules: readonly Rule[];
  /** The snap length (0: whole frames). */
  readonly snaplen: number;
  #object: BpfObject;
  #ring: PacketRing;
  #final?: SniffStats;

  private constructor(
    iface: string,
    rules: Rule[],
    snaplen: number,
    obj: BpfObject,
    ring: PacketRing,
  ) {
    this.iface = iface;
    this.rules = rules;
    this.snaplen = snaplen;
    this.#object = obj;
    this.#ring = ring;
  }

  /**
   * Loads the filter and opens the ring on `iface`. Bad options throw a
   * BeltError before anything is loaded; a failure later releases what was
   * set up.
   *
   * @example
   * ```ts ignore
   * import { Sniffer } from "@belt/belt";
   * using s = Sniffer.open("eth0", { expression: "tcp and dst port 80", snaplen: 96 });
   * ```
   */
  static open(iface: string, options: SnifferOptions = {}): Sniffer {
    const { rules, mask, snaplen } = checked(options);
    const obj = BpfObject.open(sniffObject, {
      name: "belt_sniff",
      globals: {
        n_rules: rules.length,
        rules: packRules(rules, SNIFF.maxRules),
        l7_mask: mask,
        snaplen,
      },
    });
    try {
      obj.load();
      const ring = PacketRing.open(iface, {
        filter: obj.program("sniff"),
        promiscuous: options.promiscuous ?? true,
        blockSize: options.blockSize,
        blockCount: options.blockCount,
        retireTimeoutMs: options.retireTimeoutMs,
      });
      return new Sniffer(iface, rules, snaplen, obj, ring);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /**
   * The captured frames, a block at a time, until close().
   *
   * @example
   * ```ts ignore
   * for await (const frames of sniffer.batches()) for (const f of frames) console.log(f.wireLength);
   * ```
   */
  batches(): AsyncGenerator<CapturedFrame[], void, undefined> {
    return this.#ring.batches();
  }

  /**
   * Frames already in the ring, without waiting (e.g. the last ones after a stop).
   *
   * @example
   * ```ts ignore
   * const rest = sniffer.drain();
   * ```
   */
  drain(): CapturedFrame[] {
    return this.#ring.drain();
  }

  /**
   * Kernel and ring counters so far (after close(), the final ones).
   *
   * @example
   * ```ts ignore
   * const { seen, passed, drops } = sniffer.stats();
   * ```
   */
  stats(): SniffStats {
    if (this.#final) return { ...this.#final };
    const k = this.#object.map("sniff_stats").typed(u32, sniffStats).getSum(0)!;
    const ring = this.#ring.stats();
    return {
      seen: Number(k.seen),
      matched: Number(k.matched),
      passed: Number(k.passed),
      captured: this.#ring.received,
      drops: ring.drops,
    };
  }

  /** Closes the socket (which removes the filter) and unloads the program. Idempotent. */
  close(): void {
    if (this.#final) return;
    this.#final = this.stats();
    this.#ring.close();
    this.#object.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes and waits for a pending read to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#ring[Symbol.asyncDispose]();
  }
}

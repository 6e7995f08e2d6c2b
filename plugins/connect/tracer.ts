/**
 * The connect tracer: loads connect.bpf.c with one hook set, attaches it,
 * and hands out events. `hook: "auto"` tries kprobes, then fentry, then
 * tracepoints, and says why each one it skipped could not be used.
 *
 * @module
 */
import {
  attachBySection,
  BeltError,
  BpfObject,
  ensureTracefs,
  kernelRelease,
  monotonicToRealtimeNs,
  NotSupportedError,
  RingBuffer,
} from "../../bpf/mod.ts";
import { connectObject } from "./connect.bpf.ts";
import { CONNECT } from "./layout.ts";
import { decodeConnectEvents } from "./event.ts";
import type { ConnectEvent, ConnectHook } from "./event.ts";
import { packConnectFilter } from "./filter.ts";
import type { ConnectFilter } from "./filter.ts";

/** Options of {@linkcode ConnectTracer.open}. */
export interface ConnectTracerOptions {
  /** Which hook set sees attempts begin; "auto" (default) takes the first that works. */
  hook?: ConnectHook | "auto";
  /** Also report inbound connections when a process accepts them. */
  accept?: boolean;
  /** Also report each connection when it closes, with bytes and lifetime. */
  close?: boolean;
  /** Kernel-side filters. */
  filter?: ConnectFilter;
  /** Ring buffer size in bytes, a power of two (default 4 MiB). */
  ringBytes?: number;
}

/** A hook set `auto` could not use, and why. */
export interface SkippedHook {
  /** The hook set. */
  hook: ConnectHook;
  /** Why, in one line. */
  reason: string;
}

/** The order `auto` tries: what production kernels allow first. */
const AUTO_ORDER: readonly ConnectHook[] = ["kprobe", "fentry", "tracepoint"];

/** The programs of each hook set: [attempt begins/returns, accept returns]. */
const HOOK_PROGRAMS: Record<ConnectHook, { connect: string[]; accept: string[] }> = {
  kprobe: {
    connect: ["ct_kprobe_v4", "ct_kretprobe_v4", "ct_kprobe_v6", "ct_kretprobe_v6"],
    accept: ["ct_kretprobe_accept"],
  },
  fentry: {
    connect: ["ct_fentry_v4", "ct_fexit_v4", "ct_fentry_v6", "ct_fexit_v6"],
    accept: ["ct_fexit_accept"],
  },
  tracepoint: {
    connect: ["ct_sys_enter_connect", "ct_sys_exit_connect"],
    accept: ["ct_sys_exit_accept4", "ct_sys_exit_accept"],
  },
};

/** The program every hook set shares: how attempts end. */
const STATE_PROGRAM = "ct_state";

/**
 * The programs a hook set loads, in attach order.
 *
 * @example
 * ```ts
 * import { connectPrograms } from "@belt/belt";
 * console.log(connectPrograms("kprobe", { accept: false, close: false }));
 * ```
 */
export function connectPrograms(
  hook: ConnectHook,
  want: { accept: boolean; close: boolean },
): string[] {
  const set = HOOK_PROGRAMS[hook];
  return [STATE_PROGRAM, ...set.connect, ...(want.accept || want.close ? set.accept : [])];
}

function parseHook(hook: string): ConnectHook | "auto" {
  if (hook === "auto" || (AUTO_ORDER as readonly string[]).includes(hook)) {
    return hook as ConnectHook | "auto";
  }
  throw new BeltError(`--hook '${hook}' is not a hook`, {
    hint: "use auto, kprobe, fentry or tracepoint; see `belt trace connect --help`",
  });
}

/**
 * Traces TCP connection attempts (and accepts, and closes) in the kernel.
 *
 * @example Print every refused connection for ten seconds
 * ```ts ignore
 * import { ConnectTracer } from "@belt/belt";
 * using tracer = ConnectTracer.open({ filter: { outcomes: ["refused"] } });
 * console.log("hook:", tracer.hook);
 * setTimeout(() => tracer.close(), 10_000);
 * for await (const e of tracer.events()) console.log(e.comm, e.dst, e.dport);
 * ```
 */
export class ConnectTracer implements Disposable {
  /** The hook set in use. */
  readonly hook: ConnectHook;
  /** Hook sets `auto` tried first and could not use. */
  readonly skipped: SkippedHook[];
  readonly #obj: BpfObject;
  readonly #ring: RingBuffer;
  readonly #offsetNs = monotonicToRealtimeNs();
  #closed = false;

  private constructor(hook: ConnectHook, skipped: SkippedHook[], obj: BpfObject) {
    this.hook = hook;
    this.skipped = skipped;
    this.#obj = obj;
    this.#ring = RingBuffer.open(obj.map("events"), {
      lostCounter: obj.map("belt_events_lost"),
      pollMs: 100,
    });
  }

  /**
   * Loads and attaches the tracer. Throws a BeltError for a bad filter, and
   * NotSupportedError when the hook asked for (or, with auto, every hook)
   * cannot work on this kernel; nothing stays attached after a failure.
   *
   * @example
   * ```ts ignore
   * import { ConnectTracer } from "@belt/belt";
   * const tracer = ConnectTracer.open({ hook: "tracepoint", accept: true });
   * ```
   */
  static open(options: ConnectTracerOptions = {}): ConnectTracer {
    const filter = packConnectFilter(options.filter ?? {}); // bad input fails before any load
    const wanted = parseHook(options.hook ?? "auto");
    const want = { accept: options.accept ?? false, close: options.close ?? false };
    const order = wanted === "auto" ? AUTO_ORDER : [wanted];
    const skipped: SkippedHook[] = [];
    for (const hook of order) {
      try {
        const obj = loadAndAttach(hook, want, filter, options.ringBytes);
        return new ConnectTracer(hook, skipped, obj);
      } catch (e) {
        if (!(e instanceof NotSupportedError)) throw e;
        if (wanted !== "auto") {
          throw new NotSupportedError(
            `${hook} hooks (${e.feature})`,
            e.kernel,
            e.code,
            "use --hook auto, which falls back to what this kernel has",
          );
        }
        skipped.push({ hook, reason: e.message });
      }
    }
    throw new NotSupportedError(
      "tracing TCP connects",
      kernelRelease(),
      95,
      skipped.map((s) => `${s.hook}: ${s.reason}`).join("; "),
    );
  }

  /** Events the kernel could not hand over because the ring buffer was full. */
  get lost(): bigint {
    return this.#ring.lost;
  }

  /** Events read so far. */
  get received(): number {
    return this.#ring.received;
  }

  /** The events waiting now, without blocking. */
  drain(): ConnectEvent[] {
    return decodeConnectEvents(this.#ring.drain(), this.#offsetNs);
  }

  /** Events as they come, in the batches the ring buffer hands over, until close(). */
  async *batches(): AsyncIterableIterator<ConnectEvent[]> {
    for await (const batch of this.#ring.batches()) {
      yield decodeConnectEvents(batch, this.#offsetNs);
      if (this.#closed) return;
    }
  }

  /** Events as they come, one by one, until close(). */
  async *events(): AsyncIterableIterator<ConnectEvent> {
    for await (const batch of this.batches()) yield* batch;
  }

  /** Detaches every program and frees the maps. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring.close();
    this.#obj.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function loadAndAttach(
  hook: ConnectHook,
  want: { accept: boolean; close: boolean },
  filter: Uint8Array,
  ringBytes: number | undefined,
): BpfObject {
  const programs = connectPrograms(hook, want);
  if (hook === "tracepoint") ensureTracefs();
  const obj = BpfObject.open(connectObject, {
    name: "belt_connect",
    globals: {
      hook: CONNECT.hooks[hook],
      want_accept: want.accept ? 1 : 0,
      want_close: want.close ? 1 : 0,
      filter,
    },
  });
  try {
    if (ringBytes !== undefined) obj.map("events").maxEntries = ringBytes;
    for (const prog of obj.programs.values()) prog.autoload = programs.includes(prog.name);
    obj.load();
    for (const name of programs) attachBySection(obj.program(name)); // links close with obj
    return obj;
  } catch (e) {
    obj.close(); // detaches whatever attached before the failure
    throw e;
  }
}

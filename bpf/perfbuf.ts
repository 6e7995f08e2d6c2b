/**
 * Reads a BPF_MAP_TYPE_PERF_EVENT_ARRAY through libbpf's perf buffer, for
 * kernels older than 5.8 that have no ring buffer. libbpf calls back on the
 * JS thread during consume(); lost samples are counted by the kernel and
 * reported through `lost`.
 *
 * @module
 */
import { errno, libbpf } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { MapType } from "./map.ts";
import type { BpfMap } from "./map.ts";
import type { Closable } from "./link.ts";
import { Waiter } from "./wait.ts";

// void (*perf_buffer_sample_fn)(void *ctx, int cpu, void *data, __u32 size)
const SAMPLE_FN = { parameters: ["pointer", "i32", "pointer", "u32"], result: "void" } as const;
// void (*perf_buffer_lost_fn)(void *ctx, int cpu, __u64 cnt)
const LOST_FN = { parameters: ["pointer", "i32", "u64"], result: "void" } as const;

/**
 * A perf buffer reader: `for await` yields each sample's bytes (a copy).
 *
 * @example
 * ```ts ignore
 * import { PerfBuffer } from "@belt/belt/bpf";
 * const events = PerfBuffer.open(obj.map("events"), 8); // closes with obj
 * for await (const sample of events) console.log(sample.length, events.lost);
 * ```
 */
export class PerfBuffer implements Closable, Disposable, AsyncDisposable {
  #handle: Deno.PointerObject | null;
  readonly #sample: Deno.UnsafeCallback<typeof SAMPLE_FN>;
  readonly #lostCb: Deno.UnsafeCallback<typeof LOST_FN>;
  readonly #waiter: Waiter;
  #queue: Uint8Array[] = [];
  #lost = 0n;
  #received = 0;

  private constructor(map: BpfMap, pagesPerCpu: number) {
    this.#sample = new Deno.UnsafeCallback(
      SAMPLE_FN,
      (_ctx, _cpu, data, size) => {
        if (data) {
          this.#queue.push(
            new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, size).slice(0)),
          );
        }
      },
    );
    this.#lostCb = new Deno.UnsafeCallback(
      LOST_FN,
      (_ctx, _cpu, count) => {
        this.#lost += BigInt(count);
      },
    );
    this.#handle = libbpf().perf_buffer__new(
      map.fd,
      BigInt(pagesPerCpu),
      this.#sample.pointer,
      this.#lostCb.pointer,
      null,
      null,
    );
    if (!this.#handle) {
      const code = errno();
      this.#sample.close();
      this.#lostCb.close();
      throw errorFromErrno(`open perf buffer on map '${map.name}'`, code);
    }
    try {
      this.#waiter = new Waiter([libbpf().perf_buffer__epoll_fd(this.#handle)]);
    } catch (e) {
      libbpf().perf_buffer__free(this.#handle);
      this.#sample.close();
      this.#lostCb.close();
      throw e;
    }
  }

  /** Opens a reader with `pagesPerCpu` (a power of two) pages per CPU; it closes with the map's object. */
  static open(map: BpfMap, pagesPerCpu = 64): PerfBuffer {
    if (map.type !== MapType.PERF_EVENT_ARRAY) {
      throw new BeltError(`map '${map.name}' is not a perf event array (type ${map.type})`);
    }
    return map.adopt(new PerfBuffer(map, pagesPerCpu));
  }

  /** Samples the kernel dropped because the buffer was full. */
  get lost(): bigint {
    return this.#lost;
  }

  /** Samples handed out so far. */
  get received(): number {
    return this.#received;
  }

  /** Copies out every sample available now. */
  drain(): Uint8Array[] {
    if (!this.#handle) return [];
    const rc = libbpf().perf_buffer__consume(this.#handle);
    if (rc < 0) throw errorFromErrno("consume perf buffer", -rc);
    const out = this.#queue;
    this.#queue = [];
    this.#received += out.length;
    return out;
  }

  /** Yields each sample until close(). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      while (this.#handle) {
        const batch = this.drain();
        if (batch.length) yield* batch;
        else await this.#waiter.wait(250);
      }
    } finally {
      await this.#waiter.settled();
    }
  }

  /** Frees the buffer. Idempotent. */
  close(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = null;
    this.#waiter.close();
    libbpf().perf_buffer__free(handle);
    this.#sample.close();
    this.#lostCb.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes and waits for a pending wait to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#waiter.settled();
  }
}

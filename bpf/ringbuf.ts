/**
 * Reads a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) straight from its memory
 * mapping in TypeScript: no libbpf callback per event, no copy but the one
 * handed to you. Waiting happens off the JS thread (epoll), so the event loop
 * never blocks.
 *
 * Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (we
 * write it); page 1 the producer position; then the data area, mapped twice
 * in a row so a record that wraps is still contiguous. Each record has an
 * 8-byte header: length with BUSY (bit 31) and DISCARD (bit 30), then pad.
 *
 * @module
 */
import { errno, libc } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { MapType } from "./map.ts";
import type { BpfMap } from "./map.ts";
import type { Closable } from "./link.ts";
import { u32, u64 } from "./codec.ts";
import type { Codec } from "./codec.ts";
import { Waiter } from "./wait.ts";

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HEADER = 8;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const SC_PAGESIZE = 30;

/** Options of {@linkcode RingBuffer.open}. */
export interface RingBufferOptions {
  /**
   * A per-CPU array whose slot 0 counts reservations that failed in the
   * kernel (belt_events.h declares `belt_events_lost`); read as `lost`.
   */
  lostCounter?: BpfMap;
  /** Longest single wait before re-checking, in ms (default 250). */
  pollMs?: number;
}

let page = 0;
/** The system page size: the ring's pages are mapped in its units. */
function pageSize(): number {
  if (page) return page;
  const size = Number(libc().sysconf(SC_PAGESIZE));
  page = size > 0 ? size : 4096;
  return page;
}

function mapRegion(fd: number, length: number, prot: number, offset: number): Deno.PointerObject {
  const ptr = libc().mmap(null, BigInt(length), prot, MAP_SHARED, fd, BigInt(offset));
  if (!ptr || Deno.UnsafePointer.value(ptr) === 0xffffffffffffffffn) {
    throw errorFromErrno(`mmap ring buffer (fd ${fd})`, errno());
  }
  return ptr;
}

/**
 * A ring buffer reader: `for await` yields each event's bytes (a copy);
 * `drain()` reads what is there now without waiting.
 *
 * @example Print connect events as they come
 * ```ts ignore
 * import { BpfObject, RingBuffer, struct, u32, u16, pad } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("trace.bpf.o"));
 * obj.load();
 * const event = struct({ pid: u32, dport: u16, _pad: pad(2) });
 * const ring = RingBuffer.open(obj.map("events")); // closes with obj
 * for await (const e of ring.decoded(event)) console.log(e.pid, e.dport);
 * ```
 */
export class RingBuffer implements Closable, Disposable, AsyncDisposable {
  readonly #mask: number;
  readonly #consumerPtr: Deno.PointerObject;
  readonly #dataPtr: Deno.PointerObject;
  readonly #consumerPos: BigUint64Array;
  readonly #producerPos: BigUint64Array;
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #size: number;
  readonly #page: number;
  readonly #waiter: Waiter;
  readonly #lostCounter: BpfMap | undefined;
  readonly #pollMs: number;
  #received = 0;
  #closed = false;

  private constructor(fd: number, size: number, options: RingBufferOptions) {
    const page = pageSize();
    this.#page = page;
    this.#size = size;
    this.#mask = size - 1;
    this.#consumerPtr = mapRegion(fd, page, PROT_READ | PROT_WRITE, 0);
    try {
      this.#dataPtr = mapRegion(fd, page + 2 * size, PROT_READ, page);
    } catch (e) {
      libc().munmap(this.#consumerPtr, BigInt(page));
      throw e;
    }
    this.#consumerPos = new BigUint64Array(
      Deno.UnsafePointerView.getArrayBuffer(this.#consumerPtr, 8),
    );
    const area = Deno.UnsafePointerView.getArrayBuffer(this.#dataPtr, page + 2 * size);
    this.#producerPos = new BigUint64Array(area, 0, 1);
    this.#data = new Uint8Array(area, page, 2 * size);
    this.#view = new DataView(area, page, 2 * size);
    try {
      this.#waiter = new Waiter([fd]);
    } catch (e) {
      libc().munmap(this.#consumerPtr, BigInt(page));
      libc().munmap(this.#dataPtr, BigInt(page + 2 * size));
      throw e;
    }
    this.#lostCounter = options.lostCounter;
    this.#pollMs = options.pollMs ?? 250;
  }

  /** Opens a reader on a loaded RINGBUF map; it closes with the map's object. */
  static open(map: BpfMap, options: RingBufferOptions = {}): RingBuffer {
    if (map.type !== MapType.RINGBUF) {
      throw new BeltError(`map '${map.name}' is not a ring buffer (type ${map.type})`, {
        hint: "use PerfBuffer for BPF_MAP_TYPE_PERF_EVENT_ARRAY",
      });
    }
    return map.adopt(new RingBuffer(map.fd, map.maxEntries, options));
  }

  /** Events handed out so far. */
  get received(): number {
    return this.#received;
  }

  /** Events the kernel could not reserve room for (needs `lostCounter`). */
  get lost(): bigint {
    if (!this.#lostCounter) return 0n;
    return this.#lostCounter.typed(u32, u64).getSum(0) ?? 0n;
  }

  /**
   * Calls `onEvent` for each event available now, with a view that is valid
   * only during the call (zero copy; the mapping is read-only: writing
   * through the view crashes the process); returns how many were read.
   */
  consume(
    onEvent: (view: DataView, offset: number, length: number) => void,
    max = Infinity,
  ): number {
    if (this.#closed) return 0;
    let consumer = Number(this.#consumerPos[0]);
    const producer = Number(this.#producerPos[0]);
    let count = 0;
    while (consumer < producer && count < max) {
      const at = consumer & this.#mask;
      const header = this.#view.getUint32(at, true);
      if (header & BUSY) break; // the producer has not committed this record yet
      const length = header & 0x3fffffff; // without BUSY and DISCARD
      if (!(header & DISCARD)) {
        onEvent(this.#view, at + HEADER, length);
        count++;
        if (this.#closed) return count; // the callback closed us: the mapping is gone
      }
      consumer += (length + HEADER + 7) & ~7;
      this.#consumerPos[0] = BigInt(consumer); // publish early: frees room for the producer
    }
    this.#received += count;
    return count;
  }

  /**
   * Copies out every event available now (up to `max`): one copy of the
   * whole span, handed out as views into it (use each view's byteOffset).
   */
  drain(max = Infinity): Uint8Array[] {
    if (this.#closed) return [];
    const first = Number(this.#consumerPos[0]);
    const producer = Number(this.#producerPos[0]);
    const records: number[] = []; // offset, length pairs relative to `first`
    let consumer = first;
    while (consumer < producer && records.length < 2 * max) {
      const header = this.#view.getUint32(consumer & this.#mask, true);
      if (header & BUSY) break; // the producer has not committed this record yet
      const length = header & 0x3fffffff; // without BUSY and DISCARD
      if (!(header & DISCARD)) records.push(consumer - first + HEADER, length);
      consumer += (length + HEADER + 7) & ~7;
    }
    if (consumer === first) return [];
    // The data area is mapped twice in a row, so the span is contiguous even when it wraps.
    const start = first & this.#mask;
    const copy = this.#data.slice(start, start + (consumer - first));
    this.#consumerPos[0] = BigInt(consumer); // only after the copy: the producer may reuse it now
    const out: Uint8Array[] = new Array(records.length / 2);
    for (let i = 0; i < records.length; i += 2) {
      out[i / 2] = copy.subarray(records[i]!, records[i]! + records[i + 1]!);
    }
    this.#received += out.length;
    return out;
  }

  /** Waits until events are available (true), or timeout/close (false). */
  async ready(timeoutMs: number = this.#pollMs): Promise<boolean> {
    if (this.#closed) return false;
    const consumer = Number(this.#consumerPos[0]);
    if (consumer < Number(this.#producerPos[0])) {
      if (!(this.#view.getUint32(consumer & this.#mask, true) & BUSY)) return true;
      // A reservation is still open: sleep a tick rather than spin in microtasks,
      // which would starve timers and I/O until the producer commits.
      await new Promise((resolve) => setTimeout(resolve, 1));
      return false;
    }
    return await this.#waiter.wait(timeoutMs);
  }

  /** Resolves with the next non-empty batch, or null once closed. */
  async #nextBatch(max: number): Promise<Uint8Array[] | null> {
    while (!this.#closed) {
      const batch = this.drain(max);
      if (batch.length) return batch;
      await this.ready();
    }
    await this.#waiter.settled();
    return null;
  }

  /** Yields arrays of events as they arrive (the fastest way to read), until close(). */
  batches(max = 4096): AsyncIterableIterator<Uint8Array[]> {
    return iterate(() => this.#nextBatch(max).then((b) => (b ? [b] : null)));
  }

  /** Yields each event's bytes (a view: mind byteOffset) until close(). */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return iterate(() => this.#nextBatch(4096));
  }

  /** Yields each event decoded with `codec`, until close(). */
  decoded<T>(codec: Codec<T>): AsyncIterableIterator<T> {
    return iterate(async () => {
      const batch = await this.#nextBatch(4096);
      return batch &&
        batch.map((b) => codec.read(new DataView(b.buffer, b.byteOffset, b.byteLength), 0));
    });
  }

  /** Stops iteration and unmaps the ring. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiter.close();
    libc().munmap(this.#consumerPtr, BigInt(this.#page));
    libc().munmap(this.#dataPtr, BigInt(this.#page + 2 * this.#size));
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

/**
 * An async iterator over items that arrive in batches: within a batch each
 * step is one resolved promise (an async generator costs several times more
 * per step). `nextBatch` resolves null when the source ends.
 */
function iterate<T>(nextBatch: () => Promise<T[] | null>): AsyncIterableIterator<T> {
  let batch: T[] = [];
  let index = 0;
  let done = false;
  const it: AsyncIterableIterator<T> = {
    next(): Promise<IteratorResult<T>> {
      if (index < batch.length) return Promise.resolve({ value: batch[index++]!, done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return nextBatch().then((next) => {
        if (!next) {
          done = true;
          return { value: undefined, done: true };
        }
        batch = next;
        index = 1;
        return { value: next[0]!, done: false };
      });
    },
    return(): Promise<IteratorResult<T>> {
      done = true;
      batch = [];
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

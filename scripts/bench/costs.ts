/**
 * Unit costs on this Deno, measured in the same run, that the report uses
 * to explain where time goes: a small typed-array allocation, a per-event
 * slice, one step of an async generator's `yield*` versus a plain async
 * iterator, belt's generic struct decode against a hand-written one, and
 * belt's own dlopen of its libbpf and libc symbol tables.
 */
import { libbpf, libc } from "../../bpf/ffi.ts";
import { struct, u64 } from "../../bpf/mod.ts";

/** Nanoseconds per operation (ms for the dlopen figures). */
export interface Costs {
  /** `new Uint8Array(16)` plus `new DataView(buf.buffer)`. */
  allocNs: number;
  /** `ring.slice(a, a + 16)` from a large buffer. */
  sliceNs: number;
  /** `subarray(a, a + 16)`: a view, no new ArrayBuffer. */
  subarrayNs: number;
  /** One `for await` step over an async generator doing `yield* array`. */
  yieldStarNs: number;
  /** One `for await` step over an iterator returning resolved promises. */
  plainIterNs: number;
  /** `struct({ packets: u64, bytes: u64 }).read`: belt's generic struct decode. */
  structReadNs: number;
  /** A hand-written reader of the same struct (one object literal). */
  handReadNs: number;
  /** First libbpf() call: Deno.dlopen of belt's libbpf table. */
  libbpfOpenMs: number;
  libbpfSymbols: number;
  /** First libc() call: Deno.dlopen of belt's libc table. */
  libcOpenMs: number;
  libcSymbols: number;
}

/** Times belt's first libbpf()/libc() calls; must run before anything else uses them. */
export function measureDlopen(): Pick<
  Costs,
  "libbpfOpenMs" | "libbpfSymbols" | "libcOpenMs" | "libcSymbols"
> {
  const t0 = performance.now();
  const bpf = libbpf();
  const t1 = performance.now();
  const c = libc();
  const t2 = performance.now();
  return {
    libbpfOpenMs: t1 - t0,
    libbpfSymbols: Object.keys(bpf).length,
    libcOpenMs: t2 - t1,
    libcSymbols: Object.keys(c).length,
  };
}

const N = 200_000;

/** Best of three timings of `fn`, in ns per iteration. */
function bestNs(fn: () => void): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return (best * 1e6) / N;
}

async function bestAsyncNs(fn: () => Promise<void>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return (best * 1e6) / N;
}

/** Measures the JS unit costs (about a second). */
export async function measureJsCosts(): Promise<
  Omit<Costs, "libbpfOpenMs" | "libbpfSymbols" | "libcOpenMs" | "libcSymbols">
> {
  let sink = 0;
  const big = new Uint8Array(1 << 20);
  const items = Array.from({ length: 4096 }, () => new Uint8Array(16));
  const allocNs = bestNs(() => {
    for (let i = 0; i < N; i++) {
      const b = new Uint8Array(16);
      new DataView(b.buffer).setUint32(0, i, true);
      sink += b[0]!;
    }
  });
  const sliceNs = bestNs(() => {
    for (let i = 0; i < N; i++) {
      sink += big.slice((i * 24) & 0xfff00, ((i * 24) & 0xfff00) + 16)[0]!;
    }
  });
  const subarrayNs = bestNs(() => {
    for (let i = 0; i < N; i++) {
      sink += big.subarray((i * 24) & 0xfff00, ((i * 24) & 0xfff00) + 16)[0]!;
    }
  });
  async function* generator() {
    for (let i = 0; i < N; i += items.length) yield* items;
  }
  const yieldStarNs = await bestAsyncNs(async () => {
    let n = 0;
    for await (const e of generator()) {
      sink += e.length;
      if (++n >= N) break;
    }
  });
  const plain = (): AsyncIterable<Uint8Array> => {
    let i = 0;
    return {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          Promise.resolve(
            i < N
              ? { value: items[i++ & 4095]!, done: false as const }
              : { value: undefined, done: true as const },
          ),
      }),
    };
  };
  const plainIterNs = await bestAsyncNs(async () => {
    for await (const e of plain()) sink += e.length;
  });
  const value = new DataView(new ArrayBuffer(16));
  const generic = struct({ packets: u64, bytes: u64 });
  const kept: unknown[] = new Array(1024); // results escape, so V8 cannot drop the allocations
  const structReadNs = bestNs(() => {
    for (let i = 0; i < N; i++) kept[i & 1023] = generic.read(value, 0);
  });
  const hand = (v: DataView, o: number) => ({
    packets: v.getBigUint64(o, true),
    bytes: v.getBigUint64(o + 8, true),
  });
  const handReadNs = bestNs(() => {
    for (let i = 0; i < N; i++) kept[i & 1023] = hand(value, 0);
  });
  sink += kept.length;
  if (sink < 0) console.log(sink); // keep the work observable
  return { allocNs, sliceNs, subarrayNs, yieldStarNs, plainIterNs, structReadNs, handReadNs };
}

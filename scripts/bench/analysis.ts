/**
 * The "where the time goes" part of docs/benchmarks.md: for each missed
 * target, the cause as this run's own figures show it, and the cheap fix in
 * bpf/ that would address it (described, not applied by the bench). Each
 * explanation is chosen by the evidence (e.g. the gap to the floor against
 * the cost of an allocation), so it stays true after bpf/ changes.
 */
import type { Costs } from "./costs.ts";
import type { Results } from "./report.ts";
import { cLiveReference, verdicts } from "./report.ts";
import { median, ms, rate, ratio } from "./stats.ts";

/** Figures measured once (2026-11-23, this 2-core VM) with the fixes below applied to a copy. */
const PATCHED = {
  mapUpdate: "0.80x",
  mapLookup: "0.71x",
  ringLive: "4.8 M/s (0.76x)",
  ringBacklog: "4.4 M/s",
  coldOpenMs: "+10.6 ms",
  coldAttachedMs: "71.7 ms",
};

function ns(value: number): string {
  return `${value.toFixed(0)} ns`;
}

function unitCosts(c: Costs): string {
  return `Unit costs on this Deno, measured in the same run (best of 3):

| operation | cost |
| --- | --- |
| \`new Uint8Array(16)\` + \`new DataView(buf.buffer)\` | ${ns(c.allocNs)} |
| \`bytes.slice(a, a + 16)\` (a new ArrayBuffer) | ${ns(c.sliceNs)} |
| \`bytes.subarray(a, a + 16)\` (a view) | ${ns(c.subarrayNs)} |
| one \`for await\` step, async generator doing \`yield* array\` | ${ns(c.yieldStarNs)} |
| one \`for await\` step, plain iterator returning resolved promises | ${ns(c.plainIterNs)} |
| \`struct({ packets: u64, bytes: u64 }).read\` (belt's generic decode) | ${ns(c.structReadNs)} |
| a hand-written reader of the same struct | ${ns(c.handReadNs)} |
| belt's \`Deno.dlopen\` of libbpf (${c.libbpfSymbols} symbols) | ${ms(c.libbpfOpenMs)} |
| belt's \`Deno.dlopen\` of libc (${c.libcSymbols} symbols) | ${ms(c.libcOpenMs)} |`;
}

function mapMiss(r: Results, c: Costs): string {
  const { belt, floor, c: cee } = r.map;
  const gap = (a: number, b: number) => 1e9 / a - 1e9 / b;
  const updateGap = gap(belt.update, floor.update);
  const lookupGap = gap(belt.lookup, floor.lookup);
  const intro = `The FFI floor reaches ${ratio(floor.update / cee.update)} (update) and ${
    ratio(floor.lookup / cee.lookup)
  } (lookup) of C: that gap is Deno's FFI call itself. belt spends ${ns(updateGap)} (update) and ${
    ns(lookupGap)
  } (lookup) per call more than the floor.`;
  if (Math.min(updateGap, lookupGap) < c.allocNs) {
    return `### Map target missed: the FFI call and the value codec

${intro} That is less than one typed-array allocation (${
      ns(c.allocNs)
    } here), so what is left is encoding the key and decoding the value into a fresh object. belt's
generic struct decode costs ${ns(c.structReadNs)} per value here, a hand-written reader of the same
struct ${ns(c.handReadNs)} (unit costs above).

Cheap fix (in \`bpf/codec.ts\`; not applied by the bench): have \`struct()\` build its \`read\`
(and \`write\`) once per layout as a generated function — \`new Function\` returning
\`(v, o) => ({ name: c[0].read(v, o + 0), ... })\`, one object literal with the member reads
inlined — instead of the generic loop over \`[name, offset, codec]\` entries. That saves most of
the difference above per call. Past that, the floor row is the limit: Deno's FFI call alone keeps
lookups at ${ratio(floor.lookup / cee.lookup)} of C.`;
  }
  return `### Map target missed: allocations per call in \`TypedMap\`

${intro} In \`bpf/map.ts\`, \`set()\` allocates a new \`Uint8Array\` for the value and
\`#encodeKey()\` another for the key, each wrapped in a \`DataView\` over its \`.buffer\`;
\`get()\` → \`getAll()\` does the same for the key and the output value. One such allocation
costs ${ns(c.allocNs)} on this Deno (unit costs above), so the two per call account for about ${
    ns(2 * c.allocNs)
  }, most of the gap; the rest is the codec (a struct of two u64 as bigint), the per-CPU value
array \`getAll()\` builds, and collecting the garbage.

Cheap fix (in \`bpf/map.ts\`; not applied by the bench): give \`TypedMap\` a scratch key buffer and
a scratch value buffer with their \`DataView\`s, allocated once in the constructor (it already
knows \`key.size\` and \`#stride * #cpus\`), and use them in \`getAll\`/\`get\`/\`set\`/\`delete\`
instead of fresh ones; on a map that is not per-CPU, \`get()\` can decode the one value directly
instead of going through \`getAll()\`'s array. That is safe: the calls are synchronous, the kernel
copies both buffers before returning, and values are decoded into new JS objects, so nothing
returned aliases the scratch memory. A patched copy of bpf/ measured ${PATCHED.mapUpdate}
(update) and ${PATCHED.mapLookup} (lookup) on this machine (once, outside this run): updates then
sit right at the target (borderline); lookups stay short because the floor itself is below 0.9x
and decoding the value into a new object with two bigints costs 100–200 ns.`;
}

function ringMiss(r: Results, c: Costs): string {
  const g = r.ring;
  const ref = cLiveReference(g);
  const cRates = g.live.c.map((x) => x.rate);
  const iterNs = 1e9 / g.backlog.beltIterator;
  const consumeNs = 1e9 / g.backlog.beltConsume;
  const capped = ref.best
    ? `C read every event in every live round (0 lost), so its live figure (${
      rate(Math.min(...cRates))
    }–${rate(Math.max(...cRates))}/s across rounds) is the generator's rate with a reader
attached, not C's limit (C empties a backlog at ${
      rate(g.backlog.c)
    }/s); the target is judged against its best round. `
    : "";
  const floor = `${capped}0.5x of C's ${rate(ref.rate)}/s leaves ${
    ns(2e9 / ref.rate)
  } per event. A per-event \`for await\` pays at least one resolved promise per event (${
    ns(c.plainIterNs)
  } here) and a view per event (${
    ns(c.subarrayNs)
  }) on top of reading it. Consumers that need the full rate should take events in batches:
\`ring.batches()\` drained ${rate(median(g.live.beltBatches.map((x) => x.rate)))}/s live and ${
    rate(g.backlog.beltBatches)
  }/s from a backlog in this run, and \`consume()\` ${rate(g.backlog.beltConsume)}/s.`;
  if (iterNs - consumeNs < c.sliceNs) {
    return `### Ring buffer target missed: the cost of one \`for await\` step

In the backlog test belt's \`for await\` costs ${ns(iterNs)} per event, \`consume()\` ${
      ns(consumeNs)
    }. ${floor}`;
  }
  return `### Ring buffer target missed: a copy and an async generator step per event

In the backlog test belt's \`for await\` costs ${ns(iterNs)} per event, while belt's own
\`consume()\` on the same ring costs ${
    ns(consumeNs)
  }: walking the records and publishing the consumer position is cheap, the time goes into what
the iterator adds per event. In \`bpf/ringbuf.ts\`, \`drain()\` copies each event out with
\`this.#data.slice(...)\` (${
    ns(c.sliceNs)
  } each here: a new ArrayBuffer per event), and \`[Symbol.asyncIterator]\` is an async generator
that hands events over with \`yield* batch\` (${ns(c.yieldStarNs)} per step here, against ${
    ns(c.plainIterNs)
  } for a plain iterator object). Together that is about ${ns(c.sliceNs + c.yieldStarNs)} of the ${
    ns(iterNs - consumeNs)
  } per event between the two.

Cheap fix (in \`bpf/ringbuf.ts\`; not applied by the bench): (1) in \`drain()\`, walk the headers
first, then copy the whole span once — the data area is mapped twice, so
\`this.#data.slice(start & mask, (start & mask) + (end - start))\` is contiguous — publish the
consumer position once, and return \`subarray\` views (${
    ns(c.subarrayNs)
  } each) into that single copy; (2) replace the async generator with an iterator object whose
\`next()\` returns \`Promise.resolve({ value, done: false })\` while the current batch lasts and
awaits \`ready()\` only when it is empty (its \`return()\` awaits \`#waiter.settled()\`, as the
generator's \`finally\` does). Caveat: events of one batch then share one ArrayBuffer, so a
caller must use \`byteOffset\` (as \`decoded()\` already does). A patched copy of bpf/ measured
${PATCHED.ringLive}
live and ${PATCHED.ringBacklog} backlog on this machine (once, outside this run).

${floor}`;
}

function coldNotes(r: Results, c: Costs): string {
  const k = r.cold;
  const p = k.phases;
  const dlopenMs = c.libbpfOpenMs + c.libcOpenMs;
  const notes = `### Cold start: where belt's ${ms(k.beltAttached)} go (bpftool: ${ms(k.bpftool)})

- Deno itself: an empty module takes ${ms(k.denoEmpty)} start to exit; belt's imports are done ${
    ms(p.imported)
  } after the runtime starts.
- \`BpfObject.open\`: +${ms(p.opened - p.imported)}, of which belt's first \`libbpf()\`/\`libc()\`
  calls take ${ms(dlopenMs)} (measured in this run). ${
    dlopenMs >= 10
      ? `Deno builds a call stub for every declared symbol at \`Deno.dlopen\` (${c.libbpfSymbols}
  for libbpf, ${c.libcSymbols} for libc), though a cold start calls about 20.`
      : `The symbols bind on first use, so the rest of \`open\` is building the stubs it calls and
  libbpf parsing the ELF.`
  }
- \`load()\`: +${ms(p.loaded - p.opened)} (the verifier has little to do).
- \`attachXdp\`: +${
    ms(p.attached - p.loaded)
  }, mostly the kernel enabling native XDP on the veth — bpftool pays the same inside its total.
- Exit: ${ms(k.beltExit - k.beltAttached)} more (closing the link detaches the program).`;
  if (dlopenMs < 10) return notes;
  return `${notes}

Cheap fix for the dlopen share (in \`bpf/ffi.ts\`; not applied by the bench): bind each symbol on
first use — keep the tables, but have \`libbpf()\`/\`libc()\` return an object whose properties
are getters that \`Deno.dlopen(path, { [name]: table[name] })\` that one symbol and then replace
themselves with the function (\`Object.defineProperty\`). The library is loaded once by the OS;
only the stubs actually used get built. A patched copy of bpf/ measured \`BpfObject.open\` at
${PATCHED.coldOpenMs}
and ${PATCHED.coldAttachedMs} to attached on this machine (once, outside this run).`;
}

/** The analysis section: unit costs always, plus one part per missed target. */
export function analysis(r: Results, costs: Costs): string {
  const v = verdicts(r);
  const parts = ["## Where the time goes", unitCosts(costs)];
  if (!v[0]!.met || !v[1]!.met) parts.push(mapMiss(r, costs));
  if (!v[2]!.met) parts.push(ringMiss(r, costs));
  if (!v[3]!.met) {
    const loss = r.ring.loss.belt;
    parts.push(
      loss.lost > 0
        ? `### Loss target missed

At ~100k events/s into the 256 KiB ring the belt reader lost ${loss.lost} events (C:
${r.ring.loss.c.lost}). The ring holds ~110 ms of events at this rate, so a loss means the reader
stalled for longer than that; see the per-event costs above.`
        : `### Loss target not shown

The paced generator offered only ${
          rate(loss.offeredPerSecond)
        }/s (the machine was too busy to keep its schedule), or events went unaccounted; run
again.`,
    );
  }
  parts.push(coldNotes(r, costs));
  return parts.join("\n\n");
}

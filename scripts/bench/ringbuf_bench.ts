/**
 * Ring buffer throughput and loss: belt's `for await` reader (and its
 * zero-copy `consume()` as a floor) against a libbpf consumer
 * (native/ring_consume.c), fed by the same generator (native/ring_produce.c,
 * BPF_PROG_TEST_RUN with repeat on the pinned TC producers), in the same run.
 *
 * - live: the generator runs flat out for a few seconds while one consumer
 *   drains; events/s read from the first event to the last.
 * - backlog: the ring is filled first, then a consumer empties it: the
 *   consumer's own speed, with no producer competing for the CPU.
 * - loss: the generator is paced (batches of 1000 runs every 10 ms, ~100k/s)
 *   into the small ring; received + lost must equal produced, lost must be 0.
 */
import type { BpfObject } from "../../bpf/mod.ts";
import { RingBuffer, u32, u64 } from "../../bpf/mod.ts";
import type { Built } from "./compile.ts";
import { spawnJson } from "./proc.ts";
import { onCpu, pinSelf, placement } from "./affinity.ts";
import { median, perSecond } from "./stats.ts";

/** Where the bench object's ring buffer parts are pinned. */
export interface RingPins {
  ringBig: string;
  ringSmall: string;
  produceBig: string;
  produceSmall: string;
}

/** What one consumer read. */
export interface Drained {
  received: number;
  disorder: number;
  /** Nanoseconds from the first event read to the last. */
  ns: number;
}

/** One consumer's figures in the loss check. */
export interface LossSide {
  produced: number;
  received: number;
  lost: number;
  offeredPerSecond: number;
  seconds: number;
  disorder: number;
}

/** One live round of one consumer. */
export interface LiveRound {
  produced: number;
  received: number;
  lost: number;
  /** Events/s the consumer read, first event to last. */
  rate: number;
  /** Runs/s of the generator (reservations tried). */
  producerRate: number;
}

/** Results of the ring buffer bench (rates are medians over rounds). */
export interface RingResult {
  live: {
    seconds: number;
    rounds: number;
    belt: LiveRound[];
    beltBatches: LiveRound[];
    c: LiveRound[];
  };
  backlog: {
    events: number;
    rounds: number;
    beltIterator: number;
    beltBatches: number;
    beltConsume: number;
    c: number;
  };
  loss: { belt: LossSide; c: LossSide };
  disorder: number;
}

interface Produced {
  runs: number;
  calls: number;
  ns: number;
}

interface CConsumed {
  received: number;
  disorder: number;
  firstNs: number;
  lastNs: number;
}

/** Low 32 bits of struct bench_event.seq: enough to see order, no BigInt. */
function seqOf(bytes: Uint8Array): number {
  return (bytes[0]! | bytes[1]! << 8 | bytes[2]! << 16 | bytes[3]! << 24) >>> 0;
}

/**
 * Reads with `for await` until `expected` (known once the producer is done)
 * events came, or `hardMs` passed.
 */
async function beltIterate(
  ring: RingBuffer,
  expected: Promise<number>,
  hardMs: number,
): Promise<Drained> {
  let n = 0, disorder = 0, prev = 0, first = 0, last = 0;
  let target = Infinity;
  const hard = setTimeout(() => ring.close(), hardMs);
  expected.then((e) => {
    target = e;
    if (n >= e) ring.close(); // caught up already: wake the pending wait
  }, () => ring.close());
  try {
    for await (const e of ring) {
      const seq = seqOf(e);
      if (n === 0) first = performance.now();
      else if (seq <= prev) disorder++;
      prev = seq;
      if (++n >= target) {
        last = performance.now();
        break;
      }
      if ((n & 1023) === 0) last = performance.now();
    }
  } finally {
    clearTimeout(hard);
  }
  return { received: n, disorder, ns: (last - first) * 1e6 };
}

/** As beltIterate, with `for await (const batch of ring.batches())`. */
async function beltBatches(
  ring: RingBuffer,
  expected: Promise<number>,
  hardMs: number,
): Promise<Drained> {
  let n = 0, disorder = 0, prev = 0, first = 0, last = 0;
  let target = Infinity;
  const hard = setTimeout(() => ring.close(), hardMs);
  expected.then((e) => {
    target = e;
    if (n >= e) ring.close();
  }, () => ring.close());
  try {
    outer: for await (const batch of ring.batches()) {
      for (const e of batch) {
        const seq = seqOf(e);
        if (n === 0) first = performance.now();
        else if (seq <= prev) disorder++;
        prev = seq;
        if (++n >= target) {
          last = performance.now();
          break outer;
        }
      }
      last = performance.now();
    }
  } finally {
    clearTimeout(hard);
  }
  return { received: n, disorder, ns: (last - first) * 1e6 };
}

/** Reads a filled ring with the zero-copy consume() callback. */
function beltConsume(ring: RingBuffer, expected: number, hardMs: number): Drained {
  let n = 0, disorder = 0, prev = 0;
  const t0 = performance.now();
  const deadline = t0 + hardMs;
  let first = 0;
  const onEvent = (view: DataView, offset: number) => {
    const seq = view.getUint32(offset, true);
    if (n === 0) first = performance.now();
    else if (seq <= prev) disorder++;
    prev = seq;
    n++;
  };
  while (n < expected && performance.now() < deadline) ring.consume(onEvent);
  return { received: n, disorder, ns: (performance.now() - first) * 1e6 };
}

const cpus = placement();

function produce(
  built: Built,
  prog: string,
  batch: number,
  intervalUs: number,
  maxRuns: number,
  maxSeconds: number,
): Promise<Produced> {
  const cmd = [built.ringProduce, prog, batch, intervalUs, maxRuns, maxSeconds].map(String);
  return spawnJson<Produced>(onCpu(cmd, cpus?.producer), (maxSeconds + 10) * 1000, false).result;
}

function cConsumer(
  built: Built,
  ring: string,
  mode: "poll" | "drain",
  expected: number,
  maxSeconds: number,
) {
  const cmd = [built.ringConsume, ring, mode, expected, maxSeconds, 300].map(String);
  const child = spawnJson<CConsumed>(onCpu(cmd, cpus?.consumer), (maxSeconds + 10) * 1000, true);
  return {
    ready: child.ready,
    result: child.result.then((r): Drained => ({
      received: r.received,
      disorder: r.disorder,
      ns: r.lastNs - r.firstNs,
    })),
  };
}

/**
 * Runs the three ring buffer phases on an object loaded from bench.bpf.c,
 * with this process (belt's consumer) on the consumer CPU meanwhile.
 */
export async function ringBench(
  obj: BpfObject,
  pins: RingPins,
  built: Built,
  options?: RingOptions,
): Promise<RingResult> {
  const restore = await pinSelf(cpus?.consumer);
  try {
    return await phases(obj, pins, built, options);
  } finally {
    await restore();
  }
}

/** Durations and sizes of the ring buffer phases. */
export interface RingOptions {
  liveSeconds: number;
  liveRounds: number;
  backlogEvents: number;
  backlogRounds: number;
  lossSeconds: number;
}

const DEFAULTS: RingOptions = {
  liveSeconds: 2,
  liveRounds: 5,
  backlogEvents: 500_000,
  backlogRounds: 3,
  lossSeconds: 3,
};

async function phases(
  obj: BpfObject,
  pins: RingPins,
  built: Built,
  options: RingOptions = DEFAULTS,
): Promise<RingResult> {
  const lostMap = obj.map("belt_events_lost");
  const lost = () => Number(lostMap.typed(u32, u64).getSum(0) ?? 0n);
  const open = (name: string) => RingBuffer.open(obj.map(name), { lostCounter: lostMap });
  let disorder = 0;
  const check = (what: string, d: Drained, expected?: number): Drained => {
    disorder += d.disorder;
    if (expected !== undefined && d.received !== expected) {
      throw new Error(`${what}: read ${d.received} of ${expected} events`);
    }
    return d;
  };

  // Phase 1: live drain, generator flat out.
  const live = { belt: [] as LiveRound[], beltBatches: [] as LiveRound[], c: [] as LiveRound[] };
  const { liveSeconds } = options;
  const hardMs = (liveSeconds + 8) * 1000;
  const liveRound = (p: Produced, d: Drained, lostEvents: number): LiveRound => ({
    produced: p.runs,
    received: d.received,
    lost: lostEvents,
    rate: perSecond(d.received, d.ns),
    producerRate: perSecond(p.runs, p.ns),
  });
  const flatOut = () => produce(built, pins.produceBig, 10_000, 0, 200_000_000, liveSeconds);
  for (let round = 0; round < options.liveRounds; round++) {
    {
      await using ring = open("ring_big");
      ring.drain(); // leftovers of an earlier phase
      const lost0 = lost();
      const producer = flatOut();
      const expected = producer.then((p) => p.runs - (lost() - lost0));
      const d = check("belt live", await beltIterate(ring, expected, hardMs), await expected);
      live.belt.push(liveRound(await producer, d, lost() - lost0));
    }
    {
      await using ring = open("ring_big");
      ring.drain();
      const lost0 = lost();
      const producer = flatOut();
      const expected = producer.then((p) => p.runs - (lost() - lost0));
      const d = check(
        "belt batches live",
        await beltBatches(ring, expected, hardMs),
        await expected,
      );
      live.beltBatches.push(liveRound(await producer, d, lost() - lost0));
    }
    {
      const lost0 = lost();
      const consumer = cConsumer(built, pins.ringBig, "poll", 0, liveSeconds + 8);
      await consumer.ready;
      const p = await flatOut();
      const d = check("C live", await consumer.result, p.runs - (lost() - lost0));
      live.c.push(liveRound(p, d, lost() - lost0));
    }
  }

  // Phase 2: backlog drain, ring filled first.
  const backlog = {
    iterator: [] as number[],
    batches: [] as number[],
    consume: [] as number[],
    c: [] as number[],
  };
  const events = options.backlogEvents;
  const fill = async () => {
    const lost0 = lost();
    const p = await produce(built, pins.produceBig, 10_000, 0, events, 10);
    if (p.runs !== events || lost() !== lost0) {
      throw new Error(`backlog fill: ${p.runs} runs, ${lost() - lost0} lost (ring too small?)`);
    }
  };
  for (let round = 0; round < options.backlogRounds; round++) {
    {
      await using ring = open("ring_big");
      ring.drain();
      await fill();
      const d = check(
        "belt backlog",
        await beltIterate(ring, Promise.resolve(events), 20_000),
        events,
      );
      backlog.iterator.push(perSecond(d.received, d.ns));
    }
    {
      await using ring = open("ring_big");
      await fill();
      const d = check(
        "belt batches backlog",
        await beltBatches(ring, Promise.resolve(events), 20_000),
        events,
      );
      backlog.batches.push(perSecond(d.received, d.ns));
    }
    {
      await using ring = open("ring_big");
      await fill();
      const d = check("belt consume", beltConsume(ring, events, 20_000), events);
      backlog.consume.push(perSecond(d.received, d.ns));
    }
    {
      await fill();
      const consumer = cConsumer(built, pins.ringBig, "drain", events, 20);
      await consumer.ready;
      const d = check("C backlog", await consumer.result, events);
      backlog.c.push(perSecond(d.received, d.ns));
    }
  }

  // Phase 3: loss at ~100k events/s into the small ring.
  const { lossSeconds } = options;
  const paced = () =>
    produce(built, pins.produceSmall, 1000, 10_000, lossSeconds * 100_000, lossSeconds + 2);
  const lossSide = (p: Produced, d: Drained, lostEvents: number): LossSide => ({
    produced: p.runs,
    received: d.received,
    lost: lostEvents,
    offeredPerSecond: perSecond(p.runs, p.ns),
    seconds: p.ns / 1e9,
    disorder: d.disorder,
  });
  let beltLoss: LossSide;
  {
    await using ring = open("ring_small");
    ring.drain();
    const lost0 = ring.lost;
    const producer = paced();
    const expected = producer.then((p) => p.runs - Number(ring.lost - lost0));
    const d = await beltIterate(ring, expected, (lossSeconds + 8) * 1000);
    check("belt loss", d);
    beltLoss = lossSide(await producer, d, Number(ring.lost - lost0));
  }
  let cLoss: LossSide;
  {
    const lost0 = lost();
    const consumer = cConsumer(built, pins.ringSmall, "poll", 0, lossSeconds + 8);
    await consumer.ready;
    const p = await paced();
    const d = check("C loss", await consumer.result);
    cLoss = lossSide(p, d, lost() - lost0);
  }

  return {
    live: { seconds: liveSeconds, rounds: options.liveRounds, ...live },
    backlog: {
      events,
      rounds: options.backlogRounds,
      beltIterator: median(backlog.iterator),
      beltBatches: median(backlog.batches),
      beltConsume: median(backlog.consume),
      c: median(backlog.c),
    },
    loss: { belt: beltLoss, c: cLoss },
    disorder,
  };
}

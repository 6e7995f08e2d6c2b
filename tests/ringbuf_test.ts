import { deepEqual, equal, throws } from "node:assert/strict";
import { BpfObject, RingBuffer, struct, u32, u64 } from "../bpf/mod.ts";
import { ringEmitObject } from "./bpf/ring_emit.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";

const event = struct({ seq: u64, len: u64 });
const FRAME = new Uint8Array(60); // the smallest frame a TC test run accepts

function emitter(): { obj: BpfObject; ring: RingBuffer; emit(n: number): void } {
  const obj = BpfObject.open(ringEmitObject);
  obj.load();
  const ring = RingBuffer.open(obj.map("small_ring"), { lostCounter: obj.map("belt_events_lost") });
  return { obj, ring, emit: (n) => void obj.program("emit").testRun(FRAME, { repeat: n }) };
}

kernelTest("RingBuffer hands out every event in order, and counts what did not fit", async () => {
  const { obj, ring, emit } = emitter();
  using _obj = obj;
  emit(100);
  const seqs: bigint[] = [];
  for await (const e of ring.decoded(event)) {
    seqs.push(e.seq);
    equal(e.len, 60n);
    if (seqs.length === 100) break;
  }
  deepEqual(seqs, Array.from({ length: 100 }, (_, i) => BigInt(i)));
  // 4 KiB hold 170 events of 24 bytes: the rest of 1000 are lost, and counted.
  emit(1000);
  const received = ring.drain().length;
  equal(BigInt(received) + ring.lost, 1000n);
  equal(received, 170);
  equal(ring.received, 270);
});

kernelTest("RingBuffer survives close() from inside its own callback, and after", () => {
  const { obj, ring, emit } = emitter();
  using _obj = obj;
  emit(10);
  let seen = 0;
  const n = ring.consume(() => {
    seen++;
    ring.close();
  });
  deepEqual([n, seen], [1, 1]);
  deepEqual(ring.drain(), []);
  return ring.ready().then((ready) => equal(ready, false));
});

kernelTest("a closed object's maps refuse to be used instead of touching freed memory", () => {
  const { obj } = emitter();
  const counter = obj.map(".bss").typed(u32, u64);
  obj.close();
  throws(() => counter.get(0), /BPF object '.*' is closed/);
  throws(() => obj.map(".bss").fd, /is closed/);
  throws(() => obj.program("emit").fd, /is closed/);
});

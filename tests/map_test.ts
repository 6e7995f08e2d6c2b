import { deepEqual, equal, match, throws } from "node:assert/strict";
import {
  BeltError,
  BpfObject,
  openPinnedMap,
  possibleCpuCount,
  struct,
  u32,
  u64,
  UpdateFlag,
} from "../bpf/mod.ts";
import { mapsObject } from "./bpf/maps.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";

const protoCount = struct({ packets: u64, bytes: u64 });

function loaded(): BpfObject {
  const obj = BpfObject.open(mapsObject);
  obj.load();
  return obj;
}

kernelTest("TypedMap get/set/delete/keys round-trip a struct value", () => {
  using obj = loaded();
  const m = obj.map("big_hash").typed(u32, protoCount);
  equal(m.get(7), undefined);
  m.set(7, { packets: 1n, bytes: 60n });
  m.set(8, { packets: 2n, bytes: 120n });
  deepEqual(m.get(7), { packets: 1n, bytes: 60n });
  throws(
    () => m.set(7, { packets: 0n, bytes: 0n }, UpdateFlag.NOEXIST),
    (e: unknown) => (e as BeltError).code === 17,
  );
  deepEqual([...m.keys()].sort(), [7, 8]);
  equal(m.delete(7), true);
  equal(m.delete(7), false);
  m.clear();
  deepEqual([...m.entries()], []);
});

kernelTest("TypedMap batch update and lookup round-trip 100k entries", () => {
  using obj = loaded();
  const m = obj.map("big_hash").typed(u32, protoCount);
  const n = 100_000;
  const entries = Array.from(
    { length: n },
    (_, i) => [i * 3, { packets: BigInt(i), bytes: BigInt(i) * 64n }] as const,
  );
  m.setBatch(entries);
  const back = m.getBatch();
  equal(back.length, n);
  back.sort((a, b) => a[0] - b[0]);
  for (let i = 0; i < n; i += 997) {
    deepEqual(back[i], [i * 3, { packets: BigInt(i), bytes: BigInt(i) * 64n }]);
  }
  deepEqual(m.get(3 * 12345), { packets: 12345n, bytes: 12345n * 64n });
});

kernelTest("per-CPU values are listed per CPU and summed", () => {
  using obj = loaded();
  const m = obj.map("per_cpu").typed(u32, u64);
  const cpus = possibleCpuCount();
  m.set(1, Array.from({ length: cpus }, (_, i) => BigInt(i + 1)));
  deepEqual(m.getAll(1), Array.from({ length: cpus }, (_, i) => BigInt(i + 1)));
  equal(m.getSum(1), BigInt((cpus * (cpus + 1)) / 2));
  // The program counts into CPU slots; test runs land on whichever CPU runs them.
  obj.program("maps_touch").testRun(new Uint8Array(64), { repeat: 10 });
  equal(m.getSum(0), 10n);
});

kernelTest("a full hash map and a wrong key size are clear errors", () => {
  using obj = loaded();
  const tiny = obj.map("tiny_hash").typed(u64, u32);
  for (let i = 0n; i < 4n; i++) tiny.set(i, 1);
  throws(() => tiny.set(99n, 1), (e: unknown) => {
    equal((e as BeltError).message, "map 'tiny_hash' is full (4 entries)");
    return true;
  });
  throws(() => obj.map("tiny_hash").typed(u32, u32), (e: unknown) => {
    equal((e as BeltError).message, "map 'tiny_hash' has 8-byte keys, the key codec is 4 bytes");
    return true;
  });
});

kernelTest("a pinned map is reachable from outside the object and unpins cleanly", () => {
  using obj = loaded();
  const dir = `/sys/fs/bpf/belt-test-${Deno.pid}`;
  try {
    obj.map("tiny_hash").pin(`${dir}/tiny`);
    obj.map("tiny_hash").typed(u64, u32).set(5n, 55);
    using pinned = openPinnedMap(`${dir}/tiny`, u64, u32);
    equal(pinned.map.get(5n), 55);
    obj.map("tiny_hash").unpin(`${dir}/tiny`);
    throws(() => openPinnedMap(`${dir}/tiny`, u64, u32), /open pinned map .*ENOENT/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  throws(() => obj.map("tiny_hash").pin("/tmp/belt-not-bpffs/x"), (e: unknown) => {
    match(
      (e as BeltError).oneLine(),
      /not on a bpf filesystem \(mount it with `mount -t bpf bpf \/sys\/fs\/bpf`/,
    );
    return true;
  });
});

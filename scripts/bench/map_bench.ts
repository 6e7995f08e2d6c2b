/**
 * Map lookup/update throughput: belt's TypedMap.get/set, the raw FFI floor
 * (libbpf through belt's own symbol table, keys and value pre-encoded), and
 * a C loop on libbpf (native/map_ops.c), all on the same pinned hash map in
 * the same run, rounds interleaved so drift hits every side alike.
 */
import type { BpfObject } from "../../bpf/mod.ts";
import { struct, u32, u64 } from "../../bpf/mod.ts";
import { libbpf } from "../../bpf/ffi.ts";
import { spawnJson } from "./proc.ts";
import { median, perSecond } from "./stats.ts";

/** struct bench_value (bench_event.h). */
const benchValue = struct({ packets: u64, bytes: u64 });

/** Operations per second of one side. */
export interface MapSide {
  update: number;
  lookup: number;
}

/** Results of the map bench (medians over rounds). */
export interface MapResult {
  ops: number;
  rounds: number;
  belt: MapSide;
  floor: MapSide;
  c: MapSide;
}

interface CMapResult {
  ops: number;
  updateNs: number;
  lookupNs: number;
  failed: number;
  misses: number;
}

function nowNs(): number {
  return performance.now() * 1e6;
}

function beltRound(obj: BpfObject, ops: number): MapSide {
  const map = obj.map("values").typed(u32, benchValue);
  const value = { packets: 1n, bytes: 2n };
  const t0 = nowNs();
  for (let key = 0; key < ops; key++) map.set(key, value);
  const t1 = nowNs();
  let misses = 0;
  for (let key = 0; key < ops; key++) {
    if (map.get(key) === undefined) misses++;
  }
  const t2 = nowNs();
  if (misses) throw new Error(`belt: ${misses} lookups missed`);
  return { update: perSecond(ops, t1 - t0), lookup: perSecond(ops, t2 - t1) };
}

function floorRound(fd: number, keys: Uint8Array[], ops: number): MapSide {
  const lib = libbpf();
  const value = benchValue.pack({ packets: 1n, bytes: 2n });
  const out = new Uint8Array(benchValue.size);
  const t0 = nowNs();
  for (let i = 0; i < ops; i++) lib.bpf_map_update_elem(fd, keys[i]!, value, 0n);
  const t1 = nowNs();
  let misses = 0;
  for (let i = 0; i < ops; i++) {
    if (lib.bpf_map_lookup_elem(fd, keys[i]!, out) !== 0) misses++;
  }
  const t2 = nowNs();
  if (misses) throw new Error(`floor: ${misses} lookups missed`);
  return { update: perSecond(ops, t1 - t0), lookup: perSecond(ops, t2 - t1) };
}

async function cRound(binary: string, pin: string, ops: number): Promise<MapSide> {
  const r = await spawnJson<CMapResult>([binary, pin, String(ops)], 60_000, false).result;
  if (r.failed || r.misses) throw new Error(`C: ${r.failed} updates failed, ${r.misses} missed`);
  return { update: perSecond(ops, r.updateNs), lookup: perSecond(ops, r.lookupNs) };
}

/** Runs one warm-up round (fills the map, warms the JIT) and `rounds` measured rounds. */
export async function mapBench(
  obj: BpfObject,
  pin: string,
  mapOps: string,
  ops = 100_000,
  rounds = 5,
): Promise<MapResult> {
  if (ops > obj.map("values").maxEntries) throw new Error("ops exceed the map's max_entries");
  const fd = obj.map("values").fd;
  const keys = Array.from({ length: ops }, (_, i) => new Uint8Array(new Uint32Array([i]).buffer));
  const sides: Record<"belt" | "floor" | "c", MapSide[]> = { belt: [], floor: [], c: [] };
  for (let round = -1; round < rounds; round++) {
    const c = await cRound(mapOps, pin, ops);
    const belt = beltRound(obj, ops);
    const floor = floorRound(fd, keys, ops);
    if (round < 0) continue; // warm-up
    sides.c.push(c);
    sides.belt.push(belt);
    sides.floor.push(floor);
  }
  const pick = (list: MapSide[]): MapSide => ({
    update: median(list.map((s) => s.update)),
    lookup: median(list.map((s) => s.lookup)),
  });
  return { ops, rounds, belt: pick(sides.belt), floor: pick(sides.floor), c: pick(sides.c) };
}

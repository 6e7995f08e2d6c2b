/**
 * The bench's own directory on bpffs, /sys/fs/bpf/belt-bench-<pid>/, where
 * the map, rings and producer programs are pinned for the C peers to open
 * with bpf_obj_get. bpffs is mounted first if absent; the directory is
 * removed at the end (registered as a cleanup step), and directories of
 * bench processes that died are removed when the next one starts.
 */
import { isBpffs } from "../../bpf/mod.ts";
import type { BpfObject } from "../../bpf/mod.ts";
import { pinFd } from "../../bpf/link.ts";
import { onCleanup } from "./cleanup.ts";
import { run } from "./proc.ts";

const BPFFS = "/sys/fs/bpf";

/** Makes sure bpffs is mounted and returns the bench's pin directory (created, empty). */
export async function pinDir(): Promise<string> {
  if (!isBpffs(BPFFS)) {
    await run(["mount", "-t", "bpf", "bpf", BPFFS]);
    if (!isBpffs(BPFFS)) throw new Error(`${BPFFS} is still not a bpf filesystem after mount`);
    console.error(`mounted bpffs on ${BPFFS}`);
  }
  await removeStalePins();
  const dir = `${BPFFS}/belt-bench-${Deno.pid}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir);
  onCleanup(`remove ${dir}`, () => Deno.remove(dir, { recursive: true }));
  return dir;
}

/** Removes pin directories of earlier bench processes that died. */
async function removeStalePins(): Promise<void> {
  for await (const entry of Deno.readDir(BPFFS)) {
    const pid = /^belt-bench-(\d+)$/.exec(entry.name)?.[1];
    if (!pid || Number(pid) === Deno.pid) continue;
    const alive = await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
    if (!alive) await Deno.remove(`${BPFFS}/${entry.name}`, { recursive: true }).catch(() => {});
  }
}

/** Where the bench object's parts are pinned. */
export interface BenchPins {
  values: string;
  ringBig: string;
  ringSmall: string;
  produceBig: string;
  produceSmall: string;
}

/** Pins the map, rings and producer programs of the loaded bench object under `dir`. */
export function pinBenchObject(obj: BpfObject, dir: string): BenchPins {
  const pins: BenchPins = {
    values: `${dir}/values`,
    ringBig: `${dir}/ring_big`,
    ringSmall: `${dir}/ring_small`,
    produceBig: `${dir}/produce_big`,
    produceSmall: `${dir}/produce_small`,
  };
  obj.map("values").pin(pins.values);
  obj.map("ring_big").pin(pins.ringBig);
  obj.map("ring_small").pin(pins.ringSmall);
  pinFd(obj.program("produce_big").fd, pins.produceBig, "program produce_big");
  pinFd(obj.program("produce_small").fd, pins.produceSmall, "program produce_small");
  return pins;
}

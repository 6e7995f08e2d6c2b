/**
 * CPU placement for the ring buffer bench: the generator gets one CPU, the
 * consumer (a C process, or this whole Deno process) another, so the two
 * sides never share a core and runs are comparable. No-op on one CPU.
 */
import { run } from "./proc.ts";

/** CPUs for the two sides, or undefined when there are fewer than two. */
export interface Placement {
  producer: number;
  consumer: number;
}

/** Producer on CPU 0, consumer on CPU 1 when the machine has two CPUs or more. */
export function placement(): Placement | undefined {
  return navigator.hardwareConcurrency >= 2 ? { producer: 0, consumer: 1 } : undefined;
}

/** `cmd` started under `taskset -c cpu` (unchanged without a cpu). */
export function onCpu(cmd: string[], cpu: number | undefined): string[] {
  return cpu === undefined ? cmd : ["taskset", "-c", String(cpu), ...cmd];
}

/**
 * Confines every thread of this process to `cpu`; returns the function that
 * restores the previous affinity.
 */
export async function pinSelf(cpu: number | undefined): Promise<() => Promise<void>> {
  if (cpu === undefined) return async () => {};
  const pid = String(Deno.pid);
  const before = /affinity mask: ([0-9a-f,]+)/.exec((await run(["taskset", "-p", pid])).stdout)
    ?.[1];
  if (!before) throw new Error("cannot read this process's CPU affinity");
  await run(["taskset", "-a", "-p", "-c", String(cpu), pid]);
  return async () => {
    await run(["taskset", "-a", "-p", before, pid]);
  };
}

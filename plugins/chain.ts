/**
 * What runs on an interface's TC hooks, in order: TCX programs first (as
 * the kernel runs them), then cls_bpf filters by priority — belt's with
 * their plugin and priority, anyone else's marked foreign.
 *
 * @module
 */
import { interfaceIndex, listTcx, programInfo, readTc } from "../bpf/mod.ts";
import type { TcDirection, TcRecord } from "../bpf/mod.ts";

/** One program of a chain. */
export interface ChainEntry {
  /** ingress or egress. */
  direction: TcDirection;
  /** Position in run order, from 1. */
  position: number;
  /** "tcx" or "cls_bpf". */
  mode: "tcx" | "cls_bpf";
  /** belt priority (cls_bpf: the filter priority), or null for a foreign TCX program. */
  priority: number | null;
  /** The belt plugin that attached it, or "foreign". */
  owner: string;
  /** Program name. */
  program: string;
  /** Program id. */
  progId: number;
  /** TCX link id (0 for cls_bpf). */
  linkId: number;
  /** Runs counted while kernel BPF stats were on. */
  runCount: bigint;
  /** Average ns per run while stats were on (0 if none). */
  avgNs: number;
}

interface TcFilterJson {
  pref?: number;
  kind?: string;
  options?: { prog?: { id?: number; name?: string } };
}

function clsBpfFilters(
  iface: string,
  direction: TcDirection,
): { priority: number; progId: number; name: string }[] {
  const out = new Deno.Command("tc", {
    args: ["-j", "filter", "show", "dev", iface, direction],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  if (!out.success) return [];
  const text = new TextDecoder().decode(out.stdout).trim();
  const filters = (text ? JSON.parse(text) : []) as TcFilterJson[];
  return filters.filter((f) => f.kind === "bpf" && f.options?.prog?.id).map((f) => ({
    priority: f.pref ?? 0,
    progId: f.options!.prog!.id!,
    name: f.options!.prog!.name ?? "?",
  }));
}

function entry(
  direction: TcDirection,
  position: number,
  mode: "tcx" | "cls_bpf",
  progId: number,
  linkId: number,
  record: TcRecord | undefined,
  priority: number | null,
): ChainEntry {
  const info = programInfo(progId);
  return {
    direction,
    position,
    mode,
    priority,
    owner: record ? record.owner : "foreign",
    program: info.name,
    progId,
    linkId,
    runCount: info.runCount,
    avgNs: info.runCount > 0n ? Number(info.runTimeNs / info.runCount) : 0,
  };
}

/**
 * Both directions of an interface's chain, in run order.
 *
 * @example
 * ```ts ignore
 * import { describeChain } from "@belt/belt";
 * for (const e of describeChain("eth0")) console.log(e.direction, e.position, e.owner, e.program);
 * ```
 */
export function describeChain(iface: string): ChainEntry[] {
  const ifindex = interfaceIndex(iface);
  const entries: ChainEntry[] = [];
  for (const direction of ["ingress", "egress"] as const) {
    const records = readTc(ifindex, direction);
    let position = 0;
    for (const { progId, linkId } of listTcx(iface, direction)) {
      const record = records.find((r) => r.mode === "tcx" && r.linkId === linkId);
      entries.push(
        entry(direction, ++position, "tcx", progId, linkId, record, record?.priority ?? null),
      );
    }
    for (const f of clsBpfFilters(iface, direction)) {
      const record = records.find((r) =>
        r.mode === "cls_bpf" && r.priority === f.priority && r.progId === f.progId
      );
      entries.push(entry(direction, ++position, "cls_bpf", f.progId, 0, record, f.priority));
    }
  }
  return entries;
}

/** Output helpers shared by commands: JSON lines and plain tables. */
import { BeltError } from "../bpf/mod.ts";

/** One JSON line; bigints become numbers when exact, strings otherwise. */
export function jsonLine(record: unknown): string {
  return JSON.stringify(
    record,
    (_, v) =>
      typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v,
  );
}

/** A left-aligned table with a header row. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Opens where a pcapng stream goes: a file (created or truncated), or stdout for "-". */
export function openPcapOutput(path: string): Deno.FsFile | typeof Deno.stdout {
  if (path === "-") return Deno.stdout;
  try {
    return Deno.openSync(path, { write: true, create: true, truncate: true });
  } catch (e) {
    throw new BeltError(`cannot write ${path}: ${(e as Error).message.split(":")[0]}`, {
      hint: "give a writable path with --pcap, or - for stdout",
    });
  }
}

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

/** Writes all of `bytes` to stdout (a pipe may take less per call). */
export function writeAllStdout(bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}

/** A left-aligned table with a header row. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Where a pcapng stream goes, and how to take it back if the command fails to start. */
export interface PcapOutput {
  /** The file, or stdout. */
  sink: Deno.FsFile | typeof Deno.stdout;
  /** Empties an existing file: call once the command has started, before writing. */
  begin(): void;
  /** Closes it; deletes the file only if openPcapOutput created it (never /dev/null or a user's file). */
  discard(): void;
}

/**
 * Opens where a pcapng stream goes: a file, or stdout for "-". An existing
 * file is emptied only by begin(), so a command that fails to start leaves
 * it as it was.
 */
export function openPcapOutput(path: string): PcapOutput {
  if (path === "-") return { sink: Deno.stdout, begin() {}, discard() {} };
  let created = true;
  let file: Deno.FsFile;
  try {
    try {
      file = Deno.openSync(path, { write: true, createNew: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      created = false;
      file = Deno.openSync(path, { write: true });
    }
  } catch (e) {
    throw new BeltError(`cannot write ${path}: ${(e as Error).message.split(":")[0]}`, {
      hint: "give a writable path with --pcap, or - for stdout",
    });
  }
  return {
    sink: file,
    begin() {
      // Only a regular file is emptied: /dev/null or a FIFO cannot be (EINVAL) and need not be.
      if (!created && file.statSync().isFile) file.truncateSync(0);
    },
    discard() {
      try {
        file.close();
      } catch {
        // already closed by the writer
      }
      if (created) Deno.removeSync(path);
    },
  };
}

/**
 * Who owns which TC attachment, shared between belt processes: one small
 * JSON file per attachment under /run/belt/tc (tmpfs: gone at reboot). TCX
 * ordering reads it to place a new link among every belt process's links,
 * and `belt chain show` reads it to name plugins and priorities.
 *
 * @module
 */
import { BeltError } from "./errors.ts";
import { pathExists } from "./kernel.ts";

/** One belt TC attachment as recorded. */
export interface TcRecord {
  /** "tcx" or "cls_bpf". */
  mode: "tcx" | "cls_bpf";
  /** "ingress" or "egress". */
  direction: "ingress" | "egress";
  /** Chain priority. */
  priority: number;
  /** Who attached it (a plugin name, or the program name). */
  owner: string;
  /** The program id. */
  progId: number;
  /** The TCX link id (0 for cls_bpf). */
  linkId: number;
  /** The attaching process. */
  pid: number;
  /** cls_bpf: whether this attachment created the clsact qdisc. */
  createdQdisc?: boolean;
  /** Where its objects are pinned when it was made to outlive its process (--pin). */
  pinned?: string;
}

const DIR = Deno.env.get("BELT_STATE_DIR") ?? "/run/belt/tc";

function netnsInode(): number {
  return Number(Deno.statSync("/proc/thread-self/ns/net").ino ?? 0);
}

function prefix(ifindex: number, direction: string): string {
  return `${netnsInode()}-${ifindex}-${direction}-`;
}

/** Whether a process exists. */
export function processAlive(pid: number): boolean {
  return pathExists(`/proc/${pid}`);
}

/** Drops records of TCX links whose process is gone (the kernel dropped the links with it). */
function sweepDeadTcx(): void {
  for (const e of safeReadDir()) {
    try {
      const r = JSON.parse(Deno.readTextFileSync(`${DIR}/${e.name}`)) as TcRecord;
      if (r.mode === "tcx" && !processAlive(r.pid) && !stillPinned(r)) {
        Deno.removeSync(`${DIR}/${e.name}`);
      }
    } catch {
      // being written or removed by another process
    }
  }
}

function safeReadDir(): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(DIR)];
  } catch {
    return [];
  }
}

/** Whether a record's attachment was pinned and its pins are still there. */
export function stillPinned(r: TcRecord): boolean {
  return r.pinned !== undefined && pathExists(r.pinned);
}

/** Records an attachment; returns the function that forgets it. Never throws. */
export function recordTc(ifindex: number, record: TcRecord): () => void {
  const path = recordPath(ifindex, record.direction, record.mode, record.priority);
  try {
    sweepDeadTcx();
    Deno.mkdirSync(DIR, { recursive: true });
    writeAtomically(path, record);
  } catch {
    return () => {}; // not root or no /run: ordering falls back to this process's own links
  }
  return () => {
    try {
      Deno.removeSync(path);
    } catch {
      // already gone
    }
  };
}

/**
 * Marks a recorded attachment as pinned at `pinDir` (or unpinned, with
 * undefined): a pinned one outlives its process and `belt detach`
 * (removeStaleFilters with pinned) removes it.
 *
 * @example
 * ```ts ignore
 * import { markPinned } from "@belt/belt/bpf";
 * markPinned(ifindex, "ingress", "tcx", 10, "/sys/fs/bpf/belt/eth0/count-10");
 * ```
 */
export function markPinned(
  ifindex: number,
  direction: string,
  mode: string,
  priority: number,
  pinDir: string | undefined,
): void {
  const path = recordPath(ifindex, direction, mode, priority);
  let record: TcRecord;
  try {
    record = JSON.parse(Deno.readTextFileSync(path)) as TcRecord;
  } catch {
    throw new BeltError(`cannot record the pinned attachment in ${DIR}`, {
      hint:
        "belt detach finds pins through these records: make the directory writable (or set BELT_STATE_DIR)",
    });
  }
  writeAtomically(path, { ...record, pinned: pinDir });
}

/** Writes a record through a temporary file and a rename, so readers never see half of it. */
function writeAtomically(path: string, record: TcRecord): void {
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(record));
  Deno.renameSync(tmp, path);
}

function recordPath(ifindex: number, direction: string, mode: string, priority: number): string {
  return `${DIR}/${prefix(ifindex, direction)}${mode}-${priority}.json`;
}

/**
 * The recorded belt attachments on an interface and direction (in the
 * calling thread's network namespace), by priority.
 *
 * @example
 * ```ts ignore
 * import { interfaceIndex, readTc } from "@belt/belt/bpf";
 * console.log(readTc(interfaceIndex("eth0"), "ingress").map((r) => [r.priority, r.owner]));
 * ```
 */
export function readTc(ifindex: number, direction: string): TcRecord[] {
  const want = prefix(ifindex, direction);
  const out: TcRecord[] = [];
  for (const e of safeReadDir()) {
    if (!e.name.startsWith(want) || !e.name.endsWith(".json")) continue;
    try {
      out.push(JSON.parse(Deno.readTextFileSync(`${DIR}/${e.name}`)) as TcRecord);
    } catch {
      // a file being written or removed right now
    }
  }
  return out.sort((a, b) => a.priority - b.priority);
}

/** Removes records whose attachment no longer exists (per `alive`). */
export function pruneTc(ifindex: number, direction: string, keep: (r: TcRecord) => boolean): void {
  const want = prefix(ifindex, direction);
  for (const r of readTc(ifindex, direction)) {
    if (!keep(r)) {
      try {
        Deno.removeSync(`${DIR}/${want}${r.mode}-${r.priority}.json`);
      } catch {
        // raced with another process
      }
    }
  }
}

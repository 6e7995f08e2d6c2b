/**
 * Facts about the running kernel and process that decide which attach path
 * belt takes.
 *
 * @module
 */
import { cstr, errno, libc } from "./ffi.ts";
import { BeltError, errnoName } from "./errors.ts";

/**
 * The kernel release, e.g. "6.18.44".
 *
 * @example
 * ```ts
 * import { kernelRelease } from "@belt/belt/bpf";
 * console.log(kernelRelease());
 * ```
 */
export function kernelRelease(): string {
  return Deno.osRelease();
}

/**
 * The kernel version as [major, minor], for feature decisions.
 *
 * @example
 * ```ts
 * import { kernelVersion } from "@belt/belt/bpf";
 * const [major, minor] = kernelVersion();
 * console.log(major > 6 || (major === 6 && minor >= 6) ? "tcx" : "cls_bpf");
 * ```
 */
export function kernelVersion(): [number, number] {
  const [major = 0, minor = 0] = kernelRelease().split(/[.-]/).map(Number);
  return [major, minor];
}

/**
 * Whether the effective user is root.
 *
 * @example
 * ```ts
 * import { isRoot } from "@belt/belt/bpf";
 * if (!isRoot()) console.error("belt needs root");
 * ```
 */
export function isRoot(): boolean {
  return libc().geteuid() === 0;
}

/**
 * Whether a path exists (a file, directory, or /proc entry).
 *
 * @example
 * ```ts
 * import { pathExists } from "@belt/belt/bpf";
 * console.log(pathExists("/sys/kernel/btf/vmlinux"));
 * ```
 */
export function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `dir` is on a bpf filesystem (where pins can live).
 *
 * @example
 * ```ts
 * import { isBpffs } from "@belt/belt/bpf";
 * console.log(isBpffs("/sys/fs/bpf"));
 * ```
 */
export function isBpffs(dir: string): boolean {
  // The longest mount point containing `dir` decides; mountinfo avoids a statfs struct over FFI.
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n");
  let best = "";
  let bestType = "";
  for (const line of mounts) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = left.split(" ")[4] ?? "";
    const fsType = right.split(" ")[0] ?? "";
    const inside = dir === mountPoint ||
      dir.startsWith(mountPoint.endsWith("/") ? mountPoint : mountPoint + "/");
    if (inside && mountPoint.length >= best.length) {
      best = mountPoint;
      bestType = fsType;
    }
  }
  return bestType === "bpf";
}

const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;

function clockNs(clock: number): bigint {
  const ts = new BigInt64Array(2); // struct timespec { time_t tv_sec; long tv_nsec; }
  if (libc().clock_gettime(clock, new Uint8Array(ts.buffer)) !== 0) {
    throw new Error(`clock_gettime(${clock}) failed`);
  }
  return ts[0]! * 1_000_000_000n + ts[1]!;
}

/**
 * Nanoseconds to add to a CLOCK_MONOTONIC time (what bpf_ktime_get_ns()
 * returns) to get wall-clock time since the epoch, as of now.
 *
 * @example
 * ```ts
 * import { monotonicToRealtimeNs } from "@belt/belt/bpf";
 * const offset = monotonicToRealtimeNs();
 * console.log(new Date(Number(offset / 1_000_000n))); // when the machine booted, roughly
 * ```
 */
export function monotonicToRealtimeNs(): bigint {
  // Read realtime between two monotonic reads and take their midpoint.
  const before = clockNs(CLOCK_MONOTONIC);
  const real = clockNs(CLOCK_REALTIME);
  const after = clockNs(CLOCK_MONOTONIC);
  return real - (before + after) / 2n;
}

const TRACEFS = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/**
 * Makes sure tracefs is mounted (classic tracepoints need it): mounts it at
 * /sys/kernel/tracing when neither usual place has it, or throws a
 * BeltError saying how to.
 *
 * @example
 * ```ts ignore
 * import { ensureTracefs } from "@belt/belt/bpf";
 * ensureTracefs(); // before attaching a tracepoint/syscalls/... program
 * ```
 */
export function ensureTracefs(): void {
  // From the mount table, not by looking inside: a non-root user cannot
  // list /sys/kernel/tracing, which must not read as "not mounted".
  const mounted = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").some((line) => {
    const [left = "", right = ""] = line.split(" - ");
    return right.startsWith("tracefs ") && TRACEFS.includes(left.split(" ")[4] ?? "");
  });
  if (mounted) return;
  const [dir] = TRACEFS as [string];
  if (libc().mount(cstr("tracefs"), cstr(dir), cstr("tracefs"), 0n, null) !== 0) {
    const code = errno();
    throw new BeltError(
      `tracefs is not mounted and mounting it at ${dir} failed (${errnoName(code)})`,
      {
        code,
        hint: `mount it with \`mount -t tracefs tracefs ${dir}\` (as root)`,
      },
    );
  }
}

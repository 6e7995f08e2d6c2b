/**
 * Runs synchronous code with the calling thread inside another network
 * namespace (setns), then returns to the original one. Interface lookups,
 * XDP/TCX links, tc netlink requests and sockets made inside act there.
 *
 * @module
 */
import { cstr, errno, libc } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";

const CLONE_NEWNET = 0x40000000;
const O_RDONLY_CLOEXEC = 0o2000000;

/** Opens a namespace file (e.g. /proc/thread-self/ns/net); close it with libc close. */
export function openNetnsFd(path: string): number {
  const fd = libc().open(cstr(path), O_RDONLY_CLOEXEC);
  if (fd < 0) {
    throw new BeltError(`cannot open network namespace ${path}`, {
      code: errno(),
      hint: "does it exist? (ip netns list)",
    });
  }
  return fd;
}

function enter(fd: number, what: string): void {
  if (libc().setns(fd, CLONE_NEWNET) < 0) {
    throw errorFromErrno(`enter network namespace ${what}`, errno());
  }
}

/** Calls synchronous `fn` inside the namespace open at `fd`, then returns home. */
export function withNetnsFd<T>(fd: number, fn: () => T, what = `fd ${fd}`): T {
  const home = openNetnsFd("/proc/thread-self/ns/net");
  try {
    enter(fd, what);
    try {
      const result = fn();
      if (result instanceof Promise) {
        throw new BeltError("withNetns() takes a synchronous function", {
          hint: "do the async part after it returns",
        });
      }
      return result;
    } finally {
      enter(home, "of origin"); // must not fail silently: the thread would stay elsewhere
    }
  } finally {
    libc().close(home);
  }
}

/**
 * Calls `fn` inside the network namespace `name` (from `ip netns add`, or a
 * path such as /proc/PID/ns/net). `fn` must be synchronous: an await inside
 * would let other code run in the wrong namespace.
 *
 * @example Attach inside a test namespace
 * ```ts ignore
 * import { attachXdp, withNetns } from "@belt/belt/bpf";
 * const link = withNetns("belt-a", () => attachXdp(prog, "eth0"));
 * ```
 */
export function withNetns<T>(name: string, fn: () => T): T {
  const target = openNetnsFd(name.includes("/") ? name : `/var/run/netns/${name}`);
  try {
    return withNetnsFd(target, fn, name);
  } finally {
    libc().close(target);
  }
}

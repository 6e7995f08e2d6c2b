/**
 * TC attachment on ingress or egress, by priority. Two kernel mechanisms:
 * - TCX links (kernel >= 6.6): fd-owned, so they vanish with the process;
 *   order comes from before/after anchors, which belt derives from priorities.
 * - clsact + cls_bpf filters (older kernels): ordered by the filter priority;
 *   they outlive the process, so belt removes them on close and on exit.
 * "auto" tries TCX and falls back to cls_bpf when the kernel lacks it.
 * Lower priority runs first; two belt programs at one priority are an error.
 * On TCX, priorities are known to the process that attached them: two belt
 * processes on one interface do not see each other's priorities yet.
 *
 * @module
 */
import { libbpf, libc } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { interfaceIndex, interfaceName, listInterfaces } from "./iface.ts";
import { Link } from "./link.ts";
import type { Program } from "./program.ts";
import { AttachType, linkCreate, MprogFlag, objectInfo, queryHook } from "./syscall.ts";
import { trackForExit } from "./cleanup.ts";
import { openNetnsFd, withNetnsFd } from "./netns.ts";
import { processAlive, pruneTc, readTc, recordTc, stillPinned } from "./tcstate.ts";
import type { TcRecord } from "./tcstate.ts";

/** Which way the packets go. */
export type TcDirection = "ingress" | "egress";
/** Which kernel mechanism: "auto" picks TCX when the kernel has it. */
export type TcMode = "auto" | "tcx" | "cls_bpf";

/** Options of {@linkcode attachTc}. */
export interface TcOptions {
  /** ingress or egress. */
  direction: TcDirection;
  /** 1..65535, lower runs first; default 1000. */
  priority?: number;
  /** Mechanism; default "auto" (or the BELT_TC_MODE environment variable). */
  mode?: TcMode;
  /** Who is attaching (a plugin name), for `belt chain show`; default the program name. */
  owner?: string;
}

const TC_INGRESS = 1;
const TC_EGRESS = 2;
const EINVAL = 22;
const EOPNOTSUPP = 95;
const EEXIST = 17;

/** Priorities of TCX links belt made in this process, by link id. */
const tcxPriorities = new Map<number, number>();
/** clsact qdiscs belt created, with how many belt filters use each. */
const ourQdiscs = new Map<string, number>();

function netnsKey(ifindex: number): string {
  return `${Deno.statSync("/proc/thread-self/ns/net").ino}/${ifindex}`;
}

function checkPriority(priority: number): void {
  if (!Number.isInteger(priority) || priority < 1 || priority > 65535) {
    throw new BeltError(`TC priority ${priority} is out of range`, {
      hint: "use an integer from 1 to 65535",
    });
  }
}

/**
 * Attaches a TC program (section "tc", "tcx/ingress", ...) to an interface.
 *
 * @example Two programs, run in priority order on egress
 * ```ts ignore
 * import { attachTc } from "@belt/belt/bpf";
 * const first = attachTc(a.program("count"), "eth0", { direction: "egress", priority: 10 });
 * const second = attachTc(b.program("mirror"), "eth0", { direction: "egress", priority: 20 });
 * console.log(first.info.detail); // "tcx egress prio 10"
 * ```
 */
export function attachTc(prog: Program, iface: string | number, options: TcOptions): Link {
  const priority = options.priority ?? 1000;
  checkPriority(priority);
  if (options.direction !== "ingress" && options.direction !== "egress") {
    throw new BeltError(`unknown TC direction '${options.direction}'`, {
      hint: "use ingress or egress",
    });
  }
  const mode = options.mode ?? (Deno.env.get("BELT_TC_MODE") as TcMode | undefined) ?? "auto";
  if (!["auto", "tcx", "cls_bpf"].includes(mode)) {
    throw new BeltError(`unknown TC mode '${mode}'`, { hint: "use auto, tcx or cls_bpf" });
  }
  const ifindex = interfaceIndex(iface);
  if (mode !== "cls_bpf") {
    const owner = options.owner ?? prog.name;
    const link = attachTcx(prog, ifindex, options.direction, priority, mode === "tcx", owner);
    if (link) return prog.adopt(link);
  }
  return prog.adopt(
    attachClsBpf(prog, ifindex, options.direction, priority, options.owner ?? prog.name),
  );
}

/** Where a new TCX link goes so that priorities stay ascending. */
function tcxAnchor(
  ifindex: number,
  attachType: number,
  direction: TcDirection,
  priority: number,
): { flags: number; relative: number } {
  const { linkIds } = queryHook(ifindex, attachType);
  // Priorities of every belt process's links: recorded ones, plus our own.
  const live = new Set(linkIds);
  pruneTc(
    ifindex,
    direction,
    (r) => r.mode !== "tcx" || live.has(r.linkId) || r.pinned !== undefined,
  );
  const priorities = new Map(tcxPriorities);
  for (const r of readTc(ifindex, direction)) {
    if (r.mode === "tcx") priorities.set(r.linkId, r.priority);
  }
  const ours = linkIds.filter((id) => priorities.has(id));
  for (const id of ours) {
    if (priorities.get(id) === priority) {
      throw new BeltError(`priority ${priority} is taken by another belt program (link ${id})`, {
        code: EEXIST,
        hint: "choose another --priority",
      });
    }
  }
  const after = ours.filter((id) => priorities.get(id)! < priority).at(-1);
  const before = ours.find((id) => priorities.get(id)! > priority);
  const byLinkId = MprogFlag.LINK | MprogFlag.ID;
  if (before !== undefined) return { flags: MprogFlag.BEFORE | byLinkId, relative: before };
  if (after !== undefined) return { flags: MprogFlag.AFTER | byLinkId, relative: after };
  return { flags: 0, relative: 0 }; // no belt program yet: append after foreign ones
}

function attachTcx(
  prog: Program,
  ifindex: number,
  direction: TcDirection,
  priority: number,
  required: boolean,
  owner: string,
): Link | undefined {
  // `required`: the caller asked for TCX, so a kernel without it is an error, not a fallback.
  const attachType = direction === "ingress" ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS;
  let anchor: { flags: number; relative: number };
  try {
    anchor = tcxAnchor(ifindex, attachType, direction, priority);
  } catch (e) {
    if (!required && e instanceof BeltError && (e.code === EINVAL || e.code === EOPNOTSUPP)) {
      return undefined;
    }
    throw e;
  }
  // The query above succeeded, so this kernel has TCX: any failure now is
  // real, and falling back to cls_bpf (which runs after all TCX programs)
  // would silently break the priority order.
  const progId = prog.stats().id; // before attaching: nothing may throw between link and Link
  const fd = linkCreate({ progFd: prog.fd, ifindex, attachType, ...anchor });
  const name = interfaceName(ifindex);
  if (fd < 0) {
    throw errorFromErrno(`attach TCX ${direction} program '${prog.name}' to ${name}`, -fd);
  }
  let linkId: number;
  try {
    linkId = objectInfo(fd, 64).getUint32(4, true); // struct bpf_link_info: type, id
  } catch (e) {
    libc().close(fd); // never leave a link attached behind an error
    throw e;
  }
  tcxPriorities.set(linkId, priority);
  const forget = recordTc(ifindex, {
    mode: "tcx",
    direction,
    priority,
    owner,
    progId,
    linkId,
    pid: Deno.pid,
  });
  const release = () => {
    tcxPriorities.delete(linkId);
    libc().close(fd); // a pinned link stays attached: the pin holds it
  };
  return new Link(
    { kind: "tcx", target: name, detail: `tcx ${direction} prio ${priority}` },
    fd,
    () => {
      forget();
      release();
    },
    release,
  );
}

function tcHook(ifindex: number, attachPoint: number): Uint8Array<ArrayBuffer> {
  const hook = new Uint8Array(24); // struct bpf_tc_hook { sz, ifindex, attach_point, parent }
  const v = new DataView(hook.buffer);
  v.setBigUint64(0, 24n, true);
  v.setInt32(8, ifindex, true);
  v.setUint32(12, attachPoint, true);
  return hook;
}

function tcOpts(priority: number, progFd = 0): Uint8Array<ArrayBuffer> {
  const opts = new Uint8Array(32); // struct bpf_tc_opts { sz, prog_fd, flags, prog_id, handle, priority }
  const v = new DataView(opts.buffer);
  v.setBigUint64(0, 32n, true);
  v.setInt32(8, progFd, true);
  v.setUint32(20, 1, true); // handle 1: belt filters are told apart by priority
  v.setUint32(24, priority, true);
  return opts;
}

function attachClsBpf(
  prog: Program,
  ifindex: number,
  direction: TcDirection,
  priority: number,
  owner: string,
): Link {
  const name = interfaceName(ifindex);
  const key = netnsKey(ifindex);
  const hook = tcHook(ifindex, direction === "ingress" ? TC_INGRESS : TC_EGRESS);
  // Opened first: once the filter exists nothing may fail before its Link does.
  // Detaching later must happen in the namespace the filter lives in.
  const nsFd = openNetnsFd("/proc/thread-self/ns/net");
  try {
    return attachFilter(prog, hook, { ifindex, name, key, direction, priority, nsFd, owner });
  } catch (e) {
    libc().close(nsFd);
    throw e;
  }
}

/** Where a cls_bpf filter goes, for attachFilter. */
interface FilterPlace {
  ifindex: number;
  name: string;
  key: string;
  direction: TcDirection;
  priority: number;
  nsFd: number;
  owner: string;
}

function attachFilter(prog: Program, hook: Uint8Array<ArrayBuffer>, place: FilterPlace): Link {
  const { ifindex, name, key, direction, priority, nsFd, owner } = place;
  const progId = prog.stats().id;
  removeStaleFilters(ifindex); // a belt killed with SIGKILL cannot have removed its own
  const created = libbpf().bpf_tc_hook_create(hook);
  if (created < 0 && created !== -EEXIST) {
    throw errorFromErrno(`create clsact qdisc on ${name}`, -created);
  }
  if (created === 0) ourQdiscs.set(key, 0);
  const rc = libbpf().bpf_tc_attach(hook, tcOpts(priority, prog.fd));
  if (rc < 0) {
    releaseQdisc(ifindex, key);
    if (rc === -EEXIST) {
      throw new BeltError(
        `priority ${priority} is taken on ${name} ${direction} by another filter`,
        {
          code: EEXIST,
          hint: "choose another --priority",
        },
      );
    }
    throw errorFromErrno(`attach cls_bpf ${direction} program '${prog.name}' to ${name}`, -rc);
  }
  if (ourQdiscs.has(key)) ourQdiscs.set(key, ourQdiscs.get(key)! + 1);
  const forget = recordTc(ifindex, {
    createdQdisc: created === 0,
    mode: "cls_bpf",
    direction,
    priority,
    owner,
    progId,
    linkId: 0,
    pid: Deno.pid,
  });
  const detach = () => {
    forget();
    try {
      withNetnsFd(nsFd, () => {
        if (!listInterfaces().some(([index]) => index === ifindex)) return; // the interface took its filters with it
        // Only our own filter: someone may have replaced it since.
        const rc = filterHolds(hook, priority, progId)
          ? libbpf().bpf_tc_detach(hook, tcOpts(priority))
          : 0;
        if (ourQdiscs.has(key)) ourQdiscs.set(key, ourQdiscs.get(key)! - 1);
        releaseQdisc(ifindex, key);
        if (rc < 0 && rc !== -2) throw errorFromErrno(`detach cls_bpf filter from ${name}`, -rc);
      });
    } finally {
      libc().close(nsFd);
    }
  };
  const link = new Link(
    { kind: "cls_bpf", target: name, detail: `cls_bpf ${direction} prio ${priority}` },
    -1,
    detach,
    () => libc().close(nsFd), // kept: the filter stays, its record too
  );
  link.onClose(trackForExit(link));
  return link;
}

/** Removes the clsact qdisc when belt created it and no belt filter uses it. */
function releaseQdisc(ifindex: number, key: string): void {
  if (ourQdiscs.get(key) !== 0) return;
  ourQdiscs.delete(key);
  // Another belt process, or another tool, may have put filters on it since.
  if (hasTcFilters(interfaceName(ifindex))) return;
  libbpf().bpf_tc_hook_destroy(tcHook(ifindex, TC_INGRESS | TC_EGRESS));
}

/** Whether the filter at `priority` (handle 1) still runs program `progId`. */
function filterHolds(hook: Uint8Array<ArrayBuffer>, priority: number, progId: number): boolean {
  const query = tcOpts(priority);
  return libbpf().bpf_tc_query(hook, query) === 0 &&
    new DataView(query.buffer).getUint32(16, true) === progId; // bpf_tc_opts.prog_id
}

/**
 * The programs attached as TCX links on an interface and direction, in run
 * order (empty on kernels without TCX).
 *
 * @example
 * ```ts ignore
 * import { listTcx } from "@belt/belt/bpf";
 * console.log(listTcx("eth0", "ingress")); // [{ progId: 42, linkId: 7 }]
 * ```
 */
export function listTcx(
  iface: string | number,
  direction: TcDirection,
): { progId: number; linkId: number }[] {
  const attachType = direction === "ingress" ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS;
  try {
    const { progIds, linkIds } = queryHook(interfaceIndex(iface), attachType);
    return progIds.map((progId, i) => ({ progId, linkId: linkIds[i] ?? 0 }));
  } catch (e) {
    if (e instanceof BeltError && (e.code === EINVAL || e.code === EOPNOTSUPP)) return [];
    throw e;
  }
}

/**
 * Removes cls_bpf filters (and the clsact qdisc they created, when nothing
 * else is left on it) that belt processes which no longer exist left on an
 * interface: what SIGKILL leaves behind on kernels without TCX. A filter is
 * removed only if it still holds the program belt recorded. With
 * `pinned: true` it also removes what was deliberately kept (`--pin`): pinned
 * TCX links and cls_bpf filters, and their pin directories. Returns what was
 * removed.
 *
 * @example
 * ```ts ignore
 * import { removeStaleFilters } from "@belt/belt/bpf";
 * console.log(removeStaleFilters("eth0")); // [{ mode: "cls_bpf", priority: 10, ... }]
 * ```
 */
export function removeStaleFilters(
  iface: string | number,
  options: { pinned?: boolean } = {},
): TcRecord[] {
  const ifindex = interfaceIndex(iface);
  const removed: TcRecord[] = [];
  let createdQdisc = false;
  for (const direction of ["ingress", "egress"] as const) {
    const hook = tcHook(ifindex, direction === "ingress" ? TC_INGRESS : TC_EGRESS);
    const stale = readTc(ifindex, direction).filter((r) =>
      (r.mode === "cls_bpf" && !processAlive(r.pid) && !stillPinned(r)) ||
      (options.pinned && r.pinned !== undefined)
    );
    for (const r of stale) {
      if (r.mode === "cls_bpf" && filterHolds(hook, r.priority, r.progId)) {
        libbpf().bpf_tc_detach(hook, tcOpts(r.priority));
        createdQdisc ||= r.createdQdisc ?? false;
      }
      // Removing the pins drops the last reference: a pinned TCX link detaches.
      if (r.pinned) removePins(r.pinned);
      removed.push(r);
    }
    pruneTc(
      ifindex,
      direction,
      (r) => !stale.some((x) => x.priority === r.priority && x.pid === r.pid),
    );
  }
  if (createdQdisc && !hasTcFilters(interfaceName(ifindex))) {
    libbpf().bpf_tc_hook_destroy(tcHook(ifindex, TC_INGRESS | TC_EGRESS));
  }
  return removed;
}

/**
 * Whether any filter (anyone's) is on the interface's clsact hooks; true
 * when `tc` cannot tell (the caller then keeps what it would remove).
 *
 * @example
 * ```ts ignore
 * import { hasTcFilters } from "@belt/belt/bpf";
 * console.log(hasTcFilters("eth0")); // false
 * ```
 */
export function hasTcFilters(iface: string): boolean {
  for (const direction of ["ingress", "egress"]) {
    const out = new Deno.Command("tc", {
      args: ["filter", "show", "dev", iface, direction],
      stdout: "piped",
      stderr: "null",
    })
      .outputSync();
    if (!out.success || new TextDecoder().decode(out.stdout).trim()) return true; // unsure: keep the qdisc
  }
  return false;
}

/** Removes a pin directory; both directions of a plugin share one, so it may be gone already. */
function removePins(dir: string): void {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  removeEmptyParents(dir);
}

/**
 * After a plugin's pin directory `<root>/[netns-<inode>/]<iface>/<plugin>-<prio>`
 * is removed: removes its `<iface>/` and `netns-<inode>/` parents when they
 * are left empty, and the default root /sys/fs/bpf/belt too (a root given
 * in BELT_PIN_ROOT stays).
 *
 * @example
 * ```ts ignore
 * import { removeEmptyParents } from "@belt/belt/bpf";
 * removeEmptyParents("/sys/fs/bpf/belt/netns-4026532245/eth0/firewall-1000");
 * ```
 */
export function removeEmptyParents(dir: string): void {
  const iface = dir.slice(0, dir.lastIndexOf("/"));
  const tryRemove = (d: string) => {
    try {
      Deno.removeSync(d); // fails, as wanted, when not empty
      return true;
    } catch {
      return false;
    }
  };
  if (!iface || !tryRemove(iface)) return;
  let up = iface.slice(0, iface.lastIndexOf("/"));
  if (/\/netns-\d+$/.test(up)) {
    if (!tryRemove(up)) return;
    up = up.slice(0, up.lastIndexOf("/"));
  }
  if (up === "/sys/fs/bpf/belt") tryRemove(up); // belt's default root; another is the user's
}

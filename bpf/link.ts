/**
 * A disposable attachment: whatever attached a program (a kernel bpf_link,
 * a libbpf link, a cls_bpf filter, a socket filter) is undone by `close()`.
 *
 * @module
 */
import { cstr, libbpf } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { isBpffs } from "./kernel.ts";
import { dirname } from "node:path";

/** Something that releases a native resource; closing twice is harmless. */
export interface Closable {
  /** Releases the resource; a second call does nothing. */
  close(): void;
}

/** What a link is attached to, for listings and errors. */
export interface LinkInfo {
  /** Hook kind, e.g. "xdp", "tcx", "cls_bpf", "tp_btf", "socket". */
  kind: string;
  /** Where: interface, tracepoint or function name. */
  target: string;
  /** Mode or detail, e.g. "native", "ingress prio 10". */
  detail: string;
}

/**
 * An attached program. `close()` detaches it; `using` does so at scope end.
 *
 * @example Attach for the length of a block
 * ```ts ignore
 * import { attachXdp, BpfObject } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("count.bpf.o"));
 * obj.load();
 * using link = attachXdp(obj.program("count"), "eth0");
 * console.log(link.info.detail); // "native"
 * ```
 */
export class Link implements Closable, Disposable {
  /** What the link attaches to. */
  readonly info: LinkInfo;
  /** The kernel link fd, or -1 when the attachment has none (cls_bpf). */
  readonly fd: number;
  #detach: (() => void) | undefined;
  readonly #release: (() => void) | undefined;
  readonly #closeHooks: (() => void)[] = [];

  /**
   * Wraps an attachment; `detach` undoes it once. `release` (optional) frees
   * this process's hold without detaching, for attachments kept with keep().
   */
  constructor(info: LinkInfo, fd: number, detach: () => void, release?: () => void) {
    this.info = info;
    this.fd = fd;
    this.#detach = detach;
    this.#release = release;
  }

  /**
   * Leaves the attachment in the kernel when this link is closed (after it
   * was pinned, or for a cls_bpf filter meant to outlive the process).
   */
  keep(): void {
    if (this.#detach) this.#detach = this.#release ?? (() => {});
  }

  /** Whether the link is still attached. */
  get attached(): boolean {
    return this.#detach !== undefined;
  }

  /** Adds a function called once after close (owners use it to forget the link). */
  onClose(fn: () => void): void {
    this.#closeHooks.push(fn);
  }

  /** Pins the link on bpffs so it outlives this process. */
  pin(path: string): void {
    if (this.fd < 0) throw new BeltError(`a ${this.info.kind} attachment has no link to pin`);
    pinFd(this.fd, path, `link ${this.info.kind} ${this.info.target}`);
  }

  /** Detaches; safe to call twice. */
  close(): void {
    const detach = this.#detach;
    if (!detach) return;
    this.#detach = undefined;
    try {
      detach();
    } finally {
      for (const hook of this.#closeHooks) hook();
    }
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Pins a bpf fd at `path`, checking first that the path is on bpffs. */
export function pinFd(fd: number, path: string, what: string): void {
  const dir = dirname(path);
  if (!isBpffs(dir)) {
    throw new BeltError(`cannot pin ${what} at ${path}: ${dir} is not on a bpf filesystem`, {
      hint: "mount it with `mount -t bpf bpf /sys/fs/bpf` (scripts/setup.sh does)",
    });
  }
  Deno.mkdirSync(dir, { recursive: true });
  const rc = libbpf().bpf_obj_pin(fd, cstr(path));
  if (rc < 0) throw errorFromErrno(`pin ${what} at ${path}`, -rc);
}

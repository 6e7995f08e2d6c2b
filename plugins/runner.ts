/**
 * Runs a plugin's lifecycle on one interface: open → configure → load →
 * fill maps → attach → (run) → close. Any failure closes the object, which
 * detaches whatever was already attached, so nothing is left half-done.
 *
 * @module
 */
import {
  attachBySection,
  attachTc,
  attachXdp,
  BeltError,
  BpfObject,
  interfaceIndex,
  markPinned,
  pathExists,
  removeEmptyParents,
  RingBuffer,
} from "../bpf/mod.ts";
import type { Link, TcMode, XdpMode } from "../bpf/mod.ts";
import type { Hook, Plugin, ProgramSpec, Stats } from "./plugin.ts";

/** Which TC directions a plugin attaches to. */
export type Direction = "in" | "out" | "both";

/** How and where to start a plugin. */
export interface StartOptions {
  /** Interface name (in the calling thread's network namespace); needed for tc/xdp hooks. */
  iface?: string;
  /** Chain priority of its TC programs (lower runs first); default 1000. */
  priority?: number;
  /** TC directions to attach; default both. */
  direction?: Direction;
  /** Raw options, validated by the plugin. */
  options?: Record<string, unknown>;
  /** Where raw options came from, for error messages. */
  where?: string;
  /** TC mechanism (default auto: TCX when the kernel has it). */
  tcMode?: TcMode;
  /** XDP mode (default auto). */
  xdpMode?: XdpMode;
}

/** Maps shared by name among running plugins: a held fd and how many use it. */
const sharedMaps = new Map<string, { fd: number; close(): void; users: number }>();

/** Registers one more user of a shared map; the returned handle lets go of it. */
function shareMap(name: string, obj: BpfObject): { close(): void } {
  let entry = sharedMaps.get(name);
  if (!entry) {
    entry = { ...obj.map(name).hold(), users: 0 };
    sharedMaps.set(name, entry);
  }
  entry.users++;
  let open = true;
  return {
    close() {
      if (!open) return;
      open = false;
      if (--entry.users === 0) {
        entry.close();
        sharedMaps.delete(name);
      }
    },
  };
}

function mapIterator<T, U>(
  source: AsyncIterableIterator<T>,
  fn: (x: T) => U,
): AsyncIterableIterator<U> {
  const it: AsyncIterableIterator<U> = {
    next: () =>
      source.next().then((r): IteratorResult<U> =>
        r.done ? { value: undefined, done: true } : { value: fn(r.value), done: false }
      ),
    return: () =>
      (source.return?.() ?? Promise.resolve()).then((): IteratorResult<U> => ({
        value: undefined,
        done: true,
      })),
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}

function hostNetnsInode(): number | null | undefined {
  try {
    return Deno.statSync("/proc/1/ns/net").ino;
  } catch {
    return undefined;
  }
}

/** Where belt pins by default: BELT_PIN_ROOT or /sys/fs/bpf/belt. */
function pinRoot(): string {
  return Deno.env.get("BELT_PIN_ROOT") ?? "/sys/fs/bpf/belt";
}

/**
 * The directory under which plugins on `iface` (in the calling thread's
 * network namespace) are pinned: `root/[netns-<inode>/]<iface>`.
 *
 * @example
 * ```ts ignore
 * import { interfacePinDir } from "@belt/belt";
 * console.log(interfacePinDir("eth0")); // "/sys/fs/bpf/belt/eth0"
 * ```
 */
export function interfacePinDir(iface: string, root: string = pinRoot()): string {
  const ns = Deno.statSync("/proc/thread-self/ns/net").ino;
  const hostNs = hostNetnsInode(); // unknown (sandboxed /proc): always say which namespace
  return `${root}/${ns === hostNs ? "" : `netns-${ns}/`}${iface}`;
}

/**
 * Removes the pins of plugins kept on `iface` with an XDP link (pinned XDP
 * links have no TC record to find them by); returns the directories removed.
 * Dropping the pin releases the link, which detaches the program.
 *
 * @example
 * ```ts ignore
 * import { removePinnedXdp } from "@belt/belt";
 * console.log(removePinnedXdp("eth0")); // ["/sys/fs/bpf/belt/eth0/firewall-1000"]
 * ```
 */
export function removePinnedXdp(iface: string): string[] {
  const base = interfacePinDir(iface);
  const removed: string[] = [];
  let dirs: Deno.DirEntry[];
  try {
    dirs = [...Deno.readDirSync(base)];
  } catch {
    return removed;
  }
  for (const d of dirs) {
    const dir = `${base}/${d.name}`;
    if (!d.isDirectory) continue;
    const files = [...Deno.readDirSync(dir)].map((f) => f.name);
    if (!files.some((f) => f.startsWith("link_xdp_"))) continue;
    Deno.removeSync(dir, { recursive: true });
    removed.push(dir);
  }
  if (removed.length) removeEmptyParents(removed[0]!);
  return removed;
}

const HOOKS: readonly Hook[] = ["tc-ingress", "tc-egress", "xdp", "trace"];

function wanted(hook: Hook, direction: Direction): boolean {
  if (hook === "tc-ingress") return direction !== "out";
  if (hook === "tc-egress") return direction !== "in";
  return true; // xdp, trace
}

/**
 * A plugin attached to an interface. `close()` detaches it (`detach()` first
 * to read final stats).
 *
 * @example
 * ```ts ignore
 * import { count, startPlugin } from "@belt/belt";
 * using running = startPlugin(count, { iface: "eth0", priority: 10 });
 * console.log(running.stats());
 * ```
 */
export class RunningPlugin implements Disposable {
  /** The plugin. */
  readonly plugin: Plugin<unknown>;
  /** The interface it runs on. */
  readonly iface: string;
  /** Its chain priority. */
  readonly priority: number;
  /** Its loaded object (maps for live updates and reads). */
  readonly object: BpfObject;
  /** Its attachments. */
  readonly links: readonly Link[];

  readonly #specs: ProgramSpec[];
  readonly #extra: Link[];
  #pinDir: string | undefined;

  /** Made by {@linkcode startPlugin}; `specs[i]` is what `links[i]` attached. */
  constructor(
    plugin: Plugin<unknown>,
    iface: string,
    priority: number,
    object: BpfObject,
    links: Link[],
    specs: ProgramSpec[],
    extra: Link[] = [],
  ) {
    this.#specs = specs;
    this.#extra = extra;
    this.plugin = plugin;
    this.iface = iface;
    this.priority = priority;
    this.object = object;
    this.links = links;
  }

  /**
   * Pins the plugin's links and maps under `root/<iface>/<plugin>-<priority>/`
   * (root: BELT_PIN_ROOT or /sys/fs/bpf/belt; a network namespace other than
   * the host's adds `netns-<inode>/`) and marks its TC records pinned, so
   * `belt detach IFACE` can find them. Call keep() once every plugin of a run
   * is pinned; unpin() undoes this. Returns the pin directory.
   */
  pin(root: string = pinRoot()): string {
    const dir = `${
      interfacePinDir(this.iface || "trace", root)
    }/${this.plugin.name}-${this.priority}`;
    if (pathExists(dir)) {
      throw new BeltError(
        `${dir} exists: a ${this.plugin.name} at priority ${this.priority} is pinned there`,
        {
          hint: `remove it first with \`belt detach ${this.iface}\``,
        },
      );
    }
    this.#pinDir = dir;
    try {
      Deno.mkdirSync(dir, { recursive: true });
      this.links.forEach((link, i) => {
        const spec = this.#specs[i]!;
        // bpffs refuses dots in names; the hook keeps one function on two hooks apart.
        if (link.fd >= 0) link.pin(`${dir}/link_${spec.hook.replace("-", "_")}_${spec.program}`);
        this.#markTc(spec, dir);
      });
      for (const map of this.object.maps.values()) {
        if (!map.name.includes(".")) map.pin(`${dir}/${map.name}`); // internal .rodata/.bss stay private
      }
    } catch (e) {
      this.unpin();
      throw e;
    }
    return dir;
  }

  /** Removes what pin() made (pins and marks); the attachments stay until close(). */
  unpin(): void {
    const dir = this.#pinDir;
    if (!dir) return;
    this.#pinDir = undefined;
    this.#specs.forEach((spec) => {
      try {
        this.#markTc(spec, undefined);
      } catch {
        // no record to unmark
      }
    });
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  /** After pin(): leaves every attachment in the kernel when this process ends. */
  keep(): void {
    if (!this.#pinDir) throw new BeltError(`plugin '${this.plugin.name}': pin() before keep()`);
    for (const link of this.links) link.keep();
  }

  #markTc(spec: ProgramSpec, dir: string | undefined): void {
    if (spec.hook !== "tc-ingress" && spec.hook !== "tc-egress") return;
    const link = this.links[this.#specs.indexOf(spec)]!;
    const direction = spec.hook === "tc-ingress" ? "ingress" : "egress";
    markPinned(interfaceIndex(this.iface), direction, link.info.kind, this.priority, dir);
  }

  /**
   * The plugin's events as records, until close(); `lost` counts what the
   * kernel could not queue (when the program uses belt_event_reserve).
   */
  events(): AsyncIterableIterator<unknown> & { readonly lost: bigint } {
    const spec = this.plugin.events;
    if (!spec) throw new BeltError(`plugin '${this.plugin.name}' sends no events`);
    const lostCounter = this.object.maps.get("belt_events_lost");
    const ring = RingBuffer.open(this.object.map(spec.map), { lostCounter });
    const records = mapIterator(ring[Symbol.asyncIterator](), spec.decode);
    return Object.defineProperty(records, "lost", { get: () => ring.lost }) as
      & AsyncIterableIterator<unknown>
      & { readonly lost: bigint };
  }

  /** The plugin's current stats (empty when it reports none). */
  stats(): Stats {
    return this.plugin.stats?.(this.object) ?? {};
  }

  /**
   * Detaches every program (chain first, then the plugin's extra
   * attachments) but keeps the maps readable, so final stats are read when
   * nothing can change them any more; close() still unloads. Idempotent.
   */
  detach(): void {
    for (const link of [...this.links, ...this.#extra]) link.close();
  }

  /** Detaches and unloads. Idempotent. */
  close(): void {
    this.object.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Starts `plugin` on an interface. Synchronous, so it can run inside
 * `withNetns`. On any failure everything done so far is undone.
 *
 * @example Two plugins in one chain
 * ```ts ignore
 * import { count, startPlugin } from "@belt/belt";
 * const first = startPlugin(count, { iface: "eth0", priority: 10 });
 * const second = startPlugin(count, { iface: "eth0", priority: 20, direction: "in" });
 * ```
 */
export function startPlugin<O>(plugin: Plugin<O>, start: StartOptions): RunningPlugin {
  const priority = start.priority ?? 1000;
  const direction = start.direction ?? "both";
  if (!["in", "out", "both"].includes(direction)) {
    throw new BeltError(`unknown direction '${direction}'`, { hint: "use in, out or both" });
  }
  for (const spec of plugin.programs) {
    if (!HOOKS.includes(spec.hook)) {
      throw new BeltError(
        `plugin '${plugin.name}': program '${spec.program}' has unknown hook '${spec.hook}'`,
        {
          hint: `use one of ${HOOKS.join(", ")}`,
        },
      );
    }
  }
  let options = plugin.options(start.options ?? {}, start.where ?? `${plugin.name} options`);
  const iface = start.iface ?? "";
  const prepared = plugin.prepare?.(options, iface);
  if (prepared) options = prepared.options;
  let obj: BpfObject;
  try {
    obj = BpfObject.open(plugin.object, {
      name: plugin.name,
      globals: plugin.globals?.(options),
    });
  } catch (e) {
    prepared?.close();
    throw e;
  }
  // Adopted first, so it is undone last: after every program is detached.
  if (prepared) obj.adopt(prepared);
  try {
    plugin.configure?.(obj, options);
    const specs = plugin.programs.filter((p) => wanted(p.hook, direction));
    for (const prog of obj.programs.values()) {
      prog.autoload = specs.some((s) => s.program === prog.name) ||
        (plugin.extraPrograms ?? []).includes(prog.name);
    }
    const shared = plugin.sharedMaps ?? [];
    for (const name of shared) {
      const held = sharedMaps.get(name);
      if (held) obj.map(name).reuse(held.fd);
    }
    try {
      obj.load();
    } catch (e) {
      if (!shared.length) throw e;
      throw new BeltError(`plugin '${plugin.name}': ${(e as Error).message}`, {
        hint: `its shared maps (${shared.join(", ")}) must match the other plugins' declarations`,
      });
    }
    for (const name of shared) obj.adopt(shareMap(name, obj));
    plugin.fill?.(obj, options);
    if (!iface && specs.some((s) => s.hook !== "trace")) {
      throw new BeltError(`plugin '${plugin.name}' attaches to an interface: give one`, {
        hint: 'e.g. startPlugin(plugin, { iface: "eth0" })',
      });
    }
    const links = specs.map((spec) => {
      const prog = obj.program(spec.program);
      if (spec.hook === "trace") return attachBySection(prog);
      if (spec.hook === "xdp") return attachXdp(prog, iface, { mode: start.xdpMode });
      const tcDirection = spec.hook === "tc-ingress" ? "ingress" : "egress";
      return attachTc(prog, iface, {
        direction: tcDirection,
        priority,
        mode: start.tcMode,
        owner: plugin.name,
      });
    });
    const extra = plugin.attachExtra?.(obj, options, iface, start.tcMode) ?? [];
    return new RunningPlugin(plugin as Plugin<unknown>, iface, priority, obj, links, specs, extra);
  } catch (e) {
    obj.close(); // detaches whatever was attached before the failure
    throw e;
  }
}

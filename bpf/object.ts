/**
 * A BPF object (one compiled `.bpf.c`): open it from embedded bytes or a file,
 * set read-only globals, load it through the verifier, then reach its
 * programs and maps. Closing the object detaches every link made from it.
 *
 * @module
 */
import { addressOf, cstr, errno, libbpf } from "./ffi.ts";
import {
  BeltError,
  errorFromErrno,
  NotSupportedError,
  PermissionError,
  VerifierError,
} from "./errors.ts";
import { installLibbpfLog, resetLog, takeLog } from "./log.ts";
import { isRoot, kernelRelease } from "./kernel.ts";
import { readBtfDatasec, readBtfStruct } from "./btf.ts";
import type { BtfStruct } from "./btf.ts";
import { Program } from "./program.ts";
import { BpfMap } from "./map.ts";
import { Link } from "./link.ts";
import type { Closable } from "./link.ts";

/** A value for a read-only global: integers by the variable's size, or raw bytes. */
export type GlobalValue = number | bigint | boolean | Uint8Array;

/** Options of {@linkcode BpfObject.open}. */
export interface OpenOptions {
  /** Object name for logs (default: the file name or "belt"). */
  name?: string;
  /** Read-only globals (`const volatile`) to set before load. */
  globals?: Record<string, GlobalValue>;
}

const PROG_TYPE_TRACING = 26;

/**
 * A BPF object through its life: open, configure, load, use, close.
 *
 * @example Load an embedded object with a global set, attach, read a map
 * ```ts ignore
 * import { attachXdp, BpfObject, u32, u64 } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("count.bpf.o"), {
 *   globals: { wanted_proto: 17 },
 * });
 * obj.load();
 * attachXdp(obj.program("count"), "eth0"); // detached when obj closes
 * console.log(obj.map("counts").typed(u32, u64).get(0));
 * ```
 */
export class BpfObject implements Closable, Disposable {
  /** The object's name. */
  readonly name: string;
  #handle: Deno.PointerObject | null;
  #loaded = false;
  readonly #programs = new Map<string, Program>();
  readonly #maps = new Map<string, BpfMap>();
  readonly #owned = new Set<Closable>();
  // libbpf reads the ELF from this memory until load: keep it alive.
  readonly #keepAlive: unknown[];

  private constructor(name: string, handle: Deno.PointerObject, keepAlive: unknown[]) {
    this.name = name;
    this.#handle = handle;
    this.#keepAlive = keepAlive;
    let prog = libbpf().bpf_object__next_program(handle, null);
    while (prog) {
      const p = new Program(this, prog);
      this.#programs.set(p.name, p);
      prog = libbpf().bpf_object__next_program(handle, prog);
    }
    let map = libbpf().bpf_object__next_map(handle, null);
    while (map) {
      const m = new BpfMap(map, this);
      this.#maps.set(m.name, m);
      map = libbpf().bpf_object__next_map(handle, map);
    }
  }

  /** Opens an object from ELF bytes (embedded) or a file path. */
  static open(source: Uint8Array | string, options: OpenOptions = {}): BpfObject {
    installLibbpfLog();
    const name = options.name ?? (typeof source === "string" ? source.split("/").pop()! : "belt");
    const nameBuf = cstr(name.replace(/\.o$/, "").replace(/[^A-Za-z0-9_]/g, "_"));
    const opts = new Uint8Array(80); // struct bpf_object_open_opts
    const v = new DataView(opts.buffer);
    v.setBigUint64(0, 80n, true);
    v.setBigUint64(8, addressOf(nameBuf), true);
    const bytes = typeof source === "string" ? undefined : new Uint8Array(source);
    resetLog();
    const handle = bytes
      ? libbpf().bpf_object__open_mem(bytes, BigInt(bytes.length), opts)
      : libbpf().bpf_object__open_file(cstr(source as string), opts);
    if (!handle) {
      const code = errno();
      throw new BeltError(
        `cannot open BPF object '${name}': ${takeLog().trim() || `errno ${code}`}`,
        {
          code,
          hint: "is it an eBPF ELF object built with clang -target bpf -g?",
        },
      );
    }
    const obj = new BpfObject(name, handle, [bytes, nameBuf, opts]);
    try {
      for (const [key, value] of Object.entries(options.globals ?? {})) obj.setGlobal(key, value);
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  get #ptr(): Deno.PointerObject {
    if (!this.#handle) throw new BeltError(`BPF object '${this.name}' is closed`);
    return this.#handle;
  }

  /** Whether close() has run: programs and maps of a closed object are unusable. */
  get closed(): boolean {
    return this.#handle === null;
  }

  /** Whether load() succeeded. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** All programs by name. */
  get programs(): ReadonlyMap<string, Program> {
    return this.#programs;
  }

  /** All maps by name (including .rodata/.bss internal maps). */
  get maps(): ReadonlyMap<string, BpfMap> {
    return this.#maps;
  }

  /** The program called `name`; throws listing the names that exist. */
  program(name: string): Program {
    const p = this.#programs.get(name);
    if (!p) {
      throw new BeltError(`object '${this.name}' has no program '${name}'`, {
        hint: `it has: ${[...this.#programs.keys()].join(", ")}`,
      });
    }
    return p;
  }

  /**
   * The map called `name`; throws listing the names that exist. Internal maps
   * can be named by section (".bss", ".data", ".rodata"): libbpf prefixes them
   * with a shortened object name.
   */
  map(name: string): BpfMap {
    const m = this.#maps.get(name) ??
      (name.startsWith(".")
        ? [...this.#maps.values()].find((x) => x.name.endsWith(name))
        : undefined);
    if (!m) {
      throw new BeltError(`object '${this.name}' has no map '${name}'`, {
        hint: `it has: ${[...this.#maps.keys()].join(", ")}`,
      });
    }
    return m;
  }

  /** The layout of a C struct from the object's BTF (for layout tests). */
  btfStruct(name: string): BtfStruct {
    const btf = libbpf().bpf_object__btf(this.#ptr);
    if (!btf) throw new BeltError(`object '${this.name}' has no BTF`, { hint: "compile with -g" });
    return readBtfStruct(btf, name);
  }

  /** Sets a `const volatile` global (in .rodata, or .data/.bss) before load. */
  setGlobal(name: string, value: GlobalValue): void {
    if (this.#loaded) throw new BeltError(`global '${name}': set globals before load()`);
    const btf = libbpf().bpf_object__btf(this.#ptr);
    if (!btf) throw new BeltError(`object '${this.name}' has no BTF to find global '${name}'`);
    for (const [section, map] of this.#maps) {
      if (!/\.(rodata|data|bss)$/.test(section)) continue;
      const variable = readBtfDatasec(btf, section.slice(section.lastIndexOf("."))).find((x) =>
        x.name === name
      );
      if (!variable) continue;
      const sizeBuf = new BigUint64Array(1);
      const ptr = libbpf().bpf_map__initial_value(map.handle, new Uint8Array(sizeBuf.buffer));
      if (!ptr) throw new BeltError(`cannot reach the initial value of ${section}`);
      const data = new Uint8Array(
        Deno.UnsafePointerView.getArrayBuffer(ptr, Number(sizeBuf[0])),
      );
      data.set(encodeGlobal(name, value, variable.size), variable.offset);
      return;
    }
    throw new BeltError(`object '${this.name}' has no global '${name}'`, {
      hint: "declare it as `const volatile` in the C program",
    });
  }

  /**
   * Loads every program whose autoload is on and creates the maps.
   * Verifier rejections raise {@linkcode VerifierError} with the log.
   */
  load(): void {
    if (this.#loaded) return;
    resetLog();
    const rc = libbpf().bpf_object__load(this.#ptr);
    const log = takeLog();
    if (rc < 0) throw this.#loadError(-rc, log);
    this.#loaded = true;
  }

  #loadError(code: number, log: string): BeltError {
    const failed = /prog '([^']+)': failed to load/.exec(log)?.[1] ??
      /prog '([^']+)': BPF program load failed/.exec(log)?.[1];
    const prog = failed ? this.#programs.get(failed) : undefined;
    if ((code === 1 || code === 13) && !isRoot()) {
      return new PermissionError(`load BPF object '${this.name}'`, code);
    }
    if (prog && prog.type === PROG_TYPE_TRACING && (code === 1 || code === 95 || code === 524)) {
      return new NotSupportedError(
        `fentry/fexit (BPF trampolines, program '${prog.name}')`,
        kernelRelease(),
        code,
        "use a tracepoint or kprobe hook, or turn this program's autoload off",
      );
    }
    if (code === 11) {
      // The verifier stops with EAGAIN when a signal is pending; libbpf's retries met more.
      return new BeltError(
        `loading program '${prog?.name ?? this.name}' was interrupted by signals (EAGAIN)`,
        {
          code,
          hint: "something signals this process very often (a profiler such as --cpu-prof?): " +
            "retry without it, or with a longer sampling interval",
        },
      );
    }
    if (prog && /-- BEGIN PROG LOAD LOG --|processed \d+ insns|R\d+ /.test(log)) {
      return new VerifierError(prog.name, log, code);
    }
    const reason = log.trim().split("\n").filter((l) => l.includes("libbpf:")).slice(-2).join("; ");
    return Object.assign(errorFromErrno(`load BPF object '${this.name}'`, code), {
      message: `load BPF object '${this.name}': ${reason || `errno ${code}`}`,
    });
  }

  /** Takes ownership of a link or reader: it closes with this object. */
  adopt<T extends Closable>(thing: T): T {
    this.#owned.add(thing);
    if (thing instanceof Link) thing.onClose(() => this.#owned.delete(thing));
    return thing;
  }

  /** Closes links and readers made from this object, then the object. Idempotent. */
  close(): void {
    const handle = this.#handle;
    if (!handle) return;
    const errors: unknown[] = [];
    for (const thing of [...this.#owned].reverse()) {
      try {
        thing.close();
      } catch (e) {
        errors.push(e);
      }
    }
    this.#owned.clear();
    this.#handle = null;
    libbpf().bpf_object__close(handle);
    this.#keepAlive.length = 0;
    if (errors.length) throw errors[0];
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function encodeGlobal(name: string, value: GlobalValue, size: number): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.length > size) {
      throw new BeltError(`global '${name}' holds ${size} bytes, got ${value.length}`);
    }
    return value;
  }
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  const n = typeof value === "boolean" ? (value ? 1 : 0) : value;
  switch (size) {
    case 1:
      v.setUint8(0, Number(n));
      break;
    case 2:
      v.setUint16(0, Number(n), true);
      break;
    case 4:
      v.setUint32(0, Number(n) >>> 0, true);
      break;
    case 8:
      v.setBigUint64(0, BigInt.asUintN(64, BigInt(n)), true);
      break;
    default:
      throw new BeltError(`global '${name}' is ${size} bytes: pass a Uint8Array`);
  }
  return out;
}

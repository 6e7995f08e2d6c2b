/**
 * One program of a BPF object: its identity, whether it loads, its fd once
 * loaded, kernel run statistics, and BPF_PROG_TEST_RUN.
 *
 * @module
 */
import { addressOf, libbpf, libc, readCString } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { objectInfo } from "./syscall.ts";
import type { Closable, Link } from "./link.ts";

/** Result of {@linkcode Program.testRun}. */
export interface TestRunResult {
  /** The program's return value (XDP action, TC verdict, ...). */
  retval: number;
  /** The packet as the program left it. */
  dataOut: Uint8Array;
  /** Average nanoseconds per run, as measured by the kernel. */
  durationNs: number;
}

/** Options of {@linkcode Program.testRun}. */
export interface TestRunOptions {
  /** How many times the kernel runs the program (timing); default 1. */
  repeat?: number;
  /** Room for the output packet; default input length + 256. */
  outputSize?: number;
}

/** Kernel statistics of a loaded program. */
export interface ProgramStats {
  /** The program id the kernel assigned. */
  id: number;
  /** Runs counted while bpf_stats was enabled. */
  runCount: bigint;
  /** Total run time in ns while bpf_stats was enabled. */
  runTimeNs: bigint;
}

/** Who owns a program's links (its object): links close with it. */
export interface LinkOwner {
  /** Remembers a link or reader so closing the owner closes it. */
  adopt<T extends Closable>(thing: T): T;
  /** The object's name, for messages. */
  readonly name: string;
  /** Whether the object has been loaded. */
  readonly loaded: boolean;
  /** Whether the object is closed: its libbpf pointers are freed then. */
  readonly closed: boolean;
}

/** Throws once `owner` is closed: libbpf has freed everything inside it. */
export function assertOpen(owner: LinkOwner): void {
  if (owner.closed) throw new BeltError(`BPF object '${owner.name}' is closed`);
}

/**
 * A program inside a {@linkcode BpfObject}. Get it with `object.program(name)`.
 *
 * @example Skip a program the kernel cannot load, then run another in a test
 * ```ts ignore
 * import { BpfObject } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("filter.bpf.o"));
 * obj.program("on_fentry").autoload = false;
 * obj.load();
 * const r = obj.program("xdp_filter").testRun(new Uint8Array(64));
 * console.log(r.retval);
 * ```
 */
export class Program {
  /** The function name in C. */
  readonly name: string;
  /** The ELF section, e.g. "xdp", "tc", "tp_btf/inet_sock_set_state". */
  readonly section: string;
  readonly #handle: Deno.PointerObject;
  readonly #owner: LinkOwner;

  /** Wraps a libbpf program pointer; done by BpfObject. */
  constructor(owner: LinkOwner, handle: Deno.PointerObject) {
    this.#owner = owner;
    this.#handle = handle;
    this.name = readCString(libbpf().bpf_program__name(handle));
    this.section = readCString(libbpf().bpf_program__section_name(handle));
  }

  /** libbpf's `struct bpf_program *`; throws once the object is closed (libbpf freed it). */
  get handle(): Deno.PointerObject {
    assertOpen(this.#owner);
    return this.#handle;
  }

  /** The program type (enum bpf_prog_type). */
  get type(): number {
    return libbpf().bpf_program__type(this.handle);
  }

  /** Whether `load()` loads this program; set before loading. */
  get autoload(): boolean {
    return libbpf().bpf_program__autoload(this.handle);
  }

  set autoload(on: boolean) {
    if (this.#owner.loaded) {
      throw new BeltError(`program '${this.name}': set autoload before load()`);
    }
    libbpf().bpf_program__set_autoload(this.handle, on);
  }

  /** The program fd; throws if the object is not loaded or the program was skipped. */
  get fd(): number {
    const fd = libbpf().bpf_program__fd(this.handle);
    if (fd < 0) {
      throw new BeltError(`program '${this.name}' is not loaded`, {
        hint: this.#owner.loaded ? "its autoload was off" : "call load() first",
      });
    }
    return fd;
  }

  /** Hands a new link to the owning object, which closes it on close(). */
  adopt<T extends Link>(link: T): T {
    return this.#owner.adopt(link);
  }

  /** The kernel id and run statistics (counted while bpf_stats is on). */
  stats(): ProgramStats {
    const info = objectInfo(this.fd, 256); // struct bpf_prog_info
    return {
      id: info.getUint32(4, true),
      runTimeNs: info.getBigUint64(192, true),
      runCount: info.getBigUint64(200, true),
    };
  }

  /**
   * Runs the program once (or `repeat` times) on `data` in the kernel
   * (BPF_PROG_TEST_RUN) without attaching it anywhere.
   */
  testRun(data: Uint8Array, options: TestRunOptions = {}): TestRunResult {
    const input = new Uint8Array(data); // a private copy: the kernel reads it by address
    const output = new Uint8Array(options.outputSize ?? data.length + 256);
    const opts = new Uint8Array(80); // struct bpf_test_run_opts
    const v = new DataView(opts.buffer);
    v.setBigUint64(0, 80n, true);
    v.setBigUint64(8, input.length ? addressOf(input) : 0n, true);
    v.setBigUint64(16, addressOf(output), true);
    v.setUint32(24, input.length, true);
    v.setUint32(28, output.length, true);
    v.setInt32(60, options.repeat ?? 1, true);
    const rc = libbpf().bpf_prog_test_run_opts(this.fd, opts);
    if (rc < 0) throw errorFromErrno(`test run of program '${this.name}'`, -rc);
    return {
      retval: v.getInt32(56, true),
      dataOut: output.slice(0, v.getUint32(28, true)),
      durationNs: v.getUint32(64, true),
    };
  }
}

/** What the kernel says about any loaded program, by id. */
export interface ProgramInfo extends ProgramStats {
  /** The program's name (first 15 characters, as the kernel keeps it). */
  name: string;
}

/**
 * Reads a loaded program's name and run statistics by its kernel id (any
 * process's program, e.g. one in a chain).
 *
 * @example
 * ```ts ignore
 * import { programInfo } from "@belt/belt/bpf";
 * console.log(programInfo(42)); // { id: 42, name: "count_ingress", runCount: 0n, runTimeNs: 0n }
 * ```
 */
export function programInfo(id: number): ProgramInfo {
  const fd = libbpf().bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw errorFromErrno(`open program id ${id}`, -fd);
  try {
    const info = objectInfo(fd, 256);
    const nameBytes = new Uint8Array(info.buffer, 64, 16); // bpf_prog_info.name
    const end = nameBytes.indexOf(0);
    return {
      id: info.getUint32(4, true),
      name: new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 16 : end)),
      runTimeNs: info.getBigUint64(192, true),
      runCount: info.getBigUint64(200, true),
    };
  } finally {
    libc().close(fd);
  }
}

/**
 * The ids of the maps a loaded program uses, by the program's kernel id.
 *
 * @example
 * ```ts ignore
 * import { programMapIds } from "@belt/belt/bpf";
 * console.log(programMapIds(42)); // [17, 18]
 * ```
 */
export function programMapIds(id: number): number[] {
  const fd = libbpf().bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw errorFromErrno(`open program id ${id}`, -fd);
  try {
    const count = objectInfo(fd, 256).getUint32(52, true); // bpf_prog_info.nr_map_ids
    if (!count) return [];
    // Second call with room for the ids: map_ids (u64 pointer) at 56, nr_map_ids at 52.
    const ids = new Uint32Array(count);
    const info = new Uint8Array(256);
    const v = new DataView(info.buffer);
    v.setUint32(52, count, true);
    v.setBigUint64(56, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(ids))), true);
    const len = new Uint32Array([256]);
    const rc = libbpf().bpf_obj_get_info_by_fd(fd, info, new Uint8Array(len.buffer));
    if (rc < 0) throw errorFromErrno(`read map ids of program ${id}`, -rc);
    return [...ids.subarray(0, Math.min(count, v.getUint32(52, true)))];
  } finally {
    libc().close(fd);
  }
}

/**
 * Turns on the kernel's per-program run statistics (run count and time, as
 * `sysctl kernel.bpf_stats_enabled=1` does) until the handle is closed.
 *
 * @example Measure what a chain costs for five seconds
 * ```ts ignore
 * import { enableRunStats } from "@belt/belt/bpf";
 * using _stats = enableRunStats();
 * await new Promise((r) => setTimeout(r, 5000));
 * ```
 */
export function enableRunStats(): Closable & Disposable {
  const fd = libbpf().bpf_enable_stats(0); // BPF_STATS_RUN_TIME
  if (fd < 0) throw errorFromErrno("enable BPF run statistics", -fd);
  let open = true;
  const close = () => {
    if (open) libc().close(fd);
    open = false;
  };
  return { close, [Symbol.dispose]: close };
}

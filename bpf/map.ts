/**
 * BPF maps with typed keys and values: lookup, update, delete, iterate,
 * batch operations, per-CPU values, pinning.
 *
 * @module
 */
import { cstr, errno, libbpf, libc, readCString } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import type { Codec } from "./codec.ts";
import { pinFd } from "./link.ts";
import type { Closable } from "./link.ts";
import { assertOpen, programMapIds } from "./program.ts";
import { objectInfo } from "./syscall.ts";
import type { LinkOwner } from "./program.ts";

/**
 * Map types belt names (enum bpf_map_type).
 *
 * @example
 * ```ts ignore
 * import { MapType } from "@belt/belt/bpf";
 * if (obj.map("events").type === MapType.RINGBUF) console.log("ring buffer");
 * ```
 */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  PERCPU_CGROUP_STORAGE: 21,
  RINGBUF: 27,
} as const;

const PER_CPU_TYPES: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
  MapType.PERCPU_CGROUP_STORAGE,
]);
const ARRAY_TYPES: ReadonlySet<number> = new Set([MapType.ARRAY, MapType.PERCPU_ARRAY]);
const ENOENT = 2;
const E2BIG = 7;

/**
 * Update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST).
 *
 * @example
 * ```ts ignore
 * import { UpdateFlag } from "@belt/belt/bpf";
 * rules.set(key, value, UpdateFlag.NOEXIST); // fails with EEXIST if present
 * ```
 */
export const UpdateFlag = { ANY: 0n, NOEXIST: 1n, EXIST: 2n } as const;

let possibleCpus = 0;
/**
 * Number of possible CPUs: the number of slots in a per-CPU value.
 *
 * @example
 * ```ts ignore
 * import { possibleCpuCount } from "@belt/belt/bpf";
 * console.log(possibleCpuCount());
 * ```
 */
export function possibleCpuCount(): number {
  possibleCpus ||= libbpf().libbpf_num_possible_cpus();
  return possibleCpus;
}

/**
 * A map of a loaded object (or opened from a pin). Use {@linkcode BpfMap.typed}
 * for keys and values as TypeScript values.
 *
 * @example Count packets per protocol
 * ```ts ignore
 * import { BpfObject, u32, u64 } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("count.bpf.o"));
 * obj.load();
 * const counts = obj.map("counts").typed(u32, u64);
 * counts.set(17, 0n);
 * for (const [proto, n] of counts.entries()) console.log(proto, n);
 * ```
 */
export class BpfMap {
  /** The map's name in C. */
  readonly name: string;
  readonly #handle: Deno.PointerObject;
  readonly #owner: LinkOwner;

  /** Wraps a libbpf map pointer; done by BpfObject, which owns readers made on the map. */
  constructor(handle: Deno.PointerObject, owner: LinkOwner) {
    this.#handle = handle;
    this.#owner = owner;
    this.name = readCString(libbpf().bpf_map__name(handle));
  }

  /** libbpf's `struct bpf_map *`; throws once the object is closed (libbpf freed it). */
  get handle(): Deno.PointerObject {
    assertOpen(this.#owner);
    return this.#handle;
  }

  /**
   * Before load: makes this map the same kernel map as `other` (loaded), so
   * two objects share it. libbpf checks at load that type, key and value
   * sizes and capacity agree.
   */
  reuse(other: BpfMap | number): void {
    const fd = typeof other === "number" ? other : other.fd;
    const rc = libbpf().bpf_map__reuse_fd(this.handle, fd);
    if (rc < 0) throw errorFromErrno(`share map '${this.name}'`, -rc, "set sharing before load()");
  }

  /**
   * Keeps the kernel map alive beyond this object (a duplicated fd), e.g.
   * for other objects to reuse() later. Close the handle to let it go.
   */
  hold(): { readonly fd: number; close(): void } {
    const fd = libc().fcntl(this.fd, 1030, 3); // F_DUPFD_CLOEXEC, lowest fd >= 3
    if (fd < 0) throw errorFromErrno(`duplicate the fd of map '${this.name}'`, errno());
    let open = true;
    return {
      fd,
      close() {
        if (open) closeFd(fd);
        open = false;
      },
    };
  }

  /** Hands a reader made on this map to the owning object, which closes it on close(). */
  adopt<T extends Closable>(reader: T): T {
    return this.#owner.adopt(reader);
  }

  /** enum bpf_map_type. */
  get type(): number {
    return libbpf().bpf_map__type(this.handle);
  }
  /** Key size in bytes. */
  get keySize(): number {
    return libbpf().bpf_map__key_size(this.handle);
  }
  /** Value size in bytes (one CPU's share for per-CPU maps). */
  get valueSize(): number {
    return libbpf().bpf_map__value_size(this.handle);
  }
  /** Capacity. */
  get maxEntries(): number {
    return libbpf().bpf_map__max_entries(this.handle);
  }
  /** Sets the capacity; only before load. */
  set maxEntries(n: number) {
    const rc = libbpf().bpf_map__set_max_entries(this.handle, n);
    if (rc < 0) {
      throw errorFromErrno(`set max_entries of map '${this.name}'`, -rc, "set it before load()");
    }
  }
  /** Whether each key holds one value per CPU. */
  get perCpu(): boolean {
    return PER_CPU_TYPES.has(this.type);
  }
  /** The map fd (valid once loaded). */
  get fd(): number {
    const fd = libbpf().bpf_map__fd(this.handle);
    if (fd < 0) {
      throw new BeltError(`map '${this.name}' is not created yet`, { hint: "call load() first" });
    }
    return fd;
  }

  /** A typed view; the codecs must match the C key and value sizes. */
  typed<K, V>(key: Codec<K>, value: Codec<V>): TypedMap<K, V> {
    const fd = this.fd;
    const owner = this.#owner;
    const liveFd = () => {
      assertOpen(owner); // the fd number may belong to something else once closed
      return fd;
    };
    return new TypedMap(liveFd, this.name, this.type, key, value, {
      keySize: this.keySize,
      valueSize: this.valueSize,
      maxEntries: this.maxEntries,
    });
  }

  /** Pins the map on bpffs so it outlives this process. */
  pin(path: string): void {
    pinFd(this.fd, path, `map '${this.name}'`);
  }

  /** Removes a pin made with pin(); a missing pin is not an error. */
  unpin(path: string): void {
    try {
      Deno.removeSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
}

/** Sizes a TypedMap checks its codecs against. */
interface MapShape {
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/**
 * Typed access to a map. Per-CPU maps return one value per possible CPU from
 * `get`, and `getSum` adds them up field by field.
 *
 * @example Batch-load 10k entries, then read them all back in one call
 * ```ts ignore
 * import { BpfObject, u32, u64 } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("maps.bpf.o"));
 * obj.load();
 * const m = obj.map("hash").typed(u32, u64);
 * m.setBatch(Array.from({ length: 10_000 }, (_, i) => [i, BigInt(i)] as [number, bigint]));
 * console.log(m.getBatch().length); // 10000
 * ```
 */
export class TypedMap<K, V> {
  readonly #fdOf: () => number;
  readonly #name: string;
  readonly #type: number;
  readonly #key: Codec<K>;
  readonly #value: Codec<V>;
  readonly #cpus: number;
  readonly #stride: number; // bytes of one CPU's value in the kernel's per-CPU layout
  readonly #maxEntries: number;
  readonly #valueBytes: number; // one full value as the syscall sees it (all CPUs)
  // Scratch buffers reused by every single-entry call: the kernel copies them
  // before the call returns, and decoded values never alias them.
  readonly #keyBuf: Uint8Array<ArrayBuffer>;
  readonly #keyView: DataView;
  readonly #valueBuf: Uint8Array<ArrayBuffer>;
  readonly #valueView: DataView;

  /** Built by {@linkcode BpfMap.typed} or {@linkcode openPinnedMap}. */
  constructor(
    fdOf: () => number,
    name: string,
    type: number,
    key: Codec<K>,
    value: Codec<V>,
    shape: MapShape,
  ) {
    if (key.size !== shape.keySize) {
      throw new BeltError(
        `map '${name}' has ${shape.keySize}-byte keys, the key codec is ${key.size} bytes`,
        { hint: "use a key codec that matches the C key type" },
      );
    }
    if (value.size !== shape.valueSize) {
      throw new BeltError(
        `map '${name}' has ${shape.valueSize}-byte values, the value codec is ${value.size} bytes`,
        { hint: "use a value codec that matches the C value type" },
      );
    }
    this.#fdOf = fdOf;
    this.#name = name;
    this.#type = type;
    this.#key = key;
    this.#value = value;
    const perCpu = PER_CPU_TYPES.has(type);
    this.#cpus = perCpu ? possibleCpuCount() : 1;
    this.#stride = perCpu ? Math.ceil(value.size / 8) * 8 : value.size;
    this.#maxEntries = shape.maxEntries;
    this.#valueBytes = this.#stride * this.#cpus;
    this.#keyBuf = new Uint8Array(key.size);
    this.#keyView = new DataView(this.#keyBuf.buffer);
    this.#valueBuf = new Uint8Array(this.#valueBytes);
    this.#valueView = new DataView(this.#valueBuf.buffer);
  }

  /** Capacity (max_entries). */
  get maxEntries(): number {
    return this.#maxEntries;
  }

  /** The map's kernel id: the same for every fd of one map, in any process. */
  get id(): number {
    return objectInfo(this.#fdOf(), 96).getUint32(4, true); // bpf_map_info.id
  }

  #encodeKey(key: K): Uint8Array<ArrayBuffer> {
    this.#key.write(this.#keyView, 0, key);
    return this.#keyBuf;
  }

  #lookup(key: K): boolean {
    const rc = libbpf().bpf_map_lookup_elem(this.#fdOf(), this.#encodeKey(key), this.#valueBuf);
    if (rc === -ENOENT) return false;
    if (rc < 0) throw this.#fail("look up in", -rc);
    return true;
  }

  #writeValue(view: DataView, base: number, value: V | V[]): void {
    const perCpu = Array.isArray(value) && this.#cpus > 1 ? value as V[] : undefined;
    for (let cpu = 0; cpu < this.#cpus; cpu++) {
      // A single value for a per-CPU map goes to every CPU.
      this.#value.write(view, base + cpu * this.#stride, perCpu ? perCpu[cpu]! : value as V);
    }
  }

  #readValues(view: DataView, base: number): V[] {
    const out: V[] = [];
    for (let cpu = 0; cpu < this.#cpus; cpu++) {
      out.push(this.#value.read(view, base + cpu * this.#stride));
    }
    return out;
  }

  #fail(op: string, code: number): BeltError {
    if (code === E2BIG && !ARRAY_TYPES.has(this.#type)) {
      return new BeltError(`map '${this.#name}' is full (${this.#maxEntries} entries)`, {
        code,
        hint: "delete entries or raise max_entries before load",
      });
    }
    if (code === E2BIG) {
      return new BeltError(`map '${this.#name}': index out of range (size ${this.#maxEntries})`, {
        code,
      });
    }
    return errorFromErrno(`${op} map '${this.#name}'`, code);
  }

  /** The value for `key` (per-CPU maps: one per CPU), or undefined. */
  getAll(key: K): V[] | undefined {
    return this.#lookup(key) ? this.#readValues(this.#valueView, 0) : undefined;
  }

  /** The value for `key`; on a per-CPU map, CPU 0's value (use getAll/getSum). */
  get(key: K): V | undefined {
    return this.#lookup(key) ? this.#value.read(this.#valueView, 0) : undefined;
  }

  /** The per-CPU values of `key` added up field by field. */
  getSum(key: K): V | undefined {
    const all = this.getAll(key);
    return all ? sumValues(all) : undefined;
  }

  /** Sets `key`; a per-CPU map takes one value for all CPUs or an array of one per CPU. */
  set(key: K, value: V | V[], flags: bigint = UpdateFlag.ANY): void {
    this.#writeValue(this.#valueView, 0, value);
    const rc = libbpf().bpf_map_update_elem(
      this.#fdOf(),
      this.#encodeKey(key),
      this.#valueBuf,
      flags,
    );
    if (rc < 0) throw this.#fail("update", -rc);
  }

  /** Deletes `key`; returns false when it was absent. */
  delete(key: K): boolean {
    const rc = libbpf().bpf_map_delete_elem(this.#fdOf(), this.#encodeKey(key));
    if (rc === -ENOENT) return false;
    if (rc < 0) throw this.#fail("delete from", -rc);
    return true;
  }

  /** Deletes the entry whose key is given as raw bytes; false when there was none. */
  deleteRaw(key: Uint8Array<ArrayBuffer>): boolean {
    const rc = libbpf().bpf_map_delete_elem(this.#fdOf(), key);
    if (rc === -ENOENT) return false;
    if (rc < 0) throw this.#fail("delete from", -rc);
    return true;
  }

  /** Iterates the keys (a snapshot walk; concurrent changes may skip or repeat). */
  *keys(): Generator<K> {
    let prev: Uint8Array<ArrayBuffer> | null = null;
    for (;;) {
      const next = new Uint8Array(this.#key.size);
      const rc = libbpf().bpf_map_get_next_key(this.#fdOf(), prev, next);
      if (rc === -ENOENT) return;
      if (rc < 0) throw this.#fail("iterate", -rc);
      yield this.#key.read(new DataView(next.buffer), 0);
      prev = next;
    }
  }

  /** Iterates [key, value] pairs (per-CPU values summed). */
  *entries(): Generator<[K, V]> {
    for (const key of this.keys()) {
      const all = this.getAll(key);
      if (all) yield [key, this.#cpus > 1 ? sumValues(all) : all[0]!];
    }
  }

  /** Deletes every key (array maps cannot delete: their values are zeroed). */
  clear(): void {
    if (ARRAY_TYPES.has(this.#type)) {
      const zero = new Uint8Array(this.#valueBytes);
      for (const key of this.keys()) {
        const rc = libbpf().bpf_map_update_elem(this.#fdOf(), this.#encodeKey(key), zero, 0n);
        if (rc < 0) throw this.#fail("clear", -rc);
      }
      return;
    }
    for (const key of [...this.keys()]) this.delete(key);
  }

  /**
   * Sets many entries in one syscall per chunk (BPF_MAP_UPDATE_BATCH).
   * Falls back to one update per entry on kernels or map types without batch support.
   */
  setBatch(entries: Iterable<readonly [K, V | V[]]>, chunk = 65536): void {
    const list = [...entries];
    for (let start = 0; start < list.length; start += chunk) {
      const part = list.slice(start, start + chunk);
      const keys = new Uint8Array(part.length * this.#key.size);
      const values = new Uint8Array(part.length * this.#valueBytes);
      const kv = new DataView(keys.buffer);
      const vv = new DataView(values.buffer);
      part.forEach(([k, v], i) => {
        this.#key.write(kv, i * this.#key.size, k);
        this.#writeValue(vv, i * this.#valueBytes, v);
      });
      const count = new Uint32Array([part.length]);
      const rc = libbpf().bpf_map_update_batch(
        this.#fdOf(),
        keys,
        values,
        new Uint8Array(count.buffer),
        batchOpts(),
      );
      if (rc === -22 || rc === -95 || rc === -524) {
        for (const [k, v] of part) this.set(k, v);
      } else if (rc < 0) {
        throw this.#fail(`batch update (${count[0]} of ${part.length} done) of`, -rc);
      }
    }
  }

  /**
   * Writes `count` entries given as raw bytes (keys back to back, values
   * back to back in the kernel's layout: for per-CPU maps, every CPU's
   * value, each rounded up to 8 bytes) with BPF_MAP_UPDATE_BATCH. For
   * callers that encode large batches themselves.
   */
  setBatchRaw(keys: Uint8Array<ArrayBuffer>, values: Uint8Array<ArrayBuffer>, chunk = 65536): void {
    const total = keys.length / this.#key.size;
    if (!Number.isInteger(total) || values.length !== total * this.#valueBytes) {
      throw new BeltError(
        `map '${this.#name}': raw batch of ${keys.length} key and ${values.length} value bytes does not hold whole entries`,
      );
    }
    for (let start = 0; start < total; start += chunk) {
      const n = Math.min(chunk, total - start);
      const k = keys.subarray(start * this.#key.size, (start + n) * this.#key.size);
      const v = values.subarray(start * this.#valueBytes, (start + n) * this.#valueBytes);
      const count = new Uint32Array([n]);
      const rc = libbpf().bpf_map_update_batch(
        this.#fdOf(),
        k,
        v,
        new Uint8Array(count.buffer),
        batchOpts(),
      );
      if (rc === -22 || rc === -95 || rc === -524) {
        for (let i = 0; i < n; i++) {
          const one = libbpf().bpf_map_update_elem(
            this.#fdOf(),
            k.subarray(i * this.#key.size, (i + 1) * this.#key.size),
            v.subarray(i * this.#valueBytes, (i + 1) * this.#valueBytes),
            0n,
          );
          if (one < 0) throw this.#fail("update", -one);
        }
      } else if (rc < 0) {
        throw this.#fail(`batch update (${count[0]} of ${n} done) of`, -rc);
      }
    }
  }

  /** Bytes of one value as the syscall sees it (all CPUs' for per-CPU maps). */
  get valueBytes(): number {
    return this.#valueBytes;
  }

  /**
   * Reads every entry with BPF_MAP_LOOKUP_BATCH (per-CPU values summed).
   * `keep`, if given, sees each entry's raw bytes first (the key at
   * `keyOffset` of `keys`, CPU 0's value at `valueOffset` of `values`):
   * entries it refuses are not decoded, which keeps reading a large, mostly
   * empty array cheap.
   */
  getBatch(
    chunk = 4096,
    keep?: (keys: DataView, keyOffset: number, values: DataView, valueOffset: number) => boolean,
  ): [K, V][] {
    const out: [K, V][] = [];
    const whole = this.scanBatch((kv, ko, vv, vo) => {
      if (keep && !keep(kv, ko, vv, vo)) return;
      const values = this.#readValues(vv, vo);
      out.push([this.#key.read(kv, ko), this.#cpus > 1 ? sumValues(values) : values[0]!]);
    }, chunk);
    return whole ? out : [...this.entries()];
  }

  /**
   * Visits every entry's raw bytes with BPF_MAP_LOOKUP_BATCH, `chunk`
   * entries per syscall: the key at `keyOffset` of `keys`, the value (all
   * CPUs' for per-CPU maps) at `valueOffset` of `values`. The views are
   * reused: copy what you keep. `visit` returning false ends the scan
   * early. Returns false, having visited nothing, when the kernel has no
   * batch lookup for this map.
   */
  scanBatch(
    visit: (
      keys: DataView,
      keyOffset: number,
      values: DataView,
      valueOffset: number,
    ) => boolean | void,
    chunk = 4096,
  ): boolean {
    const tokenSize = Math.max(this.#key.size, 8);
    let inBatch: Uint8Array<ArrayBuffer> | null = null;
    const outBatch = new Uint8Array(tokenSize);
    const keys = new Uint8Array(chunk * this.#key.size);
    const values = new Uint8Array(chunk * this.#valueBytes);
    const kv = new DataView(keys.buffer);
    const vv = new DataView(values.buffer);
    for (;;) {
      const count = new Uint32Array([chunk]);
      const rc = libbpf().bpf_map_lookup_batch(
        this.#fdOf(),
        inBatch,
        outBatch,
        keys,
        values,
        new Uint8Array(count.buffer),
        batchOpts(),
      );
      if (rc < 0 && rc !== -ENOENT) {
        if (inBatch === null && (rc === -22 || rc === -95 || rc === -524)) return false;
        throw this.#fail("batch lookup in", -rc);
      }
      for (let i = 0; i < count[0]!; i++) {
        if (visit(kv, i * this.#key.size, vv, i * this.#valueBytes) === false) return true;
      }
      if (rc === -ENOENT) return true;
      inBatch = outBatch.slice();
    }
  }
}

function batchOpts(): Uint8Array<ArrayBuffer> {
  const opts = new Uint8Array(24); // struct bpf_map_batch_opts { sz, elem_flags, flags }
  new DataView(opts.buffer).setBigUint64(0, 24n, true);
  return opts;
}

/**
 * Adds per-CPU values: numbers and bigints are summed, objects field by field,
 * arrays (of counters) element by element, anything else (bytes) is taken
 * from the first CPU.
 *
 * @example
 * ```ts
 * import { sumValues } from "@belt/belt/bpf";
 * console.log(sumValues([{ packets: 1n, bytes: 60n }, { packets: 2n, bytes: 120n }]));
 * // { packets: 3n, bytes: 180n }
 * ```
 */
export function sumValues<V>(values: V[]): V {
  const first = values[0] as unknown;
  if (typeof first === "bigint") {
    return values.reduce((a, b) => (a as bigint) + (b as bigint), 0n) as V;
  }
  if (typeof first === "number") {
    return values.reduce((a, b) => (a as number) + (b as number), 0) as V;
  }
  if (Array.isArray(first)) {
    return first.map((_, i) => sumValues(values.map((v) => (v as unknown[])[i]))) as V;
  }
  if (first && typeof first === "object" && !(first instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const field of Object.keys(first)) {
      out[field] = sumValues(values.map((v) => (v as Record<string, unknown>)[field]));
    }
    return out as V;
  }
  return first as V;
}

/**
 * Opens a map pinned on bpffs (e.g. by another belt process) as a typed map.
 * Close the returned handle to release the fd.
 *
 * @example
 * ```ts ignore
 * import { openPinnedMap, u32, u64 } from "@belt/belt/bpf";
 * using pinned = openPinnedMap("/sys/fs/bpf/belt/eth0/firewall/counters", u32, u64);
 * console.log(pinned.map.get(0));
 * ```
 */
export function openPinnedMap<K, V>(
  path: string,
  key: Codec<K>,
  value: Codec<V>,
): { map: TypedMap<K, V>; close(): void; [Symbol.dispose](): void } {
  const fd = libbpf().bpf_obj_get(cstr(path));
  if (fd < 0) throw errorFromErrno(`open pinned map ${path}`, -fd, "is belt running with --pin?");
  return typedFromFd(fd, `pinned map ${path}`, key, value);
}

/**
 * Opens the map named `name` that a loaded program uses (any process's
 * program, found by its kernel id, e.g. in `belt chain show`), as a typed
 * map; undefined when the program has no such map. Close it after use.
 *
 * @example
 * ```ts ignore
 * import { openProgramMap, u32, u64 } from "@belt/belt/bpf";
 * using stats = openProgramMap(42, "mirror_stats", u32, u64);
 * console.log(stats?.map.getSum(0));
 * ```
 */
export function openProgramMap<K, V>(
  progId: number,
  name: string,
  key: Codec<K>,
  value: Codec<V>,
): { map: TypedMap<K, V>; close(): void; [Symbol.dispose](): void } | undefined {
  for (const id of programMapIds(progId)) {
    const fd = libbpf().bpf_map_get_fd_by_id(id);
    if (fd < 0) continue; // gone meanwhile
    if (mapInfo(fd).name !== name) {
      closeFd(fd);
      continue;
    }
    return typedFromFd(fd, `map '${name}' of program ${progId}`, key, value);
  }
  return undefined;
}

function mapInfo(
  fd: number,
): { type: number; keySize: number; valueSize: number; maxEntries: number; name: string } {
  const v = objectInfo(fd, 96); // struct bpf_map_info
  const nameBytes = new Uint8Array(v.buffer, 24, 16);
  const end = nameBytes.indexOf(0);
  return {
    type: v.getUint32(0, true),
    keySize: v.getUint32(8, true),
    valueSize: v.getUint32(12, true),
    maxEntries: v.getUint32(16, true),
    name: new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 16 : end)),
  };
}

/** Wraps an open map fd (owned from now on) as a typed map with its own close. */
function typedFromFd<K, V>(
  fd: number,
  what: string,
  key: Codec<K>,
  value: Codec<V>,
): { map: TypedMap<K, V>; close(): void; [Symbol.dispose](): void } {
  let open = true;
  const liveFd = () => {
    if (!open) throw new BeltError(`${what} is closed`);
    return fd;
  };
  let map: TypedMap<K, V>;
  try {
    const info = mapInfo(fd);
    map = new TypedMap(liveFd, info.name, info.type, key, value, info);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  const close = () => {
    if (open) closeFd(fd);
    open = false;
  };
  return { map, close, [Symbol.dispose]: close };
}

function closeFd(fd: number): void {
  libc().close(fd);
}

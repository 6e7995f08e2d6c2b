/**
 * Typed codecs for the bytes shared with the kernel: map keys and values,
 * ring buffer events. A struct codec follows C layout rules and refuses
 * implicit padding, so every byte the kernel sees is one you named.
 *
 * @example A struct shared with an eBPF program
 * ```ts
 * import { struct, u16, u32, u64, pad } from "@belt/belt/bpf";
 * const flowKey = struct({ addr: u32, port: u16, _pad: pad(2), packets: u64 });
 * const bytes = flowKey.pack({ addr: 1, port: 80, _pad: undefined, packets: 3n });
 * console.log(flowKey.size, flowKey.unpack(bytes).port); // 16 80
 * ```
 *
 * @module
 */
import { BeltError } from "./errors.ts";

/** Encodes and decodes one C type at an offset of a DataView. */
export interface Codec<T> {
  /** Size in bytes, as C `sizeof`. */
  readonly size: number;
  /** Alignment in bytes, as C `_Alignof`. */
  readonly align: number;
  /** Reads a value at `offset`. */
  read(view: DataView, offset: number): T;
  /** Writes `value` at `offset`. */
  write(view: DataView, offset: number, value: T): void;
}

/** The TypeScript type a codec reads and writes. */
export type Decoded<C> = C extends Codec<infer T> ? T : never;

function scalar<T>(
  size: number,
  read: (v: DataView, o: number) => T,
  write: (v: DataView, o: number, x: T) => void,
): Codec<T> {
  return { size, align: size, read, write };
}

/**
 * `__u8`.
 *
 * @example
 * ```ts
 * import { decode, encode, u8 } from "@belt/belt/bpf";
 * console.log(decode(u8, encode(u8, 7))); // 7
 * ```
 */
export const u8: Codec<number> = scalar(1, (v, o) => v.getUint8(o), (v, o, x) => v.setUint8(o, x));
/**
 * `__s8`.
 *
 * @example
 * ```ts
 * import { decode, encode, i8 } from "@belt/belt/bpf";
 * console.log(decode(i8, encode(i8, -7))); // -7
 * ```
 */
export const i8: Codec<number> = scalar(1, (v, o) => v.getInt8(o), (v, o, x) => v.setInt8(o, x));
/**
 * `__u16`, host (little-endian) order.
 *
 * @example
 * ```ts
 * import { decode, encode, u16 } from "@belt/belt/bpf";
 * console.log(decode(u16, encode(u16, 7))); // 7
 * ```
 */
export const u16: Codec<number> = scalar(
  2,
  (v, o) => v.getUint16(o, true),
  (v, o, x) => v.setUint16(o, x, true),
);
/**
 * `__be16`: network byte order, e.g. a port as the packet carries it.
 *
 * @example
 * ```ts
 * import { decode, encode, be16 } from "@belt/belt/bpf";
 * console.log(decode(be16, encode(be16, 7))); // 7
 * ```
 */
export const be16: Codec<number> = scalar(
  2,
  (v, o) => v.getUint16(o, false),
  (v, o, x) => v.setUint16(o, x, false),
);
/**
 * `__s16`.
 *
 * @example
 * ```ts
 * import { decode, encode, i16 } from "@belt/belt/bpf";
 * console.log(decode(i16, encode(i16, -7))); // -7
 * ```
 */
export const i16: Codec<number> = scalar(
  2,
  (v, o) => v.getInt16(o, true),
  (v, o, x) => v.setInt16(o, x, true),
);
/**
 * `__u32`, host order.
 *
 * @example
 * ```ts
 * import { decode, encode, u32 } from "@belt/belt/bpf";
 * console.log(decode(u32, encode(u32, 7))); // 7
 * ```
 */
export const u32: Codec<number> = scalar(
  4,
  (v, o) => v.getUint32(o, true),
  (v, o, x) => v.setUint32(o, x, true),
);
/**
 * `__be32`: network byte order, e.g. an IPv4 address.
 *
 * @example
 * ```ts
 * import { decode, encode, be32 } from "@belt/belt/bpf";
 * console.log(decode(be32, encode(be32, 7))); // 7
 * ```
 */
export const be32: Codec<number> = scalar(
  4,
  (v, o) => v.getUint32(o, false),
  (v, o, x) => v.setUint32(o, x, false),
);
/**
 * `__s32`.
 *
 * @example
 * ```ts
 * import { decode, encode, i32 } from "@belt/belt/bpf";
 * console.log(decode(i32, encode(i32, -7))); // -7
 * ```
 */
export const i32: Codec<number> = scalar(
  4,
  (v, o) => v.getInt32(o, true),
  (v, o, x) => v.setInt32(o, x, true),
);
/**
 * `__u64` as bigint (counters overflow 2^53).
 *
 * @example
 * ```ts
 * import { decode, encode, u64 } from "@belt/belt/bpf";
 * console.log(decode(u64, encode(u64, 7n))); // 7n
 * ```
 */
export const u64: Codec<bigint> = scalar(
  8,
  (v, o) => v.getBigUint64(o, true),
  (v, o, x) => v.setBigUint64(o, x, true),
);
/**
 * `__s64` as bigint.
 *
 * @example
 * ```ts
 * import { decode, encode, i64 } from "@belt/belt/bpf";
 * console.log(decode(i64, encode(i64, -7n))); // -7n
 * ```
 */
export const i64: Codec<bigint> = scalar(
  8,
  (v, o) => v.getBigInt64(o, true),
  (v, o, x) => v.setBigInt64(o, x, true),
);

/**
 * `__u8 name[n]`: raw bytes (copied on read).
 *
 * @example
 * ```ts
 * import { bytes, struct } from "@belt/belt/bpf";
 * const mac = struct({ addr: bytes(6), _pad: bytes(2) });
 * console.log(mac.size); // 8
 * ```
 */
export function bytes(n: number): Codec<Uint8Array> {
  return {
    size: n,
    align: 1,
    // Byte loops rather than views and slices: small typed arrays live on
    // V8's heap, while every view or ArrayBuffer made here would cost an
    // allocation outside it (tens of times slower for 100k-entry batches).
    read: (v, o) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = v.getUint8(o + i);
      return out;
    },
    write: (v, o, x) => {
      if (x.length > n) throw new BeltError(`${x.length} bytes do not fit a ${n}-byte field`);
      for (let i = 0; i < n; i++) v.setUint8(o + i, i < x.length ? x[i]! : 0);
    },
  };
}

/**
 * `char name[n]`: a NUL-terminated string (e.g. `comm`).
 *
 * @example
 * ```ts
 * import { cstring, decode } from "@belt/belt/bpf";
 * console.log(decode(cstring(16), new TextEncoder().encode("bash\0"))); // "bash"
 * ```
 */
export function cstring(n: number): Codec<string> {
  const raw = bytes(n);
  return {
    size: n,
    align: 1,
    read: (v, o) => {
      const b = raw.read(v, o);
      const end = b.indexOf(0);
      return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
    },
    write: (v, o, x) => raw.write(v, o, new TextEncoder().encode(x).subarray(0, n - 1)),
  };
}

/**
 * Explicit padding: reads as undefined, writes zeros.
 *
 * @example
 * ```ts
 * import { pad, struct, u16, u32 } from "@belt/belt/bpf";
 * const key = struct({ port: u16, _pad: pad(2), addr: u32 });
 * console.log(key.size); // 8
 * ```
 */
export function pad(n: number): Codec<undefined> {
  return {
    size: n,
    align: 1,
    read: () => undefined,
    write: (v, o) => {
      for (let i = 0; i < n; i++) v.setUint8(o + i, 0);
    },
  };
}

/**
 * `T name[n]`.
 *
 * @example
 * ```ts
 * import { array, decode, u16 } from "@belt/belt/bpf";
 * console.log(decode(array(u16, 2), new Uint8Array([1, 0, 2, 0]))); // [1, 2]
 * ```
 */
export function array<T>(codec: Codec<T>, n: number): Codec<T[]> {
  return {
    size: codec.size * n,
    align: codec.align,
    read: (v, o) => Array.from({ length: n }, (_, i) => codec.read(v, o + i * codec.size)),
    write: (v, o, x) => x.forEach((item, i) => codec.write(v, o + i * codec.size, item)),
  };
}

/** One member of a struct layout. */
export interface FieldLayout {
  /** Member name. */
  name: string;
  /** Byte offset from the start of the struct. */
  offset: number;
  /** Size in bytes. */
  size: number;
}

/** A codec for a C struct, with its layout and whole-value helpers. */
export interface StructCodec<T> extends Codec<T> {
  /** Members in declaration order with their offsets. */
  readonly layout: readonly FieldLayout[];
  /** Encodes a whole value into a new buffer of `size` bytes. */
  pack(value: T): Uint8Array<ArrayBuffer>;
  /** Decodes a whole value from `bytes` (at least `size` long). */
  unpack(bytes: Uint8Array): T;
}

/** The decoded object type of a struct whose members are the codecs `F`. */
export type FieldsOf<F extends Record<string, Codec<unknown>>> = { [K in keyof F]: Decoded<F[K]> };

/**
 * A C struct. Members are laid out in order with C alignment rules; if a
 * member (or the end) would need implicit padding, this throws and names it,
 * so shared structs spell out their padding with {@linkcode pad}.
 *
 * @example
 * ```ts
 * import { struct, u32, u64 } from "@belt/belt/bpf";
 * const counters = struct({ packets: u64, bytes: u64, rule: u32, flags: u32 });
 * console.log(counters.layout.map((f) => `${f.name}@${f.offset}`).join(" "));
 * ```
 */
export function struct<F extends Record<string, Codec<unknown>>>(
  fields: F,
): StructCodec<FieldsOf<F>> {
  const layout: FieldLayout[] = [];
  let offset = 0;
  let align = 1;
  for (const [name, codec] of Object.entries(fields)) {
    if (offset % codec.align !== 0) {
      throw new BeltError(
        `struct member '${name}' at offset ${offset} needs ${codec.align}-byte alignment`,
        { hint: "add an explicit pad() member before it" },
      );
    }
    layout.push({ name, offset, size: codec.size });
    offset += codec.size;
    align = Math.max(align, codec.align);
  }
  if (offset % align !== 0) {
    throw new BeltError(`struct ends at ${offset}, not a multiple of its alignment ${align}`, {
      hint: "add an explicit pad() member at the end",
    });
  }
  const size = offset;
  const entries = layout.map((f) => [f.name, f.offset, fields[f.name]!] as const);
  const codec: StructCodec<FieldsOf<F>> = {
    size,
    align,
    layout,
    read(view, base) {
      const out: Record<string, unknown> = {};
      for (const [name, off, c] of entries) out[name] = c.read(view, base + off);
      return out as FieldsOf<F>;
    },
    write(view, base, value) {
      for (const [name, off, c] of entries) {
        c.write(view, base + off, (value as Record<string, unknown>)[name]);
      }
    },
    pack(value) {
      const buf = new Uint8Array(size);
      codec.write(new DataView(buf.buffer), 0, value);
      return buf;
    },
    unpack(bytes) {
      if (bytes.length < size) {
        throw new BeltError(`need ${size} bytes to decode the struct, got ${bytes.length}`);
      }
      return codec.read(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0);
    },
  };
  return codec;
}

/**
 * Encodes one value of any codec into a new buffer.
 *
 * @example
 * ```ts
 * import { encode, u32 } from "@belt/belt/bpf";
 * console.log(encode(u32, 7)); // Uint8Array [7, 0, 0, 0]
 * ```
 */
export function encode<T>(codec: Codec<T>, value: T): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(codec.size);
  codec.write(new DataView(buf.buffer), 0, value);
  return buf;
}

/**
 * Decodes one value of any codec from the start of `bytes`.
 *
 * @example
 * ```ts
 * import { decode, u16 } from "@belt/belt/bpf";
 * console.log(decode(u16, new Uint8Array([1, 2]))); // 513
 * ```
 */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array, offset = 0): T {
  return codec.read(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset);
}

/**
 * A small, fast pcapng writer (and a minimal reader for what it writes), so
 * captured packets open in Wireshark/tshark with interface names, nanosecond
 * timestamps and directions. Format: little-endian pcapng as in
 * draft-ietf-opsawg-pcapng: one Section Header Block, Interface Description
 * Blocks, Enhanced Packet Blocks.
 *
 * Blocks are encoded into one reusable buffer and handed to the sink only
 * when it is full and on `flush()`/`close()`, so writing a packet costs a
 * copy of its bytes and a few DataView stores, with no allocation.
 *
 * @example Write a capture file
 * ```ts
 * import { PcapngWriter, readPcapng } from "@belt/belt";
 * const path = await Deno.makeTempFile({ suffix: ".pcapng" });
 * {
 *   using file = await Deno.open(path, { write: true, truncate: true });
 *   using w = new PcapngWriter(file, { application: "belt 0.1.0" });
 *   const eth0 = w.addInterface({ name: "eth0" });
 *   w.writePacket(eth0, 1_700_000_000_123_456_789n, new Uint8Array(60), 60, "in");
 * }
 * console.log(readPcapng(await Deno.readFile(path)).packets.length); // 1
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

/**
 * Where a {@link PcapngWriter} puts its bytes: anything with a synchronous
 * `writeSync` that may write part of its input (`Deno.FsFile`,
 * `Deno.stdout`), or with a `write` that takes all of it (an in-memory
 * collector). The bytes passed are a view of the writer's buffer, valid only
 * during the call: copy them to keep them. `close` is called only with
 * `closeSink: true`.
 */
export type PcapngSink =
  | { writeSync(p: Uint8Array): number; close?(): void }
  | { write(p: Uint8Array): void; close?(): void };

/** Options of {@link PcapngWriter}. */
export interface PcapngWriterOptions {
  /** Written as the section's `shb_userappl` option, e.g. `"belt 0.1.0"`. */
  application?: string;
  /** Buffer size in bytes before a flush (default 1 MiB); grows for a larger packet. */
  bufferSize?: number;
  /** Whether `close()` also closes the sink (default false). */
  closeSink?: boolean;
}

/** An interface to declare with {@link PcapngWriter.addInterface}. */
export interface PcapngInterface {
  /** `if_name`, e.g. `"eth0"`. */
  name: string;
  /** LINKTYPE_* value (default 1, Ethernet). */
  linktype?: number;
  /** Largest captured length of its packets; 0 (default) for no limit. */
  snaplen?: number;
  /** `if_description`, written when given. */
  description?: string;
}

/** Packet direction as written in `epb_flags` bits 0-1. */
export type PcapngDirection = "in" | "out";

// Block types and option codes (draft-ietf-opsawg-pcapng sections 4 and 3.5).
const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_ENDOFOPT = 0;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
/** EPB with no options: 7 header words + trailing length. */
const EPB_FIXED = 32;
/** `epb_flags` option (8 bytes) + end of options (4 bytes). */
const EPB_FLAGS_SIZE = 12;

const pad4 = (n: number) => (n + 3) & ~3;
const utf8 = new TextEncoder();

/**
 * Writes a pcapng stream: a section header at construction, then interfaces
 * and packets in the order they are added. Use with `using` or call
 * `close()` so the last buffered blocks reach the sink.
 *
 * @example Capture to stdout, e.g. `belt ... | wireshark -k -i -`
 * ```ts ignore
 * import { PcapngWriter } from "@belt/belt";
 * using w = new PcapngWriter(Deno.stdout, { application: "belt 0.1.0" });
 * const lo = w.addInterface({ name: "lo", snaplen: 65535 });
 * w.writePacket(lo, BigInt(Date.now()) * 1_000_000n, new Uint8Array(42), 42, "out");
 * w.flush(); // let the reader see it now
 * ```
 */
export class PcapngWriter {
  #sink: PcapngSink;
  #closeSink: boolean;
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  #interfaces = 0;
  #packets = 0;
  #bytesWritten = 0;
  #closed = false;

  /**
   * Starts a section: its header is buffered at once and reaches the sink
   * with the first flush.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * const chunks: Uint8Array[] = [];
   * const w = new PcapngWriter({ write: (b) => chunks.push(b.slice()) }, { application: "demo" });
   * w.close();
   * console.log(chunks[0].length); // 40: the section header
   * ```
   */
  constructor(sink: PcapngSink, options: PcapngWriterOptions = {}) {
    this.#sink = sink;
    this.#closeSink = options.closeSink ?? false;
    this.#buf = new Uint8Array(options.bufferSize ?? 1 << 20);
    this.#view = new DataView(this.#buf.buffer);
    const appl = options.application === undefined ? undefined : utf8.encode(options.application);
    const size = 28 + (appl ? 4 + pad4(appl.length) + 4 : 0);
    const o = this.#begin(SHB, size);
    const v = this.#view;
    v.setUint32(o + 8, BYTE_ORDER_MAGIC, true);
    v.setUint16(o + 12, 1, true); // major version
    v.setUint16(o + 14, 0, true); // minor version
    v.setBigInt64(o + 16, -1n, true); // section length: not known in advance
    let p = o + 24;
    if (appl) {
      p = this.#option(p, SHB_USERAPPL, appl);
      p = this.#option(p, OPT_ENDOFOPT, undefined);
    }
    this.#end(o, size);
  }

  /**
   * Number of packets written (buffered ones included).
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * const w = new PcapngWriter({ write() {} });
   * w.writePacket(w.addInterface({ name: "eth0" }), 0n, new Uint8Array(4), 4);
   * console.log(w.packets); // 1
   * ```
   */
  get packets(): number {
    return this.#packets;
  }

  /**
   * Bytes handed to the sink so far; buffered blocks count once flushed.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * const w = new PcapngWriter({ write() {} });
   * w.flush();
   * console.log(w.bytesWritten); // 28: a section header without options
   * ```
   */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /**
   * Declares an interface (an Interface Description Block, timestamps in
   * nanoseconds) and returns its id for {@link writePacket}: 0, 1, 2...
   * Interfaces can be added at any time before the packets that use them.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * const w = new PcapngWriter({ write() {} });
   * console.log(w.addInterface({ name: "eth0", description: "uplink" })); // 0
   * console.log(w.addInterface({ name: "lo", linktype: 1, snaplen: 65535 })); // 1
   * ```
   */
  addInterface(iface: PcapngInterface): number {
    this.#open();
    const { linktype = 1, snaplen = 0 } = iface;
    if (!isU16(linktype)) throw new RangeError(`pcapng: bad linktype ${linktype}`);
    if (!isU32(snaplen)) throw new RangeError(`pcapng: bad snaplen ${snaplen}`);
    const name = utf8.encode(iface.name);
    const desc = iface.description === undefined ? undefined : utf8.encode(iface.description);
    const size = 20 + 4 + pad4(name.length) + (desc ? 4 + pad4(desc.length) : 0) + 8 + 4;
    const o = this.#begin(IDB, size);
    const v = this.#view;
    v.setUint16(o + 8, linktype, true);
    v.setUint16(o + 10, 0, true); // reserved
    v.setUint32(o + 12, snaplen, true);
    let p = this.#option(o + 16, IF_NAME, name);
    if (desc) p = this.#option(p, IF_DESCRIPTION, desc);
    p = this.#option(p, IF_TSRESOL, TSRESOL_NS);
    this.#option(p, OPT_ENDOFOPT, undefined);
    this.#end(o, size);
    return this.#interfaces++;
  }

  /**
   * Appends one packet (an Enhanced Packet Block) of interface `iface`,
   * captured at `tsNs` nanoseconds since the epoch; `data` is what was
   * captured, `originalLength` its length on the wire. `direction` becomes
   * the `epb_flags` option. `data` is copied: it can be reused at once.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * const w = new PcapngWriter({ write() {} });
   * const eth0 = w.addInterface({ name: "eth0", snaplen: 96 });
   * const frame = new Uint8Array(96); // first 96 bytes of a 1514-byte frame
   * w.writePacket(eth0, 1_700_000_000_000_000_001n, frame, 1514, "out");
   * ```
   */
  writePacket(
    iface: number,
    tsNs: bigint,
    data: Uint8Array,
    originalLength: number,
    direction?: PcapngDirection,
  ): void {
    this.#open();
    if (!(iface >= 0 && iface < this.#interfaces && iface === (iface | 0))) {
      throw new RangeError(`pcapng: interface ${iface} was not added`);
    }
    const caplen = data.length;
    if (!(originalLength >= caplen && isU32(originalLength))) {
      throw new RangeError(`pcapng: original length ${originalLength} < captured ${caplen}`);
    }
    if (tsNs < 0n) throw new RangeError(`pcapng: negative timestamp ${tsNs}`);
    const padded = pad4(caplen);
    const size = EPB_FIXED + padded + (direction ? EPB_FLAGS_SIZE : 0);
    const o = this.#begin(EPB, size);
    const v = this.#view;
    v.setUint32(o + 8, iface, true);
    // The timestamp is two u32 words, high first, so a little-endian u64
    // store has its halves swapped; swapping them back avoids BigInt
    // arithmetic (and its allocations) on every packet.
    v.setBigUint64(o + 12, tsNs, true);
    const low = v.getUint32(o + 12, true);
    v.setUint32(o + 12, v.getUint32(o + 16, true), true);
    v.setUint32(o + 16, low, true);
    v.setUint32(o + 20, caplen, true);
    v.setUint32(o + 24, originalLength, true);
    const buf = this.#buf;
    buf.set(data, o + 28);
    // The buffer is reused: padding must be cleared, not assumed zero.
    for (let i = o + 28 + caplen; i < o + 28 + padded; i++) buf[i] = 0;
    if (direction) {
      const p = o + 28 + padded;
      v.setUint32(p, EPB_FLAGS | (4 << 16), true); // code 2, length 4
      v.setUint32(p + 4, direction === "in" ? 1 : 2, true);
      v.setUint32(p + 8, OPT_ENDOFOPT, true);
    }
    this.#end(o, size);
    this.#packets++;
  }

  /**
   * Hands every buffered block to the sink.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * let total = 0;
   * const w = new PcapngWriter({ write: (b) => (total += b.length) });
   * w.flush();
   * console.log(total); // 28
   * ```
   */
  flush(): void {
    if (this.#len === 0) return;
    const bytes = this.#buf.subarray(0, this.#len);
    const sink = this.#sink;
    if ("writeSync" in sink) {
      // writeSync may write part of its input (pipes, signals): loop.
      for (let done = 0; done < bytes.length;) {
        const n = sink.writeSync(bytes.subarray(done));
        if (!(n > 0)) throw new Error(`pcapng: sink wrote ${n} bytes`);
        done += n;
      }
    } else {
      sink.write(bytes);
    }
    this.#bytesWritten += this.#len;
    this.#len = 0;
  }

  /**
   * Flushes, then closes the sink if `closeSink` was set. Idempotent; the
   * writer refuses further interfaces and packets.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * const w = new PcapngWriter({ write() {}, close: () => console.log("closed") }, {
   *   closeSink: true,
   * });
   * w.close(); // closed
   * w.close(); // nothing
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.flush();
    } finally {
      if (this.#closeSink) this.#sink.close?.();
    }
  }

  /**
   * `close()`, for `using`.
   *
   * @example
   * ```ts
   * import { PcapngWriter } from "@belt/belt";
   * {
   *   using w = new PcapngWriter({ write: (b) => console.log(b.length) });
   * } // 28
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  #open(): void {
    if (this.#closed) throw new Error("pcapng: writer is closed");
  }

  /** Reserves `size` bytes for a block (flushing or growing the buffer) and writes its head. */
  #begin(type: number, size: number): number {
    if (this.#len + size > this.#buf.length) {
      this.flush();
      if (size > this.#buf.length) {
        let n = this.#buf.length * 2;
        while (n < size) n *= 2;
        this.#buf = new Uint8Array(n);
        this.#view = new DataView(this.#buf.buffer);
      }
    }
    const o = this.#len;
    this.#view.setUint32(o, type, true);
    this.#view.setUint32(o + 4, size, true);
    return o;
  }

  /** Writes the trailing block total length and commits the block. */
  #end(o: number, size: number): void {
    this.#view.setUint32(o + size - 4, size, true);
    this.#len = o + size;
  }

  /** Writes one option (code, length, value padded to 32 bits) at `p`; returns the next offset. */
  #option(p: number, code: number, value: Uint8Array | undefined): number {
    const len = value?.length ?? 0;
    this.#view.setUint16(p, code, true);
    this.#view.setUint16(p + 2, len, true);
    const end = p + 4 + pad4(len);
    if (value) {
      this.#buf.set(value, p + 4);
      this.#buf.fill(0, p + 4 + len, end);
    }
    return end;
  }
}

/** `if_tsresol` value 9: 10^-9 s units. */
const TSRESOL_NS = new Uint8Array([9]);

function isU16(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/** What {@link readPcapng} found. */
export interface PcapngCapture {
  /** Interfaces of every section, in order (ids of later sections follow on). */
  interfaces: {
    name: string;
    linktype: number;
    snaplen: number;
    /** Raw `if_tsresol` byte (6, microseconds, when absent). */
    tsresol: number;
  }[];
  /** Enhanced packets, in file order; `data` is a view into the input. */
  packets: {
    iface: number;
    tsNs: bigint;
    data: Uint8Array;
    originalLength: number;
    direction?: PcapngDirection;
  }[];
}

/**
 * Parses a little-endian pcapng stream: section headers, interface
 * descriptions and enhanced packets; other blocks are skipped. Throws an
 * Error naming the offset on anything malformed.
 *
 * @example
 * ```ts
 * import { PcapngWriter, readPcapng } from "@belt/belt";
 * const chunks: Uint8Array[] = [];
 * const w = new PcapngWriter({ write: (b) => chunks.push(b.slice()) });
 * w.writePacket(w.addInterface({ name: "eth0" }), 5n, new Uint8Array([1, 2, 3]), 3, "in");
 * w.close();
 * const { interfaces, packets } = readPcapng(chunks[0]);
 * console.log(interfaces[0].name, packets[0].tsNs, packets[0].direction); // eth0 5n in
 * ```
 */
export function readPcapng(bytes: Uint8Array): PcapngCapture {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const out: PcapngCapture = { interfaces: [], packets: [] };
  let base = -1; // index in out.interfaces of this section's interface 0
  let o = 0;
  const fail = (why: string): never => {
    throw new Error(`pcapng: ${why} at offset ${o}`);
  };
  while (o < bytes.length) {
    if (bytes.length - o < 12) fail("truncated block");
    const type = v.getUint32(o, true);
    if (type === SHB && v.getUint32(o + 8, true) !== BYTE_ORDER_MAGIC) {
      fail(v.getUint32(o + 8, false) === BYTE_ORDER_MAGIC ? "big-endian section" : "bad magic");
    }
    const size = v.getUint32(o + 4, true);
    if (size < 12 || size % 4 || size > bytes.length - o) fail(`bad block length ${size}`);
    if (v.getUint32(o + size - 4, true) !== size) fail("trailing block length differs");
    const end = o + size - 4; // where the options stop
    if (type === SHB) {
      if (size < 28) fail("short section header");
      if (v.getUint16(o + 12, true) !== 1) fail(`pcapng version ${v.getUint16(o + 12, true)}`);
      base = out.interfaces.length;
    } else if (base < 0) {
      fail("no section header first");
    } else if (type === IDB) {
      if (size < 20) fail("short interface block");
      const iface = { name: "", linktype: v.getUint16(o + 8, true), snaplen: 0, tsresol: 6 };
      iface.snaplen = v.getUint32(o + 12, true);
      options(v, o + 16, end, fail, (code, p, len) => {
        if (code === IF_NAME) iface.name = dec.decode(bytes.subarray(p, p + len));
        if (code === IF_TSRESOL && len >= 1) iface.tsresol = bytes[p];
      });
      out.interfaces.push(iface);
    } else if (type === EPB) {
      if (size < EPB_FIXED) fail("short packet block");
      const id = v.getUint32(o + 8, true);
      const iface = out.interfaces[base + id] ?? fail(`undeclared interface ${id}`);
      const units = (BigInt(v.getUint32(o + 12, true)) << 32n) | BigInt(v.getUint32(o + 16, true));
      const caplen = v.getUint32(o + 20, true);
      if (o + 28 + pad4(caplen) > end) fail(`captured length ${caplen} overruns its block`);
      const packet: PcapngCapture["packets"][number] = {
        iface: base + id,
        tsNs: toNs(units, iface.tsresol),
        data: bytes.subarray(o + 28, o + 28 + caplen),
        originalLength: v.getUint32(o + 24, true),
      };
      options(v, o + 28 + pad4(caplen), end, fail, (code, p, len) => {
        if (code !== EPB_FLAGS || len !== 4) return;
        const dir = v.getUint32(p, true) & 3;
        if (dir === 1) packet.direction = "in";
        if (dir === 2) packet.direction = "out";
      });
      out.packets.push(packet);
    }
    o += size;
  }
  return out;
}

/** Walks the options in [p, end), calling `each` with each option's code, value offset and length. */
function options(
  v: DataView,
  p: number,
  end: number,
  fail: (why: string) => never,
  each: (code: number, p: number, len: number) => void,
): void {
  while (p + 4 <= end) {
    const code = v.getUint16(p, true);
    const len = v.getUint16(p + 2, true);
    if (code === OPT_ENDOFOPT) return;
    if (p + 4 + len > end) fail(`option ${code} overruns its block`);
    each(code, p + 4, len);
    p += 4 + pad4(len);
  }
}

/** Timestamp units of `if_tsresol` to nanoseconds (bit 7 set: 2^-n s, else 10^-n s). */
function toNs(units: bigint, tsresol: number): bigint {
  const exp = tsresol & 0x7f;
  if (tsresol & 0x80) return (units * 1_000_000_000n) >> BigInt(exp);
  return exp <= 9 ? units * 10n ** BigInt(9 - exp) : units / 10n ** BigInt(exp - 9);
}

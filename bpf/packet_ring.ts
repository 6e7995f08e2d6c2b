/**
 * A memory-mapped TPACKET_V3 receive ring on an AF_PACKET socket, as libpcap
 * uses: the kernel fills whole blocks of frames and hands each over at once,
 * so there is no system call per frame. An eBPF socket filter decides in the
 * kernel which frames, and how many bytes of each, reach the ring.
 *
 * Layout (include/uapi/linux/if_packet.h): `blockCount` blocks of
 * `blockSize` bytes. A block starts with struct tpacket_block_desc; each
 * frame with struct tpacket3_hdr, then struct sockaddr_ll at 48, then the
 * frame's bytes at tp_mac.
 *
 * @module
 */
import { errno, libc } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { interfaceIndex, interfaceName } from "./iface.ts";
import type { Closable } from "./link.ts";
import type { Program } from "./program.ts";
import { Waiter } from "./wait.ts";

const AF_PACKET = 17;
const SOCK_RAW_CLOEXEC_NONBLOCK = 3 | 0o2000000 | 0o4000;
const ETH_P_ALL = 0x0003;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const SO_ATTACH_BPF = 50;
const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_RX_RING = 5;
const PACKET_STATISTICS = 6;
const PACKET_VERSION = 10;
const PACKET_RESERVE = 12;
const TPACKET_V3 = 2;
const PACKET_MR_PROMISC = 1;
const PACKET_OUTGOING = 4;
const BPF_PROG_TYPE_SOCKET_FILTER = 1;
const PROT_READ_WRITE = 3;
const MAP_SHARED = 1;
const SC_PAGESIZE = 30;

const TP_STATUS_KERNEL = 0;
const TP_STATUS_USER = 1;
const TP_STATUS_VLAN_VALID = 0x10;
const TP_STATUS_VLAN_TPID_VALID = 0x40;

// struct tpacket_block_desc: version, offset_to_priv, then struct tpacket_hdr_v1.
const BLOCK_STATUS = 8;
const NUM_PKTS = 12;
const OFFSET_TO_FIRST_PKT = 16;
const BLK_LEN = 20;
// struct tpacket3_hdr, then struct sockaddr_ll at TPACKET_ALIGN(48).
const TP_NEXT_OFFSET = 0;
const TP_SEC = 4;
const TP_NSEC = 8;
const TP_SNAPLEN = 12;
const TP_LEN = 16;
const TP_STATUS = 20;
const TP_MAC = 24;
const TP_VLAN_TCI = 32;
const TP_VLAN_TPID = 36;
const SLL_PKTTYPE = 48 + 10;
const TPACKET3_HDRLEN = 48 + 20;
const REQ3_SIZE = 28; // struct tpacket_req3: seven unsigned ints
const STATS_V3_SIZE = 12; // struct tpacket_stats_v3: packets, drops, freeze_q_cnt
const FRAME_SIZE = 2048; // nominal: V3 packs frames by length, but the kernel checks the count
const VLAN_TAG = 4;
const MAC_ADDRS = 12;
const POLL_MS = 1000; // a safety net only: epoll wakes us when a block is retired
const MAX_RING = 2 ** 30;

/** Offsets belt reads in the kernel's ring structs; a test checks them against C `offsetof`. */
export const TPACKET_V3_LAYOUT = {
  block: { BLOCK_STATUS, NUM_PKTS, OFFSET_TO_FIRST_PKT, BLK_LEN },
  frame: { TP_NEXT_OFFSET, TP_SEC, TP_NSEC, TP_SNAPLEN, TP_LEN, TP_STATUS, TP_MAC },
  vlan: { TP_VLAN_TCI, TP_VLAN_TPID },
  SLL_PKTTYPE,
  TPACKET3_HDRLEN,
  REQ3_SIZE,
  STATS_V3_SIZE,
} as const;

/** Options of {@linkcode PacketRing.open}. */
export interface PacketRingOptions {
  /**
   * Bytes per block, a multiple of the page size; default 1 MiB. The kernel
   * hands over whole blocks; a frame longer than a block is cut to fit.
   */
  blockSize?: number;
  /** Blocks in the ring, at least 2; default 8. */
  blockCount?: number;
  /**
   * Longest time the kernel keeps a block that is not full before handing it
   * over, in ms (1 to 60000); default 50: the latency on a quiet link.
   */
  retireTimeoutMs?: number;
  /**
   * A loaded socket filter (`SEC("socket")`): it runs on every frame and
   * returns how many bytes to keep (0 drops it). Attached before the socket
   * is bound, so no unfiltered frame reaches the ring. The socket holds its
   * own reference: closing the object later does not remove the filter.
   */
  filter?: Program;
  /** Puts the interface into promiscuous mode while the ring is open. */
  promiscuous?: boolean;
}

/** One frame read from a {@linkcode PacketRing}. */
export interface CapturedFrame {
  /**
   * The captured bytes as they were on the wire: an outer VLAN tag that the
   * kernel had moved into metadata is put back (so a tagged frame holds 4
   * more bytes than the filter kept). A view into a private copy of its
   * block: it stays valid after the next read and after close (mind
   * byteOffset; holding it keeps the block's copy alive).
   */
  data: Uint8Array;
  /** Length on the wire, tag included; more than data.length when the frame was cut. */
  wireLength: number;
  /** When the kernel received or sent it, in ns since the Unix epoch. */
  timestampNs: bigint;
  /** "out" for frames this host sent on the interface, "in" for the rest. */
  direction: "in" | "out";
  /** The outer VLAN tag's TCI (priority, DEI, VLAN id) when the frame had one; else undefined. */
  vlanTci?: number;
}

/** Counters of a {@linkcode PacketRing} since it was opened. */
export interface PacketRingStats {
  /**
   * Frames the filter passed to the socket, dropped ones included (the
   * kernel's tp_packets, libpcap's ps_recv).
   */
  packets: number;
  /** Frames dropped because every block was full, waiting for the reader. */
  drops: number;
  /** Times the ring filled up and stopped taking frames. */
  freezes: number;
}

interface Geometry {
  blockSize: number;
  blockCount: number;
  retireTimeoutMs: number;
}

function pageSize(): number {
  const size = Number(libc().sysconf(SC_PAGESIZE));
  return size > 0 ? size : 4096;
}

/** Checks the options before any system call, so a bad value says what is wrong. */
function geometry(options: PacketRingOptions): Geometry {
  const page = pageSize();
  const g = {
    blockSize: options.blockSize ?? 1 << 20,
    blockCount: options.blockCount ?? 8,
    retireTimeoutMs: options.retireTimeoutMs ?? 50,
  };
  if (!Number.isInteger(g.blockSize) || g.blockSize < page || g.blockSize % page !== 0) {
    throw new BeltError(`packet ring: blockSize ${g.blockSize} is not a multiple of ${page}`, {
      code: 22,
      hint: `use a whole number of pages, e.g. ${1 << 20} (1 MiB)`,
    });
  }
  if (!Number.isInteger(g.blockCount) || g.blockCount < 2) {
    throw new BeltError(`packet ring: blockCount ${g.blockCount} must be an integer of 2 or more`, {
      code: 22,
      hint: "with one block every frame is dropped while you read it",
    });
  }
  if (g.blockSize * g.blockCount > MAX_RING) {
    throw new BeltError(
      `packet ring: ${g.blockCount} blocks of ${g.blockSize} bytes exceed ${MAX_RING} bytes`,
      { code: 22, hint: "use fewer or smaller blocks" },
    );
  }
  if (!Number.isInteger(g.retireTimeoutMs) || g.retireTimeoutMs < 1 || g.retireTimeoutMs > 60000) {
    throw new BeltError(`packet ring: retireTimeoutMs ${g.retireTimeoutMs} is out of range`, {
      code: 22,
      hint: "use a whole number of ms from 1 to 60000",
    });
  }
  return g;
}

function setOption(fd: number, level: number, name: number, value: Uint8Array, what: string) {
  if (libc().setsockopt(fd, level, name, value, value.length) < 0) {
    const code = errno();
    throw errorFromErrno(what, code, code === 12 ? "use fewer or smaller blocks" : "");
  }
}

const int32 = (n: number) => new Uint8Array(new Int32Array([n]).buffer);

/** Reads the frames of one block (a private copy), putting stripped VLAN tags back. */
function parseBlock(block: Uint8Array<ArrayBuffer>): CapturedFrame[] {
  const v = new DataView(block.buffer);
  const count = v.getUint32(NUM_PKTS, true);
  const frames: CapturedFrame[] = new Array(count);
  let at = v.getUint32(OFFSET_TO_FIRST_PKT, true);
  for (let i = 0; i < count; i++) {
    const start = at + v.getUint16(at + TP_MAC, true);
    const snap = v.getUint32(at + TP_SNAPLEN, true);
    if (start < at + TPACKET3_HDRLEN + VLAN_TAG || start + snap > block.length) {
      throw new BeltError(`packet ring: frame ${i} of a block lies outside it`);
    }
    const status = v.getUint32(at + TP_STATUS, true);
    let data = block.subarray(start, start + snap);
    let wireLength = v.getUint32(at + TP_LEN, true);
    let vlanTci: number | undefined;
    if (status & TP_STATUS_VLAN_VALID) {
      vlanTci = v.getUint32(at + TP_VLAN_TCI, true) & 0xffff;
      const tpid = status & TP_STATUS_VLAN_TPID_VALID
        ? v.getUint16(at + TP_VLAN_TPID, true)
        : 0x8100;
      data = withTag(block, start, snap, tpid, vlanTci);
      wireLength += VLAN_TAG;
    }
    const ns = BigInt(v.getUint32(at + TP_SEC, true)) * 1_000_000_000n +
      BigInt(v.getUint32(at + TP_NSEC, true));
    frames[i] = {
      data,
      wireLength,
      timestampNs: ns,
      direction: block[at + SLL_PKTTYPE] === PACKET_OUTGOING ? "out" : "in",
      vlanTci,
    };
    at += v.getUint32(at + TP_NEXT_OFFSET, true);
  }
  return frames;
}

/**
 * The frame with its outer tag put back after the MAC addresses, as libpcap
 * does: in place, moving the addresses 4 bytes back into the gap after the
 * frame header (PACKET_RESERVE keeps 4 bytes free there).
 */
function withTag(
  block: Uint8Array<ArrayBuffer>,
  start: number,
  snap: number,
  tpid: number,
  tci: number,
): Uint8Array<ArrayBuffer> {
  if (snap < MAC_ADDRS) return block.subarray(start, start + snap); // the tag was not captured
  block.copyWithin(start - VLAN_TAG, start, start + MAC_ADDRS);
  block.set([tpid >> 8, tpid & 0xff, tci >> 8, tci & 0xff], start - VLAN_TAG + MAC_ADDRS);
  return block.subarray(start - VLAN_TAG, start + snap);
}

/**
 * A TPACKET_V3 receive ring on one interface: frames arrive a block at a
 * time, without a system call per frame; kernel drops are counted.
 *
 * @example Print every UDP frame to port 53 that reaches eth0, with drops
 * ```ts ignore
 * import { BpfObject, PacketRing } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("udp_port.bpf.o"), { globals: { port: 53 } });
 * obj.load();
 * await using ring = PacketRing.open("eth0", { filter: obj.program("udp_port") });
 * setTimeout(() => ring.close(), 10_000); // ends the loop below
 * for await (const frames of ring.batches()) {
 *   for (const f of frames) console.log(f.direction, f.wireLength, f.timestampNs);
 * }
 * console.log(ring.stats()); // { packets, drops, freezes }
 * ```
 */
export class PacketRing implements Closable, Disposable, AsyncDisposable {
  /** The socket fd. */
  readonly fd: number;
  /** The interface it is bound to. */
  readonly iface: string;
  /** Bytes per block. */
  readonly blockSize: number;
  /** Blocks in the ring. */
  readonly blockCount: number;
  readonly #ptr: Deno.PointerObject;
  readonly #ring: Uint8Array;
  readonly #words: Uint32Array; // the same memory, for atomic access to block_status
  readonly #waiter: Waiter;
  readonly #totals: PacketRingStats = { packets: 0, drops: 0, freezes: 0 };
  #next = 0;
  #received = 0;
  #closed = false;

  private constructor(fd: number, iface: string, g: Geometry, ptr: Deno.PointerObject) {
    this.fd = fd;
    this.iface = iface;
    this.blockSize = g.blockSize;
    this.blockCount = g.blockCount;
    this.#ptr = ptr;
    const area = Deno.UnsafePointerView.getArrayBuffer(ptr, g.blockSize * g.blockCount);
    this.#ring = new Uint8Array(area);
    this.#words = new Uint32Array(area);
    this.#waiter = new Waiter([fd]);
  }

  /**
   * Opens a ring on `iface` in the calling thread's network namespace (use
   * withNetns for another one); the socket stays bound to that interface.
   *
   * @example
   * ```ts ignore
   * import { PacketRing, withNetns } from "@belt/belt/bpf";
   * const ring = withNetns("belt-b", () => PacketRing.open("eth0", { blockCount: 4 }));
   * ```
   */
  static open(iface: string | number, options: PacketRingOptions = {}): PacketRing {
    const g = geometry(options);
    const filter = options.filter;
    if (filter && filter.type !== BPF_PROG_TYPE_SOCKET_FILTER) {
      throw new BeltError(`program '${filter.name}' is not a socket filter (type ${filter.type})`, {
        code: 22,
        hint: 'put it in SEC("socket")',
      });
    }
    const ifindex = interfaceIndex(iface);
    const name = interfaceName(iface);
    // Protocol 0: nothing arrives until bind, so filter and ring are in place first.
    const fd = libc().socket(AF_PACKET, SOCK_RAW_CLOEXEC_NONBLOCK, 0);
    if (fd < 0) throw errorFromErrno(`open packet socket on ${name}`, errno());
    let ring: PacketRing;
    try {
      if (filter) {
        setOption(fd, SOL_SOCKET, SO_ATTACH_BPF, int32(filter.fd), `attach '${filter.name}'`);
      }
      setOption(fd, SOL_PACKET, PACKET_VERSION, int32(TPACKET_V3), "select TPACKET_V3");
      // Room before each frame to put a stripped VLAN tag back in place (libpcap does the same).
      setOption(fd, SOL_PACKET, PACKET_RESERVE, int32(VLAN_TAG), "reserve room for VLAN tags");
      const req = new Uint32Array([
        g.blockSize,
        g.blockCount,
        FRAME_SIZE,
        (g.blockSize / FRAME_SIZE) * g.blockCount,
        g.retireTimeoutMs,
        0, // tp_sizeof_priv
        0, // tp_feature_req_word
      ]);
      const ringBytes = new Uint8Array(req.buffer, 0, REQ3_SIZE);
      setOption(fd, SOL_PACKET, PACKET_RX_RING, ringBytes, `set up a receive ring on ${name}`);
      const size = BigInt(g.blockSize * g.blockCount);
      const ptr = libc().mmap(null, size, PROT_READ_WRITE, MAP_SHARED, fd, 0n);
      if (!ptr || Deno.UnsafePointer.value(ptr) === 0xffffffffffffffffn) {
        throw errorFromErrno(`map the receive ring of ${name}`, errno());
      }
      try {
        ring = new PacketRing(fd, name, g, ptr);
      } catch (e) {
        libc().munmap(ptr, size);
        throw e;
      }
    } catch (e) {
      libc().close(fd);
      throw e;
    }
    try {
      if (options.promiscuous) {
        const mreq = new Uint8Array(16); // struct packet_mreq
        new DataView(mreq.buffer).setInt32(0, ifindex, true);
        new DataView(mreq.buffer).setUint16(4, PACKET_MR_PROMISC, true);
        setOption(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq, `make ${name} promiscuous`);
      }
      const addr = new Uint8Array(20); // struct sockaddr_ll
      const v = new DataView(addr.buffer);
      v.setUint16(0, AF_PACKET, true);
      v.setUint16(2, ETH_P_ALL, false);
      v.setInt32(4, ifindex, true);
      if (libc().bind(fd, addr, 20) < 0) throw errorFromErrno(`bind to ${name}`, errno());
    } catch (e) {
      ring.close();
      throw e;
    }
    return ring;
  }

  /** Frames handed out so far. */
  get received(): number {
    return this.#received;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The frames of the next block if the kernel has handed it over (an empty
   * array for a block retired with none), else null. The block is copied and
   * given back at once, so the kernel can refill it while we parse.
   */
  #takeBlock(): CapturedFrame[] | null {
    if (this.#closed) return null;
    const base = this.#next * this.blockSize;
    const status = (base + BLOCK_STATUS) >> 2;
    if (!(Atomics.load(this.#words, status) & TP_STATUS_USER)) return null;
    const used = Math.min(this.#words[(base + BLK_LEN) >> 2]!, this.blockSize);
    const copy = this.#ring.slice(base, base + used);
    Atomics.store(this.#words, status, TP_STATUS_KERNEL); // ordered after the copy's loads
    this.#next = (this.#next + 1) % this.blockCount;
    const frames = parseBlock(copy);
    this.#received += frames.length;
    return frames;
  }

  /**
   * Every frame of the blocks handed over now, without waiting (at most one
   * pass over the ring). A block the kernel is still filling waits for
   * `retireTimeoutMs`.
   *
   * @example
   * ```ts ignore
   * const frames = ring.drain();
   * ```
   */
  drain(): CapturedFrame[] {
    const out: CapturedFrame[] = [];
    for (let i = 0; i < this.blockCount; i++) {
      const frames = this.#takeBlock();
      if (!frames) break;
      for (const f of frames) out.push(f);
    }
    return out;
  }

  /**
   * Yields the frames of each block as the kernel hands it over, until
   * close() (which ends a pending wait at once). Throws a BeltError with
   * ENETDOWN if the interface goes down or away.
   *
   * @example
   * ```ts ignore
   * for await (const frames of ring.batches()) console.log(frames.length);
   * ```
   */
  async *batches(): AsyncGenerator<CapturedFrame[], void, undefined> {
    try {
      while (!this.#closed) {
        const frames = this.#takeBlock();
        if (frames) {
          if (frames.length) yield frames;
        } else if (await this.#waiter.wait(POLL_MS)) {
          await this.#checkWake();
        }
      }
    } finally {
      await this.#waiter.settled();
    }
  }

  /**
   * After a wake-up: if no block is ready, it was an error on the socket
   * (level-triggered, so it would wake us again at once): report it.
   */
  async #checkWake(): Promise<void> {
    const base = this.#next * this.blockSize + BLOCK_STATUS;
    if (this.#closed || Atomics.load(this.#words, base >> 2) & TP_STATUS_USER) return;
    const err = new Int32Array(1);
    const len = new Uint32Array([4]);
    const bytes = (a: Int32Array | Uint32Array) => new Uint8Array(a.buffer);
    if (libc().getsockopt(this.fd, SOL_SOCKET, SO_ERROR, bytes(err), bytes(len)) === 0 && err[0]) {
      throw errorFromErrno(`capture on ${this.iface}`, err[0], "the interface went down or away");
    }
    await new Promise((r) => setTimeout(r, 1)); // not an error: yield a tick rather than spin
  }

  /**
   * Packets, drops and ring freezes since open (the kernel resets its
   * counters on each read; these are sums). After close(), the final totals.
   *
   * @example
   * ```ts ignore
   * const { packets, drops } = ring.stats();
   * ```
   */
  stats(): PacketRingStats {
    if (!this.#closed) {
      const buf = new Uint32Array(3); // struct tpacket_stats_v3
      const len = new Uint32Array([STATS_V3_SIZE]);
      const out = new Uint8Array(buf.buffer);
      if (
        libc().getsockopt(this.fd, SOL_PACKET, PACKET_STATISTICS, out, new Uint8Array(len.buffer)) <
          0
      ) {
        throw errorFromErrno(`read the statistics of the ring on ${this.iface}`, errno());
      }
      this.#totals.packets += buf[0]!;
      this.#totals.drops += buf[1]!;
      this.#totals.freezes += buf[2]!;
    }
    return { ...this.#totals };
  }

  /** Ends iteration, unmaps the ring and closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    try {
      this.stats(); // keep the final counts: the socket's go with it
    } catch {
      // closing anyway
    }
    this.#closed = true;
    this.#waiter.close();
    libc().munmap(this.#ptr, BigInt(this.blockSize * this.blockCount));
    libc().close(this.fd);
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes and waits for a pending wait to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#waiter.settled();
  }
}

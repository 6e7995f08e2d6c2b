/**
 * AF_PACKET sockets with an eBPF socket filter (SO_ATTACH_BPF): the program
 * decides in the kernel which packets, and how many bytes of each, reach
 * userspace. The filter is attached before the socket is bound, so no
 * unfiltered packet slips in.
 *
 * @module
 */
import { errno, libc } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { interfaceIndex, interfaceName } from "./iface.ts";
import { Link } from "./link.ts";
import type { Closable } from "./link.ts";
import type { Program } from "./program.ts";
import { Waiter } from "./wait.ts";

const AF_PACKET = 17;
const SOCK_RAW_CLOEXEC_NONBLOCK = 3 | 0o2000000 | 0o4000;
const ETH_P_ALL = 0x0003;
const SOL_SOCKET = 1;
const SO_ATTACH_BPF = 50;
const SO_DETACH_BPF = 27;
const SOL_PACKET = 263;
const PACKET_STATISTICS = 6;
const EAGAIN = 11;

/** Options of {@linkcode PacketSocket.open}. */
export interface PacketSocketOptions {
  /** eBPF socket filter attached before any packet arrives. */
  filter?: Program;
  /** Largest frame to read; default 65536. */
  bufferSize?: number;
}

/**
 * A raw packet socket on one interface.
 *
 * @example Receive only what a socket filter lets through
 * ```ts ignore
 * import { PacketSocket } from "@belt/belt/bpf";
 * using sock = PacketSocket.open("eth0", { filter: obj.program("only_udp") });
 * const frames = await sock.receive(10, 1000); // up to 10 frames or 1 s
 * console.log(frames.length, sock.stats());
 * ```
 */
export class PacketSocket implements Closable, AsyncDisposable {
  /** The socket fd. */
  readonly fd: number;
  /** The interface it is bound to. */
  readonly iface: string;
  readonly #buffer: Uint8Array<ArrayBuffer>;
  readonly #waiter: Waiter;
  #filterLink: Link | undefined;
  #closed = false;

  private constructor(fd: number, iface: string, bufferSize: number) {
    this.fd = fd;
    this.iface = iface;
    this.#buffer = new Uint8Array(bufferSize);
    this.#waiter = new Waiter([fd]);
  }

  /** Opens a socket on `iface` (in the calling thread's network namespace). */
  static open(iface: string | number, options: PacketSocketOptions = {}): PacketSocket {
    const ifindex = interfaceIndex(iface);
    const name = interfaceName(iface);
    // Protocol 0: receives nothing until bind, so the filter is in place first.
    const fd = libc().socket(AF_PACKET, SOCK_RAW_CLOEXEC_NONBLOCK, 0);
    if (fd < 0) throw errorFromErrno(`open packet socket on ${name}`, errno());
    let sock: PacketSocket;
    try {
      sock = new PacketSocket(fd, name, options.bufferSize ?? 65536);
    } catch (e) {
      libc().close(fd);
      throw e;
    }
    try {
      if (options.filter) sock.attachFilter(options.filter);
      const addr = new Uint8Array(20); // struct sockaddr_ll
      const v = new DataView(addr.buffer);
      v.setUint16(0, AF_PACKET, true);
      v.setUint16(2, ETH_P_ALL, false);
      v.setInt32(4, ifindex, true);
      if (libc().bind(fd, addr, 20) < 0) {
        throw errorFromErrno(`bind packet socket to ${name}`, errno());
      }
    } catch (e) {
      sock.close();
      throw e;
    }
    return sock;
  }

  /** Attaches an eBPF socket filter; closing the link detaches it. */
  attachFilter(prog: Program): Link {
    const progFd = new Int32Array([prog.fd]);
    if (
      libc().setsockopt(this.fd, SOL_SOCKET, SO_ATTACH_BPF, new Uint8Array(progFd.buffer), 4) < 0
    ) {
      throw errorFromErrno(`attach socket filter '${prog.name}' on ${this.iface}`, errno());
    }
    const link = new Link({ kind: "socket", target: this.iface, detail: prog.name }, -1, () => {
      if (!this.#closed) {
        libc().setsockopt(this.fd, SOL_SOCKET, SO_DETACH_BPF, new Uint8Array(4), 4);
      }
    });
    this.#filterLink = link;
    return prog.adopt(link);
  }

  /**
   * Transmits one whole Ethernet frame (headers included, as given) on the
   * socket's interface: how tests make frames the stack would not, e.g.
   * 802.1Q-tagged ones where no VLAN device exists.
   *
   * @example
   * ```ts ignore
   * import { PacketSocket } from "@belt/belt/bpf";
   * using sock = PacketSocket.open("eth0");
   * sock.send(frame);
   * ```
   */
  send(frame: Uint8Array): void {
    if (this.#closed) throw new BeltError(`packet socket on ${this.iface} is closed`);
    const n = Number(libc().send(this.fd, frame, BigInt(frame.length), 0));
    if (n < 0) throw errorFromErrno(`send a frame on ${this.iface}`, errno());
  }

  /** Reads every frame queued now, without waiting. */
  drain(max = Infinity): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (out.length < max && !this.#closed) {
      const n = Number(libc().recv(this.fd, this.#buffer, BigInt(this.#buffer.length), 0));
      if (n < 0) {
        const code = errno();
        if (code === EAGAIN) break;
        throw errorFromErrno(`receive on ${this.iface}`, code);
      }
      out.push(this.#buffer.slice(0, n));
    }
    return out;
  }

  /** Waits up to `timeoutMs` and returns up to `max` frames. */
  async receive(max: number, timeoutMs: number): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    const out = this.drain(max);
    while (out.length < max && !this.#closed) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      if (await this.#waiter.wait(Math.min(left, 250))) out.push(...this.drain(max - out.length));
    }
    return out;
  }

  /** Packets received and dropped by the kernel since the last call (PACKET_STATISTICS). */
  stats(): { packets: number; drops: number } {
    const buf = new Uint32Array(2); // struct tpacket_stats { tp_packets, tp_drops }
    const len = new Uint32Array([8]);
    if (
      libc().getsockopt(
        this.fd,
        SOL_PACKET,
        PACKET_STATISTICS,
        new Uint8Array(buf.buffer),
        new Uint8Array(len.buffer),
      ) < 0
    ) {
      throw errorFromErrno(`read statistics of the socket on ${this.iface}`, errno());
    }
    return { packets: buf[0]!, drops: buf[1]! };
  }

  /** Closes the socket (which also drops its filter). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#filterLink?.close();
    this.#closed = true;
    this.#waiter.close();
    libc().close(this.fd);
  }

  /** Closes and waits for a pending wait to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#waiter.settled();
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

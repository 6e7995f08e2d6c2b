/**
 * Waits for a file descriptor to become readable without blocking Deno's
 * event loop: epoll_wait runs off the JS thread, and an eventfd in the same
 * set lets close() wake a pending wait at once.
 *
 * @module
 */
import { errno, libc } from "./ffi.ts";
import { errorFromErrno } from "./errors.ts";

const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
const EFD_CLOEXEC_NONBLOCK = 0o2000000 | 0o4000;
const EPOLL_CLOEXEC = 0o2000000;
const WAKE_TOKEN = 0xffffffffn;

/** Readiness waiter over one or more fds; internal to bpf/. */
export class Waiter {
  readonly #epoll: number;
  readonly #wake: number;
  readonly #events = new Uint8Array(12 * 8); // struct epoll_event is packed: u32 events + u64 data
  #pending: Promise<number> | undefined;
  #closed = false;

  /** Watches `fds` for EPOLLIN. */
  constructor(fds: number[]) {
    this.#epoll = libc().epoll_create1(EPOLL_CLOEXEC);
    if (this.#epoll < 0) throw errorFromErrno("epoll_create1", errno());
    this.#wake = libc().eventfd(0, EFD_CLOEXEC_NONBLOCK);
    if (this.#wake < 0) {
      const code = errno();
      libc().close(this.#epoll);
      throw errorFromErrno("eventfd", code);
    }
    for (const [i, fd] of [...fds.map((fd, i) => [i, fd] as const), [-1, this.#wake] as const]) {
      const ev = new Uint8Array(12);
      const v = new DataView(ev.buffer);
      v.setUint32(0, EPOLLIN, true);
      v.setBigUint64(4, i < 0 ? WAKE_TOKEN : BigInt(i), true);
      if (libc().epoll_ctl(this.#epoll, EPOLL_CTL_ADD, fd, ev) < 0) {
        const code = errno();
        this.#release();
        throw errorFromErrno(`epoll_ctl on fd ${fd}`, code);
      }
    }
  }

  /** Resolves true when a watched fd is readable, false on timeout or close. */
  async wait(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    this.#pending = libc().epoll_wait(this.#epoll, this.#events, 8, timeoutMs);
    const n = await this.#pending;
    this.#pending = undefined;
    if (this.#closed) {
      this.#release();
      return false;
    }
    if (n <= 0) return false;
    const v = new DataView(this.#events.buffer);
    for (let i = 0; i < n; i++) {
      if (v.getBigUint64(i * 12 + 4, true) !== WAKE_TOKEN) return true;
    }
    return false;
  }

  /** Wakes a pending wait; fds are released when it returns (or now, if none). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().write(this.#wake, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
    if (!this.#pending) this.#release();
  }

  /** Resolves once no wait is running any more. */
  async settled(): Promise<void> {
    await this.#pending?.catch(() => 0);
  }

  #release(): void {
    libc().close(this.#wake);
    libc().close(this.#epoll);
  }
}

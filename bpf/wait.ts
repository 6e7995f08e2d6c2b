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
// struct epoll_event { u32 events; u64 data; } is packed on x86_64 only.
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
const MAX_EVENTS = 8;

/** Readiness waiter over one or more fds; internal to bpf/. */
export class Waiter {
  readonly #epoll: number;
  readonly #wake: number;
  readonly #events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  // One epoll_wait at a time: concurrent callers share it, so the fds are
  // released exactly once, after the last wait returns.
  #pending: Promise<boolean> | undefined;
  #closed = false;
  #released = false;

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
      const ev = new Uint8Array(EVENT_SIZE);
      const v = new DataView(ev.buffer);
      v.setUint32(0, EPOLLIN, true);
      v.setBigUint64(DATA_OFFSET, i < 0 ? WAKE_TOKEN : BigInt(i), true);
      if (libc().epoll_ctl(this.#epoll, EPOLL_CTL_ADD, fd, ev) < 0) {
        const code = errno();
        this.#release();
        throw errorFromErrno(`epoll_ctl on fd ${fd}`, code);
      }
    }
  }

  /** Resolves true when a watched fd is readable, false on timeout or close. */
  wait(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    this.#pending ??= this.#waitOnce(timeoutMs).finally(() => {
      this.#pending = undefined;
      if (this.#closed) this.#release();
    });
    return this.#pending;
  }

  async #waitOnce(timeoutMs: number): Promise<boolean> {
    const n = await libc().epoll_wait(this.#epoll, this.#events, MAX_EVENTS, timeoutMs);
    if (this.#closed || n <= 0) return false;
    const v = new DataView(this.#events.buffer);
    for (let i = 0; i < n; i++) {
      if (v.getBigUint64(i * EVENT_SIZE + DATA_OFFSET, true) !== WAKE_TOKEN) return true;
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
    await this.#pending?.catch(() => false);
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    libc().close(this.#wake);
    libc().close(this.#epoll);
  }
}

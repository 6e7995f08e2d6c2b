/**
 * Attachments that outlive their fd (cls_bpf filters, clsact qdiscs) are
 * tracked here and removed when the process exits normally, on SIGINT or
 * SIGTERM. (TCX and XDP links and socket filters need none of this: the
 * kernel drops them with the process's fds, even on SIGKILL.)
 *
 * @module
 */
import type { Closable } from "./link.ts";

const tracked = new Set<Closable>();
const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];
const EXIT_CODE: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
const handlers = new Map<Deno.Signal, () => void>();

/**
 * Closes everything tracked (cls_bpf filters, clsact qdiscs); errors are
 * swallowed so that every item gets its turn.
 *
 * @example
 * ```ts
 * import { closeTracked } from "@belt/belt/bpf";
 * closeTracked(); // e.g. in your own shutdown path
 * ```
 */
export function closeTracked(): void {
  for (const item of [...tracked].reverse()) {
    try {
      item.close();
    } catch {
      // keep going: the others must still be removed
    }
  }
  tracked.clear();
}

function onUnload(): void {
  closeTracked();
}

let signalsToCaller = false;

/**
 * Tells belt that the program handles SIGINT/SIGTERM itself (and calls
 * closeTracked() before exiting), so belt installs no signal handlers.
 *
 * @example
 * ```ts
 * import { closeTracked, leaveSignalsToCaller } from "@belt/belt/bpf";
 * leaveSignalsToCaller();
 * Deno.addSignalListener("SIGINT", () => {
 *   closeTracked();
 *   Deno.exit(130);
 * });
 * ```
 */
export function leaveSignalsToCaller(): void {
  signalsToCaller = true;
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  handlers.clear();
}

function install(): void {
  globalThis.addEventListener("unload", onUnload);
  if (signalsToCaller) return;
  for (const signal of SIGNALS) {
    const handler = () => {
      closeTracked();
      Deno.exit(EXIT_CODE[signal]);
    };
    handlers.set(signal, handler);
    Deno.addSignalListener(signal, handler);
  }
}

function uninstall(): void {
  globalThis.removeEventListener("unload", onUnload);
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  handlers.clear();
}

/**
 * Removes `item` on exit or SIGINT/SIGTERM unless closed first; returns the
 * function that stops tracking it.
 */
export function trackForExit(item: Closable): () => void {
  if (tracked.size === 0) install();
  tracked.add(item);
  return () => {
    tracked.delete(item);
    if (tracked.size === 0) uninstall();
  };
}

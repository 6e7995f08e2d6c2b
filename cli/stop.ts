/** Long-running commands: run until Ctrl-C, SIGTERM or --duration, showing a live line. */
import { BeltError, closeTracked, leaveSignalsToCaller, listInterfaces } from "../bpf/mod.ts";

/**
 * Resolves with the reason the command should stop: "SIGINT", "SIGTERM",
 * "duration", or the problem `watch()` reported (checked every second),
 * or what `until` resolves with (e.g. "count" when the command has enough). While waiting, `live()` is redrawn on stderr every second
 * when stderr is a terminal. Signal handlers are removed before it resolves.
 */
export function untilStopped(
  durationSec: number | undefined,
  live?: () => string,
  watch?: () => string | undefined,
  until?: Promise<string>,
): Promise<string> {
  leaveSignalsToCaller(); // we detach on signals ourselves, then return normally
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const handlers = signals.map((s) => [s, () => finish(s)] as const);
    const showLive = live && Deno.stderr.isTerminal();
    // Every second: redraw the live line, and stop if `watch` reports a problem.
    const ticker = setInterval(() => {
      const problem = watch?.();
      if (problem) return finish(problem);
      if (showLive) writeLive(live());
    }, 1000);
    const timer = durationSec !== undefined
      ? setTimeout(() => finish("duration"), durationSec * 1000)
      : undefined;
    function finish(reason: string) {
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
      clearInterval(ticker);
      clearTimeout(timer);
      if (showLive) writeLive("");
      resolve(reason);
    }
    for (const [s, h] of handlers) Deno.addSignalListener(s, h);
    until?.then(finish, (e) => finish(`stopped: ${(e as Error).message ?? e}`));
  });
}

function writeLive(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[2K${text}`));
}

const NORMAL_STOPS = ["SIGINT", "SIGTERM", "duration", "count"];

/**
 * Exit code for a stop reason: 0 for a planned end or Ctrl-C/SIGTERM (a
 * normal way to stop); otherwise the reason is a problem, said in one line.
 */
export function stopCode(reason: string): number {
  closeTracked();
  if (NORMAL_STOPS.includes(reason)) return 0;
  console.error(`belt: ${reason}`);
  return 1;
}

/** A watch that reports when any of `ifaces` disappears (checked by name). */
export function interfacesGone(ifaces: string[]): () => string | undefined {
  return () => {
    const gone = ifaces.find((iface) => !listInterfaces().some(([, name]) => name === iface));
    return gone
      ? `interface ${gone} disappeared while running: its programs went with it`
      : undefined;
  };
}

/** Parses a --duration/--interval value in seconds. */
export function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new BeltError(`${flag} wants a number of seconds > 0, got '${value}'`, {
      hint: "see `belt --help`",
    });
  }
  return n;
}

/**
 * Captures what libbpf prints (including the verifier log of a failed load)
 * instead of letting it spray on stderr. Messages are kept for the current
 * operation and echoed to stderr only in verbose mode.
 *
 * @module
 */
import { libbpf, libc } from "./ffi.ts";

const LINE_BUFFER = 64 * 1024;
let captured: string[] = [];
let verbose = false;
const PRINT_FN = { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const;
let installed: Deno.UnsafeCallback<typeof PRINT_FN> | undefined;
const lineBuffer = new Uint8Array(LINE_BUFFER);

/**
 * Echo libbpf's messages to stderr as they come (the CLI's `--verbose`).
 *
 * @example
 * ```ts
 * import { setVerbose } from "@belt/belt/bpf";
 * setVerbose(true);
 * ```
 */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/**
 * Whether libbpf messages are echoed to stderr.
 *
 * @example
 * ```ts
 * import { isVerbose } from "@belt/belt/bpf";
 * console.log(isVerbose());
 * ```
 */
export function isVerbose(): boolean {
  return verbose;
}

/** Installs the print callback once; it formats libbpf's va_list with vsnprintf. */
export function installLibbpfLog(): void {
  if (installed) return;
  const callback = new Deno.UnsafeCallback(
    PRINT_FN,
    (_level, format, args) => {
      // Never let a JS exception cross into libbpf.
      try {
        const n = libc().vsnprintf(lineBuffer, BigInt(LINE_BUFFER), format, args);
        const text = new TextDecoder().decode(lineBuffer.subarray(0, Math.min(n, LINE_BUFFER - 1)));
        captured.push(text);
        if (verbose) Deno.stderr.writeSync(new TextEncoder().encode(text));
      } catch {
        // dropped: a log line is not worth a crash
      }
      return 0;
    },
  );
  callback.unref();
  libbpf().libbpf_set_print(callback.pointer);
  installed = callback;
}

/** Empties the capture before an operation whose log may be needed. */
export function resetLog(): void {
  captured = [];
}

/** The libbpf messages captured since the last reset. */
export function takeLog(): string {
  const text = captured.join("");
  captured = [];
  return text;
}

/**
 * belt's error types. Every failure of a native call becomes a `BeltError`
 * carrying the errno and a hint that says what to do about it.
 *
 * @module
 */

/** Options for {@linkcode BeltError}. */
export interface BeltErrorOptions {
  /** The errno of the failed call (positive), or 0 when none applies. */
  code?: number;
  /** What the user can do about it, in one sentence. */
  hint?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The base of every error belt raises.
 *
 * @example Catch any belt failure and print the one-line form
 * ```ts
 * import { BeltError } from "@belt/belt/bpf";
 * try {
 *   throw new BeltError("map 'rules' is full", { code: 7, hint: "raise max_entries" });
 * } catch (e) {
 *   if (e instanceof BeltError) console.error(e.oneLine());
 * }
 * ```
 */
export class BeltError extends Error {
  /** errno of the failed call (positive), 0 when none applies. */
  readonly code: number;
  /** What to do about it. */
  readonly hint: string;

  /** Creates an error with a message and optional errno and hint. */
  constructor(message: string, options: BeltErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "BeltError";
    this.code = options.code ?? 0;
    this.hint = options.hint ?? "";
  }

  /** The message and hint on one line, as the CLI prints it. */
  oneLine(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/**
 * The verifier rejected a program; `log` holds what libbpf and the verifier said.
 *
 * @example Show the verifier's reason
 * ```ts
 * import { VerifierError } from "@belt/belt/bpf";
 * const err = new VerifierError("xdp_count", "R1 invalid mem access 'scalar'", 13);
 * console.log(err.program, err.log.split("\n").at(-1));
 * ```
 */
export class VerifierError extends BeltError {
  /** The program that failed, when libbpf named it. */
  readonly program: string;
  /** The full verifier and libbpf log of the failed load. */
  readonly log: string;

  /** Creates a verifier error for `program` with the captured `log`. */
  constructor(program: string, log: string, code: number) {
    super(`the verifier rejected program '${program}' (${errnoName(code)})`, {
      code,
      hint: "run with --verbose to see the verifier log",
    });
    this.name = "VerifierError";
    this.program = program;
    this.log = log;
  }
}

/**
 * The running kernel lacks a feature belt needs for this request.
 *
 * @example Fall back when kprobes are missing
 * ```ts
 * import { NotSupportedError } from "@belt/belt/bpf";
 * const err = new NotSupportedError("kprobes", "6.18.0", 95);
 * console.log(err.feature, err.kernel);
 * ```
 */
export class NotSupportedError extends BeltError {
  /** The missing feature, e.g. "kprobes". */
  readonly feature: string;
  /** The running kernel's release. */
  readonly kernel: string;

  /** Creates an error naming the missing `feature` on `kernel`. */
  constructor(feature: string, kernel: string, code = 95, hint = "") {
    super(`${feature} not supported by this kernel (${kernel})`, {
      code,
      hint: hint || "use another hook or a kernel that has it",
    });
    this.name = "NotSupportedError";
    this.feature = feature;
    this.kernel = kernel;
  }
}

/**
 * The process lacks the privileges for a BPF operation.
 *
 * @example
 * ```ts
 * import { PermissionError } from "@belt/belt/bpf";
 * console.log(new PermissionError("load program 'x'", 1).oneLine());
 * ```
 */
export class PermissionError extends BeltError {
  /** Creates an error for the operation `what` that was refused. */
  constructor(what: string, code: number) {
    super(`${what}: permission denied`, {
      code,
      hint: "run as root (sudo) or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON",
    });
    this.name = "PermissionError";
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  28: "ENOSPC",
  34: "ERANGE",
  38: "ENOSYS",
  71: "EPROTO",
  90: "EMSGSIZE",
  92: "ENOPROTOOPT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  106: "EISCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  112: "EHOSTDOWN",
  113: "EHOSTUNREACH",
  114: "EALREADY",
  115: "EINPROGRESS",
  524: "ENOTSUPP",
};

/**
 * The symbolic name of an errno, e.g. `errnoName(2) === "ENOENT"`.
 *
 * @example
 * ```ts
 * import { errnoName } from "@belt/belt/bpf";
 * console.log(errnoName(22)); // "EINVAL"
 * ```
 */
export function errnoName(code: number): string {
  const n = Math.abs(code);
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}

/**
 * Turns a failed call's errno into the right error: `PermissionError` for
 * EPERM/EACCES when not root, `NotSupportedError` for the "not supported"
 * family, `BeltError` otherwise.
 *
 * @example
 * ```ts
 * import { errorFromErrno } from "@belt/belt/bpf";
 * const e = errorFromErrno("look up map 'x'", 2, "the key is not in the map");
 * console.log(e.message); // "look up map 'x': ENOENT"
 * ```
 */
export function errorFromErrno(what: string, code: number, hint = ""): BeltError {
  const n = Math.abs(code);
  // Deno.uid() is the real uid; belt is run as root or through sudo, where both agree.
  if ((n === 1 || n === 13) && Deno.uid() !== 0) return new PermissionError(what, n);
  return new BeltError(`${what}: ${errnoName(n)}`, { code: n, hint });
}

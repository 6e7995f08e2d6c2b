/**
 * Attach primitives for tracing programs: BTF tracepoints (tp_btf), raw and
 * classic tracepoints, kprobes and fentry/fexit. Missing kernel features
 * become NotSupportedError, never a crash.
 *
 * @module
 */
import { cstr, errno, libbpf } from "./ffi.ts";
import { BeltError, errorFromErrno, NotSupportedError } from "./errors.ts";
import { kernelRelease, pathExists } from "./kernel.ts";
import { Link } from "./link.ts";
import type { Program } from "./program.ts";

function wrap(
  prog: Program,
  ptr: Deno.PointerValue,
  kind: string,
  target: string,
  fail: (code: number) => BeltError,
): Link {
  if (!ptr) throw fail(errno());
  const fd = libbpf().bpf_link__fd(ptr);
  const link = new Link(
    { kind, target, detail: prog.name },
    fd,
    () => libbpf().bpf_link__destroy(ptr),
  );
  return prog.adopt(link);
}

/**
 * Attaches a `tp_btf/...` program (or fentry/fexit) at the target its section names.
 *
 * @example
 * ```ts ignore
 * import { attachBtfTracepoint } from "@belt/belt/bpf";
 * const link = attachBtfTracepoint(obj.program("on_state_change"));
 * ```
 */
export function attachBtfTracepoint(prog: Program): Link {
  const target = prog.section.split("/").slice(1).join("/");
  return wrap(
    prog,
    libbpf().bpf_program__attach_trace(prog.handle),
    "tp_btf",
    target,
    (code) => errorFromErrno(`attach '${prog.name}' to BTF tracepoint ${target}`, code),
  );
}

/**
 * Attaches a raw tracepoint program to tracepoint `name` (e.g. "inet_sock_set_state").
 *
 * @example
 * ```ts ignore
 * import { attachRawTracepoint } from "@belt/belt/bpf";
 * attachRawTracepoint(obj.program("raw_state"), "inet_sock_set_state");
 * ```
 */
export function attachRawTracepoint(prog: Program, name: string): Link {
  return wrap(
    prog,
    libbpf().bpf_program__attach_raw_tracepoint(prog.handle, cstr(name)),
    "raw_tp",
    name,
    (code) =>
      errorFromErrno(
        `attach '${prog.name}' to raw tracepoint ${name}`,
        code,
        "is the tracepoint name right?",
      ),
  );
}

/**
 * Attaches a classic tracepoint program to "category/name" (needs tracefs).
 *
 * @example
 * ```ts ignore
 * import { attachTracepoint } from "@belt/belt/bpf";
 * attachTracepoint(obj.program("tp_state"), "sock/inet_sock_set_state");
 * ```
 */
export function attachTracepoint(prog: Program, tracepoint: string): Link {
  const [category, name] = tracepoint.split("/");
  if (!category || !name) {
    throw new BeltError(`tracepoint '${tracepoint}' is not category/name`, {
      hint: "e.g. sock/inet_sock_set_state",
    });
  }
  return wrap(
    prog,
    libbpf().bpf_program__attach_tracepoint(prog.handle, cstr(category), cstr(name)),
    "tracepoint",
    tracepoint,
    (code) =>
      errorFromErrno(
        `attach '${prog.name}' to tracepoint ${tracepoint}`,
        code,
        "tracepoints need tracefs: mount -t tracefs tracefs /sys/kernel/tracing",
      ),
  );
}

/** Options of {@linkcode attachKprobe}. */
export interface KprobeOptions {
  /** Attach at function return (kretprobe). */
  retprobe?: boolean;
}

/**
 * Attaches a kprobe (or kretprobe) program to kernel function `func`.
 * Throws NotSupportedError on kernels built without kprobes.
 *
 * @example Fall back to a tracepoint when kprobes are missing
 * ```ts ignore
 * import { attachKprobe, NotSupportedError } from "@belt/belt/bpf";
 * try {
 *   attachKprobe(obj.program("on_connect"), "tcp_v4_connect");
 * } catch (e) {
 *   if (!(e instanceof NotSupportedError)) throw e;
 * }
 * ```
 */
export function attachKprobe(prog: Program, func: string, options: KprobeOptions = {}): Link {
  const kind = options.retprobe ? "kretprobe" : "kprobe";
  if (!pathExists("/sys/bus/event_source/devices/kprobe")) {
    throw new NotSupportedError(
      "kprobes",
      kernelRelease(),
      95,
      "the kernel has CONFIG_KPROBES off: use a tracepoint hook",
    );
  }
  const ptr = libbpf().bpf_program__attach_kprobe(
    prog.handle,
    options.retprobe ?? false,
    cstr(func),
  );
  return wrap(
    prog,
    ptr,
    kind,
    func,
    (code) =>
      code === 2
        ? new BeltError(`no kernel function '${func}' to probe`, {
          code,
          hint: "check /proc/kallsyms",
        })
        : errorFromErrno(`attach ${kind} '${prog.name}' to ${func}`, code),
  );
}

/**
 * Attaches an fentry/fexit program to the function its section names.
 * Kernels without BPF trampolines already refuse these at load time
 * (BpfObject.load raises NotSupportedError).
 *
 * @example
 * ```ts ignore
 * import { attachFentry } from "@belt/belt/bpf";
 * attachFentry(obj.program("on_connect_entry"));
 * ```
 */
export function attachFentry(prog: Program): Link {
  const target = prog.section.split("/").slice(1).join("/");
  return wrap(
    prog,
    libbpf().bpf_program__attach_trace(prog.handle),
    prog.section.split("/")[0]!,
    target,
    (code) =>
      code === 95 || code === 524 || code === 1
        ? new NotSupportedError("fentry/fexit (BPF trampolines)", kernelRelease(), code)
        : errorFromErrno(`attach '${prog.name}' to ${target}`, code),
  );
}

/**
 * Attaches a tracing program where its ELF section says: `tp_btf/NAME`,
 * `raw_tp/NAME` (or `raw_tracepoint/`), `tracepoint/CAT/NAME` (or `tp/`),
 * `kprobe/FUNC`, `kretprobe/FUNC`, `fentry/FUNC`, `fexit/FUNC`.
 *
 * @example
 * ```ts ignore
 * import { attachBySection } from "@belt/belt/bpf";
 * attachBySection(obj.program("on_state_change")); // SEC("tp_btf/inet_sock_set_state")
 * ```
 */
export function attachBySection(prog: Program): Link {
  const [kind = "", ...rest] = prog.section.split("/");
  const target = rest.join("/");
  switch (kind) {
    case "tp_btf":
      return attachBtfTracepoint(prog);
    case "raw_tp":
    case "raw_tracepoint":
      return attachRawTracepoint(prog, target);
    case "tracepoint":
    case "tp":
      return attachTracepoint(prog, target);
    case "kprobe":
    case "kretprobe":
      return attachKprobe(prog, target, { retprobe: kind === "kretprobe" });
    case "fentry":
    case "fexit":
      return attachFentry(prog);
    default:
      throw new BeltError(
        `program '${prog.name}' (section '${prog.section}') is not a tracing program`,
        {
          hint:
            "use tp_btf/, raw_tp/, tracepoint/, kprobe/, kretprobe/, fentry/ or fexit/ sections",
        },
      );
  }
}

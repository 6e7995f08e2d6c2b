/**
 * What the running kernel lets belt do, found by trying (loading tiny
 * programs) where a version number would lie, like `bpftool feature probe`.
 *
 * @module
 */
import { BpfObject } from "./object.ts";
import { BeltError } from "./errors.ts";
import { isBpffs, kernelRelease, kernelVersion, pathExists } from "./kernel.ts";
import { featuresObject } from "./probes/features.bpf.ts";

/** One probed feature. */
export interface Feature {
  /** Short name, e.g. "tcx". */
  name: string;
  /** Whether belt can use it here. */
  available: boolean;
  /** How it was decided, or why not. */
  detail: string;
}

function tryLoad(program: string): string | undefined {
  using obj = BpfObject.open(featuresObject, { name: "belt_probe" });
  for (const p of obj.programs.values()) p.autoload = p.name === program;
  try {
    obj.load();
    return undefined;
  } catch (e) {
    if (e instanceof BeltError && e.name === "PermissionError") throw e;
    return e instanceof BeltError ? e.message : String(e);
  }
}

/**
 * Probes the kernel. Needs root: loading is the only honest test. Throws
 * PermissionError when BPF is refused outright.
 *
 * @example
 * ```ts ignore
 * import { probeFeatures } from "@belt/belt/bpf";
 * for (const f of probeFeatures()) console.log(f.name, f.available, f.detail);
 * ```
 */
export function probeFeatures(): Feature[] {
  const [major, minor] = kernelVersion();
  const atLeast = (a: number, b: number) => major > a || (major === a && minor >= b);
  const bpfError = tryLoad("probe_socket");
  if (bpfError) throw new BeltError(`this kernel refused a minimal BPF program: ${bpfError}`);
  const fentryError = tryLoad("probe_fentry");
  return [
    { name: "bpf", available: true, detail: `loaded a program (kernel ${kernelRelease()})` },
    {
      name: "btf",
      available: pathExists("/sys/kernel/btf/vmlinux"),
      detail: "/sys/kernel/btf/vmlinux",
    },
    { name: "ringbuf", available: true, detail: "loaded a program with a ring buffer" },
    {
      name: "tcx",
      available: atLeast(6, 6),
      detail: atLeast(6, 6)
        ? "kernel >= 6.6: TC programs attach as TCX links"
        : "kernel < 6.6: TC uses clsact + cls_bpf",
    },
    {
      name: "kprobes",
      available: pathExists("/sys/bus/event_source/devices/kprobe"),
      detail: pathExists("/sys/bus/event_source/devices/kprobe")
        ? "kprobe PMU present"
        : "no kprobe PMU (CONFIG_KPROBES off)",
    },
    { name: "fentry", available: !fentryError, detail: fentryError ?? "loaded an fentry program" },
    {
      name: "bpffs",
      available: isBpffs("/sys/fs/bpf"),
      detail: "needed for --pin: mount -t bpf bpf /sys/fs/bpf",
    },
    {
      name: "tracefs",
      available: pathExists("/sys/kernel/tracing/events"),
      detail: "needed for classic tracepoints: mount -t tracefs tracefs /sys/kernel/tracing",
    },
  ];
}

/**
 * Kernel tests: they load programs into the running kernel and need root.
 * Without root they are skipped with a reason, unless
 * BELT_KERNEL_TESTS=required (scripts/test.sh, CI) makes that a failure.
 */
import { kernelVersion, probeFeatures } from "../../bpf/mod.ts";
import type { TcDirection, TcMode } from "../../bpf/mod.ts";
import { describeChain } from "../../plugins/mod.ts";
import type { ChainEntry, ConnectHook } from "../../plugins/mod.ts";

const required = Deno.env.get("BELT_KERNEL_TESTS") === "required";
const isRoot = Deno.uid() === 0;
let warned = false;

/** Deno.test for a test that needs root and a BPF-capable kernel. */
export function kernelTest(name: string, fn: (t: Deno.TestContext) => Promise<void> | void): void {
  if (!isRoot && !required) {
    if (!warned) {
      console.error(
        "kernel tests skipped: not root (run as root, or set BELT_KERNEL_TESTS=required)",
      );
      warned = true;
    }
    Deno.test({ name, ignore: true, fn });
    return;
  }
  Deno.test({
    name,
    fn: isRoot ? fn : () => {
      throw new Error("kernel test needs root, and BELT_KERNEL_TESTS=required forbids skipping it");
    },
  });
}

/** Polls `probe` until it returns true or `ms` pass (bounded); returns the last answer. */
export async function eventually(
  probe: () => boolean | Promise<boolean>,
  ms = 3000,
  every = 25,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return await probe();
}

/**
 * The TC modes this kernel has: TCX from 6.6 on, cls_bpf always. Chain tests run once per mode;
 * on older kernels (scripts/vm-test.sh's 6.1 guest) tests/tc_test.ts proves that asking for TCX
 * is a clear error instead.
 */
export function tcModes(): TcMode[] {
  const [major, minor] = kernelVersion();
  return major > 6 || (major === 6 && minor >= 6) ? ["tcx", "cls_bpf"] : ["cls_bpf"];
}

/**
 * The BPF programs on an interface's TC hooks (one direction, or both), TCX links and cls_bpf
 * filters alike, as the kernel lists them: "nothing left" checks that hold on every kernel. Call
 * it inside withNetns() for an interface of a test namespace.
 */
export function tcPrograms(iface: string, direction?: TcDirection): ChainEntry[] {
  return describeChain(iface).filter((e) => !direction || e.direction === direction);
}

/**
 * The connect tracer's hook sets this kernel can attach: kprobe and fentry where it has them
 * (scripts/vm-test.sh's 6.1 guest), the tracepoints always. Connect tests run once per hook set.
 * BELT_CONNECT_HOOKS=kprobe,fentry narrows the list (the guest leaves the tracepoints to the
 * host); a hook named there that the kernel lacks fails its tests instead of vanishing.
 */
export function connectHooks(): ConnectHook[] {
  const asked = Deno.env.get("BELT_CONNECT_HOOKS");
  if (asked) {
    return [...new Set(asked.split(",").map((h) => h.trim()).filter(Boolean))] as ConnectHook[];
  }
  if (!isRoot) return ["tracepoint"]; // names only: the tests are skipped or failed anyway
  const has = new Map(probeFeatures().map((f) => [f.name, f.available]));
  return [
    ...(has.get("kprobes") ? ["kprobe" as const] : []),
    ...(has.get("fentry") ? ["fentry" as const] : []),
    "tracepoint",
  ];
}

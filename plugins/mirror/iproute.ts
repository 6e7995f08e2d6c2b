/**
 * The few iproute2 questions the mirror asks (devices, routes), run
 * synchronously so they act in the calling thread's network namespace.
 *
 * @module
 */
import { BeltError } from "../../bpf/mod.ts";

/** Runs `ip ARGS`; never throws for a failed command. */
export function ip(args: string[]): { ok: boolean; out: string; err: string } {
  const r = new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout), err: dec.decode(r.stderr).trim() };
}

/**
 * The route the kernel would take to `address`: its device and MTU (the
 * route's own, else the device's). Throws a BeltError when there is none.
 *
 * @example
 * ```ts ignore
 * import { routeTo } from "@belt/belt";
 * console.log(routeTo("198.18.2.2")); // { dev: "eth1", mtu: 1500 }
 * ```
 */
export function routeTo(address: string): { dev: string; mtu: number } {
  const r = ip(["-j", "-d", "route", "get", address]);
  if (!r.ok) {
    const why = r.err.replace(/^RTNETLINK answers: /, "").toLowerCase();
    throw new BeltError(`collector ${address} is unreachable from here: ${why}`, {
      hint: "check the address, or add a route to it",
    });
  }
  const route = JSON.parse(r.out)[0] ?? {};
  const dev = String(route.dev ?? "");
  let mtu = Number(route.metrics?.find?.((m: Record<string, number>) => m.mtu)?.mtu ?? 0);
  if (!mtu && dev) {
    const link = ip(["-j", "link", "show", "dev", dev]);
    mtu = link.ok ? Number(JSON.parse(link.out)[0]?.mtu ?? 0) : 0;
  }
  return { dev, mtu };
}

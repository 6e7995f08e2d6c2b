/**
 * The cold-start bench's network namespace: `belt-bench-<pid>`, holding a
 * veth pair (both ends inside it, created there, never in the root namespace)
 * with addresses from 198.18.0.0/15. Deleted at the end (a cleanup step);
 * namespaces of dead bench processes are deleted when the next one starts.
 */
import { onCleanup } from "./cleanup.ts";
import { run } from "./proc.ts";

const ALLOWED = /^198\.1[89]\./;

/** A namespace with one veth pair; `iface` is where programs get attached. */
export interface BenchNetns {
  name: string;
  /** Path for `nsenter --net=`. */
  path: string;
  iface: string;
  peer: string;
}

/**
 * Runs `ip ARGS` (killed after `timeoutMs`) and returns its stdout; throws on
 * a non-zero exit unless `check` is false.
 */
export async function ip(args: string[], check = true, timeoutMs = 15_000): Promise<string> {
  return (await run(["ip", ...args], { check, timeoutMs })).stdout;
}

/**
 * Deletes the network namespaces whose name matches `pattern` (first capture
 * group: the pid of the bench process that made it) when that process is
 * gone; never this process's own. `timeoutMs` bounds each `ip` command.
 */
export async function removeStaleNetns(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
  for (const line of (await ip(["netns", "list"], false, timeoutMs)).split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const pid = pattern.exec(name)?.[1];
    if (!pid || Number(pid) === Deno.pid) continue;
    const alive = await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
    if (!alive) await ip(["netns", "del", name], false, timeoutMs);
  }
}

/** Creates the namespace and its veth pair; on failure removes what was made. */
export async function createNetns(): Promise<BenchNetns> {
  await removeStaleNetns(/^belt-bench-(\d+)$/);
  const name = `belt-bench-${Deno.pid}`;
  const tag = `bb${Deno.pid % 100000}`;
  const ns: BenchNetns = { name, path: `/run/netns/${name}`, iface: `${tag}a`, peer: `${tag}b` };
  // Unique interface names double as a guard: they exist only inside the namespace, so a
  // command that ran in the root namespace by mistake fails with "no such device".
  const rootLinks = await ip(["-o", "link", "show"]);
  if (new RegExp(`\\b(${ns.iface}|${ns.peer})[:@]`).test(rootLinks)) {
    throw new Error(`interface ${ns.iface} or ${ns.peer} exists in the root namespace`);
  }
  await ip(["netns", "add", name]);
  onCleanup(`delete netns ${name}`, async () => {
    await ip(["netns", "del", name]);
  });
  const inside = (args: string[]) => ip(["-n", name, ...args]);
  await inside(["link", "set", "lo", "up"]);
  await inside(["link", "add", ns.iface, "type", "veth", "peer", "name", ns.peer]);
  for (const [dev, addr] of [[ns.iface, "198.18.200.1/30"], [ns.peer, "198.18.200.2/30"]]) {
    if (!ALLOWED.test(addr!)) throw new Error(`${addr} is outside 198.18.0.0/15`);
    await inside(["addr", "add", addr!, "dev", dev!]);
    await inside(["link", "set", dev!, "up"]);
  }
  return ns;
}

/** The XDP program id on an interface of the namespace (0: none). */
export async function xdpProgId(ns: BenchNetns): Promise<number> {
  const out = await ip(["-n", ns.name, "-d", "link", "show", "dev", ns.iface]);
  return Number(/prog\/xdp id (\d+)/.exec(out)?.[1] ?? 0);
}

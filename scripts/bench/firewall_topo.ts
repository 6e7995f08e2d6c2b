/**
 * The firewall bench's topology: two namespaces made by the bench and
 * deleted at the end (also on failure or Ctrl-C, see cleanup.ts), one veth
 * pair created inside them, addresses from 198.18.0.0/15 only:
 *
 *   S fs<tag> 198.19.255.1/30 ──── R fr<tag> 198.19.255.2/30   (firewall on fr<tag>)
 *
 * The flood goes S → R as XDP frames (native/fw_xdpgen.c); R's veth runs
 * NAPI (GRO on, so frames reach the stack as socket buffers when no XDP
 * program takes them) in its own kernel thread ("threaded NAPI"), pinned to
 * CPU 1 at SCHED_FIFO 50, so everything R does with a frame — XDP, skb,
 * nft, iptables, IP, UDP — is that thread's CPU time, read from
 * /proc/PID/schedstat in ns. The sender runs on CPU 0.
 *
 * xdp-filter keeps its state on bpffs at a fixed path (/sys/fs/bpf/xdp-filter):
 * the bench runs it in a mount namespace of its own with a private bpffs
 * (a `sleep` holds it), so nothing appears on the machine's bpffs.
 */
import { onCleanup } from "./cleanup.ts";
import { run } from "./proc.ts";
import { ip as benchIp, removeStaleNetns } from "./netns.ts";
import { Background } from "./mirror_topo.ts";

const ALLOWED = /^198\.1[89]\./;

/** Addresses of the topology and the flood. */
export const FW_ADDR = {
  s: "198.19.255.1",
  r: "198.19.255.2",
  /** Rule i (0-based) denies source ruleBase + i: 198.18.0.1 .. 198.19.134.160 for 100k. */
  ruleBase: "198.18.0.1",
  /** Sources of the "no rule matches" flood: 198.19.136.0 + j, never in a rule. */
  passBase: "198.19.136.0",
  /** At most this many distinct sources in the pass flood (room up to 198.19.253.x). */
  passMax: 30_000,
} as const;

/** The receiving CPU (NAPI thread) and the sending one. */
export const RX_CPU = 1;
export const TX_CPU = 0;

/** Namespace and interface names. */
export interface FwTopo {
  s: string;
  r: string;
  sIface: string;
  rIface: string;
  /** R's MAC (the flood's destination). */
  rMac: string;
}

/** This topology's `ip` commands get 30 s (the shared default is 15 s). */
const IP_TIMEOUT_MS = 30_000;
const ip = (args: string[], check = true) => benchIp(args, check, IP_TIMEOUT_MS);

/** `cmd` inside namespace `ns`. */
export function inNs(ns: string, cmd: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...cmd];
}

/** Runs `cmd` in `ns`, returns stdout. */
export async function nsRun(
  ns: string,
  cmd: string[],
  check = true,
  timeoutMs = 60_000,
): Promise<string> {
  return (await run(inNs(ns, cmd), { check, timeoutMs })).stdout;
}

/** Source address `base` + `i`, as text (the bench's own address arithmetic). */
export function addrPlus(base: string, i: number): string {
  const [a, b, c, d] = base.split(".").map(Number) as [number, number, number, number];
  const n = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d + i;
  const text = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
  if (!ALLOWED.test(text)) throw new Error(`${text} is outside 198.18.0.0/15`);
  return text;
}

async function nsInode(path: string): Promise<number> {
  return (await Deno.stat(path)).ino ?? NaN;
}

/** Makes a namespace (deleted by a cleanup step registered at once); IPv6 off, lo up. */
export async function makeNetns(name: string): Promise<void> {
  await ip(["netns", "add", name]);
  onCleanup(`delete netns ${name}`, async () => {
    if (await Deno.stat(`/run/netns/${name}`).then(() => true, () => false)) {
      await ip(["netns", "del", name]);
    }
  });
  if (await nsInode(`/run/netns/${name}`) === await nsInode("/proc/self/ns/net")) {
    throw new Error(`${name} is the root network namespace`);
  }
  await ip(["-n", name, "link", "set", "lo", "up"]);
  for (const key of ["all", "default"]) {
    await nsRun(name, ["sysctl", "-qw", `net.ipv6.conf.${key}.disable_ipv6=1`], false);
  }
}

/** Creates S and R and the veth between them, NAPI threaded on R. */
export async function createFirewallTopo(): Promise<FwTopo> {
  await removeStaleNetns(/^belt-bench-(\d+)-f[srl]$/, IP_TIMEOUT_MS);
  const base = `belt-bench-${Deno.pid}`;
  const tag = Deno.pid % 100000;
  const t: FwTopo = {
    s: `${base}-fs`,
    r: `${base}-fr`,
    sIface: `fs${tag}`,
    rIface: `fr${tag}`,
    rMac: "",
  };
  // Unique interface names double as a guard: a command run in the root namespace by
  // mistake fails with "no such device".
  const rootLinks = await ip(["-o", "link", "show"]);
  if (new RegExp(`\\b(${t.sIface}|${t.rIface})[:@]`).test(rootLinks)) {
    throw new Error(`interface ${t.sIface} or ${t.rIface} exists in the root namespace`);
  }
  await makeNetns(t.s);
  await makeNetns(t.r);
  await ip([
    "-n",
    t.s,
    "link",
    "add",
    t.sIface,
    "type",
    "veth",
    "peer",
    "name",
    t.rIface,
    "netns",
    t.r,
  ]);
  for (const [ns, dev, addr] of [[t.s, t.sIface, FW_ADDR.s], [t.r, t.rIface, FW_ADDR.r]]) {
    if (!ALLOWED.test(addr!)) throw new Error(`${addr} is outside 198.18.0.0/15`);
    await ip(["-n", ns!, "addr", "add", `${addr}/30`, "dev", dev!]);
    await ip(["-n", ns!, "link", "set", dev!, "up"]);
  }
  // NAPI on R's veth even without an XDP program (GRO on; S's TSO off makes every
  // frame eligible), then in a thread of its own.
  await nsRun(t.s, ["ethtool", "-K", t.sIface, "tso", "off"]);
  await nsRun(t.r, ["ethtool", "-K", t.rIface, "gro", "on"]);
  await nsRun(t.r, ["sh", "-c", `echo 1 > /sys/class/net/${t.rIface}/threaded`]);
  // Frames that pass the firewall end as UDP to a closed port on R: counted (Udp
  // NoPorts) and dropped, with no ICMP error back (R's own ICMP budget is 0).
  await nsRun(t.r, [
    "sysctl",
    "-qw",
    "net.ipv4.icmp_msgs_per_sec=0",
    "net.ipv4.icmp_msgs_burst=0",
  ]);
  t.rMac = JSON.parse(await ip(["-n", t.r, "-j", "link", "show", "dev", t.rIface]))[0].address;
  const info = JSON.parse(await ip(["-n", t.r, "-j", "-d", "link", "show", "dev", t.rIface]))[0];
  if (info?.linkinfo?.info_kind !== "veth" || info.link_netnsid === undefined) {
    throw new Error(`${t.r}: ${t.rIface} is not the bench's veth`);
  }
  return t;
}

/**
 * The NAPI thread of R's veth (`napi/<iface>-<id>`), pinned to RX_CPU at
 * SCHED_FIFO 50. It is made anew whenever the veth's NAPI is re-created, so
 * call this before each measurement.
 */
export async function napiThread(t: FwTopo): Promise<number> {
  const prefix = `napi/${t.rIface}-`;
  const found: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const comm = await Deno.readTextFile(`/proc/${e.name}/comm`).catch(() => "");
    if (comm.startsWith(prefix)) found.push(Number(e.name));
  }
  if (found.length !== 1) {
    throw new Error(`expected one NAPI thread ${prefix}*, found ${found.length}`);
  }
  const pid = found[0]!;
  await run(["taskset", "-pc", String(RX_CPU), String(pid)]);
  await run(["chrt", "-f", "-p", "50", String(pid)]);
  return pid;
}

/** CPU time a thread has run, ns (/proc/PID/schedstat). */
export async function runtimeNs(pid: number): Promise<number> {
  return Number((await Deno.readTextFile(`/proc/${pid}/schedstat`)).split(" ")[0]);
}

/** Packets R's veth took in (its NAPI thread's work, XDP drops included). */
export async function rxPackets(t: FwTopo): Promise<number> {
  const info = JSON.parse(await ip(["-n", t.r, "-s", "-j", "link", "show", "dev", t.rIface]))[0];
  return Number(info.stats64.rx.packets);
}

/** `ethtool -S` of a veth: name → value. */
export async function ethtoolStats(ns: string, dev: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await nsRun(ns, ["ethtool", "-S", dev])).split("\n")) {
    const m = /^\s*(\S+):\s*(\d+)\s*$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Udp NoPorts of R: flood frames that got through the firewall to the (closed) port. */
export async function udpNoPorts(t: FwTopo): Promise<number> {
  const lines = (await nsRun(t.r, ["cat", "/proc/net/snmp"])).split("\n").filter((l) =>
    l.startsWith("Udp:")
  );
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf("NoPorts")]);
}

/** The XDP program on R's veth: id and mode ("xdp" native, "xdpgeneric"), or undefined. */
export async function xdpOn(t: FwTopo): Promise<{ id: number; mode: string } | undefined> {
  const info = JSON.parse(await ip(["-n", t.r, "-j", "-d", "link", "show", "dev", t.rIface]))[0];
  const x = info?.xdp;
  if (!x || !x.prog) return undefined;
  const modes: Record<number, string> = { 1: "native", 2: "generic", 3: "offload" };
  return { id: Number(x.prog.id), mode: modes[Number(x.mode)] ?? `mode ${x.mode}` };
}

/**
 * A mount namespace with a private bpffs on /sys/fs/bpf, held by a `sleep`
 * (bounded: it ends by itself after `seconds`); xdp-filter and bpftool run
 * there, inside R's network namespace.
 */
export class PrivateBpffs {
  readonly #bg: Background;
  #pid = 0;

  private constructor(seconds: number) {
    this.#bg = new Background([
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t bpf bpf /sys/fs/bpf && echo "bpffs ready $$" >&2 && exec sleep ${seconds}`,
    ]);
  }

  /** Starts one; its stop is a cleanup step. */
  static async start(seconds = 600): Promise<PrivateBpffs> {
    const p = new PrivateBpffs(seconds);
    onCleanup("stop the private bpffs holder", () => p.stop());
    p.#pid = Number((await p.#bg.waitFor(/^bpffs ready (\d+)$/m, 10_000))[1]);
    return p;
  }

  /** Path prefix that reaches this bpffs from outside (`/proc/PID/root`). */
  get root(): string {
    return `/proc/${this.#pid}/root`;
  }

  /** `cmd` in this mount namespace and R's network namespace. */
  cmd(netnsName: string, cmd: string[]): string[] {
    return [
      "nsenter",
      `--mount=/proc/${this.#pid}/ns/mnt`,
      `--net=/run/netns/${netnsName}`,
      ...cmd,
    ];
  }

  /** Stops the holder: the bpffs and everything pinned on it go. */
  async stop(): Promise<void> {
    await this.#bg.stop("SIGTERM", 5_000);
  }
}

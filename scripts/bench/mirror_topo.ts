/**
 * The mirror bench's topology: three namespaces made by the bench and deleted
 * at the end (also on failure or Ctrl-C, see cleanup.ts), all links veth pairs
 * created inside them, addresses from 198.18.0.0/15 only:
 *
 *   A eth0 198.18.71.1/30 ──── B eth0 198.18.71.2/30   (the mirrored traffic)
 *   A eth1 198.18.72.1/30 ──── C eth0 198.18.72.2/30   (the copies, VXLAN)
 *
 * IPv6 is off and neighbours are static, so eth0 in A carries nothing but the
 * bench's own traffic. Counters are the kernel's: nft counters (netdev
 * ingress) in B and C, interface counters, /proc/net/snmp.
 */
import { onCleanup } from "./cleanup.ts";
import { killQuietly, run, spawnPiped } from "./proc.ts";
import { ip, removeStaleNetns } from "./netns.ts";

const ALLOWED = /^198\.1[89]\./;

/** Addresses of the topology. */
export const ADDR = {
  a0: "198.18.71.1",
  b: "198.18.71.2",
  a1: "198.18.72.1",
  c: "198.18.72.2",
} as const;

/** The UDP port of the numbered stream (dropped and counted at B's ingress). */
export const STREAM_PORT = 9000;
/** VNI of every copy, for belt and for nft's VXLAN device. */
export const VNI = 42;

/** Namespace names (`belt-bench-<pid>-m{a,b,c}`). */
export interface MirrorTopo {
  a: string;
  b: string;
  c: string;
}

/** `cmd` inside namespace `ns` (ip netns exec fails if `ns` does not exist). */
export function inNs(ns: string, cmd: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...cmd];
}

/** Runs `cmd` in `ns` and returns stdout. */
export async function nsRun(ns: string, cmd: string[], check = true): Promise<string> {
  return (await run(inNs(ns, cmd), { check, timeoutMs: 30_000 })).stdout;
}

async function nsInode(path: string): Promise<number> {
  return (await Deno.stat(path)).ino ?? NaN;
}

/** Creates A, B and C; every namespace gets its delete step as soon as it exists. */
export async function createMirrorTopo(): Promise<MirrorTopo> {
  await removeStaleNetns(/^belt-bench-(\d+)-m[abc]$/);
  const base = `belt-bench-${Deno.pid}`;
  const t: MirrorTopo = { a: `${base}-ma`, b: `${base}-mb`, c: `${base}-mc` };
  const rootNs = await nsInode("/proc/self/ns/net");
  for (const ns of [t.a, t.b, t.c]) {
    await ip(["netns", "add", ns]);
    onCleanup(`delete netns ${ns}`, async () => {
      await ip(["netns", "del", ns]);
    });
    if (await nsInode(`/run/netns/${ns}`) === rootNs) {
      throw new Error(`${ns} is the root network namespace`);
    }
    await ip(["-n", ns, "link", "set", "lo", "up"]);
    for (const key of ["all", "default"]) {
      // No IPv6 (no ND, MLD or router solicitations on the links); fine if IPv6 is absent.
      await nsRun(ns, ["sysctl", "-qw", `net.ipv6.conf.${key}.disable_ipv6=1`], false);
    }
  }
  // Created inside A, the peers created directly in B and C: nothing appears in the root namespace.
  await ip([
    "-n",
    t.a,
    "link",
    "add",
    "eth0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    t.b,
  ]);
  await ip([
    "-n",
    t.a,
    "link",
    "add",
    "eth1",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    t.c,
  ]);
  const addrs: [string, string, string][] = [
    [t.a, "eth0", `${ADDR.a0}/30`],
    [t.a, "eth1", `${ADDR.a1}/30`],
    [t.b, "eth0", `${ADDR.b}/30`],
    [t.c, "eth0", `${ADDR.c}/30`],
  ];
  for (const [ns, dev, addr] of addrs) {
    if (!ALLOWED.test(addr)) throw new Error(`${addr} is outside 198.18.0.0/15`);
    await ip(["-n", ns, "addr", "add", addr, "dev", dev]);
    await ip(["-n", ns, "link", "set", dev, "up"]);
  }
  const mac = async (ns: string, dev: string) =>
    JSON.parse(await ip(["-n", ns, "-j", "link", "show", "dev", dev]))[0].address as string;
  const neigh = async (ns: string, addr: string, lladdr: string, dev: string) => {
    await ip([
      "-n",
      ns,
      "neigh",
      "replace",
      addr,
      "lladdr",
      lladdr,
      "dev",
      dev,
      "nud",
      "permanent",
    ]);
  };
  await neigh(t.a, ADDR.b, await mac(t.b, "eth0"), "eth0");
  await neigh(t.a, ADDR.c, await mac(t.c, "eth0"), "eth1");
  await neigh(t.b, ADDR.a0, await mac(t.a, "eth0"), "eth0");
  await neigh(t.c, ADDR.a1, await mac(t.a, "eth1"), "eth0");

  // B: the numbered stream is counted and dropped at ingress (no socket, no ICMP back).
  await nft(
    t.b,
    `table netdev sink {
  counter stream {}
  chain in {
    type filter hook ingress device "eth0" priority 0;
    udp dport ${STREAM_PORT} counter name stream drop
  }
}`,
  );
  // C: a VXLAN device receives the copies (decapsulated frames are then dropped as
  // not addressed to C); nft counts them at ingress, before reassembly.
  await ip([
    "-n",
    t.c,
    "link",
    "add",
    "vx42",
    "type",
    "vxlan",
    "id",
    String(VNI),
    "dstport",
    "4789",
  ]);
  await ip(["-n", t.c, "link", "set", "vx42", "addrgenmode", "none"]);
  await ip(["-n", t.c, "link", "set", "vx42", "up"]);
  // Offsets from the outer UDP header: VXLAN at 8 (VNI at byte 12), inner Ethernet at 16,
  // inner IPv4 at 30 (protocol at 39), inner L4 at 50 (UDP dport / ICMP type at 52 / 50).
  const vxlan = `ip daddr ${ADDR.c} udp dport 4789 @th,96,24 ${VNI}`;
  await nft(
    t.c,
    `table netdev count {
  counter copies {}
  counter frags {}
  counter stream {}
  counter echo_request {}
  counter echo_reply {}
  chain in {
    type filter hook ingress device "eth0" priority 0;
    ${vxlan} counter name copies
    ip daddr ${ADDR.c} ip frag-off & 0x1fff != 0 counter name frags
    ${vxlan} @th,312,8 17 @th,416,16 ${STREAM_PORT} counter name stream
    ${vxlan} @th,312,8 1 @th,400,8 8 counter name echo_request
    ${vxlan} @th,312,8 1 @th,400,8 0 counter name echo_reply
  }
}`,
  );
  await checkTopo(t);
  return t;
}

/** Refuses to go on unless A's eth0 and eth1 are the veths to B and C. */
async function checkTopo(t: MirrorTopo): Promise<void> {
  for (const dev of ["eth0", "eth1"]) {
    const info = JSON.parse(await ip(["-n", t.a, "-j", "-d", "link", "show", "dev", dev]))[0];
    if (info?.linkinfo?.info_kind !== "veth" || info.link_netnsid === undefined) {
      throw new Error(`${t.a}: ${dev} is not the bench's veth`);
    }
  }
}

/** Loads an nft ruleset (text) in `ns`. */
export async function nft(ns: string, ruleset: string): Promise<void> {
  const file = await Deno.makeTempFile({ prefix: "belt-bench-nft-" });
  try {
    await Deno.writeTextFile(file, ruleset + "\n");
    await nsRun(ns, ["nft", "-f", file]);
  } finally {
    await Deno.remove(file);
  }
}

/** Every named nft counter of `ns`: name → packets. */
export async function nftCounters(ns: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const json = JSON.parse(await nsRun(ns, ["nft", "-j", "list", "counters"]));
  for (const item of json.nftables ?? []) {
    if (item.counter) out[item.counter.name] = Number(item.counter.packets);
  }
  return out;
}

/** Interface counters (`ip -s -j link`) of `dev` in `ns`. */
export async function linkStats(
  ns: string,
  dev: string,
): Promise<
  { rxPackets: number; txPackets: number; txDropped: number; rxDropped: number; rxErrors: number }
> {
  const info = JSON.parse(await ip(["-n", ns, "-s", "-j", "link", "show", "dev", dev]))[0];
  const s = info.stats64;
  return {
    rxPackets: Number(s.rx.packets),
    txPackets: Number(s.tx.packets),
    txDropped: Number(s.tx.dropped),
    rxDropped: Number(s.rx.dropped),
    rxErrors: Number(s.rx.errors),
  };
}

/** /proc/net/snmp of namespace `ns` (it is per namespace): "Tcp.InSegs" → value. */
export async function snmp(ns: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const lines = (await nsRun(ns, ["cat", "/proc/net/snmp"])).trim().split("\n");
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/);
    const proto = names[0]!.replace(/:$/, "");
    names.slice(1).forEach((n, j) => (out[`${proto}.${n}`] = Number(values[j + 1])));
  }
  return out;
}

/** The nft dup configuration in A: a regular VXLAN device to C, dup on eth0 in and out. */
export async function nftDupOn(t: MirrorTopo): Promise<void> {
  await ip([
    "-n",
    t.a,
    "link",
    "add",
    "nftvx",
    "type",
    "vxlan",
    "id",
    String(VNI),
    "remote",
    ADDR.c,
    "dstport",
    "4789",
    "nolearning",
  ]);
  await ip(["-n", t.a, "link", "set", "nftvx", "addrgenmode", "none"]);
  await ip(["-n", t.a, "link", "set", "nftvx", "up"]);
  await nft(
    t.a,
    `table netdev m {
  chain in {
    type filter hook ingress device "eth0" priority 0;
    dup to "nftvx"
  }
  chain out {
    type filter hook egress device "eth0" priority 0;
    dup to "nftvx"
  }
}`,
  );
}

/**
 * Removes the nft dup configuration. The VXLAN device goes too: its UDP socket
 * on 4789 would keep belt's own VXLAN device for port 4789 from coming up.
 */
export async function nftDupOff(t: MirrorTopo): Promise<void> {
  await nsRun(t.a, ["nft", "delete", "table", "netdev", "m"], false);
  await ip(["-n", t.a, "link", "del", "nftvx"], false);
}

/** The "mtu N" of `ip route get DST` in `ns`, or undefined when the route has none. */
export async function routeMtu(ns: string, dst: string): Promise<number | undefined> {
  const out = await nsRun(ns, ["ip", "route", "get", dst]);
  const m = /\bmtu (\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}

/** A long-running command with its stderr watched and stdout collected. */
export class Background {
  readonly child: Deno.ChildProcess;
  readonly cmd: string[];
  #stderr = "";
  #stdout: Promise<string>;
  #stderrDone: Promise<void>;
  #exited = false;

  constructor(cmd: string[]) {
    this.cmd = cmd;
    const child = spawnPiped(cmd);
    this.child = child;
    child.status.then(() => (this.#exited = true));
    this.#stdout = new Response(child.stdout).text();
    this.#stderrDone = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr += dec.decode(chunk, { stream: true });
      }
    })();
  }

  /** stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Waits (bounded) until stderr matches `re`; throws with what it said otherwise. */
  async waitFor(re: RegExp, ms = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.#stderr);
      if (m) return m;
      if (this.#exited || Date.now() > deadline) {
        await Promise.race([this.#stderrDone, new Promise((r) => setTimeout(r, 500))]);
        killQuietly(this.child);
        throw new Error(
          `${this.cmd.join(" ")}: ${
            this.#exited ? "exited" : "timed out"
          } before printing ${re}; stderr: ${this.#stderr.trim()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal`, waits (bounded; SIGKILL after `ms`), returns exit code and output. */
  async stop(
    signal: Deno.Signal = "SIGTERM",
    ms = 20_000,
  ): Promise<{ code: number; stdout: string; stderr: string; killed: boolean }> {
    try {
      this.child.kill(signal);
    } catch {
      // already exited
    }
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      killQuietly(this.child);
    }, ms);
    try {
      const status = await this.child.status;
      const stdout = await this.#stdout;
      await this.#stderrDone;
      return { code: status.code, stdout, stderr: this.#stderr, killed };
    } finally {
      clearTimeout(timer);
    }
  }
}

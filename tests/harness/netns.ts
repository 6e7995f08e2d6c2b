/**
 * Test topologies in network namespaces: named hosts joined by veth links,
 * addresses from 198.18.0.0/15 and fd00:beef::/64 only, always torn down.
 * Nothing here touches the root namespace's interfaces.
 */

/** One veth link between two hosts. */
export interface LinkSpec {
  /** Host names at each end. */
  a: string;
  b: string;
  /** Interface names inside each host (default eth0). */
  aName?: string;
  bName?: string;
  /** Addresses with prefix, e.g. "198.18.0.1/24" and "fd00:beef::1/64". */
  aAddrs?: string[];
  bAddrs?: string[];
}

/** Output of a command run in a host. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let counter = 0;
const ALLOWED = /^(198\.1[89]\.|fd00:beef:)/;

async function ip(args: string[], check = true): Promise<RunResult> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (check && out.code !== 0) throw new Error(`ip ${args.join(" ")}: ${result.stderr.trim()}`);
  return result;
}

/** Removes namespaces left by earlier test processes that died. */
async function removeStale(): Promise<void> {
  const { stdout } = await ip(["netns", "list"], false);
  for (const line of stdout.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const pid = /^belt-(\d+)-/.exec(name)?.[1];
    if (!pid || Number(pid) === Deno.pid) continue;
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      await ip(["netns", "del", name], false);
    }
  }
}

/** A set of namespaces ("hosts") and the links between them. */
export class Topology implements AsyncDisposable {
  readonly #prefix: string;
  readonly #hosts: string[];

  private constructor(prefix: string, hosts: string[]) {
    this.#prefix = prefix;
    this.#hosts = hosts;
  }

  /** Creates hosts and links; on any failure, removes what was made. */
  static async create(hosts: string[], links: LinkSpec[]): Promise<Topology> {
    await removeStale();
    const topo = new Topology(`belt-${Deno.pid}-${++counter}`, hosts);
    try {
      for (const host of hosts) {
        await ip(["netns", "add", topo.ns(host)]);
        await topo.run(host, ["ip", "link", "set", "lo", "up"]);
        await topo.run(host, [
          "sysctl",
          "-qw",
          "net.ipv6.conf.all.accept_dad=0",
          "net.ipv6.conf.default.accept_dad=0",
        ]);
      }
      for (const [i, link] of links.entries()) await topo.#addLink(link, i);
    } catch (e) {
      await topo.destroy();
      throw e;
    }
    return topo;
  }

  /**
   * Two hosts "a" and "b" joined at their eth0 by one veth link, addressed
   * 198.18.<subnet>.1/24 and .2/24 (and fd00:beef::<subnet>:1/2 /64).
   */
  static async pair(subnet: number): Promise<Topology> {
    return await Topology.create(["a", "b"], [{
      a: "a",
      b: "b",
      aAddrs: [`198.18.${subnet}.1/24`, `fd00:beef::${subnet}:1/64`],
      bAddrs: [`198.18.${subnet}.2/24`, `fd00:beef::${subnet}:2/64`],
    }]);
  }

  async #addLink(link: LinkSpec, i: number): Promise<void> {
    const tmpA = `bt${Deno.pid % 100000}x${counter}a${i}`.slice(0, 15);
    const tmpB = `bt${Deno.pid % 100000}x${counter}b${i}`.slice(0, 15);
    // Created directly inside host a's namespace: never visible in the root namespace's list.
    await this.run(link.a, [
      "ip",
      "link",
      "add",
      tmpA,
      "type",
      "veth",
      "peer",
      "name",
      tmpB,
      "netns",
      this.ns(link.b),
    ]);
    for (
      const [host, tmp, name, addrs] of [
        [link.a, tmpA, link.aName ?? "eth0", link.aAddrs ?? []],
        [link.b, tmpB, link.bName ?? "eth0", link.bAddrs ?? []],
      ] as const
    ) {
      await this.run(host, ["ip", "link", "set", tmp, "name", name]);
      for (const addr of addrs) {
        if (!ALLOWED.test(addr)) {
          throw new Error(`test address ${addr} is outside 198.18.0.0/15 and fd00:beef::/64`);
        }
        await this.run(host, [
          "ip",
          "addr",
          "add",
          addr,
          "dev",
          name,
          ...(addr.includes(":") ? ["nodad"] : []),
        ]);
      }
      await this.run(host, ["ip", "link", "set", name, "up"]);
    }
  }

  /** The namespace name of a host. */
  ns(host: string): string {
    return `${this.#prefix}-${host}`;
  }

  /** Runs a command inside a host; throws on non-zero exit unless check is false. */
  async run(host: string, cmd: string[], check = true): Promise<RunResult> {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", this.ns(host), ...cmd],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const result = {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
    if (check && out.code !== 0) {
      throw new Error(`[${host}] ${cmd.join(" ")} exited ${out.code}: ${result.stderr.trim()}`);
    }
    return result;
  }

  /** Starts a long-running command inside a host. */
  spawn(host: string, cmd: string[]): Deno.ChildProcess {
    return new Deno.Command("ip", {
      args: ["netns", "exec", this.ns(host), ...cmd],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Sends `count` UDP datagrams to addr:port from a host (bash /dev/udp: no extra tools). */
  async sendUdp(host: string, addr: string, port: number, count: number): Promise<void> {
    if (!ALLOWED.test(addr)) throw new Error(`refusing to send to ${addr}`);
    if (count > 100_000) throw new Error("bounded: at most 100000 datagrams");
    await this.run(host, [
      "timeout",
      "20",
      "bash",
      "-c",
      `for ((i = 0; i < ${count}; i++)); do printf x > /dev/udp/${addr}/${port}; done`,
    ]);
  }

  /** Pings `count` times from a host, quickly; returns replies received. */
  async ping(host: string, addr: string, count: number): Promise<number> {
    if (!ALLOWED.test(addr)) throw new Error(`refusing to ping ${addr}`);
    const r = await this.run(host, [
      "ping",
      "-n",
      "-q",
      "-c",
      String(count),
      "-i",
      "0.01",
      "-W",
      "2",
      addr,
    ], false);
    return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
  }

  /** Deletes every namespace (their veths go with them). */
  async destroy(): Promise<void> {
    for (const host of this.#hosts) await ip(["netns", "del", this.ns(host)], false);
  }

  /** Same as destroy(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }
}

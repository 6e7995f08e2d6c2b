/**
 * mirror: copies every frame crossing an interface, both directions, from
 * L2, to VXLAN collectors (RFC 7348, as AWS Traffic Mirroring sends) and/or
 * to user space for a pcapng file. The original traffic is only read.
 *
 * @module
 */
import { array, BeltError, bytes, pad, struct, u16, u32, u64, u8 } from "../../bpf/mod.ts";
import type { BpfObject, Decoded, Link, StructCodec, TcMode } from "../../bpf/mod.ts";
import { attachTc, openProgramMap } from "../../bpf/mod.ts";
import { definePlugin } from "../plugin.ts";
import type { Plugin, Stats } from "../plugin.ts";
import { isMappedIpv4, parseIp } from "../addr.ts";
import { packRules, parseRule } from "../rules.ts";
import type { Rule } from "../rules.ts";
import { mirrorObject } from "./mirror.bpf.ts";
import { openTunnelDevice } from "./vxlan.ts";
import { routeTo } from "./iproute.ts";

/**
 * Limits of plugins/mirror/mirror.h.
 *
 * @example
 * ```ts
 * import { MIRROR_LIMITS } from "@belt/belt";
 * console.log(MIRROR_LIMITS.collectors); // 8
 * ```
 */
export const MIRROR_LIMITS = {
  /** Collectors per mirror. */
  collectors: 8,
  /** --filter rules per mirror. */
  rules: 16,
  /** Longest copy handed to user space (pcap); VXLAN copies are not limited. */
  copyMax: 32736,
} as const;

/**
 * The VXLAN port of RFC 7348 (and of AWS Traffic Mirroring).
 *
 * @example
 * ```ts
 * import { VXLAN_PORT } from "@belt/belt";
 * console.log(VXLAN_PORT); // 4789
 * ```
 */
export const VXLAN_PORT = 4789;

/**
 * struct mirror_collector (plugins/mirror/mirror.h).
 *
 * @example
 * ```ts
 * import { mirrorCollector } from "@belt/belt";
 * console.log(mirrorCollector.size); // 32
 * ```
 */
export const mirrorCollector: StructCodec<{
  addr: Uint8Array;
  ifindex: number;
  vni: number;
  port: number;
  ipv6: number;
  pad0: undefined;
  max_len: number;
  pad: undefined;
}> = struct({
  addr: bytes(16),
  ifindex: u32,
  vni: u32,
  port: u16,
  ipv6: u8,
  pad0: pad(1),
  max_len: u16,
  pad: pad(2),
});

/**
 * struct mirror_record (plugins/mirror/mirror.h): the header of each copy in
 * the `copies` ring buffer; `cap_len` frame bytes follow it.
 *
 * @example
 * ```ts
 * import { mirrorRecord } from "@belt/belt";
 * console.log(mirrorRecord.size); // 24
 * ```
 */
export const mirrorRecord: StructCodec<{
  ts_ns: bigint;
  wire_len: number;
  cap_len: number;
  ifindex: number;
  direction: number;
  pad: undefined;
}> = struct({
  ts_ns: u64,
  wire_len: u32,
  cap_len: u32,
  ifindex: u32,
  direction: u8,
  pad: pad(3),
});

/**
 * struct mirror_stats (plugins/mirror/mirror.h), per CPU.
 *
 * @example
 * ```ts
 * import { mirrorStatsCodec } from "@belt/belt";
 * console.log(mirrorStatsCodec.size); // 120
 * ```
 */
export const mirrorStatsCodec: StructCodec<{
  packets: bigint[];
  bytes: bigint[];
  mirrored: bigint[];
  mirrored_bytes: bigint[];
  filtered: bigint;
  sampled_out: bigint;
  own_tunnel: bigint;
  pcap_copies: bigint;
  pcap_bytes: bigint;
  pcap_lost: bigint;
  cut: bigint;
}> = struct({
  packets: array(u64, 2),
  bytes: array(u64, 2),
  mirrored: array(u64, 2),
  mirrored_bytes: array(u64, 2),
  filtered: u64,
  sampled_out: u64,
  own_tunnel: u64,
  pcap_copies: u64,
  pcap_bytes: u64,
  pcap_lost: u64,
  cut: u64,
});

/**
 * struct mirror_collector_stats (plugins/mirror/mirror.h), per CPU, one per
 * collector and direction.
 *
 * @example
 * ```ts
 * import { mirrorCollectorStats } from "@belt/belt";
 * console.log(mirrorCollectorStats.size); // 40
 * ```
 */
export const mirrorCollectorStats: StructCodec<{
  packets: bigint;
  bytes: bigint;
  clone_failed: bigint;
  tunnel_failed: bigint;
  cut: bigint;
}> = struct({ packets: u64, bytes: u64, clone_failed: u64, tunnel_failed: u64, cut: u64 });

/** One VXLAN collector. */
export interface Collector {
  /** IPv4 or IPv6 literal. */
  address: string;
  /** UDP port (default 4789). */
  port: number;
  /** VXLAN network identifier, 0..16777215. */
  vni: number;
  /** Interface index of belt's VXLAN device for its port (set on start). */
  ifindex?: number;
  /**
   * Longest inner frame that reaches it unfragmented (IPv6 collectors: the
   * kernel does not fragment them, so longer copies are cut); 0 or absent:
   * no limit (IPv4: the outer packet is fragmented).
   */
  maxLength?: number;
}

/** Validated options of the mirror plugin. */
export interface MirrorOptions {
  /** Where VXLAN copies go (at most 8). */
  collectors: Collector[];
  /** Filter rules, OR-ed; empty: every frame. */
  rules: Rule[];
  /** Keep 1 in `sample` frames, at random (1: all). */
  sample: number;
  /** Longest copy in bytes, VLAN tag included (0: whole frames). */
  snaplen: number;
  /** Also hand copies to user space (the `copies` ring buffer). */
  pcap: boolean;
  /** Size of the `copies` ring buffer in bytes (a power of two). */
  bufferBytes: number;
  /** Tells this run's copies from another mirror's on a shared VXLAN device. */
  session: number;
}

/**
 * Splits `HOST`, `HOST:PORT` or `[IPV6]:PORT` into host and port text (no
 * port: undefined); HOST may be a name.
 *
 * @example
 * ```ts
 * import { splitHostPort } from "@belt/belt";
 * console.log(splitHostPort("[fd00:beef::2]:4790")); // ["fd00:beef::2", "4790"]
 * ```
 */
export function splitHostPort(text: string): [string, string | undefined] {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) return [bracket[1]!, bracket[2]];
  const hostPort = /^([^:]+):(\d+)$/.exec(text);
  return hostPort ? [hostPort[1]!, hostPort[2]] : [text, undefined];
}

/**
 * Parses a collector as `--to` gives it: `ADDR`, `ADDR:PORT`, `[IPV6]:PORT`
 * (addresses only: resolve names first).
 *
 * @example
 * ```ts
 * import { parseCollector } from "@belt/belt";
 * console.log(parseCollector("198.18.2.2:4790", 7)); // { address: "198.18.2.2", port: 4790, vni: 7 }
 * ```
 */
export function parseCollector(text: string, vni: number): Collector {
  const [host, portText] = splitHostPort(text);
  if (!parseIp(host)) {
    throw new BeltError(`collector '${text}': '${host}' is not an IP address`, {
      hint: "give ADDR, ADDR:PORT or [IPV6]:PORT (the CLI resolves host names)",
    });
  }
  const port = portText === undefined ? VXLAN_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BeltError(`collector '${text}': port ${portText} is out of range (1-65535)`);
  }
  return { address: host, port, vni };
}

function checkInt(value: unknown, name: string, min: number, max: number, where: string): number {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    throw new BeltError(`${where}: ${name} must be an integer ${min}..${max}, got '${value}'`);
  }
  return n;
}

function stringList(value: unknown, name: string, where: string): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((x) => typeof x === "string")) {
    throw new BeltError(`${where}: ${name} must be a string or a list of strings`);
  }
  return list as string[];
}

const KNOWN = ["to", "vni", "filter", "sample", "snaplen", "pcap", "buffer"];

/**
 * Validates raw mirror options (from the CLI, a config file or a script):
 * `to` (collectors), `vni`, `filter` (rules), `sample`, `snaplen`, `pcap`
 * (boolean), `buffer` (ring buffer MiB, a power of two).
 *
 * @example
 * ```ts
 * import { mirrorOptions } from "@belt/belt";
 * const o = mirrorOptions({ to: ["198.18.2.2"], vni: 42, filter: ["tcp port 80"] }, "example");
 * console.log(o.collectors[0], o.rules.length); // { address: "198.18.2.2", port: 4789, vni: 42 } 1
 * ```
 */
export function mirrorOptions(raw: Record<string, unknown>, where: string): MirrorOptions {
  const unknown = Object.keys(raw).find((k) => !KNOWN.includes(k));
  if (unknown) {
    throw new BeltError(`${where}: unknown mirror option '${unknown}'`, {
      hint: `mirror options: ${KNOWN.join(", ")}`,
    });
  }
  const vni = raw.vni === undefined ? 0 : checkInt(raw.vni, "vni", 0, 0xffffff, where);
  const collectors = stringList(raw.to, "to", where).map((t) => parseCollector(t, vni));
  if (collectors.length > MIRROR_LIMITS.collectors) {
    throw new BeltError(`${where}: at most ${MIRROR_LIMITS.collectors} collectors`);
  }
  const rules = stringList(raw.filter, "filter", where).map((f) => parseRule(f));
  if (rules.length > MIRROR_LIMITS.rules) {
    throw new BeltError(`${where}: at most ${MIRROR_LIMITS.rules} filters`, {
      hint: "merge rules with wider CIDRs or port ranges",
    });
  }
  const sample = raw.sample === undefined ? 1 : checkInt(raw.sample, "sample", 1, 2 ** 31, where);
  const snaplen = raw.snaplen === undefined
    ? 0
    : checkInt(raw.snaplen, "snaplen", 14, 65535, where);
  const mib = raw.buffer === undefined ? 16 : checkInt(raw.buffer, "buffer (MiB)", 1, 1024, where);
  if (mib & (mib - 1)) {
    throw new BeltError(`${where}: buffer must be a power of two (MiB), got ${mib}`);
  }
  if (raw.pcap !== undefined && typeof raw.pcap !== "boolean") {
    throw new BeltError(`${where}: pcap must be true or false`);
  }
  return {
    collectors,
    rules,
    sample,
    snaplen,
    pcap: raw.pcap === true,
    bufferBytes: mib << 20,
    session: crypto.getRandomValues(new Uint32Array(1))[0]! | 1,
  };
}

function packCollectors(collectors: Collector[]): Uint8Array {
  const out = new Uint8Array(MIRROR_LIMITS.collectors * mirrorCollector.size);
  collectors.forEach((c, i) => {
    const addr = parseIp(c.address)!;
    out.set(
      mirrorCollector.pack({
        addr,
        ifindex: c.ifindex ?? 0,
        vni: c.vni,
        port: c.port,
        ipv6: isMappedIpv4(addr) ? 0 : 1,
        pad0: undefined,
        max_len: c.maxLength ?? 0,
        pad: undefined,
      }),
      i * mirrorCollector.size,
    );
  });
  return out;
}

/**
 * A collector as `ADDR:PORT` (`[IPV6]:PORT`), for messages and stats.
 *
 * @example
 * ```ts
 * import { collectorLabel } from "@belt/belt";
 * console.log(collectorLabel({ address: "fd00:beef::2", port: 4789, vni: 0 })); // "[fd00:beef::2]:4789"
 * ```
 */
export function collectorLabel(c: Collector): string {
  return c.address.includes(":") ? `[${c.address}]:${c.port}` : `${c.address}:${c.port}`;
}

/** Per-collector counters. */
export interface CollectorStats {
  /** `ADDR:PORT`. */
  to: string;
  /** VNI of its copies. */
  vni: number;
  /** Copies of ingress frames sent. */
  packets_in: bigint;
  /** Copies of egress frames sent. */
  packets_out: bigint;
  /** Bytes of those copies before encapsulation. */
  bytes: bigint;
  /** Clones the kernel refused, and copies the tunnel refused. */
  failed: bigint;
  /** Copies cut to fit (snaplen, or an IPv6 collector's path MTU). */
  cut: bigint;
}

/** Counters of a running mirror (sums over CPUs). */
export type MirrorTotals = {
  [
    K in
      | "packets_in"
      | "packets_out"
      | "bytes_in"
      | "bytes_out"
      | "mirrored_in"
      | "mirrored_out"
      | "mirrored_bytes_in"
      | "mirrored_bytes_out"
      | "filtered"
      | "sampled_out"
      | "own_tunnel"
      | "pcap_copies"
      | "pcap_bytes"
      | "pcap_lost"
      | "cut"
  ]: bigint;
};

/** {@linkcode MirrorTotals} and one row per collector. */
export type MirrorReport = MirrorTotals & { collectors: CollectorStats[] };

/**
 * Every counter of a running mirror: totals per direction, filtered,
 * sampled out, own tunnel traffic skipped, pcap copies and losses, and one
 * row per collector.
 *
 * @example
 * ```ts ignore
 * import { mirror, mirrorReport, startPlugin } from "@belt/belt";
 * using running = startPlugin(mirror, { iface: "eth0", options: { to: ["198.18.2.2"] } });
 * console.log(mirrorReport(running.object, [{ address: "198.18.2.2", port: 4789, vni: 0 }]));
 * ```
 */
export function mirrorReport(obj: BpfObject, collectors: Collector[]): MirrorReport {
  const s = obj.map("mirror_stats").typed(u32, mirrorStatsCodec).getSum(0)!;
  const cs = obj.map("collector_stats").typed(u32, mirrorCollectorStats);
  return {
    ...totalsOf(s),
    collectors: collectors.map((c, i) => {
      const inn = cs.getSum(i * 2)!;
      const out = cs.getSum(i * 2 + 1)!;
      return {
        to: collectorLabel(c),
        vni: c.vni,
        packets_in: inn.packets,
        packets_out: out.packets,
        bytes: inn.bytes + out.bytes,
        failed: inn.clone_failed + out.clone_failed + inn.tunnel_failed + out.tunnel_failed,
        cut: inn.cut + out.cut,
      };
    }),
  };
}

function totalsOf(s: Decoded<typeof mirrorStatsCodec>): MirrorTotals {
  return {
    packets_in: s.packets[0]!,
    packets_out: s.packets[1]!,
    bytes_in: s.bytes[0]!,
    bytes_out: s.bytes[1]!,
    mirrored_in: s.mirrored[0]!,
    mirrored_out: s.mirrored[1]!,
    mirrored_bytes_in: s.mirrored_bytes[0]!,
    mirrored_bytes_out: s.mirrored_bytes[1]!,
    filtered: s.filtered,
    sampled_out: s.sampled_out,
    own_tunnel: s.own_tunnel,
    pcap_copies: s.pcap_copies,
    pcap_bytes: s.pcap_bytes,
    pcap_lost: s.pcap_lost,
    cut: s.cut,
  };
}

/**
 * Help text of `belt mirror`.
 *
 * @example
 * ```ts
 * import { MIRROR_HELP } from "@belt/belt";
 * console.log(MIRROR_HELP.split("\n")[0]);
 * ```
 */
export const MIRROR_HELP =
  `belt mirror — copy every frame of an interface, both directions, to collectors or a pcap

Usage: belt mirror IFACE [--to HOST[:PORT]]... [--vni N] [--direction in|out|both]
                         [--filter RULE]... [--snaplen N] [--sample N]
                         [--pcap FILE|-] [--buffer MIB] [--priority P]
                         [--duration S] [--tc-mode auto|tcx|cls_bpf] [--json]

Clones each frame from L2 (ARP and every other protocol included) on IFACE's
TC chain at priority P (default 1000) and hands the original on unchanged.
  --to HOST[:PORT]  send copies in VXLAN (RFC 7348, UDP 4789 by default, the
                    format of AWS Traffic Mirroring; Wireshark decodes it) to
                    HOST; repeat for several collectors, each gets every copy
  --vni N           VXLAN network identifier of the copies (default 0)
  --pcap FILE|-     write pcapng (direction and interface recorded, ns time
                    stamps); - writes to stdout, e.g. | tshark -r -
  --filter RULE     mirror only frames matching RULE, e.g. "tcp port 443",
                    "udp dst net 198.18.0.0/15", "arp", "vlan 10", "in icmp";
                    several --filter: frames matching any of them
  --snaplen N       cut copies to N bytes (originals are never cut)
  --sample N        keep 1 in N frames, at random
  --buffer MIB      kernel-to-belt buffer for --pcap (default 16 MiB)
With neither --to nor --pcap, writes IFACE-<time>.pcapng in the current
directory. Runs until Ctrl-C, SIGTERM or --duration, with live stats on a
terminal, then prints stats (JSON with --json). belt's own VXLAN packets are
never mirrored, even when a collector is reached through IFACE. A copy too
big for the path to its collector is sent in outer IP fragments.`;

/** VXLAN over IPv6: outer IPv6 (40) + UDP (8) + VXLAN (8) bytes around the inner frame. */
const VXLAN6_OVERHEAD = 56;

/**
 * For an IPv6 collector, the longest inner frame whose VXLAN packet fits the
 * MTU of the route to it (as `ip route get` reports it, in the calling
 * thread's namespace); 0 for IPv4 collectors (outer fragments are fine).
 */
function unfragmentedLength(c: Collector): number {
  if (isMappedIpv4(parseIp(c.address)!)) return 0;
  let mtu = 0;
  try {
    mtu = routeTo(c.address).mtu;
  } catch {
    return 0; // no route now: the kernel refuses the copies when sending
  }
  return mtu > VXLAN6_OVERHEAD + 14 ? Math.min(mtu - VXLAN6_OVERHEAD, 65535) : 0;
}

function attachTunnel(
  obj: BpfObject,
  options: MirrorOptions,
  _iface: string,
  mode?: TcMode,
): Link[] {
  const links: Link[] = [];
  const seen = new Set<number>();
  for (const c of options.collectors) {
    if (c.ifindex === undefined || seen.has(c.ifindex)) continue;
    seen.add(c.ifindex);
    const owner = "mirror";
    links.push(
      attachTc(obj.program("mirror_tunnel"), c.ifindex, { direction: "egress", owner, mode }),
      attachTc(obj.program("mirror_tunnel_rx"), c.ifindex, { direction: "ingress", owner, mode }),
    );
  }
  return links;
}

/**
 * The mirror plugin: `mirror_ingress` and `mirror_egress` on the TC chain,
 * `mirror_tunnel` on belt's VXLAN device.
 *
 * @example
 * ```ts ignore
 * import { mirror, startPlugin, withNetns } from "@belt/belt";
 * const running = withNetns("lab", () =>
 *   startPlugin(mirror, { iface: "eth0", options: { to: ["198.18.2.2"], vni: 42 } })
 * );
 * console.log(running.stats()); // { packets_in: 10n, mirrored_in: 10n, ... }
 * running.close();
 * ```
 */
export const mirror: Plugin<MirrorOptions> = definePlugin<MirrorOptions>({
  name: "mirror",
  description: "copies every frame, both directions, to VXLAN collectors or pcapng",
  object: mirrorObject,
  programs: [
    { program: "mirror_ingress", hook: "tc-ingress" },
    { program: "mirror_egress", hook: "tc-egress" },
  ],
  extraPrograms: ["mirror_tunnel", "mirror_tunnel_rx"],
  options: mirrorOptions,
  prepare(options) {
    const devices = new Map<number, ReturnType<typeof openTunnelDevice>>();
    try {
      const collectors = options.collectors.map((c) => {
        let dev = devices.get(c.port);
        if (!dev) {
          dev = openTunnelDevice(c.port);
          devices.set(c.port, dev);
        }
        return { ...c, ifindex: dev.ifindex, maxLength: unfragmentedLength(c) };
      });
      return {
        options: { ...options, collectors },
        close: () => devices.forEach((d) => d.close()),
      };
    } catch (e) {
      devices.forEach((d) => d.close());
      throw e;
    }
  },
  globals: (o) => ({
    n_collectors: o.collectors.length,
    collectors: packCollectors(o.collectors),
    n_rules: o.rules.length,
    rules: packRules(o.rules, MIRROR_LIMITS.rules),
    sample: o.sample,
    snaplen: o.snaplen,
    to_pcap: o.pcap ? 1 : 0,
    session: o.session,
  }),
  configure(obj, o) {
    obj.map("copies").maxEntries = o.pcap ? o.bufferBytes : 4096;
  },
  attachExtra: attachTunnel,
  stats(obj): Stats {
    const { collectors: _, ...totals } = mirrorReport(obj, []);
    return totals;
  },
  statsOfProgram(progId) {
    using stats = openProgramMap(progId, "mirror_stats", u32, mirrorStatsCodec);
    const sum = stats?.map.getSum(0);
    return sum && totalsOf(sum);
  },
  cli: {
    help: MIRROR_HELP,
    run: async (args) => (await import("../../cli/mirror.ts")).mirrorCommand(args),
  },
});

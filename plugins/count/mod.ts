/**
 * count: packets and bytes per EtherType, IP protocol and direction, on the
 * TC chain of an interface. It hands every packet on, so it can sit at any
 * priority to show what reaches that point of the chain.
 *
 * @module
 */
import { BeltError, struct, u16, u64, u8 } from "../../bpf/mod.ts";
import type { BpfObject, StructCodec } from "../../bpf/mod.ts";
import { definePlugin } from "../plugin.ts";
import type { Plugin } from "../plugin.ts";
import { countObject } from "./count.bpf.ts";

/**
 * struct count_key (plugins/count/count.h).
 *
 * @example
 * ```ts
 * import { countKey } from "@belt/belt";
 * console.log(countKey.size); // 4
 * ```
 */
export const countKey: StructCodec<{ eth_proto: number; ip_proto: number; direction: number }> =
  struct({
    eth_proto: u16,
    ip_proto: u8,
    direction: u8,
  });
/**
 * struct count_value (plugins/count/count.h).
 *
 * @example
 * ```ts
 * import { countValue } from "@belt/belt";
 * console.log(countValue.unpack(new Uint8Array(16))); // { packets: 0n, bytes: 0n }
 * ```
 */
export const countValue: StructCodec<{ packets: bigint; bytes: bigint }> = struct({
  packets: u64,
  bytes: u64,
});

/** One counter row. */
export interface CountRow {
  /** "in" or "out". */
  direction: "in" | "out";
  /** EtherType, e.g. 0x0800. */
  ethProto: number;
  /** IP protocol (0 when not IP). */
  ipProto: number;
  /** Name for display, e.g. "ipv4/icmp", "arp". */
  protocol: string;
  /** Packets counted (all CPUs). */
  packets: bigint;
  /** Bytes counted (all CPUs). */
  bytes: bigint;
}

const ETHER: Record<number, string> = {
  0x0800: "ipv4",
  0x86dd: "ipv6",
  0x0806: "arp",
  0x8100: "vlan",
};
const IP: Record<number, string> = {
  1: "icmp",
  6: "tcp",
  17: "udp",
  58: "icmpv6",
  47: "gre",
  132: "sctp",
};

function protocolName(eth: number, ip: number): string {
  const l3 = ETHER[eth] ?? `0x${eth.toString(16).padStart(4, "0")}`;
  return ip || eth === 0x0800 || eth === 0x86dd ? `${l3}/${IP[ip] ?? ip}` : l3;
}

/**
 * Every counter of a running count plugin, sorted by direction then packets.
 *
 * @example
 * ```ts ignore
 * import { count, countRows, startPlugin } from "@belt/belt";
 * using running = startPlugin(count, { iface: "eth0" });
 * for (const r of countRows(running.object)) console.log(r.direction, r.protocol, r.packets);
 * ```
 */
export function countRows(obj: BpfObject): CountRow[] {
  const rows: CountRow[] = [];
  for (const [k, v] of obj.map("counts").typed(countKey, countValue).entries()) {
    rows.push({
      direction: k.direction === 0 ? "in" : "out",
      ethProto: k.eth_proto,
      ipProto: k.ip_proto,
      protocol: protocolName(k.eth_proto, k.ip_proto),
      packets: v.packets,
      bytes: v.bytes,
    });
  }
  return rows.sort((a, b) =>
    a.direction.localeCompare(b.direction) || Number(b.packets - a.packets) ||
    a.protocol.localeCompare(b.protocol)
  );
}

/**
 * Help text of `belt count`.
 *
 * @example
 * ```ts
 * import { COUNT_HELP } from "@belt/belt";
 * console.log(COUNT_HELP.split("\n")[0]);
 * ```
 */
export const COUNT_HELP = `belt count — packets and bytes per protocol and direction on an interface

Usage: belt count IFACE [--priority P] [--direction in|out|both] [--duration S]
                        [--tc-mode auto|tcx|cls_bpf] [--pin] [--json]

Attaches the count plugin to the TC chain of IFACE (ingress and egress) at
priority P (default 1000; lower runs first). It passes every packet on, so it
shows what reaches its place in the chain. Runs until Ctrl-C, SIGTERM or
--duration seconds, with a live line on a terminal, then prints the table
(or JSON lines with --json). Everything is detached on exit, unless --pin:
then it stays attached after belt exits, pinned under /sys/fs/bpf/belt/IFACE/,
until \`belt detach IFACE\`.`;

/**
 * The count plugin: `count_ingress` and `count_egress` on the TC chain.
 *
 * @example
 * ```ts ignore
 * import { count, startPlugin, withNetns } from "@belt/belt";
 * const running = withNetns("lab", () => startPlugin(count, { iface: "eth0", priority: 10 }));
 * console.log(running.stats()); // { packets_in: 12n, packets_out: 12n, ... }
 * ```
 */
export const count: Plugin<Record<string, never>> = definePlugin<Record<string, never>>({
  name: "count",
  description: "packets and bytes per protocol and direction (passes every packet on)",
  object: countObject,
  programs: [
    { program: "count_ingress", hook: "tc-ingress" },
    { program: "count_egress", hook: "tc-egress" },
  ],
  options(raw, where) {
    const unknown = Object.keys(raw);
    if (unknown.length) {
      throw new BeltError(`${where}: count takes no options (got '${unknown[0]}')`);
    }
    return {};
  },
  cli: {
    help: COUNT_HELP,
    // Loaded on demand: the CLI layer imports the plugins, not the other way round.
    run: async (args) => (await import("../../cli/count.ts")).countCommand(args),
  },
  stats(obj) {
    const totals = { packets_in: 0n, bytes_in: 0n, packets_out: 0n, bytes_out: 0n };
    for (const r of countRows(obj)) {
      totals[`packets_${r.direction}`] += r.packets;
      totals[`bytes_${r.direction}`] += r.bytes;
    }
    return totals;
  },
});

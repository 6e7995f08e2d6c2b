/**
 * Helpers of the `belt sniff` tests: running belt and tshark in test hosts,
 * reading their output, and what the kernel holds (programs named "sniff",
 * packet sockets, promiscuity) to prove nothing stays behind.
 */
import { equal, ok } from "node:assert/strict";
import type { FrameRecord, L7Record } from "../../plugins/mod.ts";
import { eventually } from "./kernel.ts";
import type { Topology } from "./netns.ts";
import { Background, BELT, run } from "./process.ts";
import type { Result } from "./process.ts";

const decoder = new TextDecoder();

/** Enters a host's network namespace only (`ip netns exec` would also remount /sys). */
export function inHost(topo: Topology, host: string): string[] {
  return ["nsenter", `--net=/run/netns/${topo.ns(host)}`];
}

/** Starts a long-running command: stdout read at the end, stderr watched live. */
export function spawn(cmd: string[]): Background {
  return new Background(
    new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
}

/** Stops `bg` with `signal`; SIGKILL when it has not ended after `ms` (a hang then fails). */
export async function stopWithin(
  bg: Background,
  signal: Deno.Signal,
  ms = 15_000,
): Promise<Result> {
  const timer = setTimeout(() => {
    try {
      bg.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, ms);
  try {
    const r = await bg.stop(signal);
    return { code: r.code, stdout: decoder.decode(r.stdout), stderr: r.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Kills what a test started, also when it failed half-way. */
export async function reap(procs: Background[]): Promise<void> {
  for (const bg of procs) await stopWithin(bg, "SIGKILL", 5_000).catch(() => {});
}

/** Starts `belt sniff ARGS` in a host; resolves once it says it is sniffing (socket bound). */
export async function startSniff(
  topo: Topology,
  host: string,
  args: string[],
  procs: Background[],
): Promise<Background> {
  const bg = spawn([...inHost(topo, host), ...BELT, "sniff", ...args]);
  procs.push(bg);
  await bg.waitFor(/^belt: sniffing /m, 60_000);
  return bg;
}

/** Starts tshark capturing `iface` into `file` (pcapng), with a capture filter if given. */
export async function startTshark(
  topo: Topology,
  host: string,
  iface: string,
  file: string,
  procs: Background[],
  filter?: string,
): Promise<Background> {
  const bg = spawn([
    ...inHost(topo, host),
    "tshark",
    "-n",
    "-i",
    iface,
    "-w",
    file,
    ...(filter ? ["-f", filter] : []),
  ]);
  procs.push(bg);
  await bg.waitFor(/Capturing on/, 30_000);
  return bg;
}

/** JSON lines; each must parse. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").filter(Boolean).map((line) => {
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`not a JSON line: ${line}`);
    }
  });
}

/** One frame record of `belt sniff --json`. */
export type SniffRecord = FrameRecord;

/** A frame record whose L7 record is of kind `K` (what `--http`, `--dns`, `--tls-sni` print). */
export type SniffRecordWith<K extends L7Record["kind"]> =
  & SniffRecord
  & { l7: Extract<L7Record, { kind: K }> };

/** The summary record of `belt sniff --json`. */
export interface SniffSummary {
  kind: "summary";
  iface: string;
  seen: number;
  matched: number;
  passed: number;
  captured: number;
  drops: number;
}

/**
 * Splits `belt sniff --json` output into frame records and the summary
 * (which must be the last line, and only there); checks the summary counts
 * what was printed, with no drops.
 */
export function sniffJson(
  out: Result,
  what: string,
): { records: SniffRecord[]; summary: SniffSummary } {
  equal(out.code, 0, `${what}: exit ${out.code}: ${out.stderr}`);
  const lines = jsonLines(out.stdout);
  const summary = lines.at(-1) as unknown as SniffSummary;
  equal(
    summary?.kind,
    "summary",
    `${what}: the last line is the summary: ${out.stdout.slice(-300)}`,
  );
  const records = lines.slice(0, -1) as unknown as SniffRecord[];
  ok(records.every((r) => !("kind" in r)), `${what}: one summary, at the end`);
  equal(summary.captured, records.length, `${what}: summary.captured counts the records`);
  equal(summary.drops, 0, `${what}: no drops`);
  ok(
    summary.seen >= summary.matched && summary.matched >= summary.passed &&
      summary.passed >= summary.captured,
    `${what}: seen >= matched >= passed >= captured: ${JSON.stringify(summary)}`,
  );
  return { records, summary };
}

/** tshark -r FILE ... -T fields: one row of fields per frame ("|"-separated, first occurrences). */
export async function tsharkFields(
  file: string,
  fields: string[],
  opts: { filter?: string; extra?: string[] } = {},
): Promise<string[][]> {
  const r = await run([
    "tshark",
    "-n",
    "-r",
    file,
    ...(opts.extra ?? []),
    ...(opts.filter ? ["-Y", opts.filter] : []),
    "-T",
    "fields",
    "-E",
    "separator=|",
    "-E",
    "occurrence=f",
    ...fields.flatMap((f) => ["-e", f]),
  ], 60_000);
  equal(r.code, 0, `tshark -r ${file}: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l !== "").map((l) => l.split("|"));
}

/** A frame as tshark dissects it: addresses, L4 protocol and ports (outer headers only). */
export interface TsharkFrame {
  ethSrc: string;
  ethType: number;
  src: string;
  dst: string;
  /** "tcp", "udp", "icmp", "icmp6" or "" (as belt's JSON names them). */
  proto: string;
  sport?: number;
  dport?: number;
  len: number;
  caplen: number;
  time: number;
}

const L4_NAMES: Record<string, string> = { tcp: "tcp", udp: "udp", icmp: "icmp", icmpv6: "icmp6" };

/** Every frame of a capture file as tshark reads it (display filter optional). */
export async function tsharkFrames(file: string, filter?: string): Promise<TsharkFrame[]> {
  const rows = await tsharkFields(file, [
    "eth.src",
    "eth.type",
    "ip.src",
    "ipv6.src",
    "ip.dst",
    "ipv6.dst",
    "frame.protocols",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "frame.len",
    "frame.cap_len",
    "frame.time_epoch",
  ], { ...(filter ? { filter } : {}) });
  return rows.map((f) => {
    // The first L4 protocol after the IP header: an ICMP error's quoted UDP header is not ours.
    const chain = f[6]!.split(":");
    const ip = chain.findIndex((p) => p === "ip" || p === "ipv6");
    const l4 = ip < 0 ? "" : chain.slice(ip + 1).find((p) => p in L4_NAMES) ?? "";
    const proto = L4_NAMES[l4] ?? "";
    const frame: TsharkFrame = {
      ethSrc: f[0]!,
      ethType: Number(f[1]),
      src: f[2] || f[3]!,
      dst: f[4] || f[5]!,
      proto,
      len: Number(f[11]),
      caplen: Number(f[12]),
      time: Number(f[13]),
    };
    if (proto === "tcp") [frame.sport, frame.dport] = [Number(f[7]), Number(f[8])];
    if (proto === "udp") [frame.sport, frame.dport] = [Number(f[9]), Number(f[10])];
    return frame;
  });
}

/** A frame as a comparable string: EtherType, addresses, protocol, ports, wire length. */
export function frameKey(
  f: {
    src?: string;
    dst?: string;
    proto?: string | number;
    sport?: number;
    dport?: number;
    len: number;
  },
  ethType: number,
): string {
  return JSON.stringify([
    ethType,
    f.src ?? "",
    f.dst ?? "",
    f.proto === undefined || f.proto === "" ? "" : String(f.proto),
    f.sport ?? null,
    f.dport ?? null,
    f.len,
  ]);
}

/** Counts of each string. */
export function counts(keys: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

/** Throws, listing the differences, unless both lists hold the same strings as often. */
export function assertSameMultiset(expected: string[], got: string[], what: string): void {
  const e = counts(expected), g = counts(got);
  const diffs: string[] = [];
  for (const [k, n] of e) {
    if ((g.get(k) ?? 0) !== n) diffs.push(`want ${n}× got ${g.get(k) ?? 0}×: ${k}`);
  }
  for (const [k, n] of g) if (!e.has(k)) diffs.push(`unexpected ${n}×: ${k}`);
  if (diffs.length) {
    throw new Error(
      `${what}: ${diffs.length} differences (${expected.length} wanted, ${got.length} got)\n` +
        diffs.slice(0, 20).join("\n"),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// What the kernel holds

interface ProgInfo {
  id: number;
  name?: string;
  type?: string;
}

/** belt sniff's programs loaded now (socket filters named "sniff"). */
export async function sniffPrograms(): Promise<number[]> {
  const r = await run(["bpftool", "prog", "show", "-j"], 15_000);
  equal(r.code, 0, `bpftool prog show: ${r.stderr}`);
  return (JSON.parse(r.stdout || "[]") as ProgInfo[])
    .filter((p) => p.name === "sniff" && p.type === "socket_filter").map((p) => p.id);
}

/** BPF program ids a process holds by file descriptor. */
export function progsHeldBy(pid: number | string): Set<number> {
  const progs = new Set<number>();
  let fds: Deno.DirEntry[];
  try {
    fds = [...Deno.readDirSync(`/proc/${pid}/fd`)];
  } catch {
    return progs; // gone, or a kernel thread
  }
  for (const fd of fds) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) !== "anon_inode:bpf-prog") continue;
      const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`);
      const id = Number(/^prog_id:\s*(\d+)/m.exec(info)?.[1]);
      if (id) progs.add(id);
    } catch {
      // closed meanwhile
    }
  }
  return progs;
}

/**
 * "sniff" programs no live process holds by descriptor. A socket filter is
 * held by its socket, not a descriptor: a program of a live belt is found
 * through the process (its own descriptor of the loaded program).
 */
async function strays(): Promise<number[]> {
  const ids = await sniffPrograms();
  if (!ids.length) return [];
  const held = new Set<number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(entry.name)) progsHeldBy(entry.name).forEach((id) => held.add(id));
  }
  return ids.filter((id) => !held.has(id));
}

/** Packet sockets open in a host's namespace (lines of its /proc/net/packet). */
export async function packetSockets(topo: Topology, host: string): Promise<number> {
  const r = await topo.run(host, ["cat", "/proc/net/packet"]);
  return r.stdout.trim().split("\n").length - 1;
}

/** The promiscuity count of an interface in a host. */
export async function promiscuity(topo: Topology, host: string, iface = "eth0"): Promise<number> {
  const r = await topo.run(host, ["ip", "-d", "-j", "link", "show", iface]);
  return Number(JSON.parse(r.stdout)[0].promiscuity);
}

/**
 * Waits (bounded) until nothing of belt sniff stays: no "sniff" program
 * unheld by a live process, no packet socket in the host, promiscuity 0.
 */
export async function assertNothingLeft(
  topo: Topology,
  host: string,
  what: string,
  iface = "eth0",
): Promise<void> {
  const left = async () => {
    const out: string[] = [];
    const progs = await strays();
    if (progs.length) out.push(`programs ${progs.join(", ")}`);
    const socks = await packetSockets(topo, host);
    if (socks) out.push(`${socks} packet sockets`);
    const promisc = await promiscuity(topo, host, iface);
    if (promisc) out.push(`promiscuity ${promisc}`);
    return out.join(", ");
  };
  ok(
    await eventually(async () => (await left()) === "", 5_000, 100),
    `${what} left: ${await left()}`,
  );
}

/** `belt mirror IFACE`: copy every frame to VXLAN collectors and/or a pcapng file. */
import { lookup } from "node:dns/promises";
import { BeltError, interfaceIndex, monotonicToRealtimeNs, RingBuffer } from "../bpf/mod.ts";
import type { TcMode } from "../bpf/mod.ts";
import {
  collectorLabel,
  mirror,
  MIRROR_HELP,
  mirrorRecord,
  mirrorReport,
  routeTo,
  splitHostPort,
  startPlugin,
} from "../plugins/mod.ts";
import type { Direction, MirrorOptions, RunningPlugin } from "../plugins/mod.ts";
import { PcapngWriter } from "../plugins/pcapng.ts";
import { parseCommand } from "./args.ts";
import { interfacesGone, seconds, stopCode, untilStopped } from "./stop.ts";
import { jsonLine, openPcapOutput, table } from "./output.ts";
import { VERSION } from "./main.ts";

/** Runs `belt mirror`. */
export async function mirrorCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("mirror", args, {
    to: { type: "string", multiple: true },
    vni: { type: "string" },
    direction: { type: "string" },
    filter: { type: "string", multiple: true },
    snaplen: { type: "string" },
    sample: { type: "string" },
    pcap: { type: "string" },
    buffer: { type: "string" },
    priority: { type: "string" },
    duration: { type: "string" },
    "tc-mode": { type: "string" },
  });
  if (values.help) {
    console.log(MIRROR_HELP);
    return 0;
  }
  const iface = positionals[0];
  if (!iface || positionals.length > 1) {
    throw new BeltError("mirror: give exactly one interface", { hint: "see `belt mirror --help`" });
  }
  // Every input is checked before anything is attached.
  interfaceIndex(iface);
  const duration = seconds(values.duration, "--duration");
  const to = await Promise.all((values.to ?? []).map(resolveCollector));
  const pcapPath = values.pcap ??
    (to.length ? undefined : `${iface}-${new Date().toISOString().replace(/[:.]/g, "-")}.pcapng`);
  const raw = {
    to,
    vni: values.vni,
    filter: values.filter,
    sample: values.sample,
    snaplen: values.snaplen,
    buffer: values.buffer,
    pcap: pcapPath !== undefined,
  };
  const options = mirror.options(raw, "mirror");
  for (const c of options.collectors) routeTo(c.address); // unreachable: one line, nothing attached
  const out = pcapPath === undefined ? undefined : openPcapOutput(pcapPath);
  // Stats go to stderr when the pcap goes to stdout.
  const say = pcapPath === "-" ? console.error : console.log;
  let running: RunningPlugin;
  try {
    running = startPlugin(mirror, {
      iface,
      options: raw,
      priority: values.priority === undefined ? undefined : Number(values.priority),
      direction: (values.direction ?? "both") as Direction,
      tcMode: values["tc-mode"] as TcMode | undefined,
    });
  } catch (e) {
    out?.discard();
    throw e;
  }
  try {
    const where = [
      ...options.collectors.map((c) => `${collectorLabel(c)} (VXLAN, VNI ${c.vni})`),
      ...(pcapPath ? [pcapPath === "-" ? "stdout (pcapng)" : pcapPath] : []),
    ];
    // On stderr even with --json: stdout carries only the results (or the pcap).
    console.error(`mirroring ${iface} (${values.direction ?? "both"}) to ${where.join(", ")}`);
    out?.begin();
    const pcap = out ? startPcap(running, iface, out.sink, options) : undefined;
    const reason = await untilStopped(
      duration,
      () => liveLine(iface, running, options),
      interfacesGone([iface]),
    );
    running.detach(); // the report below then counts every copy made
    await pcap?.stop();
    report(running, options, values.json ?? false, say, pcap?.written ?? 0);
    return stopCode(reason);
  } finally {
    running.close();
  }
}

/** `HOST[:PORT]` with HOST a name or address → `ADDR[:PORT]`. */
async function resolveCollector(text: string): Promise<string> {
  const [host, port] = splitHostPort(text);
  let address = host;
  if (!/^[\d.]+$/.test(host) && !host.includes(":")) {
    try {
      address = (await lookup(host)).address;
    } catch {
      throw new BeltError(`cannot resolve collector '${host}'`, {
        hint: "give an IP address or a name this host resolves",
      });
    }
  }
  const shown = address.includes(":") ? `[${address}]` : address;
  return port === undefined ? shown : `${shown}:${port}`;
}

const DIRECTION = { 1: "in", 2: "out" } as const;

/** Reads copies from the ring buffer into the pcapng writer until stop(). */
function startPcap(
  running: RunningPlugin,
  iface: string,
  out: Deno.FsFile | typeof Deno.stdout,
  options: MirrorOptions,
): { stop(): Promise<void>; readonly written: number } {
  const ring = RingBuffer.open(running.object.map("copies"));
  const writer = new PcapngWriter(out, { application: `belt ${VERSION}` });
  const ifaceId = writer.addInterface({
    name: iface,
    snaplen: options.snaplen || 0,
    description: "belt mirror",
  });
  writer.flush(); // a reader at the other end of a pipe sees the header at once
  const offset = monotonicToRealtimeNs();
  const header = mirrorRecord.size;
  let stopping = false;
  const write = (view: DataView, at: number, length: number) => {
    if (length < header) return;
    const capLen = view.getUint32(at + 12, true);
    if (header + capLen > length) return;
    writer.writePacket(
      ifaceId,
      view.getBigUint64(at, true) + offset,
      new Uint8Array(view.buffer, view.byteOffset + at + header, capLen),
      view.getUint32(at + 8, true),
      DIRECTION[view.getUint8(at + 20) as 1 | 2],
    );
  };
  const loop = (async () => {
    while (!stopping) {
      if (ring.consume(write)) writer.flush();
      // The kernel wakes us only when 256 KiB are queued: poll for the rest.
      else await ring.ready(50);
    }
    ring.consume(write); // what arrived before the programs were detached
    writer.close();
    ring.close();
    if (out !== Deno.stdout) out.close();
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
    },
    get written() {
      return writer.packets;
    },
  };
}

function liveLine(iface: string, running: RunningPlugin, options: MirrorOptions): string {
  const r = mirrorReport(running.object, options.collectors);
  const parts = [
    `${iface}: in ${r.packets_in} out ${r.packets_out}`,
    `mirrored ${BigInt(r.mirrored_in) + BigInt(r.mirrored_out)}`,
  ];
  if (r.filtered) parts.push(`filtered ${r.filtered}`);
  for (const c of r.collectors) parts.push(`→ ${c.to} ${c.packets_in + c.packets_out}`);
  if (options.pcap) parts.push(`pcap ${r.pcap_copies} (lost ${r.pcap_lost})`);
  return parts.join(" · ");
}

function report(
  running: RunningPlugin,
  options: MirrorOptions,
  json: boolean,
  say: (line: string) => void,
  written: number,
): void {
  const { collectors, ...totals } = mirrorReport(running.object, options.collectors);
  if (json) {
    say(jsonLine({ iface: running.iface, ...totals, pcap_written: written, collectors }));
    return;
  }
  const rows: string[][] = [
    ["in", String(totals.packets_in), String(totals.mirrored_in), String(totals.bytes_in)],
    ["out", String(totals.packets_out), String(totals.mirrored_out), String(totals.bytes_out)],
  ];
  say(table(["dir", "frames", "mirrored", "bytes"], rows));
  say(
    `filtered ${totals.filtered} · sampled out ${totals.sampled_out} · own tunnel ${totals.own_tunnel} · cut ${totals.cut}`,
  );
  for (const c of collectors) {
    say(
      `to ${c.to} VNI ${c.vni}: in ${c.packets_in} out ${c.packets_out} copies, ${c.bytes} bytes, ${c.failed} failed, ${c.cut} cut`,
    );
  }
  if (options.pcap) {
    say(`pcap: ${written} frames written, ${totals.pcap_lost} lost (buffer full)`);
  }
}

/** `belt collect`: receive mirrored VXLAN traffic and write pcapng. */
import dgram from "node:dgram";
import { BeltError } from "../bpf/mod.ts";
import { PcapngWriter, VXLAN_PORT, VxlanCollector } from "../plugins/mod.ts";
import { parseCommand } from "./args.ts";
import { seconds, stopCode, untilStopped } from "./stop.ts";
import { jsonLine, openPcapOutput, table } from "./output.ts";
import { VERSION } from "./main.ts";

/** Help text of `belt collect`. */
export const COLLECT_HELP = `belt collect — receive mirrored VXLAN traffic and write pcapng

Usage: belt collect [--listen ADDR:PORT] [--pcap FILE|-] [--duration S] [--json]

Listens for VXLAN (RFC 7348) datagrams, from one or more \`belt mirror --to\`
or any other VXLAN sender (AWS Traffic Mirroring, a Linux VXLAN device),
on ADDR:PORT (default [::]:4789, IPv4 and IPv6), takes the Ethernet frame
out of each and writes it to FILE as pcapng (default collect-<time>.pcapng;
- for stdout), with one pcapng interface per sender and VNI. Time stamps are
the time of arrival. Runs until Ctrl-C, SIGTERM or --duration, then prints
frames and bytes per sender and VNI. A VXLAN device on the same port in the
same network namespace holds the port: run the collector elsewhere or pick
another port.`;

/** Runs `belt collect`. */
export async function collectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("collect", args, {
    listen: { type: "string" },
    pcap: { type: "string" },
    duration: { type: "string" },
  });
  if (values.help) {
    console.log(COLLECT_HELP);
    return 0;
  }
  if (positionals.length) {
    throw new BeltError(`collect: unexpected argument '${positionals[0]}'`, {
      hint: "see `belt collect --help`",
    });
  }
  const { address, port } = listenAddress(values.listen ?? `[::]:${VXLAN_PORT}`);
  const duration = seconds(values.duration, "--duration");
  const path = values.pcap ?? `collect-${new Date().toISOString().replace(/[:.]/g, "-")}.pcapng`;
  const out = openPcapOutput(path);
  const say = path === "-" ? console.error : console.log;
  const socket = dgram.createSocket({
    type: address.includes(":") ? "udp6" : "udp4",
    recvBufferSize: 32 << 20,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    out.discard();
    throw new BeltError(
      `cannot listen on ${values.listen ?? `[::]:${port}`}: ${(e as Error).message}`,
      {
        hint: "another collector or a VXLAN device may use that port; pick another with --listen",
      },
    );
  }
  out.begin();
  const writer = new PcapngWriter(out.sink, {
    application: `belt ${VERSION}`,
    closeSink: out.sink !== Deno.stdout,
  });
  const collector = new VxlanCollector(writer);
  // Flushed once per second and at the end, not per datagram.
  socket.on("message", (msg: Uint8Array, rinfo: { address: string }) => {
    const now = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
    collector.receive(msg, rinfo.address.replace(/^::ffff:/, ""), now);
  });
  const flusher = setInterval(() => writer.flush(), 1000);
  console.error(
    `collecting VXLAN on ${address.includes(":") ? `[${address}]` : address}:${port} into ${
      path === "-" ? "stdout (pcapng)" : path
    }`,
  );
  const reason = await untilStopped(duration, () => {
    const total = collector.stats().reduce((n, r) => n + r.frames, 0);
    return `received ${total} frames from ${collector.stats().length} sender/VNI pairs · malformed ${collector.malformed}`;
  });
  clearInterval(flusher);
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  writer.close();
  const rows = collector.stats();
  if (values.json) {
    for (const r of rows) say(jsonLine(r));
    say(jsonLine({ malformed: collector.malformed, written: writer.packets }));
  } else {
    say(
      table(
        ["sender", "vni", "frames", "bytes"],
        rows.map((r) => [r.sender, String(r.vni), String(r.frames), String(r.bytes)]),
      ),
    );
    say(
      `written ${writer.packets} frames to ${path}; ${collector.malformed} datagrams were not VXLAN`,
    );
  }
  return stopCode(reason);
}

function listenAddress(text: string): { address: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))?:(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BeltError(`--listen '${text}': give ADDR:PORT, [IPV6]:PORT or PORT`, {
      hint: "e.g. --listen 0.0.0.0:4789",
    });
  }
  return { address: m[1] ?? (m[2] || "::"), port };
}

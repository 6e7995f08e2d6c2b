/** `belt sniff IFACE [EXPR]`: capture through an eBPF socket filter and a TPACKET_V3 ring. */
import { BeltError } from "../bpf/mod.ts";
import type { CapturedFrame } from "../bpf/mod.ts";
import { PcapngWriter } from "../plugins/pcapng.ts";
import {
  decodeFrame,
  formatFrame,
  frameRecord,
  SNIFF,
  SNIFF_HELP,
  Sniffer,
} from "../plugins/sniff/mod.ts";
import type { SniffL7, SniffStats } from "../plugins/sniff/mod.ts";
import { parseCommand, wholeNumber } from "./args.ts";
import { VERSION } from "./main.ts";
import { openPcapOutput, writeAllStdout } from "./output.ts";
import type { PcapOutput } from "./output.ts";
import { interfacesGone, seconds, stopCode, untilStopped } from "./stop.ts";

/**
 * How long the kernel may hold a block that is not full, in ms: 50 when someone may be watching
 * (lines, JSON, a pcap on stdout for Wireshark); 1000 for a pcap file, as libpcap's default
 * buffer timeout, so a trickle of matching frames wakes belt once a second rather than 20 times.
 */
const RETIRE_LIVE_MS = 50;
const RETIRE_FILE_MS = 1000;

interface Output {
  /** Writes frames; returns how many it took (fewer once --count is reached). */
  write(frames: CapturedFrame[]): number;
  close(): void;
}

function textOutput(json: boolean, l7: boolean, left: () => number): Output {
  const encoder = new TextEncoder();
  return {
    write(frames) {
      const take = frames.length <= left() ? frames : frames.slice(0, left());
      if (!take.length) return 0;
      const lines = take.map((f) => {
        const d = decodeFrame(f.data, l7);
        return json ? JSON.stringify(frameRecord(f, d.h, d.l7)) : formatFrame(f, d.h, d.l7);
      });
      writeAllStdout(encoder.encode(lines.join("\n") + "\n"));
      return take.length;
    },
    close() {},
  };
}

function pcapOutput(out: PcapOutput, iface: string, snaplen: number, left: () => number): Output {
  out.begin();
  const writer = new PcapngWriter(out.sink, { application: `belt ${VERSION}` });
  const id = writer.addInterface({ name: iface, snaplen, description: "belt sniff" });
  writer.flush(); // a reader at the other end of a pipe sees the header at once
  return {
    write(frames) {
      const n = Math.min(frames.length, left());
      for (let i = 0; i < n; i++) {
        const f = frames[i]!;
        writer.writePacket(id, f.timestampNs, f.data, f.wireLength, f.direction);
      }
      if (n) writer.flush();
      return n;
    },
    close() {
      writer.close();
      if (out.sink !== Deno.stdout) out.sink.close();
    },
  };
}

function summaryText(s: SniffStats): string {
  return `${s.captured} frames captured, ${s.passed} passed the filter of ${s.seen} seen, ` +
    `${s.drops} dropped by the kernel (ring full)`;
}

/** Runs `belt sniff`. */
export async function sniffCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("sniff", args, {
    http: { type: "boolean" },
    dns: { type: "boolean" },
    "tls-sni": { type: "boolean" },
    snaplen: { type: "string" },
    pcap: { type: "string" },
    count: { type: "string" },
    duration: { type: "string" },
    "no-promisc": { type: "boolean" },
  });
  if (values.help) {
    console.log(SNIFF_HELP);
    return 0;
  }
  const [iface, ...expr] = positionals;
  if (!iface) {
    throw new BeltError("sniff: which interface?", { hint: "see `belt sniff --help`" });
  }
  const json = values.json ?? false;
  if (json && values.pcap === "-") {
    throw new BeltError("sniff: --json and --pcap - both want stdout", {
      hint: "see `belt sniff --help`: write the pcap to a file",
    });
  }
  const count = wholeNumber(values.count, "--count", "sniff", 1);
  const snaplen = wholeNumber(values.snaplen, "--snaplen", "sniff", 1, SNIFF.maxSnaplen) ?? 0;
  const duration = seconds(values.duration, "--duration");
  const l7: SniffL7[] = [
    ...(values.http ? ["http" as const] : []),
    ...(values.dns ? ["dns" as const] : []),
    ...(values["tls-sni"] ? ["tls" as const] : []),
  ];
  const pcap = values.pcap === undefined ? undefined : openPcapOutput(values.pcap);
  const retire = pcap && values.pcap !== "-" ? RETIRE_FILE_MS : RETIRE_LIVE_MS;
  let sniffer: Sniffer;
  try {
    sniffer = Sniffer.open(iface, {
      expression: expr.join(" "),
      l7,
      snaplen,
      promiscuous: !values["no-promisc"],
      retireTimeoutMs: retire,
    });
  } catch (e) {
    pcap?.discard();
    throw e;
  }
  console.error(`belt: sniffing ${iface}${expr.length ? ` (${expr.join(" ")})` : ""}`);
  let written = 0;
  const left = () => count === undefined ? Infinity : count - written;
  let output: Output;
  try {
    output = pcap ? pcapOutput(pcap, iface, snaplen, left) : textOutput(json, l7.length > 0, left);
  } catch (e) {
    sniffer.close();
    throw e;
  }
  const enough = (async () => {
    for await (const frames of sniffer.batches()) {
      written += output.write(frames);
      if (left() <= 0) return "count";
    }
    return "closed";
  })();
  const gone = interfacesGone([iface]);
  const stopped = await untilStopped(
    duration,
    () => `${written} frames, ${sniffer.stats().drops} dropped by the kernel`,
    gone,
    enough,
  );
  // A vanished interface first shows as an error on the socket (ENETDOWN): say what happened.
  const reason = stopped.startsWith("stopped:") ? gone() ?? stopped : stopped;
  if (left() > 0) {
    // The kernel hands over a block when it is full or `retire` ms old: let the last one
    // retire, so frames that arrived before the stop are kept too (tcpdump loses them).
    await new Promise((r) => setTimeout(r, retire + 30));
    written += output.write(sniffer.drain());
  }
  const stats = { ...sniffer.stats(), captured: written };
  sniffer.close();
  await enough.catch(() => undefined);
  output.close();
  if (json) console.log(JSON.stringify({ kind: "summary", iface, ...stats }));
  else console.error(`belt: ${summaryText(stats)}`);
  return stopCode(reason);
}

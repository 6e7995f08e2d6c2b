import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  type PcapngDirection,
  type PcapngSink,
  PcapngWriter,
  readPcapng,
} from "../plugins/pcapng.ts";

interface Sent {
  iface: number;
  tsNs: bigint;
  data: Uint8Array;
  originalLength: number;
  direction?: PcapngDirection;
}

/** Deterministic random numbers (mulberry32), so a failure can be replayed. */
function rng(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

/** `count` packets on `ifaces` interfaces: sizes 0..1600 (any remainder mod 4), one of 9000. */
function packets(count: number, ifaces: number, seed: number): Sent[] {
  const r = rng(seed);
  const out: Sent[] = [];
  let ts = 1_700_000_000_000_000_000n;
  for (let i = 0; i < count; i++) {
    const size = i === count >> 1 ? 9000 : i < 4 ? i : r(1601); // sizes 0-3 for sure
    const data = new Uint8Array(size);
    for (let j = 0; j < size; j++) data[j] = r(256);
    ts += BigInt(r(2_000_000_000)); // up to 2 s apart, any nanosecond
    const dir = r(3);
    out.push({
      iface: r(ifaces),
      tsNs: ts,
      data,
      originalLength: size + (r(4) === 0 ? r(1000) : 0), // some truncated by a snaplen
      direction: dir === 0 ? undefined : dir === 1 ? "in" : "out",
    });
  }
  return out;
}

const names = ["eth0", "veth-belt1", "lo"];

function write(w: PcapngWriter, sent: Sent[]): void {
  for (const [i, name] of names.entries()) {
    equal(w.addInterface({ name, description: i === 1 ? "a veth pair" : undefined }), i);
  }
  for (const p of sent) w.writePacket(p.iface, p.tsNs, p.data, p.originalLength, p.direction);
}

/** An in-memory sink; `chunk` bytes at most per writeSync, to exercise partial writes. */
function collector(chunk?: number): PcapngSink & { bytes(): Uint8Array; closed: number } {
  const parts: Uint8Array[] = [];
  const sink = {
    closed: 0,
    close: () => sink.closed++,
    bytes: () => {
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) all.set(p, (o += p.length) - p.length);
      return all;
    },
  };
  return chunk === undefined
    ? Object.assign(sink, { write: (b: Uint8Array) => void parts.push(b.slice()) })
    : Object.assign(sink, {
      writeSync: (b: Uint8Array) => (parts.push(b.slice(0, chunk)), Math.min(chunk, b.length)),
    });
}

for (
  const [label, bufferSize, chunk] of [
    ["default buffer", undefined, undefined],
    ["4 KiB buffer (flushes, grows for 9000 bytes), partial writeSync", 4096, 1000],
  ] as const
) {
  Deno.test(`pcapng round trip: 3 interfaces, 1000 packets, ${label}`, () => {
    const sent = packets(1000, names.length, 1);
    const sink = collector(chunk);
    const w = new PcapngWriter(sink, { application: "belt 0.1.0", bufferSize });
    write(w, sent);
    equal(w.packets, 1000);
    w.close();
    const bytes = sink.bytes();
    equal(w.bytesWritten, bytes.length);

    const got = readPcapng(bytes);
    deepEqual(
      got.interfaces,
      names.map((name) => ({ name, linktype: 1, snaplen: 0, tsresol: 9 })),
    );
    equal(got.packets.length, sent.length);
    for (const [i, p] of got.packets.entries()) {
      const s = sent[i];
      deepEqual(
        [p.iface, p.tsNs, p.originalLength, p.direction],
        [s.iface, s.tsNs, s.originalLength, s.direction],
        `packet ${i}`,
      );
      deepEqual(p.data, s.data, `packet ${i} bytes`);
      // The buffer is reused, so padding must have been cleared.
      const end = p.data.byteOffset + p.data.length;
      deepEqual([...bytes.subarray(end, (end + 3) & ~3)], [0, 0, 0].slice(0, -end & 3));
    }
  });
}

Deno.test("pcapng writer: close flushes once, closes the sink only if asked, then refuses", () => {
  const keep = collector();
  const w1 = new PcapngWriter(keep);
  w1.close();
  w1.close();
  equal(keep.closed, 0);
  equal(keep.bytes().length, 28); // the section header alone

  const sink = collector();
  {
    using w = new PcapngWriter(sink, { closeSink: true });
    w.addInterface({ name: "eth0" });
    w.close();
  }
  equal(sink.closed, 1);
  equal(readPcapng(sink.bytes()).interfaces.length, 1);
  throws(() => w1.addInterface({ name: "x" }), /closed/);
  throws(() => w1.writePacket(0, 0n, new Uint8Array(1), 1), /closed/);
});

Deno.test("pcapng writer: refuses an undeclared interface and lengths that cannot be", () => {
  const w = new PcapngWriter(collector());
  const eth0 = w.addInterface({ name: "eth0" });
  throws(() => w.writePacket(1, 0n, new Uint8Array(4), 4), /interface 1 was not added/);
  throws(() => w.writePacket(eth0, 0n, new Uint8Array(4), 3), /original length 3/);
  throws(() => w.writePacket(eth0, -1n, new Uint8Array(4), 4), /negative timestamp/);
  throws(() => w.addInterface({ name: "x", linktype: 70000 }), /linktype/);
  equal(w.packets, 0);
});

Deno.test("readPcapng refuses garbage with an Error", () => {
  const sink = collector();
  const w = new PcapngWriter(sink);
  w.writePacket(w.addInterface({ name: "eth0" }), 1n, new Uint8Array(10), 10, "out");
  w.close();
  const good = sink.bytes();
  deepEqual(readPcapng(good).packets.map((p) => p.direction), ["out"]);

  const r = rng(7);
  const noise = Uint8Array.from({ length: 4096 }, () => r(256));
  throws(() => readPcapng(noise), (e) => e instanceof Error && /^pcapng: /.test(e.message));
  throws(() => readPcapng(good.subarray(0, good.length - 2)), /truncated|block length/);
  throws(() => readPcapng(good.subarray(28)), /no section header first/);
  const badTrailer = good.slice();
  badTrailer[good.length - 4] ^= 4;
  throws(() => readPcapng(badTrailer), /trailing block length/);
  const bigEndian = good.slice();
  new DataView(bigEndian.buffer).setUint32(8, 0x1a2b3c4d, false);
  throws(() => readPcapng(bigEndian), /big-endian/);
  // Every prefix either parses or throws an Error: nothing loops or crashes.
  for (let n = 0; n < good.length; n++) {
    try {
      readPcapng(good.subarray(0, n));
    } catch (e) {
      ok(e instanceof Error && e.message.startsWith("pcapng: "), String(e));
    }
  }
});

function run(cmd: string, args: string[]): string {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const err = new TextDecoder().decode(r.stderr);
  ok(r.success, `${cmd} ${args.join(" ")}: ${err}`);
  return new TextDecoder().decode(r.stdout);
}

function hasCommand(cmd: string): boolean {
  try {
    return Deno.statSync(`/usr/bin/${cmd}`).isFile;
  } catch {
    return false;
  }
}

Deno.test({
  name: "pcapng files read by tshark: names, lengths, nanosecond times, directions, bytes",
  ignore: !hasCommand("tshark"),
  fn() {
    const dir = Deno.makeTempDirSync({ prefix: "belt-pcapng-" });
    try {
      const path = `${dir}/capture.pcapng`;
      const sent = packets(300, names.length, 2);
      {
        using file = Deno.openSync(path, { write: true, create: true, truncate: true });
        using w = new PcapngWriter(file, { application: "belt 0.1.0" });
        write(w, sent);
      }

      // frame.packet_flags_direction is epb_flags bits 0-1, printed as 0x%08x (empty without the option).
      const fields = [
        "frame.interface_name",
        "frame.len",
        "frame.cap_len",
        "frame.time_epoch",
        "frame.packet_flags_direction",
      ];
      const rows = run("tshark", [
        "-r",
        path,
        "-T",
        "fields",
        "-E",
        "separator=/t",
        ...fields.flatMap((f) => ["-e", f]),
      ]).trimEnd().split("\n").map((line) => line.split("\t"));
      const epoch = (ns: bigint) =>
        `${ns / 1_000_000_000n}.${`${ns % 1_000_000_000n}`.padStart(9, "0")}`;
      const flags = { in: "0x00000001", out: "0x00000002" };
      deepEqual(
        rows,
        sent.map((s) => [
          names[s.iface],
          `${s.originalLength}`,
          `${s.data.length}`,
          epoch(s.tsNs),
          s.direction ? flags[s.direction] : "",
        ]),
      );

      // The bytes, as tshark read them (no frame_raw for an empty packet).
      const frames = JSON.parse(run("tshark", ["-r", path, "-T", "json", "-x", "-j", "frame"])) as {
        _source: { layers: { frame_raw?: [string] } };
      }[];
      deepEqual(
        frames.map((f) => f._source.layers.frame_raw?.[0] ?? ""),
        sent.map((s) => Array.from(s.data, (b) => b.toString(16).padStart(2, "0")).join("")),
      );

      if (hasCommand("capinfos")) {
        const info = run("capinfos", [path]);
        match(info, /File timestamp precision:\s+nanoseconds \(9\)/);
        match(info, /Capture application:\s+belt 0\.1\.0/);
        match(info, /Number of interfaces in file: 3/);
        match(info, new RegExp(`Number of packets:\\s+${sent.length}\\b`));
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

/**
 * PacketRing (TPACKET_V3) against real frames, in namespaces only:
 *
 *   a (198.18.8x.1) ── eth0 [b] (198.18.8x.2): the ring is opened on b's eth0
 *
 * Ground truth: tcpdump on the same interface (libpcap also reads a V3 ring
 * and re-inserts stripped VLAN tags), or the frames a sent itself from a
 * packet socket.
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { BeltError, BpfObject, PacketRing, PacketSocket, withNetns } from "../bpf/mod.ts";
import type { CapturedFrame } from "../bpf/mod.ts";
import { TPACKET_V3_LAYOUT } from "../bpf/packet_ring.ts";
import { socketSnapObject } from "./bpf/socket_snap.bpf.ts";
import { socketUdpPortObject } from "./bpf/socket_udp_port.bpf.ts";
import { xdpCountObject } from "./bpf/xdp_count.bpf.ts";
import { assertSameFrames, cat, hex, macOf, n16, n32, spontaneous } from "./harness/frames.ts";
import type { Bytes } from "./harness/frames.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";
import { capture } from "./harness/process.ts";
import type { Background } from "./harness/process.ts";
import { readPcap } from "./harness/pcap.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ipv4Checksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += (h[i]! << 8) | h[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/** An untagged IPv4/UDP frame of `size` bytes from .1 to .2 of `subnet`; `seq` marks it. */
function udpFrame(
  macs: { a: Uint8Array; b: Uint8Array },
  subnet: number,
  dport: number,
  size: number,
  seq: number,
): Bytes {
  const ip = new Uint8Array([0x45, 0, ...n16(size - 14), ...n16(seq), 0, 0, 64, 17, 0, 0]);
  const ipHeader = cat(ip, [198, 18, subnet, 1, 198, 18, subnet, 2]);
  ipHeader.set(n16(ipv4Checksum(ipHeader)), 10);
  const payload = new Uint8Array(size - 42).fill(seq & 0xff);
  payload.set(n32(seq).slice(0, Math.min(4, payload.length)));
  return cat(
    macs.b,
    macs.a,
    n16(0x0800),
    ipHeader,
    n16(40000),
    n16(dport),
    n16(size - 34),
    [0, 0],
    payload,
  );
}

/** The frame with VLAN tags ([tpid, tci], outer first) inserted after the MAC addresses. */
function withTags(frame: Uint8Array, tags: [number, number][]): Bytes {
  return cat(
    frame.subarray(0, 12),
    ...tags.map(([tpid, tci]) => [...n16(tpid), ...n16(tci)]),
    frame.subarray(12),
  );
}

/** Reads batches until `enough` holds; close() after `ms` ends a wait that would not. */
async function collect(
  ring: PacketRing,
  enough: (frames: CapturedFrame[]) => boolean,
  ms = 10000,
): Promise<CapturedFrame[]> {
  const got: CapturedFrame[] = [];
  const guard = setTimeout(() => ring.close(), ms);
  try {
    for await (const batch of ring.batches()) {
      got.push(...batch);
      if (enough(got)) break;
    }
  } finally {
    clearTimeout(guard);
  }
  return got;
}

/** Frames a sent from its packet socket: not ARP (a answers b's), not IPv6 chatter. */
const fromA = (macA: Uint8Array) => (f: CapturedFrame) =>
  hex(f.data.subarray(6, 12)) === hex(macA) && !spontaneous(f.data) &&
  !(f.data[12] === 0x08 && f.data[13] === 0x06);

Deno.test("TPACKET_V3_LAYOUT matches the kernel's uapi structs (C offsetof)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "belt-tpacket-" });
  try {
    await Deno.writeTextFile(
      `${dir}/p.c`,
      `#include <stdio.h>
#include <stddef.h>
#include <linux/if_packet.h>
#define O(t, f) printf("%zu ", offsetof(t, f))
int main(void) {
  O(struct tpacket_block_desc, hdr.bh1.block_status); O(struct tpacket_block_desc, hdr.bh1.num_pkts);
  O(struct tpacket_block_desc, hdr.bh1.offset_to_first_pkt); O(struct tpacket_block_desc, hdr.bh1.blk_len);
  O(struct tpacket3_hdr, tp_next_offset); O(struct tpacket3_hdr, tp_sec); O(struct tpacket3_hdr, tp_nsec);
  O(struct tpacket3_hdr, tp_snaplen); O(struct tpacket3_hdr, tp_len); O(struct tpacket3_hdr, tp_status);
  O(struct tpacket3_hdr, tp_mac); O(struct tpacket3_hdr, hv1.tp_vlan_tci); O(struct tpacket3_hdr, hv1.tp_vlan_tpid);
  printf("%zu %zu %zu %zu\\n", TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + offsetof(struct sockaddr_ll, sll_pkttype),
    (size_t)TPACKET3_HDRLEN, sizeof(struct tpacket_req3), sizeof(struct tpacket_stats_v3));
  return 0;
}
`,
    );
    const cc = await new Deno.Command("cc", {
      args: ["-o", `${dir}/p`, `${dir}/p.c`],
      stderr: "piped",
    })
      .output();
    equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(`${dir}/p`, { stdout: "piped" }).output();
    const L = TPACKET_V3_LAYOUT;
    deepEqual(new TextDecoder().decode(out.stdout).trim().split(/\s+/).map(Number), [
      ...Object.values(L.block),
      ...Object.values(L.frame),
      ...Object.values(L.vlan),
      L.SLL_PKTTYPE,
      L.TPACKET3_HDRLEN,
      L.REQ3_SIZE,
      L.STATS_V3_SIZE,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PacketRing.open() rejects bad options with a BeltError before opening anything", () => {
  const bad: [object, RegExp][] = [
    [{ blockSize: 1000 }, /blockSize 1000 is not a multiple of 4096/],
    [{ blockSize: 0 }, /blockSize 0/],
    [{ blockSize: 4096.5 }, /blockSize/],
    [{ blockCount: 1 }, /blockCount 1 must be an integer of 2 or more/],
    [{ blockCount: 2.5 }, /blockCount/],
    [{ blockSize: 1 << 24, blockCount: 128 }, /exceed/],
    [{ retireTimeoutMs: 0 }, /retireTimeoutMs 0 is out of range/],
    [{ retireTimeoutMs: 60001 }, /retireTimeoutMs/],
  ];
  for (const [options, message] of bad) {
    throws(
      () => PacketRing.open("lo", options),
      (e) => e instanceof BeltError && e.code === 22 && message.test(e.message) && e.hint !== "",
    );
  }
  throws(() => PacketRing.open("belt-no-such0"), (e) => e instanceof BeltError && e.code === 19);
});

kernelTest(
  "PacketRing: 2000 UDP datagrams, each once and byte-equal to tcpdump's capture",
  async () => {
    const N = 2000, PORT = 7000, B = "198.18.81.2";
    await using topo = await Topology.pair(81);
    const macB = await macOf(topo, "b");
    const dir = await Deno.makeTempDir({ prefix: "belt-ring-" });
    let tcpdump: Background | undefined;
    try {
      tcpdump = await capture(topo, "b", "eth0", `${dir}/b.pcap`, ["-B", "32768"]);
      const t0 = BigInt(Date.now() - 2) * 1_000_000n;
      await using ring = withNetns(topo.ns("b"), () => PacketRing.open("eth0"));
      const isTest = (d: Uint8Array) =>
        d.length > 42 && d[23] === 17 && ((d[36]! << 8) | d[37]!) === PORT;
      const reading = collect(ring, (got) => got.filter((f) => isTest(f.data)).length >= N);
      // Payloads of 6 to 1472 bytes, each starting with its 5-digit index.
      await topo.run("a", [
        "timeout",
        "30",
        "bash",
        "-c",
        `printf -v s '%*s' 1472 ''; s=\${s// /y}
       for ((i = 0; i < ${N}; i++)); do n=$(( (i * 37) % 1467 + 6 ))
         printf '%05d%s' $i "\${s:0:n-5}" > /dev/udp/${B}/${PORT}; done`,
      ]);
      const got = await reading;
      const t1 = BigInt(Date.now() + 2) * 1_000_000n;
      await sleep(100);
      await tcpdump.stop();
      const truth = readPcap(await Deno.readFile(`${dir}/b.pcap`));

      const tests = got.filter((f) => isTest(f.data));
      equal(tests.length, N);
      const index = (d: Uint8Array) => Number(new TextDecoder().decode(d.subarray(42, 47)));
      deepEqual(tests.map((f) => index(f.data)).sort((x, y) => x - y), [...Array(N).keys()]);
      for (const f of tests) equal(f.data.length, 42 + ((index(f.data) * 37) % 1467) + 6);
      assertSameFrames(
        truth.map((f) => f.data).filter(isTest),
        tests.map((f) => f.data),
        "UDP frames",
      );
      // Every frame the ring saw (ARP, ICMP errors b sent back...) is one tcpdump saw too.
      const seen = new Map<string, number>();
      for (const f of truth) seen.set(hex(f.data), (seen.get(hex(f.data)) ?? 0) + 1);
      for (const f of got) {
        const n = seen.get(hex(f.data)) ?? 0;
        ok(n > 0, `not in tcpdump's capture: ${hex(f.data).slice(0, 80)}`);
        seen.set(hex(f.data), n - 1);
        equal(f.wireLength, f.data.length);
        equal(f.direction, hex(f.data.subarray(6, 12)) === hex(macB) ? "out" : "in");
        equal(f.vlanTci, undefined);
        ok(
          f.timestampNs >= t0 && f.timestampNs <= t1,
          `timestamp ${f.timestampNs} outside [${t0}, ${t1}]`,
        );
      }
      ok(got.some((f) => f.direction === "out"), "b's replies (ARP, ICMP) are seen going out");
      for (const f of truth) equal(f.wireLength, f.data.length);
      const s = ring.stats();
      equal(s.drops, 0);
      ok(s.packets >= got.length, JSON.stringify(s));
    } finally {
      await tcpdump?.stop(); // again after a failure: it must not outlive the test
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "PacketRing: 802.1Q and QinQ frames arrive with their outer tag put back, byte-exact",
  async () => {
    await using topo = await Topology.pair(82);
    const macs = { a: await macOf(topo, "a"), b: await macOf(topo, "b") };
    const frame = (size: number, seq: number) => udpFrame(macs, 82, 7000, size, seq);
    const sent: { frame: Bytes; tci: number | undefined }[] = [
      { frame: withTags(frame(60, 1), [[0x8100, 100]]), tci: 100 },
      { frame: withTags(frame(200, 2), [[0x8100, (5 << 13) | (1 << 12) | 4094]]), tci: 0xbffe }, // PCP 5, DEI
      { frame: withTags(frame(1000, 3), [[0x8100, 3 << 13]]), tci: 0x6000 }, // priority tag, VLAN 0
      { frame: withTags(frame(1514, 4), [[0x8100, 7]]), tci: 7 }, // full size, tag included
      { frame: withTags(frame(300, 5), [[0x88a8, 200], [0x8100, 300]]), tci: 200 }, // QinQ
      { frame: withTags(frame(1506, 6), [[0x88a8, 201], [0x8100, 301]]), tci: 201 },
      { frame: frame(120, 7), tci: undefined },
    ];
    await using ring = withNetns(topo.ns("b"), () => PacketRing.open("eth0"));
    withNetns(topo.ns("a"), () => {
      using sock = PacketSocket.open("eth0");
      for (const s of sent) sock.send(s.frame);
    });
    const got = (await collect(ring, (g) => g.filter(fromA(macs.a)).length >= sent.length, 5000))
      .filter(fromA(macs.a));
    assertSameFrames(sent.map((s) => s.frame), got.map((f) => f.data), "tagged frames");
    for (const s of sent) {
      const f = got.find((g) => hex(g.data) === hex(s.frame))!;
      deepEqual([f.vlanTci, f.wireLength, f.direction], [s.tci, s.frame.length, "in"]);
    }
  },
);

kernelTest(
  "PacketRing: a socket filter decides which frames and how many bytes reach the ring",
  async () => {
    await using topo = await Topology.pair(83);
    const B = "198.18.83.2";
    const macs = { a: await macOf(topo, "a"), b: await macOf(topo, "b") };
    // Not a socket filter: refused before any socket exists.
    using xdp = BpfObject.open(xdpCountObject);
    xdp.load();
    throws(
      () =>
        withNetns(
          topo.ns("b"),
          () => PacketRing.open("eth0", { filter: [...xdp.programs.values()][0]! }),
        ),
      (e) => e instanceof BeltError && /is not a socket filter/.test(e.message),
    );

    using ports = BpfObject.open(socketUdpPortObject, { globals: { port: 5353 } });
    ports.load();
    await using ring = withNetns(
      topo.ns("b"),
      () => PacketRing.open("eth0", { filter: ports.program("udp_port") }),
    );
    equal(await topo.ping("a", B, 5), 5);
    await topo.sendUdp("a", B, 9, 10);
    await topo.sendUdp("a", B, 5353, 25);
    const got = await collect(ring, (g) => g.length >= 25, 5000);
    equal(got.length, 25);
    for (const f of got) {
      const v = new DataView(f.data.buffer, f.data.byteOffset);
      deepEqual([v.getUint16(12), f.data[23], v.getUint16(36), f.direction], [
        0x0800,
        17,
        5353,
        "in",
      ]);
    }
    await sleep(200); // nothing else may follow
    deepEqual(ring.drain(), []);
    deepEqual(ring.stats(), { packets: 25, drops: 0, freezes: 0 });

    // A snap length: the filter keeps 64 bytes; wireLength stays the whole frame.
    using snap = BpfObject.open(socketSnapObject, { globals: { port: 7001, snap: 64 } });
    snap.load();
    await using cut = withNetns(
      topo.ns("b"),
      () => PacketRing.open("eth0", { filter: snap.program("udp_snap") }),
    );
    const sizes = [60, 64, 65, 100, 1514];
    const sent = sizes.map((n, i) => udpFrame(macs, 83, 7001, n, i));
    const tagged = withTags(udpFrame(macs, 83, 7001, 200, 9), [[0x8100, 42]]);
    withNetns(topo.ns("a"), () => {
      using sock = PacketSocket.open("eth0");
      for (const f of [...sent, udpFrame(macs, 83, 7002, 500, 8), tagged]) sock.send(f);
    });
    const kept = await collect(cut, (g) => g.length >= sent.length + 1, 5000);
    deepEqual(
      kept.map((f) => [hex(f.data), f.wireLength, f.vlanTci]),
      [
        ...sent.map((f) => [hex(f.subarray(0, Math.min(64, f.length))), f.length, undefined]),
        // The filter saw the frame without its tag: 64 bytes of it, then the tag went back in.
        [hex(tagged.subarray(0, 68)), tagged.length, 42],
      ],
    );
  },
);

kernelTest(
  "PacketRing: with no reader a burst overflows the ring; packets, drops and reads add up exactly",
  async () => {
    const SENT = 50_000, PORT = 7002;
    await using topo = await Topology.pair(84);
    const macs = { a: await macOf(topo, "a"), b: await macOf(topo, "b") };
    using obj = BpfObject.open(socketUdpPortObject, { globals: { port: PORT } });
    obj.load();
    await using ring = withNetns(
      topo.ns("b"),
      () =>
        PacketRing.open("eth0", {
          filter: obj.program("udp_port"),
          blockSize: 65536,
          blockCount: 4,
        }),
    );
    const vethDrops = async () => {
      const [a, b] = await Promise.all(
        ["a", "b"].map(async (h) =>
          JSON.parse((await topo.run(h, ["ip", "-j", "-s", "link", "show", "eth0"])).stdout)[0]
            .stats64
        ),
      );
      return a.tx.dropped + b.rx.dropped;
    };
    const before = await vethDrops();
    const frame = udpFrame(macs, 84, PORT, 60, 1);
    const deadline = Date.now() + 20_000;
    let sent = 0;
    withNetns(topo.ns("a"), () => {
      using sock = PacketSocket.open("eth0");
      for (; sent < SENT && (sent % 1024 !== 0 || Date.now() < deadline); sent++) sock.send(frame);
    });
    equal(sent, SENT, "the burst took longer than 20 s");
    equal(await vethDrops() - before, 0, "the veth itself dropped frames");
    // Read everything there is; the last block is handed over after retireTimeoutMs.
    const frames: CapturedFrame[] = [];
    for (let quiet = 0; quiet < 3;) {
      await sleep(100);
      const more = ring.drain();
      frames.push(...more);
      quiet = more.length ? 0 : quiet + 1;
    }
    const s = ring.stats();
    ok(s.drops > 0 && s.freezes > 0, JSON.stringify(s));
    equal(frames.length, ring.received);
    ok(frames.every((f) => hex(f.data) === hex(frame)));
    deepEqual({ packets: s.packets, readPlusDrops: ring.received + s.drops }, {
      packets: SENT,
      readPlusDrops: SENT,
    });
  },
);

kernelTest(
  "PacketRing: close() ends a waiting batches() at once and leaves promiscuous mode; the interface going down ends it with ENETDOWN",
  async () => {
    await using topo = await Topology.pair(85);
    const promiscuity = async () =>
      JSON.parse((await topo.run("b", ["ip", "-j", "-d", "link", "show", "eth0"])).stdout)[0]
        .promiscuity;
    const ring = withNetns(topo.ns("b"), () => PacketRing.open("eth0", { promiscuous: true }));
    equal(await promiscuity(), 1);
    const reading = (async () => {
      for await (const _ of ring.batches()) { /* whatever arrives */ }
    })();
    await sleep(150); // the iteration is waiting in epoll now
    const t = Date.now();
    ring.close();
    await reading;
    ok(Date.now() - t < 500, `ended after ${Date.now() - t} ms`); // the poll timeout is 1000 ms
    ring.close(); // twice is harmless
    deepEqual(ring.drain(), []);
    deepEqual(await Array.fromAsync(ring.batches()), []);
    equal(ring.stats().drops, 0);
    equal(await promiscuity(), 0);

    await using down = withNetns(topo.ns("b"), () => PacketRing.open("eth0"));
    // The handler is attached first: the rejection comes while the link goes down.
    const ended = rejects(
      (async () => {
        for await (const _ of down.batches()) { /* whatever arrives */ }
      })(),
      (e) => e instanceof BeltError && e.code === 100 && /ENETDOWN/.test(e.message),
    );
    await sleep(100);
    await topo.run("b", ["ip", "link", "set", "eth0", "down"]);
    await ended;
  },
);

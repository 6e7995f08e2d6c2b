/**
 * belt mirror against ground truth, in namespaces only:
 *
 *   b (198.18.41.2) ── eth0 [a] eth1 ── c (198.18.42.2: Linux VXLAN device + tcpdump)
 *                           eth2 ── d (198.18.43.2: belt collect)
 *
 * a runs `belt mirror eth0`; tcpdump on a's eth0 is the ground truth.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { listInterfaces, PacketSocket, withNetns } from "../bpf/mod.ts";
import { readPcapng } from "../plugins/pcapng.ts";
import { eventually, kernelTest, tcModes, tcPrograms } from "./harness/kernel.ts";
import type { Topology } from "./harness/netns.ts";
import { mirrorTopology } from "./harness/mirror.ts";
import { background, BELT, capture } from "./harness/process.ts";
import { readPcap } from "./harness/pcap.ts";
import { assertSameFrames, macOf, spontaneous, taggedUdpFrame } from "./harness/frames.ts";

/** A plain Linux VXLAN device at c receiving VNI `vni`, captured by tcpdump. */
async function vxlanSink(topo: Topology, host: string, local: string, vni: number, file: string) {
  await topo.run(host, [
    "ip",
    "link",
    "add",
    "vx0",
    "type",
    "vxlan",
    "id",
    String(vni),
    "dstport",
    "4789",
    "local",
    local,
  ]);
  await topo.run(host, ["ip", "link", "set", "vx0", "addrgenmode", "none"]);
  await topo.run(host, ["ip", "link", "set", "vx0", "mtu", "9000", "up"]);
  return await capture(topo, host, "vx0", file, ["-Q", "in"]);
}

/** Test traffic between a and b: ARP, ICMP, IPv6, TCP, UDP, 802.1Q both ways, frames at the MTU. */
async function traffic(topo: Topology): Promise<void> {
  equal(await topo.ping("a", "198.18.41.2", 5), 5); // ARP first, then ICMP
  equal(await topo.ping("a", "fd00:beef::41:2", 3), 3); // neighbour discovery, ICMPv6
  const big = await topo.run("a", [
    "ping",
    "-c",
    "2",
    "-i",
    "0.05",
    "-s",
    "1472",
    "-M",
    "do",
    "198.18.41.2",
  ]);
  ok(/2 received/.test(big.stdout), "1514-byte frames cross unchanged");
  await topo.run("b", ["ping", "-c", "2", "-i", "0.05", "-s", "1472", "198.18.41.1"]);
  await topo.sendUdp("a", "198.18.41.2", 9999, 20);
  // TCP: a small echo server in b, a bash client in a.
  const server = background(topo, "b", [
    "deno",
    "eval",
    `const l = Deno.listen({ hostname: "198.18.41.2", port: 7000 }); console.error("up");
     const c = await l.accept(); const buf = new Uint8Array(64); const n = await c.read(buf);
     await c.write(buf.subarray(0, n ?? 0)); c.close(); l.close();`,
  ]);
  await server.waitFor(/up/);
  const echo = await topo.run("a", [
    "timeout",
    "5",
    "bash",
    "-c",
    "exec 3<>/dev/tcp/198.18.41.2/7000; echo hello-belt >&3; read -u 3 line; echo $line",
  ]);
  equal(echo.stdout.trim(), "hello-belt");
  equal((await server.finished()).code, 0);
  // 802.1Q: tagged into a (the kernel moves the tag into skb metadata) and out of a (tag in data).
  const [macA, macB] = [await macOf(topo, "a"), await macOf(topo, "b")];
  const tagged = (src: Uint8Array, dst: Uint8Array, size: number, seq: number) =>
    taggedUdpFrame({
      dst,
      src,
      vlan: 100,
      srcIp: [198, 18, 41, 9],
      dstIp: [198, 18, 41, 10],
      dport: 5555,
      size,
      seq,
    });
  withNetns(topo.ns("b"), () => {
    using sock = PacketSocket.open("eth0");
    sock.send(tagged(macB, macA, 100, 1));
    sock.send(tagged(macB, macA, 1518, 2)); // a full-size tagged frame
  });
  withNetns(topo.ns("a"), () => {
    using sock = PacketSocket.open("eth0");
    sock.send(tagged(macA, macB, 200, 3));
  });
  await new Promise((r) => setTimeout(r, 300)); // let the last copies arrive
}

const testFrames = (frames: Uint8Array[]) => frames.filter((f) => !spontaneous(f));

kernelTest(
  "belt mirror --to: every frame of both directions, once, byte-identical, at two collectors",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
    try {
      const truth = await capture(topo, "a", "eth0", `${dir}/truth.pcap`);
      const atC = await vxlanSink(topo, "c", "198.18.42.2", 42, `${dir}/c.pcap`);
      const atD = background(topo, "d", [
        ...BELT,
        "collect",
        "--listen",
        "198.18.43.2:4789",
        "--pcap",
        `${dir}/d.pcapng`,
      ]);
      await atD.waitFor(/collecting/);
      const mirror = background(topo, "a", [
        ...BELT,
        "mirror",
        "eth0",
        "--to",
        "198.18.42.2",
        "--to",
        "198.18.43.2",
        "--vni",
        "42",
        "--json",
      ]);
      await mirror.waitFor(/mirroring|attached|\{/);
      await new Promise((r) => setTimeout(r, 200));
      const routeBefore = (await topo.run("a", ["ip", "route", "get", "198.18.41.2"])).stdout;
      await traffic(topo);
      const m = await mirror.stop();
      equal(m.code, 0, m.stderr);
      const stats = JSON.parse(new TextDecoder().decode(m.stdout).trim());
      await truth.stop("SIGINT");
      await atC.stop("SIGINT");
      equal((await atD.stop()).code, 0);

      const expected = testFrames(
        readPcap(await Deno.readFile(`${dir}/truth.pcap`)).map((f) => f.data),
      );
      const gotC = testFrames(readPcap(await Deno.readFile(`${dir}/c.pcap`)).map((f) => f.data));
      const d = readPcapng(await Deno.readFile(`${dir}/d.pcapng`));
      const gotD = testFrames(d.packets.map((p) => p.data));
      // The test traffic really has every kind of frame it claims.
      const has = (pred: (f: Uint8Array) => boolean, what: string) =>
        ok(expected.some(pred), `ground truth has ${what}`);
      has((f) => f[12] === 0x08 && f[13] === 0x06, "ARP");
      has((f) => f[12] === 0x86 && f[13] === 0xdd, "IPv6");
      has((f) => f[12] === 0x08 && f[13] === 0x00 && f[23] === 6, "TCP");
      has((f) => f[12] === 0x08 && f[13] === 0x00 && f[23] === 17, "UDP");
      has((f) => f[12] === 0x81 && f[13] === 0x00 && f.length === 1518, "a 1518-byte 802.1Q frame");
      has((f) => f.length === 1514, "1514-byte frames");
      ok(expected.length >= 60, `${expected.length} frames`);
      assertSameFrames(expected, gotC, "Linux VXLAN device at c got exactly the ground truth");
      assertSameFrames(expected, gotD, "belt collect at d got exactly the ground truth");
      deepEqual(d.interfaces.map((i) => i.name), ["198.18.43.1 vni 42"]);
      // Stats agree with what was sent, and nothing failed.
      equal(stats.collectors.length, 2);
      for (const c of stats.collectors) {
        equal(c.packets_in + c.packets_out, stats.mirrored_in + stats.mirrored_out);
        equal(c.failed, 0);
      }
      ok(stats.mirrored_in + stats.mirrored_out >= expected.length);
      // The original path was left alone: no path MTU lowered by oversized copies.
      const routeAfter = (await topo.run("a", ["ip", "route", "get", "198.18.41.2"])).stdout;
      ok(!/mtu/.test(routeAfter), `route to b unchanged: ${routeAfter}`);
      equal(routeAfter, routeBefore);
      // Nothing left: no program on eth0, no VXLAN device.
      withNetns(topo.ns("a"), () => {
        deepEqual(tcPrograms("eth0", "ingress"), []);
        deepEqual(tcPrograms("eth0", "egress"), []);
        ok(!listInterfaces().some(([, n]) => n.startsWith("belt-vx")), "belt-vx device removed");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Runs belt mirror in a until `traffic` is done; returns its JSON stats. */
async function mirrorDuring(
  topo: Topology,
  args: string[],
  during: () => Promise<void>,
): Promise<Record<string, number> & { collectors: Record<string, number>[] }> {
  const mirror = background(topo, "a", [...BELT, "mirror", "eth0", ...args, "--json"]);
  await mirror.waitFor(/mirroring/);
  await new Promise((r) => setTimeout(r, 200));
  await during();
  const m = await mirror.stop();
  equal(m.code, 0, m.stderr);
  return JSON.parse(new TextDecoder().decode(m.stdout).trim().split("\n").at(-1)!);
}

/** tshark's view of a pcapng: one row per frame, tab-separated fields. */
async function tshark(file: string, fields: string[]): Promise<string[][]> {
  const out = await new Deno.Command("tshark", {
    args: ["-r", file, "-T", "fields", ...fields.flatMap((f) => ["-e", f])],
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean).map((l) =>
    l.split("\t")
  );
}

kernelTest(
  "belt mirror --pcap: the same frames, directions right, readable by tshark",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
    try {
      const truthIn = await capture(topo, "a", "eth0", `${dir}/in.pcap`, ["-Q", "in"]);
      const truthOut = await capture(topo, "a", "eth0", `${dir}/out.pcap`, ["-Q", "out"]);
      const stats = await mirrorDuring(topo, ["--pcap", `${dir}/m.pcapng`], () => traffic(topo));
      await truthIn.stop("SIGINT");
      await truthOut.stop("SIGINT");
      const frames = (f: string) =>
        readPcap(Deno.readFileSync(`${dir}/${f}`)).map((x) => x.data).filter((x) =>
          !spontaneous(x)
        );
      const got = readPcapng(await Deno.readFile(`${dir}/m.pcapng`));
      const dirOf = (want: "in" | "out") =>
        got.packets.filter((p) => p.direction === want).map((p) => p.data).filter((x) =>
          !spontaneous(x)
        );
      assertSameFrames(frames("in.pcap"), dirOf("in"), "ingress frames");
      assertSameFrames(frames("out.pcap"), dirOf("out"), "egress frames");
      ok(got.packets.every((p) => p.originalLength === p.data.length), "whole frames");
      equal(stats.pcap_lost, 0);
      equal(stats.pcap_written, got.packets.length);
      // tshark reads it: interface name, direction flags, ns time stamps near now.
      const rows = await tshark(`${dir}/m.pcapng`, [
        "frame.interface_name",
        "frame.packet_flags_direction",
        "frame.time_epoch",
        "frame.len",
      ]);
      equal(rows.length, got.packets.length);
      const now = Date.now() / 1000;
      for (const [name, direction, time, len] of rows) {
        equal(name, "eth0");
        ok(direction === "0x00000001" || direction === "0x00000002", direction);
        ok(Math.abs(Number(time) - now) < 60, `time stamp ${time} is now`);
        ok(/\.\d{9}$/.test(time!), "nanosecond resolution");
        ok(Number(len) >= 42);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest("belt mirror --filter, --sample and --snaplen do what they say", async () => {
  await using topo = await mirrorTopology();
  const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
  try {
    // Filters: UDP to port 9999, and ARP; nothing else.
    const truth = await capture(topo, "a", "eth0", `${dir}/t.pcap`);
    const f = await mirrorDuring(
      topo,
      [
        "--pcap",
        `${dir}/f.pcapng`,
        "--filter",
        "udp dport 9999",
        "--filter",
        "arp",
        // Tagged both ways: into a the tag is in skb metadata, out of a in the data.
        "--filter",
        "vlan 100 and udp",
      ],
      () => traffic(topo),
    );
    await truth.stop("SIGINT");
    const all = readPcap(Deno.readFileSync(`${dir}/t.pcap`)).map((x) => x.data);
    const isArp = (x: Uint8Array) => x[12] === 0x08 && x[13] === 0x06;
    const isUdp9999 = (x: Uint8Array) =>
      x[12] === 0x08 && x[13] === 0x00 && x[23] === 17 && ((x[36]! << 8) | x[37]!) === 9999;
    const isVlan100 = (x: Uint8Array) =>
      x[12] === 0x81 && x[13] === 0x00 && (((x[14]! << 8) | x[15]!) & 0xfff) === 100;
    const wanted = all.filter((x) => isArp(x) || isUdp9999(x) || isVlan100(x));
    ok(wanted.length >= 22, `${wanted.length} matching frames`);
    equal(wanted.filter(isVlan100).length, 3, "tagged frames in and out");
    const kept = readPcapng(Deno.readFileSync(`${dir}/f.pcapng`)).packets.map((p) => p.data);
    assertSameFrames(wanted, kept, "exactly the matching frames");
    equal(f.filtered + f.mirrored_in + f.mirrored_out, f.packets_in + f.packets_out);
    ok(f.filtered > 0);

    // Snaplen: copies cut to 100 bytes, original length kept; a VXLAN copy cut too.
    const atC = await vxlanSink(topo, "c", "198.18.42.2", 7, `${dir}/c.pcap`);
    await mirrorDuring(
      topo,
      ["--pcap", `${dir}/s.pcapng`, "--snaplen", "100", "--to", "198.18.42.2", "--vni", "7"],
      async () => {
        await topo.run("a", ["ping", "-c", "3", "-i", "0.05", "-s", "1000", "198.18.41.2"]);
      },
    );
    await atC.stop("SIGINT");
    const cut = readPcapng(Deno.readFileSync(`${dir}/s.pcapng`)).packets;
    ok(cut.some((p) => p.originalLength === 1042), "ping frames seen");
    for (const p of cut) {
      equal(p.data.length, Math.min(100, p.originalLength));
    }
    const cutC = readPcap(Deno.readFileSync(`${dir}/c.pcap`));
    ok(cutC.length >= 6);
    ok(cutC.every((x) => x.data.length <= 100), "VXLAN copies cut to 100 bytes");

    // Sampling: 1 in 4 of 2000 datagrams, at random: far from 0 and from 2000.
    const s = await mirrorDuring(
      topo,
      ["--pcap", `${dir}/p.pcapng`, "--sample", "4", "--filter", "udp dport 9998"],
      () => topo.sendUdp("a", "198.18.41.2", 9998, 2000),
    );
    const sampled = s.mirrored_out;
    ok(sampled > 350 && sampled < 650, `kept ${sampled} of 2000 with --sample 4`);
    equal(s.sampled_out + sampled, 2000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

kernelTest(
  "belt mirror never mirrors its own VXLAN traffic, even through the mirrored interface",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
    try {
      // The collector is b itself: copies leave through the mirrored eth0.
      const truth = await capture(topo, "a", "eth0", `${dir}/t.pcap`);
      const atB = background(topo, "b", [
        ...BELT,
        "collect",
        "--listen",
        "198.18.41.2:4789",
        "--pcap",
        `${dir}/b.pcapng`,
      ]);
      await atB.waitFor(/collecting/);
      const stats = await mirrorDuring(topo, ["--to", "198.18.41.2"], async () => {
        equal(await topo.ping("a", "198.18.41.2", 5), 5);
        // 1514-byte frames make 1564-byte VXLAN packets: outer fragments cross eth0 too.
        await topo.run("a", ["ping", "-c", "2", "-i", "0.05", "-s", "1472", "198.18.41.2"]);
        await new Promise((r) => setTimeout(r, 300));
      });
      await truth.stop("SIGINT");
      equal((await atB.stop()).code, 0);
      const isTunnel = (x: Uint8Array) =>
        x[12] === 0x08 && x[13] === 0x00 && x[23] === 17 && x[33] === 2 && x[32] === 41 &&
        // UDP to 4789, or a non-first fragment (no UDP header) of one
        ((((x[20]! & 0x1f) << 8) | x[21]!) !== 0 || ((x[36]! << 8) | x[37]!) === 4789);
      const all = readPcap(Deno.readFileSync(`${dir}/t.pcap`)).map((x) => x.data);
      const tunnel = all.filter(isTunnel);
      ok(tunnel.length >= 10, `${tunnel.length} VXLAN packets crossed eth0`);
      const expected = all.filter((x) => !isTunnel(x) && !spontaneous(x));
      const got = readPcapng(Deno.readFileSync(`${dir}/b.pcapng`)).packets.map((p) => p.data)
        .filter((x) => !spontaneous(x));
      assertSameFrames(expected, got, "every frame but belt's own VXLAN packets");
      equal(stats.own_tunnel, tunnel.length);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "belt mirror leaves nothing behind: SIGKILL, interface removed, belt detach",
  async () => {
    await using topo = await mirrorTopology();
    const inA = <T>(fn: () => T) => withNetns(topo.ns("a"), fn);
    const tunnelDevices = () =>
      inA(() => listInterfaces().filter(([, n]) => n.startsWith("belt-vx")).length);
    // SIGKILL, in every TC mode this kernel has: TCX links go with the process; cls_bpf filters
    // (on eth0 and on the tunnel device) and the idle VXLAN device stay until belt detach.
    const programs = (iface: string) =>
      inA(() => tcPrograms(iface, "egress").length + tcPrograms(iface, "ingress").length);
    for (const mode of tcModes()) {
      const killed = background(topo, "a", [
        ...BELT,
        "mirror",
        "eth0",
        "--to",
        "198.18.42.2",
        "--tc-mode",
        mode,
      ]);
      await killed.waitFor(/mirroring/);
      deepEqual([programs("eth0"), programs("belt-vx4789")], [2, 2]);
      await killed.stop("SIGKILL");
      const left = mode === "tcx" ? 0 : 2;
      deepEqual([programs("eth0"), programs("belt-vx4789")], [left, left], `${mode} after SIGKILL`);
      equal(tunnelDevices(), 1, "the device outlives SIGKILL");
      const detach = await topo.run("a", [...BELT, "detach", "eth0"]);
      ok(/belt-vx4789/.test(detach.stdout), detach.stdout);
      equal(tunnelDevices(), 0);
      equal(programs("eth0"), 0);
    }
    // Interface removed while mirroring: one line, exit 1, nothing left.
    const gone = background(topo, "a", [...BELT, "mirror", "eth0", "--to", "198.18.42.2"]);
    await gone.waitFor(/mirroring/);
    await topo.run("a", ["ip", "link", "del", "eth0"]);
    const r = await gone.finished();
    equal(r.code, 1);
    ok(/interface eth0 disappeared/.test(r.stderr), r.stderr);
    equal(tunnelDevices(), 0);
    // Original traffic on the other links untouched.
    equal(await topo.ping("a", "198.18.42.2", 2), 2);
  },
);

kernelTest(
  "belt mirror takes its place in a chain with other plugins; belt chain show lists its stats",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
    try {
      const counter = background(topo, "a", [...BELT, "count", "eth0", "--priority", "10"]);
      ok(
        await eventually(
          () => withNetns(topo.ns("a"), () => tcPrograms("eth0", "egress").length === 1),
          15000,
        ),
      );
      const stats = await mirrorDuring(
        topo,
        ["--priority", "20", "--pcap", `${dir}/m.pcapng`, "--filter", "icmp"],
        async () => {
          equal(await topo.ping("a", "198.18.41.2", 4), 4);
          const chain = await topo.run("a", [...BELT, "chain", "show", "eth0", "--json"]);
          const rows = chain.stdout.trim().split("\n").map((l) => JSON.parse(l));
          for (const direction of ["ingress", "egress"]) {
            deepEqual(
              rows.filter((r) => r.direction === direction).map((r) => [r.owner, r.priority]),
              [["count", 10], ["mirror", 20]],
              `${direction}: count runs before mirror`,
            );
          }
          const mine = rows.find((r) => r.owner === "mirror" && r.direction === "egress");
          equal(mine.stats.mirrored_out, 4, "chain show reads the mirror's counters");
          const text = await topo.run("a", [...BELT, "chain", "show", "eth0"]);
          ok(/mirror: .*mirrored_out 4/.test(text.stdout), text.stdout);
        },
      );
      equal(stats.mirrored_in + stats.mirrored_out, 8);
      const c = await counter.stop("SIGINT");
      equal(c.code, 0, c.stderr);
      ok(/icmp\s+4/.test(new TextDecoder().decode(c.stdout)), "count kept counting");
      equal(readPcapng(await Deno.readFile(`${dir}/m.pcapng`)).packets.length, 8);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "belt mirror to an IPv6 collector: copies too big for its path are cut to fit",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
    try {
      const truth = await capture(topo, "a", "eth0", `${dir}/t.pcap`, ["icmp"]);
      const atC = await vxlanSink(topo, "c", "fd00:beef::42:2", 5, `${dir}/c.pcap`);
      const stats = await mirrorDuring(
        topo,
        ["--to", "[fd00:beef::42:2]", "--vni", "5", "--filter", "icmp"],
        async () => {
          await topo.run("a", ["ping", "-c", "2", "-i", "0.05", "-s", "1000", "198.18.41.2"]);
          await topo.run("a", ["ping", "-c", "2", "-i", "0.05", "-s", "1472", "198.18.41.2"]);
          await new Promise((r) => setTimeout(r, 300));
        },
      );
      await truth.stop("SIGINT");
      await atC.stop("SIGINT");
      // Path MTU 1500 - 56 bytes of IPv6/UDP/VXLAN: inner frames of at most 1444 bytes.
      const expected = readPcap(Deno.readFileSync(`${dir}/t.pcap`)).map((f) =>
        f.data.slice(0, 1444)
      );
      const got = readPcap(Deno.readFileSync(`${dir}/c.pcap`)).map((f) => f.data);
      equal(expected.length, 8);
      assertSameFrames(expected, got, "small copies whole, big ones cut to 1444 bytes");
      equal(stats.collectors[0].cut, 4);
      equal(stats.collectors[0].failed, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "belt mirror --pcap - feeds tshark through a pipe; with no output given it writes IFACE-<time>.pcapng",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-mirror-" });
    try {
      const cmd = [...BELT, "mirror", "eth0", "--duration", "3"].join(" ");
      // The pings start once belt says it is mirroring (at most 30 s later), however slow its start.
      const pingWhenMirroring = (log: string) =>
        `(for i in $(seq 300); do grep -qs mirroring ${log} && break; sleep 0.1; done; ping -c 2 -i 0.1 198.18.41.2 >/dev/null) &`;
      const piped = await topo.run("a", [
        "bash",
        "-c",
        `${
          pingWhenMirroring(`${dir}/piped.err`)
        } ${cmd} --pcap - 2>${dir}/piped.err | tshark -r - -T fields -e icmp.type; wait; cat ${dir}/piped.err >&2; rm ${dir}/piped.err`,
      ]);
      deepEqual(piped.stdout.trim().split("\n").filter((t) => t === "8" || t === "0").sort(), [
        "0",
        "0",
        "8",
        "8",
      ], piped.stderr);
      const plain = await topo.run("a", [
        "bash",
        "-c",
        `mkdir ${dir}/out; cd ${dir}/out || exit 1; ${
          pingWhenMirroring(`${dir}/plain.err`)
        } ${cmd} 2>${dir}/plain.err; wait; cat ${dir}/plain.err >&2`,
      ]);
      ok(/mirroring eth0 \(both\) to eth0-.*\.pcapng/.test(plain.stderr), plain.stderr);
      const files = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name);
      equal(files.length, 1);
      ok(/^eth0-\d{4}-\d\d-\d\dT[\d-]+Z\.pcapng$/.test(files[0]!), files[0]);
      const packets = readPcapng(Deno.readFileSync(`${dir}/out/${files[0]}`)).packets;
      ok(packets.filter((p) => p.data[23] === 1).length >= 4, "the pings are in the file");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

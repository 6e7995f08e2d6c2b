/**
 * The "4. Mirror" section of docs/benchmarks.md, from a MirrorResult: the
 * targets (figure, belt, peer, ratio, met), the figures of each phase, and
 * what the run shows where belt is behind. `--only mirror` replaces just
 * this section of an existing page.
 */
import type { LossSweep, MirrorResult, PcapRun, RateTrial, TcpConfig } from "./mirror_bench.ts";
import { tcpMedian } from "./mirror_bench.ts";
import { ADDR, STREAM_PORT, VNI } from "./mirror_topo.ts";
import { rate, ratio } from "./stats.ts";
import { replaceSection } from "./report.ts";

/** The heading the section starts with (and `--only mirror` looks for). */
export const MIRROR_HEADING = "## 4. Mirror";

/** One row of the mirror targets table. */
export interface MirrorVerdict {
  figure: string;
  belt: string;
  peer: string;
  ratio: string;
  target: string;
  /** undefined: no target, reported only. */
  met?: boolean;
}

const n = (x: number) => Math.round(x).toLocaleString("en-US");
const gbps = (bps: number) => Number.isFinite(bps) ? `${(bps / 1e9).toFixed(2)} Gbit/s` : "n/a";
const pct = (x: number) => Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : "n/a";
const sec = (x: number) => `${x.toFixed(2)} s`;

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

const TCP_TARGET = 1.0;
const LOSS_TARGET = 100_000;

function share(r: PcapRun): number {
  return r.file.stream / r.sent;
}

function pcapPairs(m: MirrorResult): { rate: number; belt: PcapRun; tcpdump: PcapRun }[] {
  const rates = [...new Set(m.pcap.runs.map((r) => r.target))];
  return rates.flatMap((rate) => {
    const belt = m.pcap.runs.find((r) => r.target === rate && r.tool === "belt");
    const tcpdump = m.pcap.runs.find((r) => r.target === rate && r.tool === "tcpdump");
    return belt && tcpdump ? [{ rate, belt, tcpdump }] : [];
  });
}

/** Whether every trial up to and including the best was lossless at >= 100k/s. */
function lossMet(s: LossSweep): boolean {
  return s.best >= LOSS_TARGET * 0.98;
}

/** The mirror targets of the issue, judged on this run (plus reported-only rows). */
export function mirrorVerdicts(m: MirrorResult): MirrorVerdict[] {
  const belt = tcpMedian(m.tcp.runs, "belt");
  const nft = tcpMedian(m.tcp.runs, "nft");
  const rows: MirrorVerdict[] = [
    {
      figure: "TCP A→B throughput while mirroring eth0 to C (iperf3, median)",
      belt: gbps(belt),
      peer: `nft dup ${gbps(nft)}`,
      ratio: ratio(belt / nft),
      target: `>= ${TCP_TARGET.toFixed(1)}x`,
      met: belt / nft >= TCP_TARGET,
    },
    {
      figure: "highest UDP stream rate with 0 copies lost at C",
      belt: `${rate(m.loss.belt.best)}/s`,
      peer: `nft dup ${rate(m.loss.nft.best)}/s`,
      ratio: ratio(m.loss.belt.best / m.loss.nft.best),
      target: `0 lost at >= ${rate(LOSS_TARGET)}/s`,
      met: lossMet(m.loss.belt),
    },
  ];
  for (const p of pcapPairs(m)) {
    rows.push({
      figure: `\`--pcap\` vs \`tcpdump -w\`, stream frames in the file, offered ${rate(p.rate)}/s`,
      belt: `${n(p.belt.file.stream)} of ${n(p.belt.sent)} (${pct(share(p.belt))})`,
      peer: `tcpdump ${n(p.tcpdump.file.stream)} of ${n(p.tcpdump.sent)} (${
        pct(share(p.tcpdump))
      })`,
      ratio: ratio(share(p.belt) / share(p.tcpdump)),
      target: ">= tcpdump's (same count sent)",
      met: share(p.belt) >= share(p.tcpdump),
    });
  }
  for (const p of pcapPairs(m)) {
    rows.push({
      figure: `CPU (user+sys) of the capture process, offered ${rate(p.rate)}/s, per 1M frames`,
      belt: sec(p.belt.cpuWindow / p.belt.file.frames * 1e6),
      peer: `tcpdump ${sec(p.tcpdump.cpuWindow / p.tcpdump.file.frames * 1e6)}`,
      ratio: ratio(
        (p.tcpdump.cpuWindow / p.tcpdump.file.frames) / (p.belt.cpuWindow / p.belt.file.frames),
      ),
      target: "none (reported)",
    });
  }
  const fb = m.fidelity.find((f) => f.tool === "belt");
  const fn = m.fidelity.find((f) => f.tool === "nft");
  const lowered = (f?: { mtuAfter?: number; mtuBefore?: number }) =>
    !f ? "n/a" : f.mtuAfter !== undefined ? `yes, mtu ${f.mtuAfter}` : "no";
  rows.push({
    figure: "original route A→B gets a lowered `mtu` after mirroring 1514-byte frames",
    belt: lowered(fb),
    peer: `nft dup ${lowered(fn)}`,
    ratio: "",
    target: "belt: no",
    met: fb ? fb.mtuAfter === undefined : false,
  });
  return rows;
}

function tcpSection(m: MirrorResult): string {
  const configs: [TcpConfig, string][] = [
    ["none", "no mirror"],
    ["belt", "`belt mirror eth0 --to C --vni 42`"],
    ["nft", "nftables netdev `dup to nftvx` (ingress + egress)"],
  ];
  const nft = tcpMedian(m.tcp.runs, "nft");
  const rows = configs.map(([c, name]) => {
    const runs = m.tcp.runs.filter((r) => r.config === c);
    const sum = (k: "copies" | "segments" | "frags" | "decap" | "retransmits") =>
      runs.reduce((a, r) => a + r[k], 0);
    const mirrored = c !== "none";
    return [
      name,
      gbps(tcpMedian(m.tcp.runs, c)),
      runs.map((r) => (r.bps / 1e9).toFixed(2)).join(" / "),
      ratio(tcpMedian(m.tcp.runs, c) / nft),
      n(sum("retransmits")),
      n(sum("segments")),
      mirrored ? n(sum("copies")) : "",
      mirrored ? pct(sum("copies") / sum("segments")) : "",
      mirrored ? n(sum("frags")) : "",
      mirrored ? n(sum("decap")) : "",
    ];
  });
  const drops = m.tcp.runs.filter((r) =>
    r.eth0Dropped || r.eth1Dropped || r.reasmFails || r.vxDropped
  );
  const dropText = drops.length
    ? drops.map((r) =>
      `round ${
        r.round + 1
      } ${r.config}: A eth0 tx_dropped ${r.eth0Dropped}, A eth1 tx_dropped ${r.eth1Dropped}, C ReasmFails ${r.reasmFails}, C vx42 rx dropped+errors ${r.vxDropped}`
    ).join("; ")
    : "none in any run";
  const mtus = m.tcp.runs.filter((r) => r.routeMtu !== undefined);
  const beltFrames = Object.entries(m.beltStats).filter(([k]) => k.startsWith("tcp"))
    .map(([, s]) => s);
  const framesOut = beltFrames.reduce((a, s) => a + Number(s.packets_out), 0);
  const bytesOut = beltFrames.reduce((a, s) => a + Number(s.bytes_out), 0);
  const gso = framesOut
    ? ` belt's own counters show what the hooks see: ${
      n(framesOut)
    } frames out of eth0 in its ${beltFrames.length} runs, ${
      n(bytesOut / framesOut)
    } bytes on average — GSO super-packets, not 1514-byte frames.`
    : "";
  return `### 4.1 TCP throughput A→B

\`ip netns exec A iperf3 -c ${ADDR.b} -t ${m.tcp.seconds} -O 1 -J\` against \`iperf3 -s\` in B (one
stream, the first second omitted), ${m.tcp.rounds} rounds; in each round the three configurations
run one after the other, the order rotating from round to round (none, belt, nft; belt, nft,
none; nft, none, belt; then again). Figures are the receiver's; median of the rounds. A's route cache is
flushed before each run. "Segments" is A's TCP OutSegs + RetransSegs + InSegs over the run (every
segment that crossed eth0, both directions, the iperf3 control connection included): each should
give one copy at C.

${
    table(
      [
        "configuration",
        "median",
        "rounds (Gbit/s)",
        "vs nft dup",
        "retransmits",
        "segments",
        "copies at C",
        "copies / segments",
        "non-first fragments at C",
        "decapsulated at C",
      ],
      rows,
    )
  }

Both mirrors clone what the TC / netdev hooks see: on a veth with TSO that is a GSO super-packet of
up to 64 KB, not a wire frame.${gso} The clone is encapsulated whole, segmented back into MSS-sized
frames on the way out of A (so C gets one copy per TCP segment, see copies / segments), and each
1564-byte VXLAN packet is then split into two IP fragments on the 1500-byte path to C (the
non-first-fragment column); C's VXLAN device reassembles and decapsulates them. All of that runs in
the sender's context on a 2-core VM, which is why either mirror cuts the A→B throughput several-fold
relative to no mirror: the figure compares the cost of the copy path, not the A→B link. Drops seen
during these runs: ${dropText}.${
    mtus.length
      ? ` Runs that left an \`mtu\` exception on A's route to B: ${
        mtus.map((r) => `round ${r.round + 1} ${r.config} (mtu ${r.routeMtu})`).join(", ")
      }.`
      : " No run left an `mtu` exception on A's route to B."
  }`;
}

function trialRow(t: RateTrial): string[] {
  return [
    t.target ? `${rate(t.target)}/s` : "flat out",
    `${rate(t.achieved)}/s${t.tries === 2 ? " (2nd try)" : ""}`,
    n(t.sent),
    n(t.atC),
    n(t.lostCopies),
    n(t.atB),
    n(t.lostAtB),
    n(t.eth1Dropped),
    `${((t.senderCpu / Math.max(1, t.sent)) * 1e6).toFixed(2)} µs`,
  ];
}

function lossSection(m: MirrorResult): string {
  const l = m.loss;
  const head = [
    "offered",
    "achieved",
    "sent",
    "copies at C",
    "copies lost",
    "originals at B",
    "lost at B",
    "A eth1 tx_dropped",
    "sender CPU per datagram",
  ];
  const verdict = (name: string, s: LossSweep) =>
    `${name}: ${s.best ? `${rate(s.best)}/s` : "none"} with 0 copies lost${
      s.senderBound
        ? " — the sweep ended where the sender could not reach the next offered rate with this mirror on, so this is the sender's limit with the mirror, not a loss limit"
        : ""
    }.`;
  const atB = [...l.belt.trials, ...l.nft.trials].reduce((a, t) => a + t.lostAtB, 0);
  return `### 4.2 Loss at C: numbered UDP stream

native/udp_send.c (built at bench time) sends numbered ${
    14 + 20 + 8 + 18
  }-byte frames (UDP to ${ADDR.b}:${STREAM_PORT}, an 8-byte sequence number and padding) with
\`sendmmsg\`, 32 per call, on an absolute schedule, each trial bounded to ${l.seconds} s and
rate × ${l.seconds} packets. B counts and drops the stream at its netdev ingress; C counts the stream's
copies at its netdev ingress, matching VXLAN to ${ADDR.c}:4789 with VNI ${VNI} and the inner UDP
port ${STREAM_PORT}. Rates go up until the sender falls below 95% of the offered rate (such a trial
is run once more and the faster try kept) or two rates lose copies. "Best" is the highest
achieved rate with no copy lost at that rate or any slower one. One mirror at a time (belt for its
whole sweep, then nft dup for its own). The sender alone (no mirror, flat out for 1 s) makes ${
    rate(l.alone.achieved)
  }/s.

**belt** (\`belt mirror eth0 --to ${ADDR.c} --vni ${VNI}\`)

${table(head, l.belt.trials.map(trialRow))}

**nft dup**

${table(head, l.nft.trials.map(trialRow))}

${verdict("belt", l.belt)} ${verdict("nft dup", l.nft)} The original stream lost ${
    n(atB)
  } datagrams at B over both sweeps.`;
}

function pcapSection(m: MirrorResult): string {
  const rows = m.pcap.runs.map((r) => [
    r.tool === "belt" ? "`belt mirror eth0 --pcap F --json`" : "`tcpdump -i eth0 -w F -Z root`",
    `${rate(r.target)}/s`,
    `${rate(r.achieved)}/s`,
    n(r.sent),
    n(r.file.stream) +
    (r.file.frames !== r.file.stream ? ` (+${r.file.frames - r.file.stream})` : ""),
    pct(share(r)),
    r.tally,
    sec(r.cpuWindow),
    `${((r.cpuWindow / Math.max(1, r.file.frames)) * 1e6).toFixed(2)} µs`,
    sec(r.cpuTotal),
    `${sec(r.senderCpu)} (${((r.senderCpu / Math.max(1, r.sent)) * 1e6).toFixed(2)} µs)`,
    `${(r.fileBytes / 1e6).toFixed(1)} MB`,
  ]);
  const bad = m.pcap.runs.filter((r) => r.file.trailing || r.file.error);
  return `### 4.3 \`--pcap\` vs \`tcpdump -w\`

The same paced stream (rate × ${m.pcap.seconds} datagrams per run, the same count for both tools)
while one capture runs in A on eth0, each tool
alone and with its defaults (belt: 16 MiB ring buffer; tcpdump: libpcap's 2 MiB TPACKET_V3 ring;
\`-Z root\` only so that Debian's tcpdump can write into the bench's root-owned temp dir). Each tool is
stopped with SIGTERM ${
    m.pcap.settleMs / 1000
  } s after the sender ends (tcpdump hands over a partly filled ring block only on its 1 s timeout).
Frames are counted in the files (pcapng walked and checked with belt's \`readPcapng\`; tcpdump's pcap
walked). CPU is the capture process's user+sys from /proc/PID/stat between the sender's start and
the stop ("window"), and from wait4 over its whole life (start-up included: Deno's runtime and
belt's load and attach). Both tools copy packets in the sender's context (belt's BPF program into
its ring buffer, tcpdump's AF_PACKET ring), so that kernel-side cost shows in the sender's own CPU
time (getrusage in udp_send).

${
    table(
      [
        "capture",
        "offered",
        "achieved",
        "sent",
        "stream frames in file",
        "share",
        "the tool's own count",
        "CPU, window",
        "per frame",
        "CPU, whole life",
        "sender CPU (per datagram)",
        "file",
      ],
      rows,
    )
  }
${
    bad.length
      ? `\nFile problems: ${
        bad.map((r) =>
          `${r.tool} at ${rate(r.target)}/s: ${r.file.trailing} trailing bytes${
            r.file.error ? `, ${r.file.error}` : ""
          }`
        ).join("; ")
      }.\n`
      : ""
  }`;
}

function fidelitySection(m: MirrorResult): string {
  const rows = m.fidelity.map((f) => [
    f.tool === "belt" ? "belt" : "nft dup",
    `${f.requests} of ${f.pings}`,
    `${f.replies} of ${f.pings}`,
    String(f.frags),
    f.mtuBefore === undefined ? "none" : String(f.mtuBefore),
    f.mtuAfter === undefined ? "none" : String(f.mtuAfter),
  ]);
  return `### 4.4 Fidelity

\`ping -c 10 -s 1472 -M do ${ADDR.b}\` from A (1514-byte frames; 1564 bytes once in VXLAN, over
a 1500-byte path to C) with each mirror on. C counts the copies of echo requests (A's egress) and
echo replies (A's ingress) by the inner ICMP type. \`ip route get ${ADDR.b}\` in A is read before
(after a route cache flush) and after.

${
    table(
      [
        "mirror",
        "requests copied",
        "replies copied",
        "non-first fragments at C",
        "route mtu before",
        "route mtu after",
      ],
      rows,
    )
  }`;
}

function findings(m: MirrorResult): string {
  const out: string[] = [];
  const belt = tcpMedian(m.tcp.runs, "belt");
  const nft = tcpMedian(m.tcp.runs, "nft");
  if (belt / nft < TCP_TARGET) {
    out.push(
      `- TCP target missed: belt ${gbps(belt)} vs nft dup ${gbps(nft)} (${
        ratio(belt / nft)
      }); per-round figures in 4.1 show how much of it is noise.`,
    );
  }
  const lb = m.loss.belt;
  const ln = m.loss.nft;
  if (lb.senderBound && ln.senderBound && lb.best < ln.best * 0.95) {
    out.push(
      `- With belt on, the sender tops out at ${rate(lb.best)}/s, with nft dup at ${
        rate(ln.best)
      }/s (no copy lost by either; rerun to see how much is noise, a few % moves between runs). The copy path runs in the sender's context; a perf profile of the flat-out sender taken when this bench was written put belt's extra work in the second TC program (\`mirror_tunnel\` on belt-vx4789, ~1.3% of the sender's samples) and in a full route lookup per copy (\`udp_tunnel_dst_lookup\` ~3.0% vs ~0.4% for nft): a tunnel key set from BPF carries NOCACHE, so the external VXLAN device cannot use its dst cache, while nft's device with a fixed remote can.`,
    );
  }
  let pcapCause = false;
  for (const p of pcapPairs(m)) {
    const b = p.belt.cpuWindow / p.belt.file.frames;
    const t = p.tcpdump.cpuWindow / p.tcpdump.file.frames;
    if (b > 2 * t) {
      out.push(
        `- \`--pcap\` at ${rate(p.rate)}/s: the belt process used ${
          sec(p.belt.cpuWindow)
        } of CPU (${(b * 1e6).toFixed(2)} µs per frame) against tcpdump's ${
          sec(p.tcpdump.cpuWindow)
        } (${(t * 1e6).toFixed(2)} µs per frame), ${(b / t).toFixed(0)}x; the sender itself used ${
          sec(p.belt.senderCpu)
        } with belt capturing vs ${sec(p.tcpdump.senderCpu)} with tcpdump.${
          p.belt.achieved < p.tcpdump.achieved * 0.98
            ? ` The sender reached ${rate(p.belt.achieved)}/s with belt capturing, ${
              rate(p.tcpdump.achieved)
            }/s with tcpdump.`
            : ""
        }`,
      );
      pcapCause = true;
    }
  }
  if (pcapCause) {
    out.push(
      "- Where `--pcap`'s CPU goes (from the code, and a perf profile taken when this bench was written): the BPF program hands each copy over with `bpf_ringbuf_output(..., 0)`, the kernel's default wakeup, so whenever belt has caught up the next copy wakes it (an irq_work, i.e. a self-IPI, in the sender's context); `cli/mirror.ts` then takes what is there with `ring.consume`, writes it with one `write()` and waits again with `ring.ready()`, an `epoll_wait` run on Deno's blocking thread pool (a thread handoff each way). At these rates that is thousands of small batches a second, and the per-batch cost dominates the per-frame work (`writePacket`). Waking belt less often (`BPF_RB_NO_WAKEUP` with a forced wakeup every N copies or a timer, as section 2's generator does) and flushing by size or time would cut it.",
    );
  }
  if (m.beltProblems.length) {
    out.push(`- belt itself: ${m.beltProblems.join("; ")}.`);
  }
  return out.length ? `### Where belt is behind\n\n${out.join("\n")}` : "";
}

/** The whole "4. Mirror" section. */
export function mirrorSection(m: MirrorResult): string {
  const v = mirrorVerdicts(m);
  const body = [
    `${MIRROR_HEADING} (\`belt mirror\` vs nftables \`dup\` and tcpdump)

Reproduce: \`deno task bench\` (all sections) or \`deno run -A scripts/bench/run.ts --only mirror\`
(this section only, about ${
      Math.ceil(m.seconds / 10) * 10
    } s), as root. This section: ${m.date}, kernel \`${m.kernel}\`, ${
      m.seconds.toFixed(0)
    } s; nftables ${m.versions.nft}, tcpdump ${m.versions.tcpdump}, iperf3 ${m.versions.iperf3}.

Topology: three namespaces made by the bench (\`belt-bench-<pid>-ma/mb/mc\`, deleted at the end,
also on failure or Ctrl-C), veth pairs only: A eth0 ${ADDR.a0}/30 — B ${ADDR.b}/30 (the
mirrored traffic) and A eth1 ${ADDR.a1}/30 — C ${ADDR.c}/30 (the copies). IPv6 off, static
neighbours: eth0 carries nothing but the bench's traffic. Copies go to C in VXLAN, VNI ${VNI}, UDP 4789.

- **belt**, as a user runs it:
  \`ip netns exec A deno run -A mod.ts mirror eth0 --to ${ADDR.c} --vni ${VNI} --json\`
  (belt's own external VXLAN device \`belt-vx4789\`); measuring starts when its stderr says
  "mirroring", it is stopped with SIGTERM and its JSON stats are kept.
- **nft dup**: in A, a regular VXLAN device,
  \`ip link add nftvx type vxlan id ${VNI} remote ${ADDR.c} dstport 4789 nolearning\`, and
  \`table netdev m\` with an \`ingress\` and an \`egress\` chain on eth0 (the egress hook needs
  kernel >= 5.16), each \`dup to "nftvx"\`. Only one mirror runs at a time: both VXLAN devices
  need UDP port 4789 in A.
- Copies are counted by the kernel in C: nft counters at C's netdev ingress (VXLAN to
  ${ADDR.c}:4789 with VNI ${VNI}: whole datagrams and first fragments; non-first fragments; the
  stream's copies by inner UDP port; ICMP echo copies by inner type), and the rx count of a VXLAN
  device in C that decapsulates them. No user-space collector.

Ratios are belt/peer, higher is better for belt (CPU: peer/belt).

${
      table(
        ["figure", "belt", "peer", "ratio", "target", "met?"],
        v.map((x) => [
          x.figure,
          x.belt,
          x.peer,
          x.ratio,
          x.target,
          x.met === undefined ? "—" : x.met ? "yes" : "**no**",
        ]),
      )
    }`,
    tcpSection(m),
    lossSection(m),
    pcapSection(m),
    fidelitySection(m),
    findings(m),
  ];
  return body.filter((s) => s).join("\n\n");
}

/** A few lines for the terminal. */
export function mirrorSummary(m: MirrorResult): string {
  return mirrorVerdicts(m).map((v) =>
    `${
      v.met === undefined ? "info" : v.met ? "ok  " : "MISS"
    } mirror: ${v.figure}: belt ${v.belt}, ${v.peer}${v.ratio ? ` (${v.ratio})` : ""}`
  ).join("\n");
}

/**
 * `page` with its mirror section replaced by `section` (inserted before
 * "## Where the time goes", or appended, when the page has none).
 */
export function replaceMirrorSection(page: string, section: string): string {
  const pointer = "The mirror's targets are in section 4.";
  const cold = "Cold start has no target; it is reported in section 3.";
  if (!page.includes(pointer)) page = page.replace(cold, `${cold} ${pointer}`);
  return replaceSection(page, MIRROR_HEADING, section);
}

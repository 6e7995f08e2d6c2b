import { deepEqual, ok, throws } from "node:assert/strict";
import {
  attachBtfTracepoint,
  attachFentry,
  attachKprobe,
  attachRawTracepoint,
  attachTracepoint,
  BpfObject,
  NotSupportedError,
  PerfBuffer,
  RingBuffer,
  struct,
  u32,
  u64,
} from "../bpf/mod.ts";
import { connectEvent } from "./bpf/connect_event.ts";
import { stateCountersObject } from "./bpf/state_counters.bpf.ts";
import { connectEventsObject } from "./bpf/connect_events.bpf.ts";
import { unsupportedHooksObject } from "./bpf/unsupported_hooks.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const AF_INET = 2;
const TCP_CLOSE = 7;
const TCP_SYN_SENT = 2;
const PORT = 8181;

/** Connects from host a with bash (its own pid does the connect); returns that pid. */
async function connectFrom(topo: Topology): Promise<number> {
  const child = topo.spawn("a", ["bash", "-c", `exec 3<>/dev/tcp/198.18.2.2/${PORT}`]);
  await child.output();
  return child.pid;
}

async function topology(): Promise<Topology> {
  return await Topology.pair(2);
}

kernelTest(
  "tp_btf inet_sock_set_state delivers a connect event through the ring buffer",
  async () => {
    await using topo = await topology();
    using obj = BpfObject.open(connectEventsObject, { globals: { wanted_dport: PORT } });
    obj.program("on_state_perf").autoload = false;
    obj.load();
    const ring = RingBuffer.open(obj.map("events"), { lostCounter: obj.map("belt_events_lost") });
    attachBtfTracepoint(obj.program("on_state_ring"));
    // Ground truth for the source port: the SYN as tcpdump sees it on host b.
    const capture = topo.spawn("b", [
      "timeout",
      "5",
      "tcpdump",
      "-i",
      "eth0",
      "-n",
      "-l",
      "-c",
      "1",
      `tcp dst port ${PORT}`,
    ]);
    await new Promise((r) => setTimeout(r, 500)); // tcpdump needs a moment to open its socket
    const pid = await connectFrom(topo);
    const seenOnWire = new TextDecoder().decode((await capture.output()).stdout);
    const wireSport = Number(/198\.18\.2\.1\.(\d+) > 198\.18\.2\.2\.8181/.exec(seenOnWire)?.[1]);
    const events = [];
    const deadline = Date.now() + 3000;
    for await (const e of ring.decoded(connectEvent)) {
      events.push(e);
      if (events.length >= 2 || Date.now() > deadline) break; // SYN_SENT, then CLOSE on the RST
    }
    const syn = events.find((e) => e.new_state === TCP_SYN_SENT)!;
    deepEqual([syn.pid, syn.tid, syn.comm, syn.family, syn.dport, syn.old_state], [
      pid,
      pid,
      "bash",
      AF_INET,
      PORT,
      TCP_CLOSE,
    ]);
    // The port is bound after the SYN_SENT transition; the RST's CLOSE event carries it.
    const closed = events.find((e) => e.old_state === TCP_SYN_SENT && e.new_state === TCP_CLOSE)!;
    deepEqual([closed.sport, closed.dport], [wireSport, PORT]);
    deepEqual(ring.lost, 0n);
  },
);

kernelTest("the same event arrives through a perf buffer", async () => {
  await using topo = await topology();
  using obj = BpfObject.open(connectEventsObject, { globals: { wanted_dport: PORT } });
  obj.program("on_state_ring").autoload = false;
  obj.load();
  const perf = PerfBuffer.open(obj.map("perf_events"), 8);
  attachBtfTracepoint(obj.program("on_state_perf"));
  const pid = await connectFrom(topo);
  let syn;
  for await (const sample of perf) {
    const e = connectEvent.unpack(sample);
    if (e.new_state === TCP_SYN_SENT) {
      syn = e;
      break;
    }
  }
  deepEqual([syn?.pid, syn?.dport, perf.lost], [pid, PORT, 0n]);
});

kernelTest("raw and classic tracepoints both see a connect's state changes", async () => {
  await using topo = await topology();
  using obj = BpfObject.open(stateCountersObject);
  obj.load();
  attachRawTracepoint(obj.program("count_raw"), "inet_sock_set_state");
  attachTracepoint(obj.program("count_classic"), "sock/inet_sock_set_state");
  await connectFrom(topo);
  const bss = obj.map(".bss").typed(u32, struct({ raw: u64, classic: u64 }));
  const { raw, classic } = bss.get(0)!;
  // CLOSE -> SYN_SENT -> CLOSE at least; other sockets on the machine may add more.
  ok(raw >= 2n && classic >= 2n, `raw ${raw}, classic ${classic}`);
});

kernelTest("kprobe and fentry fail with NotSupportedError where the kernel lacks them", () => {
  const kprobes = (() => {
    try {
      return Deno.statSync("/sys/bus/event_source/devices/kprobe").isDirectory;
    } catch {
      return false;
    }
  })();
  using obj = BpfObject.open(unsupportedHooksObject);
  obj.program("on_connect_fentry").autoload = false;
  obj.load(); // the kprobe program passes the verifier even here
  if (kprobes) {
    attachKprobe(obj.program("on_connect_kprobe"), "tcp_v4_connect").close();
  } else {
    throws(
      () => attachKprobe(obj.program("on_connect_kprobe"), "tcp_v4_connect"),
      NotSupportedError,
    );
  }
  using withFentry = BpfObject.open(unsupportedHooksObject);
  withFentry.program("on_connect_kprobe").autoload = false;
  try {
    withFentry.load();
    attachFentry(withFentry.program("on_connect_fentry")).close();
  } catch (e) {
    deepEqual(e instanceof NotSupportedError, true, String(e));
    deepEqual((e as NotSupportedError).feature.startsWith("fentry/fexit"), true);
  }
});

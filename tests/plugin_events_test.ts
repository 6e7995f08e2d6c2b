import { equal, ok } from "node:assert/strict";
import { definePlugin, startPlugin } from "../plugins/mod.ts";
import { connectEvent } from "./bpf/connect_event.ts";
import { connectEventsObject } from "./bpf/connect_events.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const PORT = 8282;

/** A tracing plugin: no interface, one tp_btf program, events through a ring buffer. */
const connects = definePlugin<{ port: number }>({
  name: "connects",
  description: "TCP state changes to one port (test plugin)",
  object: connectEventsObject,
  programs: [{ program: "on_state_ring", hook: "trace" }],
  options: (raw) => ({ port: Number(raw.port ?? 0) }),
  globals: (o) => ({ wanted_dport: o.port }),
  events: { map: "events", decode: (bytes) => connectEvent.unpack(bytes) },
});

kernelTest("a plugin with a trace hook needs no interface and yields decoded events", async () => {
  await using topo = await Topology.pair(15);
  using running = startPlugin(connects, { options: { port: PORT } });
  const events = running.events();
  const child = topo.spawn("a", ["bash", "-c", `exec 3<>/dev/tcp/198.18.15.2/${PORT}`]);
  await child.output();
  const timeout = setTimeout(() => running.close(), 5000); // bounded: closing ends the iteration
  let found;
  for await (const raw of events) {
    const e = raw as ReturnType<typeof connectEvent.unpack>;
    if (e.pid === child.pid && e.new_state === 2) found = e; // SYN_SENT
    if (found) break;
  }
  clearTimeout(timeout);
  ok(found, "no SYN_SENT event from the connecting process");
  equal(found.dport, PORT);
  equal(found.comm, "bash");
  equal(events.lost, 0n);
});

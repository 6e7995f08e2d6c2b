import { throws } from "node:assert/strict";
import { attachTc, attachTracepoint, attachXdp, BpfObject, RingBuffer } from "../bpf/mod.ts";
import type { TcDirection, TcMode, XdpMode } from "../bpf/mod.ts";
import { tcOrderObject } from "./bpf/tc_order.bpf.ts";
import { connectEventsObject } from "./bpf/connect_events.bpf.ts";

// Arguments are checked before anything touches the kernel: these run without root.

Deno.test("attachTc() rejects a priority outside 1..65535, a bad direction and a bad mode", () => {
  using obj = BpfObject.open(tcOrderObject);
  const prog = obj.program("tc_order");
  for (const priority of [0, 65536, 1.5]) {
    throws(
      () => attachTc(prog, "lo", { direction: "ingress", priority }),
      /TC priority .* is out of range/,
    );
  }
  throws(
    () => attachTc(prog, "lo", { direction: "sideways" as TcDirection }),
    /unknown TC direction 'sideways'/,
  );
  throws(
    () => attachTc(prog, "lo", { direction: "egress", mode: "tc" as TcMode }),
    /unknown TC mode 'tc'/,
  );
});

Deno.test("attachXdp() rejects an unknown mode", () => {
  using obj = BpfObject.open(tcOrderObject);
  throws(
    () => attachXdp(obj.program("tc_order"), "lo", { mode: "turbo" as XdpMode }),
    /unknown XDP mode 'turbo'/,
  );
});

Deno.test("attachTracepoint() wants category/name", () => {
  using obj = BpfObject.open(connectEventsObject);
  throws(
    () => attachTracepoint(obj.program("on_state_ring"), "inet_sock_set_state"),
    /is not category\/name/,
  );
});

Deno.test("RingBuffer.open() refuses a map that is not a ring buffer", () => {
  using obj = BpfObject.open(connectEventsObject);
  throws(() => RingBuffer.open(obj.map("perf_events")), /is not a ring buffer/);
});

Deno.test("a program's fd before load() says to load first", () => {
  using obj = BpfObject.open(tcOrderObject);
  throws(
    () => obj.program("tc_order").fd,
    /program 'tc_order' is not loaded/,
  );
});

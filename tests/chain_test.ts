import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { BeltError, withNetns } from "../bpf/mod.ts";
import { count, countRows, describeChain, startPlugin } from "../plugins/mod.ts";
import type { RunningPlugin } from "../plugins/mod.ts";
import { dropper } from "./plugins/dropper/mod.ts";
import { kernelTest, tcModes } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const B = "198.18.5.2";

/** Packets a count plugin saw leaving, for one IP protocol. */
function outPackets(r: RunningPlugin, ipProto: number): bigint {
  return countRows(r.object).filter((row) =>
    row.direction === "out" && row.ethProto === 0x0800 && row.ipProto === ipProto
  )
    .reduce((n, row) => n + row.packets, 0n);
}

for (const tcMode of tcModes()) {
  kernelTest(`three plugins compose on one interface in priority order (${tcMode})`, async () => {
    await using topo = await Topology.pair(5);
    const start = () =>
      withNetns(topo.ns("a"), () => {
        // Started out of order on purpose: priority decides.
        const late = startPlugin(count, { iface: "eth0", priority: 30, tcMode });
        const early = startPlugin(count, { iface: "eth0", priority: 10, tcMode });
        const drop = startPlugin(dropper, {
          iface: "eth0",
          priority: 20,
          tcMode,
          direction: "out",
        });
        return { early, drop, late };
      });
    const { early, drop, late } = start();
    try {
      // ICMP is dropped at 20: the count at 10 sees it, the count at 30 does not.
      equal(await topo.ping("a", B, 3), 0);
      // UDP passes the dropper: both counts see every datagram.
      await topo.sendUdp("a", B, 9, 40);
      equal(outPackets(early, 17), 40n);
      equal(outPackets(late, 17), 40n);
      ok(outPackets(early, 1) > 0n);
      equal(outPackets(early, 1), drop.stats().dropped as bigint);
      equal(outPackets(late, 1), 0n);

      const chain = withNetns(topo.ns("a"), () => describeChain("eth0"));
      deepEqual(
        chain.filter((e) => e.direction === "egress").map((
          e,
        ) => [e.position, e.mode, e.priority, e.owner, e.program]),
        [
          [1, tcMode, 10, "count", "count_egress"],
          [2, tcMode, 20, "dropper", "drop_egress"],
          [3, tcMode, 30, "count", "count_egress"],
        ],
      );
      deepEqual(chain.filter((e) => e.direction === "ingress").map((e) => [e.priority, e.owner]), [[
        10,
        "count",
      ], [30, "count"]]);

      // Removing the dropper leaves the counts in place: ICMP flows again.
      drop.close();
      equal(await topo.ping("a", B, 2), 2);
      ok(outPackets(late, 1) >= 2n);
    } finally {
      for (const r of [early, drop, late]) r.close();
    }
    equal(withNetns(topo.ns("a"), () => describeChain("eth0")).length, 0);
  });
}

kernelTest(
  "a plugin that fails to start leaves nothing attached, and a duplicate priority is refused",
  async () => {
    await using topo = await Topology.pair(6);
    withNetns(topo.ns("a"), () => {
      using first = startPlugin(count, { iface: "eth0", priority: 10 });
      throws(() => startPlugin(dropper, { iface: "eth0", priority: 10 }), /priority 10 is taken/);
      throws(
        () => startPlugin(dropper, { iface: "eth0", priority: 20, options: { proto: 300 } }),
        (e: unknown) => {
          ok(e instanceof BeltError);
          match(e.message, /dropper options\.proto: must be an IP protocol number/);
          return true;
        },
      );
      deepEqual(describeChain("eth0").map((e) => [e.owner, e.priority]), [["count", 10], [
        "count",
        10,
      ]]);
      equal(first.iface, "eth0");
    });
    equal(withNetns(topo.ns("a"), () => describeChain("eth0")).length, 0);
  },
);

kernelTest(
  "plugins that declare the same map name share one kernel map while any of them runs",
  async () => {
    await using topo = await Topology.pair(12);
    // Two plugins built from the count object, both declaring "counts" shared.
    const first = { ...count, name: "count_a", sharedMaps: ["counts"] };
    const second = { ...count, name: "count_b", sharedMaps: ["counts"] };
    const a = withNetns(topo.ns("a"), () => startPlugin(first, { iface: "eth0", priority: 10 }));
    const b = withNetns(topo.ns("a"), () => startPlugin(second, { iface: "eth0", priority: 20 }));
    try {
      await topo.sendUdp("a", "198.18.12.2", 9, 25);
      // Each datagram passes both programs, which count into the one map.
      equal(outPackets(a, 17), 50n);
      equal(outPackets(b, 17), 50n);
      a.close(); // the map lives on with b
      await topo.sendUdp("a", "198.18.12.2", 9, 5);
      equal(outPackets(b, 17), 55n);
    } finally {
      a.close();
      b.close();
    }
  },
);

for (const tcMode of tcModes()) {
  kernelTest(
    `inserting and removing a plugin mid-stream drops or reorders nothing for the others (${tcMode})`,
    async () => {
      await using topo = await Topology.pair(14);
      const inNs = <T>(fn: () => T) => withNetns(topo.ns("a"), fn);
      const first = inNs(() => startPlugin(count, { iface: "eth0", priority: 10, tcMode }));
      const last = inNs(() => startPlugin(count, { iface: "eth0", priority: 30, tcMode }));
      try {
        const sending = topo.sendUdp("a", "198.18.14.2", 9, 30_000);
        let cycles = 0;
        const deadline = Date.now() + 10_000; // bounded: stop churning when sending ends or at 10 s
        let done = false;
        sending.finally(() => (done = true));
        while (!done && Date.now() < deadline) {
          inNs(() => startPlugin(count, { iface: "eth0", priority: 20, tcMode })).close();
          cycles++;
          await new Promise((r) => setTimeout(r, 20));
        }
        await sending;
        ok(cycles >= 5, `only ${cycles} insert/remove cycles ran during the stream`);
        equal(outPackets(first, 17), 30_000n);
        equal(outPackets(last, 17), 30_000n);
        deepEqual(inNs(() => describeChain("eth0")).map((e) => [e.direction, e.priority]), [
          ["ingress", 10],
          ["ingress", 30],
          ["egress", 10],
          ["egress", 30],
        ]);
      } finally {
        first.close();
        last.close();
      }
    },
  );
}

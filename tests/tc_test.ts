import { deepEqual, match, throws } from "node:assert/strict";
import { attachTc, BeltError, BpfObject, u32, u64, withNetns } from "../bpf/mod.ts";
import type { Link, TcMode } from "../bpf/mod.ts";
import { tcOrderObject } from "./bpf/tc_order.bpf.ts";
import { kernelTest, tcModes } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const B = "198.18.1.2";
const TC_ACT_SHOT = 2;

function chainLink(tag: number, verdict = -1): BpfObject {
  const obj = BpfObject.open(tcOrderObject, { name: `tc_order_${tag}`, globals: { tag, verdict } });
  obj.load();
  return obj;
}

function seen(obj: BpfObject, tag: number): number | undefined {
  return obj.map("seen").typed(u32, u32).get(tag);
}

function runs(obj: BpfObject, tag: number): bigint | undefined {
  return obj.map("runs").typed(u32, u64).get(tag);
}

for (const mode of ["tcx", "cls_bpf"] as const satisfies TcMode[]) {
  kernelTest(
    `attachTc(${mode}) runs programs in priority order and stops at a final verdict`,
    async () => {
      await using topo = await Topology.pair(1);
      if (mode === "tcx" && !tcModes().includes("tcx")) {
        // Before 6.6 (e.g. in scripts/vm-test.sh's 6.1 guest) asking for TCX is a clear error.
        using obj = chainLink(1);
        const tcx = () =>
          withNetns(
            topo.ns("a"),
            () =>
              attachTc(obj.program("tc_order"), "eth0", {
                direction: "egress",
                priority: 10,
                mode,
              }),
          );
        throws(tcx, (e) => e instanceof BeltError && (e.code === 22 || e.code === 95));
        return;
      }
      using first = chainLink(1);
      using second = chainLink(2);
      using dropper = chainLink(3, TC_ACT_SHOT);
      const attach = (obj: BpfObject, priority: number): Link =>
        withNetns(
          topo.ns("a"),
          () => attachTc(obj.program("tc_order"), "eth0", { direction: "egress", priority, mode }),
        );

      // Attach out of order: priority decides, not attach order.
      const l2 = attach(second, 20);
      const l1 = attach(first, 10);
      deepEqual(l1.info.detail, `${mode} egress prio 10`);
      deepEqual(await topo.ping("a", B, 5), 5);
      deepEqual(seen(first, 1), 0x1); // ran first: mark was 0
      deepEqual(seen(second, 2), 0x12); // ran second: saw the first's mark
      deepEqual([runs(first, 1), runs(second, 2)], [5n, 5n]);

      // A final verdict in the middle ends the chain: the third never runs.
      const l3 = attach(dropper, 15);
      deepEqual(await topo.ping("a", B, 3), 0);
      const dropped = runs(dropper, 3)!; // ping retries refused sends, so count what ran
      deepEqual(dropped > 0n, true);
      deepEqual([runs(first, 1), runs(second, 2)], [5n + dropped, 5n]);

      // Removing it leaves the others in place and in order.
      l3.close();
      deepEqual(await topo.ping("a", B, 2), 2);
      deepEqual([runs(first, 1), runs(second, 2), seen(second, 2)], [7n + dropped, 7n, 0x12]);

      // Two belt programs at one priority are an error.
      throws(() => attach(dropper, 10), (e: unknown) => {
        match((e as Error).message, /priority 10/);
        return true;
      });

      l1.close();
      l2.close();
      const filters = await topo.run("a", ["tc", "filter", "show", "dev", "eth0", "egress"], false);
      deepEqual(filters.stdout.trim(), "");
      const qdiscs = await topo.run("a", ["tc", "qdisc", "show", "dev", "eth0"]);
      deepEqual(qdiscs.stdout.includes("clsact"), false, qdiscs.stdout);
    },
  );
}

kernelTest("attachTc(cls_bpf) leaves a foreign clsact qdisc and its filters alone", async () => {
  await using topo = await Topology.pair(1);
  await topo.run("a", ["tc", "qdisc", "add", "dev", "eth0", "clsact"]);
  await topo.run("a", [
    "tc",
    "filter",
    "add",
    "dev",
    "eth0",
    "egress",
    "prio",
    "5",
    "matchall",
    "action",
    "pass",
  ], false);
  const before = (await topo.run("a", ["tc", "filter", "show", "dev", "eth0", "egress"])).stdout;
  using obj = chainLink(1);
  const link = withNetns(
    topo.ns("a"),
    () =>
      attachTc(obj.program("tc_order"), "eth0", {
        direction: "egress",
        priority: 50,
        mode: "cls_bpf",
      }),
  );
  deepEqual(await topo.ping("a", B, 2), 2);
  link.close();
  deepEqual(
    (await topo.run("a", ["tc", "filter", "show", "dev", "eth0", "egress"])).stdout,
    before,
  );
  match((await topo.run("a", ["tc", "qdisc", "show", "dev", "eth0"])).stdout, /clsact/);
});

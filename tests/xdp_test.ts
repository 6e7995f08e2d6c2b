import { deepEqual, match, throws } from "node:assert/strict";
import {
  attachXdp,
  BeltError,
  BpfObject,
  queryXdp,
  struct,
  u32,
  u64,
  withNetns,
} from "../bpf/mod.ts";
import { xdpCountObject } from "./bpf/xdp_count.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const protoCount = struct({ packets: u64, bytes: u64 });
const A = "198.18.0.1";
const B = "198.18.0.2";

function ipv4(addr: string): Uint8Array {
  return new Uint8Array(addr.split(".").map(Number));
}

// veth has native XDP, so "auto" must pick it.
for (
  const [mode, expected] of [["native", "native"], ["generic", "generic"], [
    "auto",
    "native",
  ]] as const
) {
  kernelTest(
    `attachXdp() in ${mode} mode counts exactly the ICMP and UDP packets sent`,
    async () => {
      await using topo = await Topology.pair(0);
      using obj = BpfObject.open(xdpCountObject, { globals: { only_saddr: ipv4(A) } });
      obj.load();
      const link = withNetns(
        topo.ns("b"),
        () => attachXdp(obj.program("xdp_count"), "eth0", { mode }),
      );
      deepEqual(link.info.detail, expected);
      deepEqual(await topo.ping("a", B, 20), 20);
      await topo.sendUdp("a", B, 9, 37);
      const counts = obj.map("counts").typed(u32, protoCount);
      deepEqual(counts.getSum(1)?.packets, 20n); // ICMP echo requests from A
      deepEqual(counts.getSum(17)?.packets, 37n); // UDP
      deepEqual(counts.getSum(17)?.bytes, 37n * 43n); // 14 + 20 + 8 + 1 byte payload
      link.close();
      link.close(); // idempotent
      deepEqual(
        withNetns(topo.ns("b"), () => queryXdp("eth0").progId),
        0,
      );
    },
  );
}

kernelTest("attachXdp() on an interface that has one already names the first program", async () => {
  await using topo = await Topology.pair(0);
  using obj = BpfObject.open(xdpCountObject);
  obj.load();
  using other = BpfObject.open(xdpCountObject);
  other.load();
  withNetns(topo.ns("b"), () => {
    attachXdp(obj.program("xdp_count"), "eth0");
    const id = queryXdp("eth0").progId;
    throws(() => attachXdp(other.program("xdp_count"), "eth0"), (e: unknown) => {
      match((e as Error).message, new RegExp(`already has an XDP program 'xdp_count' \\(id ${id}`));
      return true;
    });
  });
  obj.close(); // closing the object detaches its link
  deepEqual(withNetns(topo.ns("b"), () => queryXdp("eth0").progId), 0);
});

kernelTest("attachXdp() on an unknown interface lists the interfaces that exist", async () => {
  await using topo = await Topology.pair(0);
  using obj = BpfObject.open(xdpCountObject);
  obj.load();
  withNetns(topo.ns("b"), () => {
    throws(() => attachXdp(obj.program("xdp_count"), "nope0"), (e: unknown) => {
      deepEqual(e instanceof BeltError, true);
      deepEqual(
        (e as BeltError).oneLine(),
        "unknown interface 'nope0' (interfaces here: lo, eth0)",
      );
      return true;
    });
  });
});

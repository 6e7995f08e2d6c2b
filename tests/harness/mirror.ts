/**
 * The mirror tests' topology, in namespaces only:
 *
 *   b (198.18.41.2) ── eth0 [a] eth1 ── c (198.18.42.2, fd00:beef::42:2)
 *                           eth2 ── d (198.18.43.2)
 *
 * a mirrors its eth0 (traffic with b) to collectors at c and d.
 */
import { Topology } from "./netns.ts";

/** Creates a, b, c and d with the links and addresses above. */
export async function mirrorTopology(): Promise<Topology> {
  const topo = await Topology.create(["a", "b", "c", "d"], [
    {
      a: "a",
      b: "b",
      aAddrs: ["198.18.41.1/24", "fd00:beef::41:1/64"],
      bAddrs: ["198.18.41.2/24", "fd00:beef::41:2/64"],
    },
    {
      a: "a",
      b: "c",
      aName: "eth1",
      aAddrs: ["198.18.42.1/24", "fd00:beef::42:1/112"],
      bAddrs: ["198.18.42.2/24", "fd00:beef::42:2/112"],
    },
    { a: "a", b: "d", aName: "eth2", aAddrs: ["198.18.43.1/24"], bAddrs: ["198.18.43.2/24"] },
  ]);
  // Once resolved, neighbours are not probed again during a test: no unicast ARP or NS (5 s
  // after a peer's request left a stale entry, or when the 15-45 s reachable time ends) may fall
  // between the mirror's stop and the ground truth's, as on a slow (emulated) machine.
  for (const host of ["a", "b"]) {
    await topo.run(host, [
      "sysctl",
      "-qw",
      ...["ipv4", "ipv6"].flatMap((v) => [
        `net.${v}.neigh.eth0.base_reachable_time_ms=600000`,
        `net.${v}.neigh.eth0.delay_first_probe_time=600`,
      ]),
    ]);
  }
  return topo;
}

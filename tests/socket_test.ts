import { deepEqual, equal } from "node:assert/strict";
import { BpfObject, PacketSocket, withNetns } from "../bpf/mod.ts";
import { socketUdpPortObject } from "./bpf/socket_udp_port.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const B = "198.18.3.2";

kernelTest("a socket filter lets only matching packets reach an AF_PACKET socket", async () => {
  await using topo = await Topology.pair(3);
  using obj = BpfObject.open(socketUdpPortObject, { globals: { port: 5353 } });
  obj.load();
  await using sock = withNetns(
    topo.ns("b"),
    () => PacketSocket.open("eth0", { filter: obj.program("udp_port") }),
  );
  // Noise first: pings and UDP to other ports must not reach the socket.
  equal(await topo.ping("a", B, 5), 5);
  await topo.sendUdp("a", B, 9, 10);
  await topo.sendUdp("a", B, 5353, 25);
  const frames = await sock.receive(1000, 1500);
  equal(frames.length, 25);
  for (const f of frames) {
    const view = new DataView(f.buffer);
    deepEqual([view.getUint16(12), f[23], view.getUint16(36)], [0x0800, 17, 5353]); // IPv4, UDP, dport
    deepEqual([...f.subarray(26, 30)], [198, 18, 3, 1]);
  }
  deepEqual(sock.stats(), { packets: 25, drops: 0 });
});

/**
 * belt mirror and belt collect refuse bad input: one line, a non-zero exit,
 * nothing attached and no file of the user's deleted. Kernel tests (they run
 * belt as root in namespaces), kept apart from tests/mirror_test.ts so that
 * scripts/vm-test.sh's guest runs the traffic tests without them.
 */
import { equal, ok } from "node:assert/strict";
import { listInterfaces, withNetns } from "../bpf/mod.ts";
import { kernelTest, tcPrograms } from "./harness/kernel.ts";
import { mirrorTopology } from "./harness/mirror.ts";
import { background, BELT } from "./harness/process.ts";

kernelTest("belt mirror refuses bad input in one line and attaches nothing", async () => {
  await using topo = await mirrorTopology();
  const cases: [string[], RegExp][] = [
    [["nosuch0"], /interface 'nosuch0'|nosuch0/],
    [["eth0", "--to", "no-such-collector.invalid"], /cannot resolve collector/],
    [["eth0", "--to", "198.18.99.9"], /unreachable/],
    [["eth0", "--to", "198.18.42.2", "--vni", "16777216"], /vni must be an integer 0\.\.16777215/],
    [["eth0", "--to", "198.18.42.2:70000"], /port 70000 is out of range/],
    [["eth0", "--filter", "tcp dport 99999"], /column/],
    [["eth0", "--snaplen", "5"], /snaplen must be an integer 14\.\.65535/],
    [["eth0", "--sample", "0"], /sample must be an integer/],
    [["eth0", "--pcap", "/proc/belt-cannot-write.pcapng"], /cannot write/],
    [["eth0", "--direction", "sideways"], /direction/],
  ];
  for (const [args, message] of cases) {
    const r = await topo.run("a", [...BELT, "mirror", ...args], false);
    ok(r.code !== 0, `${args.join(" ")}: exit ${r.code}`);
    const lines = r.stderr.trim().split("\n");
    equal(lines.length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
    ok(message.test(lines[0]!), `${args.join(" ")}: ${lines[0]}`);
    withNetns(topo.ns("a"), () => {
      equal(tcPrograms("eth0", "ingress").length + tcPrograms("eth0", "egress").length, 0);
      ok(!listInterfaces().some(([, n]) => n.startsWith("belt-vx")), "no VXLAN device left");
    });
  }
});

kernelTest(
  "belt collect refuses bad input in one line and never deletes a file it did not create",
  async () => {
    await using topo = await mirrorTopology();
    const dir = await Deno.makeTempDir({ prefix: "belt-collect-" });
    try {
      const holder = background(topo, "d", [
        ...BELT,
        "collect",
        "--listen",
        "198.18.43.2:4789",
        "--pcap",
        `${dir}/holder.pcapng`,
      ]);
      await holder.waitFor(/collecting/);
      const mine = `${dir}/mine.pcapng`;
      await Deno.writeTextFile(mine, "a file of the user's");
      const cases: [string[], RegExp][] = [
        [["--listen", "nonsense"], /--listen 'nonsense': give ADDR:PORT/],
        [["--listen", "198.18.43.2:4789", "--pcap", mine], /cannot listen on 198.18.43.2:4789/],
        [["--listen", "198.18.43.2:4789", "--pcap", `${dir}/new.pcapng`], /cannot listen/],
        [["--pcap", "/proc/belt-cannot-write.pcapng"], /cannot write/],
        [["stray"], /unexpected argument 'stray'/],
      ];
      for (const [args, message] of cases) {
        const r = await topo.run("d", [...BELT, "collect", ...args], false);
        ok(r.code !== 0, `${args.join(" ")}: exit ${r.code}`);
        const lines = r.stderr.trim().split("\n");
        equal(lines.length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
        ok(message.test(lines[0]!), `${args.join(" ")}: ${lines[0]}`);
      }
      // The existing file is kept (truncated, as tcpdump -w does); the one belt made is gone.
      ok(Deno.statSync(mine).isFile);
      ok(![...Deno.readDirSync(dir)].some((e) => e.name === "new.pcapng"));
      equal((await holder.stop()).code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

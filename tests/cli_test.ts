import { deepEqual, equal, match, ok } from "node:assert/strict";
import { openPinnedMap } from "../bpf/mod.ts";
import { countKey, countValue } from "../plugins/mod.ts";
import { eventually, kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const root = new URL("..", import.meta.url).pathname;
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** Runs `belt ARGS` inside a host, the way a user would (ip netns exec). */
async function belt(topo: Topology, host: string, args: string[]) {
  const out = await topo.run(host, [Deno.execPath(), "run", "-A", `${root}mod.ts`, ...args], false);
  return { code: out.code, stdout: out.stdout, stderr: out.stderr };
}

function spawnBelt(topo: Topology, host: string, args: string[]): Deno.ChildProcess {
  return topo.spawn(host, [Deno.execPath(), "run", "-A", `${root}mod.ts`, ...args]);
}

/** Reads a child's stderr until `pattern` shows up (bounded). */
async function waitFor(child: Deno.ChildProcess, pattern: RegExp, ms = 10_000): Promise<string> {
  const reader = child.stderr.getReader();
  let seen = "";
  const deadline = Date.now() + ms;
  try {
    while (!pattern.test(seen) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decode(value);
    }
  } finally {
    reader.releaseLock();
  }
  match(seen, pattern);
  return seen;
}

async function leftovers(topo: Topology): Promise<string> {
  const chain = await belt(topo, "a", ["chain", "show", "eth0", "--json"]);
  const qdisc = (await topo.run("a", ["tc", "qdisc", "show", "dev", "eth0"])).stdout;
  return chain.stdout + (qdisc.includes("clsact") ? qdisc : "");
}

kernelTest(
  "belt run composes built-in and user plugins; chain show lists them; SIGTERM detaches all",
  async () => {
    await using topo = await Topology.pair(7);
    const dir = await Deno.makeTempDir({ prefix: "belt-run-" });
    try {
      const config = `${dir}/belt.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          interfaces: {
            eth0: [
              { plugin: "count", priority: 10 },
              { plugin: `${root}tests/plugins/dropper/mod.ts`, priority: 20, direction: "out" },
              { plugin: "count", priority: 30 },
            ],
          },
        }),
      );
      const child = spawnBelt(topo, "a", ["run", config]);
      await waitFor(child, /running count@eth0:10, dropper@eth0:20, count@eth0:30/);
      const chain = (await belt(topo, "a", ["chain", "show", "eth0", "--json"])).stdout.trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      deepEqual(
        chain.map((e) => [e.direction, e.position, e.priority, e.owner, e.program]),
        [
          ["ingress", 1, 10, "count", "count_ingress"],
          ["ingress", 2, 30, "count", "count_ingress"],
          ["egress", 1, 10, "count", "count_egress"],
          ["egress", 2, 20, "dropper", "drop_egress"],
          ["egress", 3, 30, "count", "count_egress"],
        ],
      );
      equal(await topo.ping("a", "198.18.7.2", 2), 0); // dropped at 20
      child.kill("SIGTERM");
      const [status, out] = await Promise.all([child.status, child.stdout.getReader().read()]);
      equal(status.code, 0);
      match(decode(out.value ?? new Uint8Array()), /dropper {2}20 +dropped=[1-9]/);
      await child.stderr.cancel();
      equal(await leftovers(topo), "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "belt count killed with SIGKILL on cls_bpf: belt detach removes its filter and qdisc",
  async () => {
    await using topo = await Topology.pair(8);
    const child = spawnBelt(topo, "a", [
      "count",
      "eth0",
      "--tc-mode",
      "cls_bpf",
      "--priority",
      "44",
    ]);
    await new Promise((r) => setTimeout(r, 100));
    await eventually(async () => (await leftovers(topo)).includes("count"), 10_000, 100);
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel();
    await child.stderr.cancel();
    match(await leftovers(topo), /"priority":44,"owner":"count"/); // the kernel keeps cls_bpf filters
    const detach = await belt(topo, "a", ["detach", "eth0"]);
    equal(detach.code, 0);
    match(detach.stdout, /removed count \(cls_bpf ingress prio 44, pid \d+ gone\)/);
    equal(await leftovers(topo), "");
  },
);

/** Runs belt in host a's network namespace but the host's mounts (nsenter), so pins on /sys/fs/bpf persist. */
async function beltNsenter(topo: Topology, pinRoot: string, args: string[]) {
  const out = await new Deno.Command("nsenter", {
    args: [
      `--net=/run/netns/${topo.ns("a")}`,
      Deno.execPath(),
      "run",
      "-A",
      `${root}mod.ts`,
      ...args,
    ],
    env: { BELT_PIN_ROOT: pinRoot },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

for (const mode of ["tcx", "cls_bpf"]) {
  kernelTest(
    `belt count --pin stays attached and counting after exit; belt detach removes it (${mode})`,
    async () => {
      await using topo = await Topology.pair(13);
      const pinRoot = `/sys/fs/bpf/belt-test-${Deno.pid}`;
      try {
        const pinned = await beltNsenter(topo, pinRoot, [
          "count",
          "eth0",
          "--pin",
          "--priority",
          "15",
          "--tc-mode",
          mode,
        ]);
        equal(pinned.code, 0, pinned.stderr);
        const dir = /pinned at (\S+)/.exec(pinned.stdout)?.[1] ?? "";
        match(dir, new RegExp(`^${pinRoot}/netns-\\d+/eth0/count-15$`));
        // belt has exited; its program still runs and counts into the pinned map.
        equal(await topo.ping("a", "198.18.13.2", 4), 4);
        using counts = openPinnedMap(`${dir}/counts`, countKey, countValue);
        const icmpOut = [...counts.map.entries()].filter(([k]) =>
          k.ip_proto === 1 && k.direction === 1
        )
          .reduce((n, [, v]) => n + v.packets, 0n);
        equal(icmpOut, 4n);
        // --stats turns kernel run statistics on while pings cross the chain.
        const [chain] = await Promise.all([
          beltNsenter(topo, pinRoot, ["chain", "show", "eth0", "--stats", "1.5", "--json"]),
          new Promise((r) => setTimeout(r, 300)).then(() => topo.ping("a", "198.18.13.2", 5)),
        ]);
        const entries = chain.stdout.trim().split("\n").map((l) => JSON.parse(l));
        ok(entries.every((e) => e.runCount > 0 && e.avgNs > 0), chain.stdout);
        deepEqual(
          entries.map((e) => [e.direction, e.mode, e.priority, e.owner]),
          [
            ["ingress", mode, 15, "count"],
            ["egress", mode, 15, "count"],
          ],
        );
        const detach = await beltNsenter(topo, pinRoot, ["detach", "eth0"]);
        equal(detach.code, 0, detach.stderr);
        match(detach.stdout, /removed count \((tcx|cls_bpf) ingress prio 15, pinned at /);
        equal(await leftovers(topo), "");
        const left = [...Deno.readDirSync(pinRoot)].flatMap((
          d,
        ) => [...Deno.readDirSync(`${pinRoot}/${d.name}/eth0`)]);
        equal(left.length, 0);
      } finally {
        await Deno.remove(pinRoot, { recursive: true }).catch(() => {});
      }
    },
  );
}

for (const mode of ["tcx", "cls_bpf"]) {
  kernelTest(
    `belt count exits with one clear line when its interface disappears (${mode})`,
    async () => {
      await using topo = await Topology.pair(11);
      const child = spawnBelt(topo, "a", ["count", "eth0", "--tc-mode", mode, "--duration", "20"]);
      await eventually(async () => (await leftovers(topo)).includes("count"), 10_000, 100);
      await topo.run("a", ["ip", "link", "del", "eth0"]);
      const out = await child.output();
      equal(out.code, 1);
      equal(
        new TextDecoder().decode(out.stderr),
        "belt: interface eth0 disappeared while running: its programs went with it\n",
      );
    },
  );
}

kernelTest(
  "bad config files and arguments: one line naming the file and key, nothing attached",
  async () => {
    await using topo = await Topology.pair(9);
    const dir = await Deno.makeTempDir({ prefix: "belt-cfg-" });
    try {
      const cases: [string, string][] = [
        ["{ nope", "not valid JSON"],
        [
          JSON.stringify({ interfaces: { eth0: [{ plugin: "count", priority: 0 }] } }),
          "interfaces.eth0[0].priority: must be an integer from 1 to 65535",
        ],
        [
          JSON.stringify({
            interfaces: {
              eth0: [{ plugin: "count", priority: 5 }, { plugin: "count", priority: 5 }],
            },
          }),
          "interfaces.eth0[1].priority: 5 is taken by",
        ],
        [
          JSON.stringify({ interfaces: { eth0: [{ plugin: "firewal" }] } }),
          "interfaces.eth0[0].plugin: unknown plugin 'firewal'",
        ],
        [
          JSON.stringify({ interfaces: { eth0: [{ plugin: "count", colour: "red" }] } }),
          "interfaces.eth0[0].colour: unknown key",
        ],
        [
          JSON.stringify({ interfaces: { nope0: [{ plugin: "count" }] } }),
          "unknown interface 'nope0' (interfaces here: lo, eth0)",
        ],
        [
          JSON.stringify({
            interfaces: {
              eth0: [{ plugin: `${root}tests/plugins/dropper/mod.ts`, options: { proto: "icmp" } }],
            },
          }),
          "interfaces.eth0[0].options.proto: must be an IP protocol number",
        ],
      ];
      for (const [i, [text, message]] of cases.entries()) {
        const path = `${dir}/c${i}.json`;
        await Deno.writeTextFile(path, text);
        const r = await belt(topo, "a", ["run", path, "--duration", "1"]);
        equal(r.code, 1, r.stderr);
        equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        match(r.stderr, new RegExp(`^belt: .*${message.replace(/[()[\].]/g, "\\$&")}`));
      }
      equal(await leftovers(topo), "");
      const r = await belt(topo, "a", ["count", "eth0", "--duration", "soon"]);
      deepEqual([r.code, r.stderr], [
        2,
        "belt: --duration wants a number of seconds > 0, got 'soon' (see `belt --help`)\n",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "cls_bpf: a belt that exits leaves other belts' and foreign filters, and their qdisc, in place",
  async () => {
    await using topo = await Topology.pair(16);
    const filters = async () =>
      (await topo.run("a", ["tc", "filter", "show", "dev", "eth0", "ingress"])).stdout;
    const first = spawnBelt(topo, "a", [
      "count",
      "eth0",
      "--tc-mode",
      "cls_bpf",
      "--priority",
      "10",
    ]);
    await eventually(async () => /pref 10 /.test(await filters()), 10_000, 100);
    const second = spawnBelt(topo, "a", [
      "count",
      "eth0",
      "--tc-mode",
      "cls_bpf",
      "--priority",
      "20",
    ]);
    await eventually(async () => /pref 20 /.test(await filters()), 10_000, 100);
    // A foreign classic-BPF filter ("accept everything") on the qdisc the first belt created.
    await topo.run("a", [
      "tc",
      "filter",
      "add",
      "dev",
      "eth0",
      "ingress",
      "pref",
      "50",
      "bpf",
      "bytecode",
      "1,6 0 0 4294967295,",
    ]);

    first.kill("SIGINT"); // Ctrl-C: a normal stop, with the table
    const out = await first.output();
    equal(out.code, 0, decode(out.stderr));
    match(decode(out.stdout), /^dir +protocol +packets +bytes/);
    const after = await filters();
    match(after, /pref 20 bpf/);
    match(after, /pref 50 bpf/);
    equal(/pref 10 /.test(after), false, after);

    second.kill("SIGTERM");
    equal((await second.output()).code, 0);
    const last = await filters();
    match(last, /pref 50 bpf/); // still there: not belt's
    equal(/pref 20 /.test(last), false, last);
  },
);

kernelTest(
  "--pin where a pin exists already is refused and leaves the first one running",
  async () => {
    await using topo = await Topology.pair(17);
    const pinRoot = `/sys/fs/bpf/belt-test-${Deno.pid}`;
    try {
      const first = await beltNsenter(topo, pinRoot, [
        "count",
        "eth0",
        "--pin",
        "--priority",
        "10",
        "--direction",
        "in",
      ]);
      equal(first.code, 0, first.stderr);
      const second = await beltNsenter(topo, pinRoot, [
        "count",
        "eth0",
        "--pin",
        "--priority",
        "10",
        "--direction",
        "out",
      ]);
      equal(second.code, 1);
      match(
        second.stderr,
        /^belt: .*count-10 exists: a count at priority 10 is pinned there \(remove it first with `belt detach eth0`\)\n$/,
      );
      const chain = await beltNsenter(topo, pinRoot, ["chain", "show", "eth0", "--json"]);
      deepEqual(
        chain.stdout.trim().split("\n").map((l) => JSON.parse(l)).map((
          e,
        ) => [e.direction, e.priority, e.owner]),
        [
          ["ingress", 10, "count"],
        ],
      );
      equal((await beltNsenter(topo, pinRoot, ["detach", "eth0"])).code, 0);
      equal(await leftovers(topo), "");
    } finally {
      await Deno.remove(pinRoot, { recursive: true }).catch(() => {});
    }
  },
);

kernelTest(
  "a program the verifier rejects: one line, and with --verbose the whole log, nothing left attached",
  async () => {
    await using topo = await Topology.pair(18);
    const dir = await Deno.makeTempDir({ prefix: "belt-run-" });
    try {
      const config = `${dir}/belt.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          interfaces: { eth0: [{ plugin: `${root}tests/plugins/rejected/mod.ts` }] },
        }),
      );
      const plain = await belt(topo, "a", ["run", config, "--duration", "1"]);
      equal(plain.code, 1, plain.stderr);
      deepEqual(plain.stderr.trim().split("\n"), [
        "belt: the verifier rejected program 'long_then_unchecked' (EACCES) (run with --verbose to see the verifier log)",
      ]);
      const verbose = await belt(topo, "a", ["run", config, "--duration", "1", "--verbose"]);
      equal(verbose.code, 1, verbose.stderr);
      // Far past the 10,000 characters an inspected error would keep: the failing instruction,
      // the verifier's summary line and libbpf's end marker are all there.
      ok(verbose.stderr.length > 20_000, `${verbose.stderr.length} characters`);
      match(verbose.stderr, /invalid access to packet/);
      match(verbose.stderr, /processed \d+ insns/);
      match(verbose.stderr, /-- END PROG LOAD LOG --/);
      equal(await leftovers(topo), "");
      const link = JSON.parse(
        (await topo.run("a", ["ip", "-j", "-d", "link", "show", "eth0"])).stdout,
      );
      equal(link[0].xdp, undefined, "no XDP program left");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

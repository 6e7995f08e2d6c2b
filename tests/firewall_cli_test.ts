/**
 * `belt firewall` as users drive it, in namespaces only (a ── b, the
 * firewall on a's eth0): add/del/list against a running and a pinned
 * firewall, the watched rules file, bad input, and rule changes during a
 * flood, which must never change the verdict of traffic they do not concern.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { withNetns } from "../bpf/mod.ts";
import { openFirewall, parseFirewallRule } from "../plugins/mod.ts";
import { eventually, kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";
import { background, BELT } from "./harness/process.ts";

interface Row {
  n: number;
  rule: string;
  origin: string;
  packets: number;
  bytes: number;
  limited: number;
}

/** belt run in a host through nsenter (keeps /sys/fs/bpf visible, unlike ip netns exec). */
async function belt(topo: Topology, host: string, args: string[]) {
  const out = await new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${topo.ns(host)}`, ...BELT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function list(topo: Topology): Promise<Row[]> {
  const r = await belt(topo, "a", ["firewall", "eth0", "list", "--json"]);
  equal(r.code, 0, r.stderr);
  return r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Whether anything of ours is on a's eth0: an XDP program or a TCX program. */
async function leftovers(topo: Topology): Promise<string> {
  const link = await topo.run("a", ["ip", "-d", "link", "show", "eth0"]);
  const net = await topo.run("a", ["bpftool", "net", "show", "dev", "eth0"], false);
  const found = [];
  if (/prog\/xdp|xdp(generic|drv)?\s/.test(link.stdout)) found.push(link.stdout);
  if (/firewall/.test(net.stdout)) found.push(net.stdout);
  return found.join("\n");
}

kernelTest(
  "firewall: add, del and list against a running firewall, and its watched rules file",
  async () => {
    await using topo = await Topology.pair(61);
    const dir = await Deno.makeTempDir({ prefix: "belt-fw-" });
    const file = `${dir}/fw.rules`;
    try {
      await Deno.writeTextFile(file, "# test rules\ndeny udp dport 7001\n");
      const fw = background(topo, "a", [
        ...BELT,
        "firewall",
        "eth0",
        "--rules",
        file,
        "--deny",
        "udp dport 7002",
        "--json",
      ]);
      await fw.waitFor(/firewall on eth0: 2 rules/);
      await topo.sendUdp("b", "198.18.61.1", 7001, 5);
      await topo.sendUdp("b", "198.18.61.1", 7002, 7);
      let rows = await list(topo);
      deepEqual(rows.map((r) => [r.rule, r.origin, r.packets]), [
        ["deny udp dport 7002", "command", 7],
        ["deny udp dport 7001", "file", 5],
      ]);

      // add, from another process; counters start at zero and count.
      let r = await belt(topo, "a", [
        "firewall",
        "eth0",
        "add",
        "deny udp dport 7003",
        "allow icmp",
      ]);
      equal(r.code, 0, r.stderr);
      match(r.stdout, /added 2 rules; 4 in force/);
      await topo.sendUdp("b", "198.18.61.1", 7003, 4);
      equal(await topo.ping("b", "198.18.61.1", 3), 3);
      rows = await list(topo);
      deepEqual(rows.map((r) => [r.n, r.rule, r.origin, r.packets]), [
        [1, "deny udp dport 7002", "command", 7],
        [2, "deny udp dport 7001", "file", 5],
        [3, "deny udp dport 7003", "added", 4],
        [4, "allow icmp", "added", 3],
      ]);
      r = await belt(topo, "a", ["firewall", "eth0", "add", "deny udp dport 7003"]);
      equal(r.code, 1);
      match(r.stderr, /already in the rule set/);

      // del by text and by number.
      r = await belt(topo, "a", ["firewall", "eth0", "del", "deny udp dport 7003", "1"]);
      equal(r.code, 0, r.stderr);
      rows = await list(topo);
      deepEqual(rows.map((r) => r.rule), ["deny udp dport 7001", "allow icmp"]);
      // Deleting the rule lets its traffic through: the kernel's verdict changed.
      await topo.sendUdp("b", "198.18.61.1", 7002, 3);

      // The rules file is watched: a new version replaces the file's rules, counters of kept rules stay.
      await Deno.writeTextFile(file, "deny udp dport 7004\ndeny udp dport 7001\n");
      await fw.waitFor(/reloaded: 2 rules/);
      await topo.sendUdp("b", "198.18.61.1", 7004, 2);
      rows = await list(topo);
      deepEqual(rows.map((r) => [r.rule, r.origin, r.packets]), [
        ["deny udp dport 7004", "file", 2],
        ["deny udp dport 7001", "file", 5],
        ["allow icmp", "added", 3],
      ]);

      // A bad file is refused with its line number; the rules in force stay.
      await Deno.writeTextFile(file, "deny udp dport 7004\n\ndeny udp dport 99999\n");
      await fw.waitFor(/fw\.rules:3: .*99999.*the rules in force stay/);
      deepEqual((await list(topo)).map((r) => r.rule), [
        "deny udp dport 7004",
        "deny udp dport 7001",
        "allow icmp",
      ]);

      const done = await fw.stop();
      equal(done.code, 0, done.stderr);
      const report = JSON.parse(new TextDecoder().decode(done.stdout).trim().split("\n").at(-1)!);
      equal(report.iface, "eth0");
      equal(report.rules.length, 3);
      equal(report.rules[1].packets, 5);
      ok(report.dropped_in >= 7 + 5 + 4 + 2, JSON.stringify(report));
      equal(await leftovers(topo), "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest(
  "firewall --pin: changed and listed without a process; belt detach removes it",
  async () => {
    await using topo = await Topology.pair(62);
    let r = await belt(topo, "a", ["firewall", "eth0", "--deny", "udp dport 7005", "--pin"]);
    equal(r.code, 0, r.stderr);
    match(r.stdout, /firewall stays on eth0 \(1 rules, XDP native\), pinned at /);
    try {
      ok(await leftovers(topo), "the XDP program stays after belt exits");
      r = await belt(topo, "a", ["firewall", "eth0", "add", "deny udp dport 7006"]);
      equal(r.code, 0, r.stderr);
      await topo.sendUdp("b", "198.18.62.1", 7005, 3);
      await topo.sendUdp("b", "198.18.62.1", 7006, 2);
      deepEqual((await list(topo)).map((r) => [r.rule, r.packets]), [
        ["deny udp dport 7005", 3],
        ["deny udp dport 7006", 2],
      ]);
      // A second firewall (or any XDP program) cannot take the interface.
      r = await belt(topo, "a", ["firewall", "eth0", "--deny", "tcp"]);
      equal(r.code, 1);
      equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      match(r.stderr, /eth0 already has an XDP program 'firewall_xdp'/);
      equal((await list(topo)).length, 2, "the pinned firewall is untouched");
    } finally {
      r = await belt(topo, "a", ["detach", "eth0"]);
    }
    equal(r.code, 0, r.stderr);
    match(r.stdout, /removed firewall-1000 \(xdp, pinned at /);
    equal(await leftovers(topo), "");
    r = await belt(topo, "a", ["firewall", "eth0", "list"]);
    equal(r.code, 1);
    match(r.stderr, /no belt firewall runs on eth0/);
  },
);

kernelTest("firewall: bad input gives one line, a non-zero exit and leaves nothing", async () => {
  await using topo = await Topology.pair(63);
  const dir = await Deno.makeTempDir({ prefix: "belt-fw-" });
  try {
    await Deno.writeTextFile(
      `${dir}/bad.rules`,
      "deny tcp:22\n# fine so far\ndeny src 10.0.0.0/8 port x\n",
    );
    const many = Array.from({ length: 33 }, (_, i) => ["--deny", `udp dport ${7100 + i}`]).flat();
    const cases: [string[], RegExp][] = [
      [["--deny", "src 198.18.0.0/33"], /prefix length 33 at column \d+ is out of range/],
      [["--deny", "src 198.18.0.1/15"], /host bits set; did you mean 198.18.0.0\/15/],
      [["--deny", "tcp dport 70000"], /port 70000 at column \d+ is out of range/],
      [["--deny", "ether src 02:00:00:zz:00:01"], /02:00:00:zz:00:01/],
      [["--rules", `${dir}/bad.rules`], /bad\.rules:3: .*'x'/],
      [["--rules", `${dir}/missing.rules`], /cannot read rules file/],
      [["--default", "maybe"], /default must be allow or deny/],
      [["--limit", "fast udp"], /limit needs a rate/],
      [["--allow", ""], /needs a match/],
      [["--mode", "turbo"], /unknown --mode 'turbo'/],
      [
        ["--capacity", "2", "--deny", "tcp", "--deny", "udp", "--deny", "icmp"],
        /3 rules do not fit in 2 slots/,
      ],
      [many, /more than 32 rules without an address/],
      [["nosuch0"], /nosuch0/],
      [["add"], /no belt firewall runs on eth0|give one or more rules/],
      [["add", "deny tcp"], /no belt firewall runs on eth0/],
      [["del", "3"], /no belt firewall runs on eth0/],
      [["frobnicate"], /unknown subcommand 'frobnicate'/],
    ];
    for (const [args, expected] of cases) {
      const full = args[0] === "nosuch0" ? ["firewall", "nosuch0"] : ["firewall", "eth0", ...args];
      const r = await belt(topo, "a", full);
      ok(r.code !== 0, `${args.join(" ")}: exit ${r.code}`);
      const lines = r.stderr.trim().split("\n");
      equal(lines.length, 1, `${args.join(" ")}: one line, got:\n${r.stderr}`);
      match(lines[0]!, /^belt: /);
      match(lines[0]!, expected, args.join(" "));
      equal(await leftovers(topo), "", `${args.join(" ")} left something attached`);
    }
    // del of a rule that is not there, against a running firewall: refused, nothing removed.
    const fw = background(topo, "a", [...BELT, "firewall", "eth0", "--deny", "udp dport 7200"]);
    await fw.waitFor(/firewall on eth0/);
    for (
      const [args, expected] of [
        [["del", "9"], /there is no rule 9 \(1 rules\)/],
        [["del", "deny udp dport 7201"], /rule 'deny udp dport 7201' is not in the rule set/],
        [["add", "deny out udp dport 7202"], /no egress program for 'out' rules/],
      ] as [string[], RegExp][]
    ) {
      const r = await belt(topo, "a", ["firewall", "eth0", ...args]);
      equal(r.code, 1, r.stderr);
      match(r.stderr.trim(), expected);
    }
    equal((await list(topo)).length, 1);
    equal((await fw.stop()).code, 0);
    equal(await leftovers(topo), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

kernelTest(
  "firewall: rules added and removed during a flood never change an unrelated verdict",
  async () => {
    await using topo = await Topology.pair(64);
    const fw = background(topo, "a", [
      ...BELT,
      "firewall",
      "eth0",
      "--default",
      "deny",
      "--allow",
      "udp dport 7301",
      "--deny",
      "src 198.18.64.2 udp dport 7302",
      "--json",
    ]);
    await fw.waitFor(/firewall on eth0/);
    // Ground truth: the UDP datagrams a's kernel received (delivered, or to a closed port).
    const udpIn = async () => {
      const snmp = (await topo.run("a", ["cat", "/proc/net/snmp"])).stdout.split("\n")
        .filter((l) => l.startsWith("Udp:")).map((l) => l.trim().split(/\s+/));
      const at = (name: string) => Number(snmp[1]![snmp[0]!.indexOf(name)]);
      return at("InDatagrams") + at("NoPorts") + at("InErrors");
    };
    const before = await udpIn();
    const SENT = 20000; // per port, paced: 100 of each every 10 ms (about 2 s)
    const sender = background(topo, "b", [
      "deno",
      "eval",
      `import dgram from "node:dgram";
     const s = dgram.createSocket("udp4");
     const data = new Uint8Array(32);
     const send = (port) => new Promise((r) => s.send(data, port, "198.18.64.1", r));
     for (let i = 0; i < ${SENT} / 100; i++) {
       for (let j = 0; j < 100; j++) { await send(7301); await send(7302); }
       await new Promise((r) => setTimeout(r, 10));
     }
     console.error("sent"); s.close();`,
    ]);
    // Meanwhile: rules on the same index entries as the flows' rules, and around them, come and go.
    const churn = [
      "deny src 198.18.64.2 udp dport 7303", // same source-prefix entry as rule 2
      "allow udp dport 7304", // same no-address entry as rule 1
      "deny src 198.18.0.0/15", // a shorter prefix on the walk
      "allow src 198.18.64.0/24", // and another
      "deny udp", // would drop 7301, but comes after rule 1
      "deny dst 198.18.64.1", // destination side
    ].map(parseFirewallRule);
    let changes = 0;
    const deadline = Date.now() + 20000;
    using running = withNetns(topo.ns("a"), () => openFirewall("eth0"));
    while (!/sent/.test(sender.stderr) && Date.now() < deadline) {
      const k = (changes >> 1) % churn.length;
      if (changes % 2 === 0) running.table.add([churn[k]!]);
      else running.table.remove((r) => r.origin === "added");
      changes++;
      await new Promise((r) => setTimeout(r, 1));
    }
    await sender.finished(30000);
    ok(await eventually(async () => (await udpIn()) - before >= SENT, 3000));
    const received = (await udpIn()) - before;
    const done = await fw.stop();
    const report = JSON.parse(new TextDecoder().decode(done.stdout).trim().split("\n").at(-1)!);
    ok(changes >= 50, `only ${changes} rule changes during the flood`);

    const why = JSON.stringify({ received, changes, report });
    equal(report.rules[0].packets, SENT, `the allow rule decided every 7301 datagram: ${why}`);
    // Exactly the 7301 datagrams reached UDP: none dropped, no 7302 one let through.
    equal(received, SENT, `wrong verdicts: ${why}`);
    const byRule = new Map(report.rules.map((r: Row) => [r.rule, r.packets]));
    equal(byRule.get("allow udp dport 7301"), SENT);
    equal(byRule.get("deny udp src host 198.18.64.2 dport 7302"), SENT);
    console.log(`${changes} rule changes during ${2 * SENT} datagrams, no wrong verdict`);
  },
);

kernelTest("firewall: SIGKILL leaves nothing attached", async () => {
  await using topo = await Topology.pair(65);
  const fw = background(topo, "a", [...BELT, "firewall", "eth0", "--deny", "out udp dport 9"]);
  await fw.waitFor(/XDP native \+ TC egress/);
  ok(await leftovers(topo));
  await fw.stop("SIGKILL");
  ok(await eventually(async () => (await leftovers(topo)) === "", 5000), await leftovers(topo));
});

import { deepEqual, equal, match } from "node:assert/strict";
import { listTcx, withNetns } from "../bpf/mod.ts";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const root = new URL("..", import.meta.url).pathname;

async function leftovers(topo: Topology): Promise<string> {
  const out = [];
  for (const dir of ["ingress", "egress"]) {
    out.push((await topo.run("a", ["tc", "filter", "show", "dev", "eth0", dir])).stdout.trim());
  }
  const qdisc = (await topo.run("a", ["tc", "qdisc", "show", "dev", "eth0"])).stdout;
  if (qdisc.includes("clsact")) out.push(qdisc.trim());
  const links = withNetns(topo.ns("a"), () => tcxLinks());
  if (links.length) out.push(`tcx links: ${JSON.stringify(links)}`);
  return out.filter(Boolean).join("\n");
}

/** What is attached on a's eth0 now, as tc or bpftool lists it. */
async function attachedNow(topo: Topology, mode: string): Promise<string> {
  if (mode === "tcx") return JSON.stringify(withNetns(topo.ns("a"), () => tcxLinks()));
  return (await topo.run("a", ["tc", "filter", "show", "dev", "eth0", "ingress"])).stdout;
}

/** TCX links on eth0 (Debian's bpftool 7.1 predates TCX and cannot list them). */
function tcxLinks() {
  return [...listTcx("eth0", "ingress"), ...listTcx("eth0", "egress")];
}

for (
  const [mode, signal] of [["cls_bpf", "SIGTERM"], ["cls_bpf", "SIGINT"], [
    "tcx",
    "SIGKILL",
  ]] as const
) {
  kernelTest(
    `after ${signal}, no ${mode} program, filter or qdisc of ours stays on the interface`,
    async () => {
      await using topo = await Topology.pair(4);
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "tests/fixtures/hold_tc.ts", topo.ns("a"), mode],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      reader.releaseLock();
      match(first, /attached/);
      match(await attachedNow(topo, mode), mode === "tcx" ? /"progId":\d+.*"progId":\d+/ : /bpf/);
      child.kill(signal);
      const status = await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
      equal(status.success, false);
      deepEqual(await leftovers(topo), "");
    },
  );
}

Deno.test("the CLI turns a missing libbpf into one line and exit 1", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "mod.ts", "probe"],
    cwd: root,
    env: { BELT_LIBBPF: "/nonexistent/libbpf.so" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(out.code, 1);
  equal(
    new TextDecoder().decode(out.stderr),
    "belt: cannot load libbpf (/nonexistent/libbpf.so) (install it with `apt-get install libbpf1`, or set BELT_LIBBPF to the library's path)\n",
  );
});

Deno.test("the CLI rejects an unknown command and an unknown flag with usage exit 2", async () => {
  for (
    const [args, line] of [
      [
        ["frobnicate"],
        "belt: unknown command 'frobnicate' (commands: chain, collect, count, detach, firewall, mirror, plugin, probe, run, sniff, trace, version)\n",
      ],
      [["probe", "--bogus"], "belt: probe: unknown option '--bogus' (see `belt probe --help`)\n"],
    ] as const
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "mod.ts", ...args],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    deepEqual([out.code, new TextDecoder().decode(out.stderr)], [2, line]);
  }
});

kernelTest("not root: the CLI says so in one line and exits 1", async () => {
  const home = await Deno.makeTempDir({ prefix: "belt-nobody-" });
  try {
    await Deno.chown(home, 65534, 65534);
    const out = await new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        Deno.execPath(),
        "run",
        "-A",
        "mod.ts",
        "probe",
      ],
      cwd: root,
      env: { HOME: home, DENO_DIR: home },
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(out.code, 1);
    match(
      new TextDecoder().decode(out.stderr),
      /^belt: .*permission denied \(run as root \(sudo\) or grant CAP_BPF/,
    );
    equal(new TextDecoder().decode(out.stderr).trim().split("\n").length, 1);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

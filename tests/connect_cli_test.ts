/**
 * `belt trace connect` at its edges, as users run it: bad input, no root,
 * no tracefs, --count, signals and SIGKILL, and its help. Whatever happens,
 * no program of the tracer (ct_*) and no link of one may stay in the kernel.
 * The tracer runs inside namespaces the tests create; its test traffic stays
 * between them, and --port/--dst filters keep other traffic out.
 */
import { deepEqual, doesNotMatch, equal, match, notEqual, ok } from "node:assert/strict";
import { CONNECT_HELP } from "../plugins/mod.ts";
import { eventually, kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";
import { Background, BELT, run } from "./harness/process.ts";
import type { Result } from "./harness/process.ts";

const NOBODY = 65534;
const decoder = new TextDecoder();

/** Enters a host's network namespace only (unlike `ip netns exec`, /sys stays as it is). */
function netns(topo: Topology, host: string): string[] {
  return ["nsenter", `--net=/run/netns/${topo.ns(host)}`];
}

/** Starts a long-running command; its stdout is read at the end, its stderr live. */
function spawn(cmd: string[]): Background {
  return new Background(
    new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
}

/** Stops `bg` with `signal`; SIGKILL if it has not ended after `ms` (a hang fails the test). */
async function stopWithin(bg: Background, signal: Deno.Signal, ms = 10_000): Promise<Result> {
  const timer = setTimeout(() => {
    try {
      bg.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, ms);
  try {
    const r = await bg.stop(signal);
    return { code: r.code, stdout: decoder.decode(r.stdout), stderr: r.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Kills what a test started, also when it failed half-way. */
async function reap(procs: Background[]): Promise<void> {
  for (const bg of procs) await stopWithin(bg, "SIGKILL", 5_000).catch(() => {});
}

/** Refused connection attempts from a host (a closed port, bash only); bounded. */
async function refusedConnects(
  topo: Topology,
  host: string,
  addr: string,
  port: number,
  n: number,
): Promise<void> {
  ok(/^198\.18\./.test(addr) && n <= 100);
  await topo.run(host, [
    "timeout",
    "10",
    "bash",
    "-c",
    `for ((i = 0; i < ${n}; i++)); do (exec 3<>/dev/tcp/${addr}/${port}) 2>/dev/null; done; true`,
  ]);
}

// ---------------------------------------------------------------------------
// What the kernel holds: the tracer's programs (all named ct_*) and their links.

interface ProgInfo {
  id: number;
  name?: string;
}
interface LinkInfo {
  id: number;
  prog_id: number;
  type?: string;
}

async function bpftool<T>(what: "prog" | "link"): Promise<T[]> {
  const r = await run(["bpftool", what, "show", "-j"], 15_000);
  equal(r.code, 0, `bpftool ${what} show: ${r.stderr}`);
  return JSON.parse(r.stdout || "[]") as T[];
}

/** The tracer's programs and the links attached to them, now. */
async function tracerObjects(): Promise<{ progs: ProgInfo[]; links: LinkInfo[] }> {
  const progs = (await bpftool<ProgInfo>("prog")).filter((p) => p.name?.startsWith("ct_"));
  const ids = new Set(progs.map((p) => p.id));
  const links = (await bpftool<LinkInfo>("link")).filter((l) => ids.has(l.prog_id));
  return { progs, links };
}

/** BPF programs and links a process holds by file descriptor (a link holds its program). */
function heldBy(pid: number | string): { progs: Set<number>; links: Set<number> } {
  const progs = new Set<number>(), links = new Set<number>();
  let fds: Deno.DirEntry[];
  try {
    fds = [...Deno.readDirSync(`/proc/${pid}/fd`)];
  } catch {
    return { progs, links }; // gone, or a kernel thread
  }
  for (const fd of fds) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`);
      if (target !== "anon_inode:bpf-prog" && target !== "anon_inode:bpf_link") continue;
      const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`);
      const field = (name: string) =>
        Number(new RegExp(`^${name}:\\s*(\\d+)`, "m").exec(info)?.[1]);
      if (field("prog_id")) progs.add(field("prog_id"));
      if (field("link_id")) links.add(field("link_id"));
    } catch {
      // closed meanwhile
    }
  }
  return { progs, links };
}

/** Everything every live process holds. */
function heldByAnyone(): { progs: Set<number>; links: Set<number> } {
  const all = { progs: new Set<number>(), links: new Set<number>() };
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const held = heldBy(entry.name);
    held.progs.forEach((id) => all.progs.add(id));
    held.links.forEach((id) => all.links.add(id));
  }
  return all;
}

/**
 * Tracer programs and links no live process holds: what a belt that exited
 * left behind (pinned, or otherwise kept). Other tests may be tracing at
 * the same time; their objects are held by their processes and do not count.
 */
async function strays(): Promise<string> {
  const { progs, links } = await tracerObjects();
  if (!progs.length && !links.length) return "";
  const held = heldByAnyone();
  return [
    ...progs.filter((p) => !held.progs.has(p.id)).map((p) => `program ${p.id} ${p.name}`),
    ...links.filter((l) => !held.links.has(l.id)).map((l) =>
      `link ${l.id} (${l.type}) of program ${l.prog_id}`
    ),
  ].join(", ");
}

async function assertNothingLeft(what: string): Promise<void> {
  const clean = await eventually(async () => (await strays()) === "", 5_000, 100);
  ok(clean, `${what} left attached: ${await strays()}`);
}

/** The tracer's programs and links a running belt holds (checked to be there). */
async function tracerHeldBy(pid: number): Promise<{ progs: number[]; links: number[] }> {
  const { progs, links } = await tracerObjects();
  const held = heldBy(pid);
  const mine = {
    progs: progs.filter((p) => held.progs.has(p.id)),
    links: links.filter((l) => held.links.has(l.id)).map((l) => l.id),
  };
  const names = mine.progs.map((p) => p.name);
  ok(names.includes("ct_state"), `belt (pid ${pid}) holds no ct_state: ${JSON.stringify(mine)}`);
  ok(names.some((n) => n?.startsWith("ct_sys_enter_co")), `no ct_sys_enter_connect: ${names}`);
  ok(mine.links.length >= names.length, `fewer links than programs: ${JSON.stringify(mine)}`);
  return { progs: mine.progs.map((p) => p.id), links: mine.links };
}

/** Waits (bounded) until none of `ids` exists in the kernel any more. */
async function assertGone(ids: { progs: number[]; links: number[] }, what: string) {
  const left = async () => {
    const { progs, links } = await tracerObjects();
    return [
      ...progs.filter((p) => ids.progs.includes(p.id)).map((p) => `program ${p.id} ${p.name}`),
      ...links.filter((l) => ids.links.includes(l.id)).map((l) => `link ${l.id}`),
    ].join(", ");
  };
  ok(await eventually(async () => (await left()) === "", 5_000, 100), `${what}: ${await left()}`);
}

/** Asserts the one-line error contract: exactly one `belt: ` line, no stack trace, no output. */
function assertOneLine(r: Result, what: string, code: number, expected: RegExp): string {
  const lines = r.stderr.trim().split("\n");
  equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  const line = lines[0]!;
  match(line, /^belt: /, what);
  match(line, expected, what);
  doesNotMatch(r.stderr, /^\s+at /m, `${what}: stack trace`);
  equal(r.stdout, "", `${what}: nothing on stdout`);
  equal(r.code, code, `${what}: exit ${r.code}, want ${code}; ${line}`);
  return line;
}

/** JSON lines; each must parse. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").filter(Boolean).map((line) => {
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`not a JSON line: ${line}`);
    }
  });
}

// ---------------------------------------------------------------------------

kernelTest("trace connect: bad input gives one line, exit 2 or 1, and leaves nothing", async () => {
  await using topo = await Topology.create(["a"], []);
  const belt = (args: string[]) => run([...netns(topo, "a"), ...BELT, ...args]);
  const nine = Array.from({ length: 9 }, (_, i) => ["--dst", `198.18.${180 + i}.0/24`]).flat();
  const usage = /see `belt /;
  // [args after `trace connect`, exit code, what the line says]
  const cases: [string[], number, RegExp][] = [
    [["--hook", "nope"], 2, /--hook 'nope' is not a hook/],
    [["--dst", "198.18.0.1/24"], 2, /--dst: .*host bits set; did you mean 198\.18\.0\.0\/24/],
    [["--dst", "198.18.0.0/33"], 2, /--dst: prefix length 33 is out of range/],
    [["--dst", "bogus"], 2, /--dst: 'bogus' is not an IPv4 or IPv6 address/],
    [["--port", "70000"], 2, /--port wants a whole number 0-65535, got '70000'/],
    [["--port", "x"], 2, /--port wants a whole number, got 'x'/],
    [["--port", "1,2,3,4,5,6,7,8,9"], 1, /--port: at most 8 ports, got 9/],
    [["--pid", "abc"], 2, /--pid wants a whole number, got 'abc'/],
    [["--pid", "0"], 2, /--pid wants a process id > 0/],
    [["--uid", "nosuchuser"], 1, /--uid: no user 'nosuchuser'/],
    [["--comm", "abcdefghijklmnop"], 1, /--comm 'abcdefghijklmnop' is longer than 15 bytes/],
    [["--comm", "ä".repeat(8)], 1, /--comm .* is longer than 15 bytes/], // 8 characters, 16 bytes
    [["--outcome", "nope"], 2, /unknown outcome 'nope'/],
    [nine, 1, /--dst: at most 8 networks, got 9/],
    [["--count", "-1"], 2, /--count/],
    [["--count=-1"], 2, /--count wants a whole number, got '-1'/],
    [["--duration", "0"], 2, /--duration wants a number of seconds > 0, got '0'/],
    [["--frobnicate"], 2, /trace connect: unknown option '--frobnicate'/],
  ];
  for (const [args, code, expected] of cases) {
    // --duration 1 first: should a bad value get through, the command still ends.
    const bound = args.some((a) => a.startsWith("--duration")) ? [] : ["--duration", "1"];
    const full = ["trace", "connect", ...bound, ...args];
    const what = full.join(" ");
    const line = assertOneLine(await belt(full), what, code, expected);
    equal(usage.test(line), code === 2, `${what}: exit 2 exactly when the hint points to help`);
    await assertNothingLeft(what);
  }
  const sub = ["trace", "nope"];
  assertOneLine(
    await belt(sub),
    sub.join(" "),
    2,
    /trace: unknown subcommand 'nope'.*belt trace --help/,
  );
  await assertNothingLeft(sub.join(" "));

  // kprobe and fentry: refused on a kernel without them (as `belt probe` says), else they work.
  const probe = await belt(["probe", "--json"]);
  equal(probe.code, 0, probe.stderr);
  const features = new Map(
    jsonLines(probe.stdout).map((f) => [f.name as string, f.available as boolean]),
  );
  for (const [hook, feature] of [["kprobe", "kprobes"], ["fentry", "fentry"]] as const) {
    const args = ["trace", "connect", "--hook", hook, "--duration", "1", "--port", "47180"];
    const r = await belt(args);
    const what = args.join(" ");
    ok(features.has(feature), `belt probe says nothing about ${feature}`);
    if (features.get(feature)) {
      equal(r.code, 0, `${what}: ${r.stderr}`);
      match(r.stderr, new RegExp(`tracing TCP connects with ${hook} hooks`));
    } else {
      const line = assertOneLine(r, what, 1, new RegExp(`^belt: ${hook} hooks .*not supported`));
      match(line, /--hook auto/, `${what}: the line says what to use instead`);
    }
    await assertNothingLeft(what);
  }
});

/**
 * A user without privileges (uid 65534, no groups, no capabilities) in a
 * namespace of its own, with a home and a deno cache it may write; checks
 * first that it can read the repo and run deno.
 */
async function nobody(): Promise<
  AsyncDisposable & { run(cmd: string[]): Promise<Result> }
> {
  const topo = await Topology.create(["a"], []);
  const home = await Deno.makeTempDir({ prefix: "belt-nobody-" });
  const dispose = async () => {
    await Deno.remove(home, { recursive: true });
    await topo.destroy();
  };
  const runAs = (cmd: string[]) =>
    run(
      [
        ...netns(topo, "a"),
        "setpriv",
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--clear-groups",
        ...cmd,
      ],
      60_000,
      { env: { HOME: home, DENO_DIR: `${home}/deno`, NO_COLOR: "1" }, cwd: home },
    );
  try {
    await Deno.chown(home, NOBODY, NOBODY);
    const status = await runAs(["cat", "/proc/self/status"]);
    equal(status.code, 0, status.stderr);
    match(status.stdout, new RegExp(`^Uid:\\s+${NOBODY}\\s`, "m"));
    match(status.stdout, /^CapEff:\s+0+$/m, `uid ${NOBODY} still has capabilities`);
    const mod = BELT.at(-1)!;
    const readable = await runAs([
      "sh",
      "-c",
      'test -r "$1" && test -x "$(command -v deno)"',
      "sh",
      mod,
    ]);
    equal(readable.code, 0, `uid ${NOBODY} cannot read ${mod} or run deno: fix the test host`);
  } catch (e) {
    await dispose();
    throw e;
  }
  return { run: runAs, [Symbol.asyncDispose]: dispose };
}

/** The line belt gives a user without privileges; asserts the one-line contract. */
async function refusedToNobody(user: { run(cmd: string[]): Promise<Result> }, args: string[]) {
  const what = `uid ${NOBODY}: ${args.join(" ")}`;
  const r = await user.run([...BELT, ...args]);
  ok(r.code !== 0, `${what}: exit 0`);
  const lines = r.stderr.trim().split("\n");
  equal(lines.length, 1, `${what}: one line, got:\n${r.stderr}`);
  const line = lines[0]!;
  match(line, /^belt: /, what);
  match(line, /permission denied|not permitted|EPERM/i, `${what}: ${line}`);
  match(line, /root|CAP_BPF/, `${what}: says what is needed`);
  equal(r.stdout, "", what);
  await assertNothingLeft(what);
  return { line, what };
}

kernelTest("trace connect as a user without privileges: one line about permissions", async () => {
  await using user = await nobody();
  for (const hook of ["auto", "kprobe", "fentry"]) {
    await refusedToNobody(user, [
      "trace",
      "connect",
      "--hook",
      hook,
      "--duration",
      "1",
      "--port",
      "47181",
    ]);
  }
});

kernelTest(
  "trace connect --hook tracepoint as a user without privileges blames permissions, not tracefs",
  async () => {
    await using user = await nobody();
    const { line, what } = await refusedToNobody(user, [
      "trace",
      "connect",
      "--hook",
      "tracepoint",
      "--duration",
      "1",
      "--port",
      "47182",
    ]);
    // Where tracefs is mounted (mode 0700), a user who may not look inside is not told it is missing.
    const mounted = Deno.readTextFileSync("/proc/self/mounts").split("\n")
      .some((l) => l.split(" ")[1] === "/sys/kernel/tracing" && l.split(" ")[2] === "tracefs");
    if (mounted) {
      doesNotMatch(
        line,
        /not mounted/,
        `${what}: tracefs is mounted at /sys/kernel/tracing, only this user may not use it; ` +
          `belt said: ${line}`,
      );
    }
  },
);

kernelTest("trace connect mounts tracefs itself where it is missing", async () => {
  const SUBNET = 183, PORT = 47183;
  const tracefsIn = (pid: number | "self") =>
    Deno.readTextFileSync(`/proc/${pid}/mounts`).split("\n")
      .filter((l) => l.split(" ")[2] === "tracefs").map((l) => l.split(" ")[1]).sort();
  const before = tracefsIn("self");
  await using topo = await Topology.pair(SUBNET);
  const procs: Background[] = [];
  try {
    // A private mount namespace: the unmounts happen there only (refused if it is ours).
    const script = `set -u
      [ "$(readlink /proc/self/ns/mnt)" != "$1" ] || { echo "same mount namespace" >&2; exit 97; }
      shift
      for d in /sys/kernel/debug/tracing /sys/kernel/tracing; do
        n=0
        while mountpoint -q "$d"; do
          umount "$d" || exit 98
          n=$((n + 1)); [ $n -lt 10 ] || exit 98
        done
      done
      for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
        [ ! -e "$d/events" ] || { echo "tracefs still at $d" >&2; exit 99; }
      done
      echo "unmounted" >&2
      exec "$@"`;
    const bg = spawn([
      ...netns(topo, "a"),
      "unshare",
      "-m",
      "--propagation",
      "private",
      "bash",
      "-c",
      script,
      "bash",
      Deno.readLinkSync("/proc/self/ns/mnt"),
      ...BELT,
      "trace",
      "connect",
      "--hook",
      "tracepoint",
      "--json",
      "--port",
      String(PORT),
      "--dst",
      `198.18.${SUBNET}.0/24`,
      "--count",
      "1",
      "--duration",
      "10",
    ]);
    procs.push(bg);
    await bg.waitFor(/tracing TCP connects with tracepoint hooks/, 30_000);
    match(bg.stderr, /^unmounted$/m);
    // nsenter, unshare and bash each exec the next: the pid is belt's.
    notEqual(
      Deno.readLinkSync(`/proc/${bg.child.pid}/ns/mnt`),
      Deno.readLinkSync("/proc/self/ns/mnt"),
    );
    deepEqual(tracefsIn(bg.child.pid), ["/sys/kernel/tracing"], "belt mounted tracefs");
    await tracerHeldBy(bg.child.pid);
    await refusedConnects(topo, "a", `198.18.${SUBNET}.2`, PORT, 1);
    const r = await bg.finished(20_000);
    const stdout = decoder.decode(r.stdout);
    equal(r.code, 0, `exit ${r.code}: ${r.stderr}\n${stdout}`);
    const json = jsonLines(stdout);
    deepEqual(json.at(-1), { kind: "summary", hook: "tracepoint", events: 1, lost: 0 });
    equal(json[0]!.dport, PORT);
  } finally {
    await reap(procs);
    deepEqual(tracefsIn("self"), before, "the test runner's own mounts changed");
  }
  await assertNothingLeft("trace connect after mounting tracefs");
});

kernelTest("trace connect --count N --json: N events, then a summary, exit 0", async () => {
  const SUBNET = 184, PORT = 47184, N = 3;
  await using topo = await Topology.pair(SUBNET);
  const procs: Background[] = [];
  try {
    // As users run it: ip netns exec (its fresh /sys has no tracefs: belt mounts one).
    const bg = new Background(topo.spawn("a", [
      ...BELT,
      "trace",
      "connect",
      "--hook",
      "tracepoint",
      "--json",
      "--count",
      String(N),
      "--port",
      String(PORT),
      "--dst",
      `198.18.${SUBNET}.0/24`,
    ]));
    procs.push(bg);
    await bg.waitFor(/tracing TCP connects with tracepoint hooks/, 30_000);
    await tracerHeldBy(bg.child.pid);
    // More attempts than N, in one burst: the count cuts a batch.
    await refusedConnects(topo, "a", `198.18.${SUBNET}.2`, PORT, N + 3);
    const r = await bg.finished(10_000); // no --duration: only the count can end it
    const stdout = decoder.decode(r.stdout);
    equal(r.code, 0, `exit ${r.code} (137: it did not stop by itself): ${r.stderr}\n${stdout}`);
    const lines = jsonLines(stdout);
    equal(lines.length, N + 1, stdout);
    for (const e of lines.slice(0, -1)) {
      equal(e.hook, "tracepoint", JSON.stringify(e));
      equal(e.kind, "connect", JSON.stringify(e));
      equal(e.dport, PORT, JSON.stringify(e));
    }
    deepEqual(lines.at(-1), { kind: "summary", hook: "tracepoint", events: N, lost: 0 });
    equal(r.stderr.trim(), "belt: tracing TCP connects with tracepoint hooks");
  } finally {
    await reap(procs);
  }
  await assertNothingLeft("trace connect --count");
});

kernelTest(
  "trace connect: SIGTERM and SIGINT end it with a summary, SIGKILL leaves nothing",
  async (t) => {
    const SUBNET = 185, PORT = 47185;
    await using topo = await Topology.pair(SUBNET);
    const start = async (procs: Background[], extra: string[]) => {
      const bg = new Background(topo.spawn("a", [
        ...BELT,
        "trace",
        "connect",
        "--hook",
        "tracepoint",
        "--port",
        String(PORT),
        "--dst",
        `198.18.${SUBNET}.0/24`,
        ...extra,
      ]));
      procs.push(bg);
      await bg.waitFor(/tracing TCP connects with tracepoint hooks/, 30_000);
      return { bg, ids: await tracerHeldBy(bg.child.pid) };
    };

    await t.step("SIGTERM, --json: exit 0, the events, then the summary", async () => {
      const procs: Background[] = [];
      try {
        const { bg, ids } = await start(procs, ["--json"]);
        await refusedConnects(topo, "a", `198.18.${SUBNET}.2`, PORT, 2);
        await new Promise((r) => setTimeout(r, 300));
        const r = await stopWithin(bg, "SIGTERM");
        equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
        const lines = jsonLines(r.stdout);
        deepEqual(lines.at(-1), { kind: "summary", hook: "tracepoint", events: 2, lost: 0 });
        equal(lines.length, 3, r.stdout);
        await assertGone(ids, "after SIGTERM, belt's programs and links");
      } finally {
        await reap(procs);
      }
      await assertNothingLeft("SIGTERM");
    });

    await t.step("SIGINT, table: exit 0, the rows, the summary on stderr", async () => {
      const procs: Background[] = [];
      try {
        const { bg, ids } = await start(procs, []);
        await refusedConnects(topo, "a", `198.18.${SUBNET}.2`, PORT, 2);
        await new Promise((r) => setTimeout(r, 300));
        const r = await stopWithin(bg, "SIGINT");
        equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
        const rows = r.stdout.trim().split("\n");
        match(rows[0]!, /^TIME\s+PID\s+COMM\s+SRC\s+DST\s+OUTCOME\s+LATENCY$/);
        equal(rows.length, 3, r.stdout);
        for (const row of rows.slice(1)) {
          match(row, new RegExp(`198\\.18\\.${SUBNET}\\.2:${PORT}\\s`));
        }
        match(r.stderr.trim().split("\n").at(-1)!, /^belt: 2 events, 0 lost \(hook: tracepoint\)$/);
        await assertGone(ids, "after SIGINT, belt's programs and links");
      } finally {
        await reap(procs);
      }
      await assertNothingLeft("SIGINT");
    });

    await t.step("SIGKILL: the kernel drops the links with the descriptors", async () => {
      const procs: Background[] = [];
      try {
        const { bg, ids } = await start(procs, ["--json"]);
        const r = await stopWithin(bg, "SIGKILL");
        equal(r.code, 137);
        await assertGone(ids, "after SIGKILL, belt's programs and links");
      } finally {
        await reap(procs);
      }
      await assertNothingLeft("SIGKILL");
    });
  },
);

Deno.test("trace connect --help and trace --help document every option", async () => {
  const belt = (args: string[]) => run([...BELT, ...args]);
  // The options CONNECT_HELP lists, and whether each takes a value ("--pid N").
  const documented = [
    ...CONNECT_HELP.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)( [A-Z]+)?/gm),
  ].map((m) => ({ flag: m[1]!, value: Boolean(m[2]) }));
  const flags = documented.map((d) => d.flag);
  for (const want of ["--accept", "--close", "--pid", "--port", "--dst", "--count", "--json"]) {
    ok(flags.includes(want), `CONNECT_HELP parsed wrong: ${flags}`);
  }

  for (const args of [["trace", "connect", "--help"], ["trace", "connect", "-h"]]) {
    const r = await belt(args);
    equal(r.code, 0, r.stderr);
    equal(r.stderr, "");
    for (const flag of flags) ok(r.stdout.includes(flag), `${args.join(" ")} lacks ${flag}`);
    equal(r.stdout.trim(), CONNECT_HELP.trim());
  }

  // Every documented option is one the parser accepts (--help comes after them all).
  const all = documented.flatMap((d) => d.value ? [d.flag, "1"] : [d.flag]);
  const r = await belt(["trace", "connect", ...all, "--help"]);
  equal(r.code, 0, `${all.join(" ")}: ${r.stderr}`);
  // ... and every option the parser accepts is documented.
  const source = Deno.readTextFileSync(new URL("../cli/trace.ts", import.meta.url));
  const block = /parseCommand\("trace connect", args, \{([^]*?)\n\s*\}\);/.exec(source)?.[1];
  ok(block, "cannot find trace connect's options in cli/trace.ts");
  const parsed = [...block.matchAll(/^\s*(\w+): \{ type:/gm)].map((m) => `--${m[1]}`);
  ok(parsed.length >= 10, `options read from cli/trace.ts: ${parsed}`);
  for (const flag of parsed) ok(flags.includes(flag), `${flag} is accepted but not in --help`);

  // `belt trace --help` names the subcommand and where its options are.
  const trace = await belt(["trace", "--help"]);
  equal(trace.code, 0, trace.stderr);
  match(trace.stdout, /belt trace connect \[options\]/);
  match(trace.stdout, /belt trace connect --help/);
  // `belt trace` alone is a usage error: the same text, exit 2.
  const bare = await belt(["trace"]);
  equal(bare.code, 2);
  equal(bare.stdout, trace.stdout);
});

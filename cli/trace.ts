/** `belt trace connect`: every TCP connection attempt, live, as a table or JSON lines. */
import { BeltError } from "../bpf/mod.ts";
import { CONNECT_HELP, ConnectTracer, FAILED_OUTCOMES } from "../plugins/mod.ts";
import type { ConnectEvent, ConnectFilter, ConnectOutcome } from "../plugins/mod.ts";
import { parseCommand, wholeNumber } from "./args.ts";
import { seconds, stopCode, untilStopped } from "./stop.ts";
import { jsonLine, writeAllStdout } from "./output.ts";

const TRACE_HELP = `belt trace — trace kernel events

Usage: belt trace connect [options]   every TCP connection attempt (see belt trace connect --help)`;

/** Runs `belt trace SUBCOMMAND`. */
export async function traceCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "connect") return await traceConnect(rest);
  if (!sub || sub === "--help" || sub === "-h") {
    console.log(TRACE_HELP);
    return sub ? 0 : 2;
  }
  throw new BeltError(`trace: unknown subcommand '${sub}'`, { hint: "see `belt trace --help`" });
}

function uidOf(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) =>
    l.split(":")[0] === text
  );
  if (!line) {
    throw new BeltError(`--uid: no user '${text}'`, { hint: "give a user name or a numeric uid" });
  }
  return Number(line.split(":")[2]);
}

const numberOption = (value: string | undefined, flag: string) =>
  wholeNumber(value, flag, "trace connect");

function list(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

function filterOf(values: Record<string, unknown>): ConnectFilter {
  const ports = list(values.port as string[]).map((p) => numberOption(p, "--port")!);
  const outcomes = [
    ...(values.failed ? FAILED_OUTCOMES : []),
    ...list(values.outcome as string[]) as ConnectOutcome[],
  ];
  return {
    pid: numberOption(values.pid as string | undefined, "--pid"),
    uid: values.uid === undefined ? undefined : uidOf(values.uid as string),
    comm: values.comm as string | undefined,
    dst: list(values.dst as string[]),
    ports,
    outcomes: [...new Set(outcomes)],
  };
}

const COLUMNS = [12, 8, 16, 28, 28, 20, 10];

function row(cells: string[]): string {
  return cells.map((c, i) => i < cells.length - 1 ? c.padEnd(COLUMNS[i]!) : c).join(" ");
}

function endpoint(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

function outcomeText(e: ConnectEvent): string {
  if (e.kind === "accept") return "accepted";
  if (e.kind === "close") return `closed tx ${e.bytesSent} rx ${e.bytesReceived}`;
  return e.error && e.outcome !== "refused" && e.outcome !== "timeout"
    ? `${e.outcome} ${e.error}`
    : e.outcome;
}

function latencyText(e: ConnectEvent): string {
  const us = e.latencyUs;
  return us >= 1e6
    ? `${(us / 1e6).toFixed(2)} s`
    : us >= 1e3
    ? `${(us / 1e3).toFixed(2)} ms`
    : `${us.toFixed(0)} µs`;
}

function formatEvent(e: ConnectEvent, json: boolean): string {
  // No bigints in an event: plain JSON.stringify, without jsonLine's replacer (2x faster).
  if (json) return JSON.stringify({ ...e, time: new Date(e.time).toISOString() });
  return row([
    clock(e.time),
    String(e.pid),
    e.comm,
    endpoint(e.src, e.sport),
    endpoint(e.dst, e.dport),
    outcomeText(e),
    latencyText(e),
  ]);
}

async function traceConnect(args: string[]): Promise<number> {
  const { values } = parseCommand("trace connect", args, {
    accept: { type: "boolean" },
    close: { type: "boolean" },
    pid: { type: "string" },
    uid: { type: "string" },
    comm: { type: "string" },
    port: { type: "string", multiple: true },
    dst: { type: "string", multiple: true },
    failed: { type: "boolean" },
    outcome: { type: "string", multiple: true },
    hook: { type: "string" },
    count: { type: "string" },
    duration: { type: "string" },
  });
  if (values.help) {
    console.log(CONNECT_HELP);
    return 0;
  }
  const json = values.json ?? false;
  const count = numberOption(values.count, "--count");
  const duration = seconds(values.duration, "--duration"); // all input checked before loading
  using tracer = ConnectTracer.open({
    hook: (values.hook ?? "auto") as "auto",
    accept: values.accept,
    close: values.close,
    filter: filterOf(values),
  });
  const skipped = tracer.skipped.map((s) => `${s.hook}: ${s.reason}`).join("; ");
  console.error(
    `belt: tracing TCP connects with ${tracer.hook} hooks${skipped ? ` (skipped ${skipped})` : ""}`,
  );
  if (!json) console.log(row(["TIME", "PID", "COMM", "SRC", "DST", "OUTCOME", "LATENCY"]));
  let printed = 0;
  let lostShown = 0n;
  const encoder = new TextEncoder();
  const out = (events: ConnectEvent[]) => {
    const take = count === undefined ? events : events.slice(0, count - printed);
    if (!take.length) return;
    printed += take.length;
    writeAllStdout(encoder.encode(take.map((e) => formatEvent(e, json)).join("\n") + "\n"));
  };
  // Never silent, but read once a second: a per-CPU map read per batch costs more than the batch.
  const reportLost = () => {
    const lost = tracer.lost;
    if (lost > lostShown) {
      console.error(
        `belt: ${lost - lostShown} events lost (the ring buffer was full), ${lost} in all`,
      );
      lostShown = lost;
    }
    return undefined;
  };
  const enough = (async () => {
    for await (const batch of tracer.batches()) {
      out(batch);
      if (count !== undefined && printed >= count) return "count";
    }
    return "closed";
  })();
  const reason = await untilStopped(
    duration,
    () => `${printed} events, ${lostShown} lost`,
    reportLost,
    enough,
  );
  if (count === undefined || printed < count) out(tracer.drain()); // what arrived before the stop
  reportLost();
  const summary = {
    kind: "summary",
    hook: tracer.hook,
    events: printed,
    lost: Number(tracer.lost),
  };
  tracer.close();
  await enough;
  if (json) console.log(jsonLine(summary));
  else {console.error(
      `belt: ${summary.events} events, ${summary.lost} lost (hook: ${summary.hook})`,
    );}
  return stopCode(reason);
}

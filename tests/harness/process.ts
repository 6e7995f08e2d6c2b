/**
 * Commands in tests: run to their end with a deadline, or long-running in
 * test hosts (wait for a line, stop, collect output).
 */
import type { Topology } from "./netns.ts";

const decoder = new TextDecoder();

/** What a finished command said. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end, killed after `ms` (its code is then 137);
 * `opts.env` adds to the environment, `opts.cwd` sets the directory.
 */
export async function run(
  cmd: string[],
  ms = 30_000,
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Result> {
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...opts,
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, ms);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A background command whose stderr is watched line by line. */
export class Background {
  readonly child: Deno.ChildProcess;
  #stderr = "";
  #stdout: Promise<Uint8Array>;
  #stderrDone: Promise<void>;

  constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.#stdout = new Response(child.stdout).bytes();
    this.#stderrDone = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) this.#stderr += dec.decode(chunk, { stream: true });
    })();
  }

  /** stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Waits (bounded) until stderr matches `re`; throws with what it said otherwise. */
  async waitFor(re: RegExp, ms = 15000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!re.test(this.#stderr)) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${re}; stderr: ${this.#stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits (bounded) for the command to end by itself; then as stop(). */
  async finished(ms = 10000): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
    const timer = setTimeout(() => this.child.kill("SIGKILL"), ms);
    try {
      await this.child.status;
    } finally {
      clearTimeout(timer);
    }
    return await this.stop();
  }

  /** Sends `signal` (if still running) and returns exit code, stdout and stderr. */
  async stop(
    signal: Deno.Signal = "SIGTERM",
  ): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
    try {
      this.child.kill(signal);
    } catch {
      // already exited
    }
    const status = await this.child.status;
    const stdout = await this.#stdout;
    await this.#stderrDone;
    return { code: status.code, stdout, stderr: this.#stderr };
  }
}

/** Starts `cmd` in a host, with stdout and stderr piped. */
export function background(topo: Topology, host: string, cmd: string[]): Background {
  return new Background(topo.spawn(host, cmd));
}

/** Starts tcpdump writing `file`; resolves once it listens. */
export async function capture(
  topo: Topology,
  host: string,
  iface: string,
  file: string,
  extra: string[] = [],
): Promise<Background> {
  const bg = background(topo, host, [
    "tcpdump",
    "-i",
    iface,
    "-w",
    file,
    "-U",
    "-s",
    "0",
    "--immediate-mode",
    ...extra,
  ]);
  await bg.waitFor(/listening on/);
  return bg;
}

/** The belt CLI as the user runs it: `deno run -A mod.ts ...`. */
export const BELT = ["deno", "run", "-A", new URL("../../mod.ts", import.meta.url).pathname];

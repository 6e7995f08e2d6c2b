/**
 * Running the bench's child processes: every one gets a deadline after which
 * it is killed (by its own handle, never by name), and failures carry stderr.
 */

/** Output of a finished command. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();
const children = new Set<Deno.ChildProcess>();

/** Starts a command with piped output, remembered until it exits. */
export function spawnPiped(cmd: string[], cwd?: string): Deno.ChildProcess {
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  child.status.finally(() => children.delete(child));
  return child;
}

/** Kills every child this process started that is still running (on failure or a signal). */
export function killChildren(): void {
  for (const child of children) killQuietly(child);
}

/** Runs a command to completion; throws on a non-zero exit unless `check` is false. */
export async function run(
  cmd: string[],
  options: { timeoutMs?: number; check?: boolean; cwd?: string } = {},
): Promise<CommandResult> {
  const child = spawnPiped(cmd, options.cwd);
  const timer = setTimeout(() => killQuietly(child), options.timeoutMs ?? 60_000);
  try {
    const out = await child.output();
    const result = {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
    if ((options.check ?? true) && out.code !== 0) {
      throw new Error(`${cmd.join(" ")} exited ${out.code}: ${result.stderr.trim()}`);
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a program is on PATH. */
export async function have(program: string): Promise<boolean> {
  const r = await run(["sh", "-c", `command -v ${program}`], { check: false, timeoutMs: 5_000 });
  return r.code === 0;
}

/** Kills a child we started; it may have exited already. */
export function killQuietly(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * A helper that prints "ready" once set up and one JSON line when done.
 * `ready` resolves at the first line; `result` with the parsed JSON at exit.
 */
export interface JsonChild<T> {
  ready: Promise<void>;
  result: Promise<T>;
}

/** Spawns a helper speaking the ready/JSON protocol, killed after `timeoutMs`. */
export function spawnJson<T>(cmd: string[], timeoutMs: number, expectReady: boolean): JsonChild<T> {
  const child = spawnPiped(cmd);
  const timer = setTimeout(() => killQuietly(child), timeoutMs);
  let markReady: () => void = () => {};
  let failReady: (e: unknown) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  if (!expectReady) markReady();
  const stderr = new Response(child.stderr).text();
  const result = (async () => {
    let text = "";
    try {
      for await (const chunk of child.stdout) {
        text += decoder.decode(chunk, { stream: true });
        if (text.includes("\n")) markReady();
      }
      const status = await child.status;
      const err = await stderr;
      if (!status.success) {
        throw new Error(`${cmd.join(" ")} exited ${status.code}: ${err.trim()}`);
      }
      const line = text.trim().split("\n").pop() ?? "";
      return JSON.parse(line) as T;
    } catch (e) {
      failReady(e);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  })();
  // A caller that gave up at `ready` must not leave `result` as an unhandled rejection.
  result.catch(() => {});
  return { ready, result };
}

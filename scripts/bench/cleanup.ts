/**
 * Undo steps for everything the bench creates (pins, namespaces, temp dirs):
 * run in reverse order at the end, on failure, and on SIGINT/SIGTERM.
 */

type Step = { what: string; fn: () => Promise<void> | void };

const steps: Step[] = [];
const firstSteps: Step[] = [];
let running: Promise<void> | undefined;

/** Registers an undo step; the latest registered runs first. */
export function onCleanup(what: string, fn: () => Promise<void> | void): void {
  steps.push({ what, fn });
}

/** Registers a step that runs before all the others (e.g. stopping child processes). */
export function onCleanupFirst(what: string, fn: () => Promise<void> | void): void {
  firstSteps.push({ what, fn });
}

/** Runs every undo step once (later calls wait for that run); errors are reported, not thrown. */
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (firstSteps.length || steps.length) {
      const step = firstSteps.pop() ?? steps.pop()!;
      try {
        await step.fn();
      } catch (e) {
        console.error(`cleanup: ${step.what}: ${e instanceof Error ? e.message : e}`);
      }
    }
    running = undefined;
  })();
  return running;
}

/** On SIGINT/SIGTERM: clean up, then exit with the conventional code. */
export function cleanupOnSignals(): void {
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    Deno.addSignalListener(signal, () => {
      console.error(`\n${signal}: cleaning up`);
      cleanupAll().finally(() => Deno.exit(code));
    });
  }
}

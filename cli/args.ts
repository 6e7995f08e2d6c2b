/**
 * The CLI's argument parsing on node:util parseArgs (cliffy is on JSR, which
 * is out of reach here): unknown flags become one clear error line.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BeltError } from "../bpf/mod.ts";

/** Flags every command accepts. */
export const GLOBAL_FLAGS = {
  help: { type: "boolean", short: "h" },
  verbose: { type: "boolean", short: "v" },
  json: { type: "boolean" },
} as const;

/** Parses `args` with the command's own flags plus the global ones. */
export function parseCommand<
  T extends Record<string, { type: "boolean" | "string"; short?: string; multiple?: boolean }>,
>(
  command: string,
  args: string[],
  flags: T,
) {
  try {
    return parseArgs({
      args,
      options: { ...GLOBAL_FLAGS, ...flags },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    const message = (e as Error).message;
    const unknown = /Unknown option '([^']+)'/.exec(message)?.[1];
    const reason = unknown ? `unknown option '${unknown}'` : message.split(/\.\s|\n/)[0];
    throw new BeltError(`${command}: ${reason}`, {
      hint: `see \`belt ${command} --help\``,
    });
  }
}

/**
 * Parses a whole-number option (`--count 10`): undefined when absent; a value
 * that is not a whole number in [min, max] is a usage error pointing at the
 * command's help.
 */
export function wholeNumber(
  value: string | undefined,
  flag: string,
  command: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? min === 0 ? "" : ` >= ${min}`
      : ` from ${min} to ${max}`;
    throw new BeltError(`${flag} wants a whole number${range}, got '${value}'`, {
      hint: `see \`belt ${command} --help\``,
    });
  }
  return Number(value);
}

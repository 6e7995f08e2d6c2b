/** `belt plugin new NAME`: scaffold a plugin (C program, shared header, TS handler, test). */
import { join, relative, resolve } from "node:path";
import { BeltError, pathExists } from "../bpf/mod.ts";
import { parseCommand } from "./args.ts";
import { pluginTemplates } from "./plugin_templates.ts";

/** Help text of `belt plugin`. */
export const PLUGIN_HELP = `belt plugin new — scaffold a plugin of your own

Usage: belt plugin new NAME [--dir DIR]

Writes DIR/NAME/ (DIR defaults to ./plugins): NAME.h (structs shared with
TypeScript), NAME.bpf.c (a TC program that counts packets per direction and
passes them on), mod.ts (the plugin: programs, options, stats) and
NAME_test.ts (a layout test). Then:
  deno task build DIR/NAME/NAME.bpf.c      # compile and embed (needs clang)
  belt run belt.json                       # with { "plugin": "DIR/NAME/mod.ts" }
See docs/plugins.md.`;

const belt = new URL("..", import.meta.url).pathname;

/** Runs `belt plugin`. */
export function pluginCommand(args: string[]): number {
  const { values, positionals } = parseCommand("plugin", args, { dir: { type: "string" } });
  if (values.help) {
    console.log(PLUGIN_HELP);
    return 0;
  }
  const [sub, name, ...rest] = positionals;
  if (sub !== "new" || !name || rest.length) {
    throw new BeltError("plugin: use `belt plugin new NAME`", { hint: "see `belt plugin --help`" });
  }
  if (!/^[a-z][a-z0-9_]{0,14}$/.test(name)) {
    throw new BeltError(
      `plugin: name '${name}' must be lowercase letters, digits and _ (at most 15, a letter first)`,
      {
        hint: "it becomes C identifiers and a directory name",
      },
    );
  }
  const dir = resolve(values.dir ?? "plugins", name);
  if (pathExists(dir)) {
    throw new BeltError(`plugin: ${dir} exists already`, { hint: "choose another name or --dir" });
  }
  // Inside a belt checkout, import belt by relative path; elsewhere from JSR.
  const inside = !relative(belt, dir).startsWith("..");
  const beltImport = inside ? relativeImport(dir, join(belt, "mod.ts")) : "jsr:@belt/belt";
  Deno.mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(pluginTemplates(name, beltImport))) {
    Deno.writeTextFileSync(join(dir, file), text);
  }
  console.log(
    `created ${relative(Deno.cwd(), dir) || dir}/: ${
      Object.keys(pluginTemplates(name, "")).join(", ")
    }`,
  );
  console.log(`next: deno task build ${join(dir, `${name}.bpf.c`)}`);
  return 0;
}

function relativeImport(fromDir: string, target: string): string {
  const rel = relative(fromDir, target);
  return rel.startsWith(".") ? rel : `./${rel}`;
}

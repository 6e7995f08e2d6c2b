import { deepEqual } from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;

interface DocSymbol {
  name: string;
  declarations: { kind: string; jsDoc?: { doc?: string; tags?: { kind: string }[] } }[];
}

/** Public symbols of `entry` whose doc comment lacks `@example` (types need a doc only). */
async function missingExamples(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", entry],
    cwd: root,
    stdout: "piped",
  }).output();
  const doc = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    nodes: Record<string, { symbols: DocSymbol[] }>;
  };
  const missing: string[] = [];
  for (const { symbols } of Object.values(doc.nodes)) {
    for (const symbol of symbols) {
      for (const d of symbol.declarations) {
        const isType = d.kind === "interface" || d.kind === "typeAlias";
        const hasDoc = Boolean(d.jsDoc?.doc);
        const hasExample = d.jsDoc?.tags?.some((t) => t.kind === "example") ?? false;
        if (!hasDoc || (!isType && !hasExample)) missing.push(`${symbol.name} (${d.kind})`);
      }
    }
  }
  return missing.sort();
}

Deno.test("every public function, class and constant has a doc comment with an example", async () => {
  deepEqual(await missingExamples("mod.ts"), []);
});

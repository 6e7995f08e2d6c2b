import { equal, ok } from "node:assert/strict";
import { kernelTest } from "./harness/kernel.ts";
import { Topology } from "./harness/netns.ts";

const root = new URL("..", import.meta.url).pathname;

/** The blocks of docs/plugins.md marked `tutorial`, in order. */
function tutorialBlocks(): { lang: string; file?: string; body: string }[] {
  const doc = Deno.readTextFileSync(`${root}docs/plugins.md`);
  return [...doc.matchAll(/```(\w+) tutorial(?:=(\S+))?\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1]!,
    file: m[2],
    body: m[3]!,
  }));
}

kernelTest(
  "docs/plugins.md: the tutorial runs exactly as written and its plugin works in a chain",
  async () => {
    await using topo = await Topology.pair(10);
    const made = [`${root}plugins/hello`, `${root}hello_run.ts`];
    let output = "";
    try {
      for (const block of tutorialBlocks()) {
        if (block.file) {
          await Deno.writeTextFile(`${root}${block.file}`, block.body);
          continue;
        }
        for (const line of block.body.trim().split("\n")) {
          const [cmd, ...args] = line.split(" ").map((w) => (w === "deno" ? Deno.execPath() : w));
          if (line.includes("hello_run.ts")) {
            // The script attaches to eth0: run it inside host a while a pings b.
            const child = topo.spawn("a", [
              "env",
              `PWD=${root}`,
              "sh",
              "-c",
              `cd ${root} && ${[cmd, ...args].join(" ")}`,
            ]);
            await new Promise((r) => setTimeout(r, 700));
            await topo.ping("a", "198.18.10.2", 5);
            const out = await child.output();
            equal(out.code, 0, new TextDecoder().decode(out.stderr));
            output = new TextDecoder().decode(out.stdout);
          } else {
            const out = await new Deno.Command(cmd!, {
              args,
              cwd: root,
              stdout: "piped",
              stderr: "piped",
            }).output();
            equal(out.code, 0, `${line}: ${new TextDecoder().decode(out.stderr)}`);
          }
        }
      }
      const stats = JSON.parse(output) as {
        count: Record<string, number>;
        hello: Record<string, number>;
      };
      ok(stats.hello.packets_out! >= 5, output); // at least the pings
      ok(stats.hello.packets_in! >= 5, output); // and their replies
      equal(
        stats.count.packets_out,
        stats.hello.packets_out,
        "both links of the chain see every packet",
      );
    } finally {
      for (const path of made) await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  },
);

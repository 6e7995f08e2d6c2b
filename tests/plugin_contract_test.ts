import { rejects, throws } from "node:assert/strict";
import { count, definePlugin, resolvePlugin, startPlugin } from "../plugins/mod.ts";
import type { Hook } from "../plugins/mod.ts";

// Checked before anything touches the kernel: these run without root.

Deno.test("resolvePlugin() refuses an unknown name, a module without a plugin, and a name clash", async () => {
  await rejects(
    () => resolvePlugin("firewal", "belt.json: interfaces.eth0[0].plugin"),
    /belt\.json: interfaces\.eth0\[0\]\.plugin: unknown plugin 'firewal'/,
  );
  await rejects(() => resolvePlugin("./tests/harness/kernel.ts"), /exports no plugin/);
  await rejects(
    () => resolvePlugin("./tests/plugins/clash/mod.ts"),
    /plugin name 'count' clashes with a built-in plugin/,
  );
  await rejects(() => resolvePlugin("./tests/plugins/nope/mod.ts"), /cannot import plugin module/);
});

Deno.test("startPlugin() refuses an unknown hook and bad options before loading anything", () => {
  const odd = definePlugin({
    ...count,
    name: "odd",
    programs: [{ program: "count_ingress", hook: "tc-sideways" as Hook }],
  });
  throws(
    () => startPlugin(odd, { iface: "lo" }),
    /program 'count_ingress' has unknown hook 'tc-sideways'/,
  );
  throws(
    () => startPlugin(count, { iface: "lo", options: { colour: 1 } }),
    /count options: count takes no options/,
  );
  throws(
    () => startPlugin(count, { iface: "lo", direction: "up" as "in" }),
    /unknown direction 'up'/,
  );
});

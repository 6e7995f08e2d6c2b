/**
 * belt: a Deno toolkit for eBPF networking. Load eBPF programs into the
 * running kernel through libbpf, attach them to interfaces (XDP, TC),
 * tracepoints and sockets, and read their maps and events from TypeScript.
 *
 * Run it: `deno run -A mod.ts probe`. Script it:
 *
 * @example Count packets on an interface with your own XDP program
 * ```ts ignore
 * import { attachXdp, BpfObject, u32, u64 } from "@belt/belt";
 * using obj = BpfObject.open(await Deno.readFile("count.bpf.o"));
 * obj.load();
 * using _link = attachXdp(obj.program("count"), "eth0");
 * await new Promise((r) => setTimeout(r, 1000));
 * console.log(obj.map("counts").typed(u32, u64).getSum(0));
 * ```
 *
 * @module
 */
export * from "./bpf/mod.ts";
export * from "./plugins/mod.ts";
export { main, VERSION } from "./cli/main.ts";

if (import.meta.main) {
  const { main } = await import("./cli/main.ts");
  Deno.exit(await main(Deno.args));
}

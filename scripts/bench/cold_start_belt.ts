/**
 * The belt side of the cold-start bench, started fresh by `deno run -A` for
 * every sample: open the embedded XDP object, load it, attach it to the
 * interface named on the command line (run inside the bench's namespace by
 * nsenter), print "attached MODE id N" and its phase times, exit (the XDP
 * link goes with the process). With `--imports-only` it exits right after
 * its imports: Deno's share of the time.
 */
import { attachXdp, BpfObject, queryXdp } from "../../bpf/mod.ts";
import { xdpCountObject } from "../../tests/bpf/xdp_count.bpf.ts";

// performance.now() counts from the runtime's start: these are ms since then.
const imported = performance.now();
const [iface, flag] = Deno.args;
if (!iface) throw new Error("usage: cold_start_belt.ts IFACE [--imports-only]");
if (flag !== "--imports-only") {
  using obj = BpfObject.open(xdpCountObject);
  const opened = performance.now();
  obj.load();
  const loaded = performance.now();
  const link = attachXdp(obj.program("xdp_count"), iface);
  const attached = performance.now();
  const phases = { imported, opened, loaded, attached };
  console.log(
    `attached ${link.info.detail} id ${queryXdp(iface).progId} ${JSON.stringify(phases)}`,
  );
}

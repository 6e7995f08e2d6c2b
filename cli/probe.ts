/** `belt probe`: what this kernel lets belt do. */
import { probeFeatures } from "../bpf/mod.ts";
import { parseCommand } from "./args.ts";
import { styled } from "./style.ts";

/** Help text of `belt probe`. */
export const PROBE_HELP = `belt probe — what this kernel and machine let belt do

Usage: belt probe [--json]

Loads tiny programs to find out (needs root), then lists: bpf, btf, ringbuf,
tcx, kprobes, fentry, bpffs, tracefs — each yes/no with how it was decided.
Exit code 0 when BPF works at all, 1 otherwise.`;

/** Runs `belt probe`. */
export function probe(args: string[]): number {
  const { values } = parseCommand("probe", args, {});
  if (values.help) {
    console.log(PROBE_HELP);
    return 0;
  }
  for (const f of probeFeatures()) {
    if (values.json) console.log(JSON.stringify(f));
    else {console.log(
        `${f.name.padEnd(8)} ${
          styled(f.available ? "yes" : "no ", f.available ? "green" : "yellow")
        }  ${f.detail}`,
      );}
  }
  return 0;
}

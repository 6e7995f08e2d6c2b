/** `belt detach IFACE`: remove what killed belt processes left on an interface. */
import { BeltError, removeStaleFilters } from "../bpf/mod.ts";
import { removeIdleTunnelDevices, removePinnedXdp } from "../plugins/mod.ts";
import { parseCommand } from "./args.ts";
import { jsonLine } from "./output.ts";

/** Help text of `belt detach`. */
export const DETACH_HELP = `belt detach — remove belt's leftovers from an interface

Usage: belt detach IFACE [--json]

Removes what belt kept on IFACE with --pin (pinned TCX and XDP links and
cls_bpf filters, and their pins). TCX and XDP programs otherwise go away with the
belt process that attached them, even after SIGKILL. cls_bpf filters (kernels before 6.6) outlive a process killed
with SIGKILL: this removes those whose belt process is gone (only if the
filter still holds the program belt recorded), and the clsact qdisc belt
created if nothing else is on it. Other programs' filters are left alone.
belt also does this by itself before it attaches a cls_bpf filter. It also
deletes belt's VXLAN devices (belt-vx<port>, made by \`belt mirror --to\`) in
this network namespace that no program uses any more.`;

/** Runs `belt detach`. */
export function detachCommand(args: string[]): number {
  const { values, positionals } = parseCommand("detach", args, {});
  if (values.help) {
    console.log(DETACH_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new BeltError("detach: give one interface", { hint: "see `belt detach --help`" });
  }
  const removed = removeStaleFilters(positionals[0]!, { pinned: true });
  for (const r of removed) {
    const why = r.pinned ? `pinned at ${r.pinned}` : `pid ${r.pid} gone`;
    console.log(
      values.json
        ? jsonLine(r)
        : `removed ${r.owner} (${r.mode} ${r.direction} prio ${r.priority}, ${why})`,
    );
  }
  const xdp = removePinnedXdp(positionals[0]!);
  for (const dir of xdp) {
    const owner = dir.slice(dir.lastIndexOf("/") + 1);
    console.log(
      values.json
        ? jsonLine({ owner, mode: "xdp", pinned: dir })
        : `removed ${owner} (xdp, pinned at ${dir})`,
    );
  }
  const devices = removeIdleTunnelDevices();
  for (const name of devices) {
    console.log(
      values.json
        ? jsonLine({ device: name, removed: true })
        : `removed ${name} (idle VXLAN device)`,
    );
  }
  if (!removed.length && !xdp.length && !devices.length && !values.json) {
    console.log(`${positionals[0]}: nothing of belt's to remove`);
  }
  return 0;
}

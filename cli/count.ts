/** `belt count IFACE`: packets and bytes per protocol and direction. */
import { BeltError, interfaceIndex } from "../bpf/mod.ts";
import type { TcMode } from "../bpf/mod.ts";
import { count, COUNT_HELP, countRows, startPlugin } from "../plugins/mod.ts";
import type { CountRow, Direction } from "../plugins/mod.ts";
import { parseCommand } from "./args.ts";
import { interfacesGone, seconds, stopCode, untilStopped } from "./stop.ts";
import { jsonLine, table } from "./output.ts";

/** Runs `belt count`. */
export async function countCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("count", args, {
    priority: { type: "string" },
    direction: { type: "string" },
    duration: { type: "string" },
    "tc-mode": { type: "string" },
    pin: { type: "boolean" },
  });
  if (values.help) {
    console.log(COUNT_HELP);
    return 0;
  }
  const iface = positionals[0];
  if (!iface || positionals.length > 1) {
    throw new BeltError("count: give exactly one interface", { hint: "see `belt count --help`" });
  }
  interfaceIndex(iface); // unknown interface: one line listing the ones that exist
  const duration = seconds(values.duration, "--duration"); // all input checked before attaching
  const running = startPlugin(count, {
    iface,
    priority: values.priority === undefined ? undefined : Number(values.priority),
    direction: (values.direction ?? "both") as Direction,
    tcMode: values["tc-mode"] as TcMode | undefined,
  });
  try {
    if (values.pin) {
      const dir = running.pin();
      running.keep();
      if (values.json) {
        console.log(jsonLine({ iface, plugin: "count", priority: running.priority, pinned: dir }));
      } else {
        console.log(`count stays on ${iface} at priority ${running.priority}, pinned at ${dir}`);
        console.log(
          `read it with \`belt chain show ${iface}\`, remove it with \`belt detach ${iface}\``,
        );
      }
      return 0;
    }
    const reason = await untilStopped(duration, () => {
      const s = running.stats();
      return `${iface}: in ${s.packets_in} pkts ${s.bytes_in} B · out ${s.packets_out} pkts ${s.bytes_out} B`;
    }, interfacesGone([iface]));
    running.detach(); // nothing counts after the table is read
    print(countRows(running.object), values.json ?? false);
    return stopCode(reason);
  } finally {
    running.close();
  }
}

function print(rows: CountRow[], json: boolean): void {
  if (json) {
    for (const r of rows) console.log(jsonLine(r));
    return;
  }
  console.log(table(
    ["dir", "protocol", "packets", "bytes"],
    rows.map((r) => [r.direction, r.protocol, String(r.packets), String(r.bytes)]),
  ));
}

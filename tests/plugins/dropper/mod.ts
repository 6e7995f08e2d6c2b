/** A user-written plugin, loaded by path beside the built-ins in the chain tests. */
import { BeltError, u32, u64 } from "../../../bpf/mod.ts";
import { definePlugin } from "../../../plugins/mod.ts";
import { dropperObject } from "./dropper.bpf.ts";

/** Drops IPv4 packets of `proto` (default 1, ICMP); passes the rest on. */
export const dropper = definePlugin<{ proto: number }>({
  name: "dropper",
  description: "drops one IPv4 protocol (test plugin)",
  object: dropperObject,
  programs: [
    { program: "drop_ingress", hook: "tc-ingress" },
    { program: "drop_egress", hook: "tc-egress" },
  ],
  options(raw, where) {
    const proto = raw.proto ?? 1;
    if (typeof proto !== "number" || !Number.isInteger(proto) || proto < 0 || proto > 255) {
      throw new BeltError(`${where}.proto: must be an IP protocol number 0..255`);
    }
    return { proto };
  },
  globals: (o) => ({ drop_proto: o.proto }),
  stats: (obj) => ({ dropped: obj.map("dropped").typed(u32, u64).getSum(0) ?? 0n }),
});

/** A user plugin whose program the verifier rejects: the CLI tests read its error with and without --verbose. */
import { definePlugin } from "../../../plugins/mod.ts";
import { rejectedObject } from "./rejected.bpf.ts";

/** Loads one XDP program that reads a packet byte without a bounds check. */
export const rejected = definePlugin({
  name: "rejected",
  description: "a program the verifier refuses (test plugin)",
  object: rejectedObject,
  programs: [{ program: "long_then_unchecked", hook: "xdp" }],
  options: () => ({}),
});

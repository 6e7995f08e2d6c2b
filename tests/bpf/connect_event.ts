/** TypeScript side of tests/bpf/connect_event.h; tests/layout_test.ts checks it against BTF. */
import { cstring, struct, u16, u32, u64, u8 } from "../../bpf/mod.ts";

/** struct connect_event. */
export const connectEvent = struct({
  timestamp_ns: u64,
  pid: u32,
  tid: u32,
  family: u16,
  sport: u16,
  dport: u16,
  old_state: u8,
  new_state: u8,
  comm: cstring(16),
});

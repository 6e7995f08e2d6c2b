import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { BeltError, BpfObject, VerifierError } from "../bpf/mod.ts";
import { badVerifierObject } from "./bpf/bad_verifier.bpf.ts";
import { xdpCountObject } from "./bpf/xdp_count.bpf.ts";
import { kernelTest } from "./harness/kernel.ts";

kernelTest("load() of a program the verifier rejects raises VerifierError with the log", () => {
  using obj = BpfObject.open(badVerifierObject, { name: "bad_verifier" });
  throws(() => obj.load(), (e: unknown) => {
    ok(e instanceof VerifierError, String(e));
    equal(e.program, "unchecked_read");
    match(e.message, /the verifier rejected program 'unchecked_read'/);
    match(e.log, /invalid access to packet/);
    return true;
  });
});

kernelTest("testRun() runs a loaded program on a given frame", () => {
  using obj = BpfObject.open(xdpCountObject);
  obj.load();
  const frame = new Uint8Array(60);
  frame.set([0x08, 0x00], 12); // IPv4
  frame[14] = 0x45;
  frame[23] = 17; // UDP
  const r = obj.program("xdp_count").testRun(frame, { repeat: 3 });
  equal(r.retval, 2); // XDP_PASS
  deepEqual(r.dataOut, frame);
  ok(obj.program("xdp_count").stats().id > 0);
});

Deno.test("open() names what is missing: programs, maps, globals", () => {
  using obj = BpfObject.open(xdpCountObject);
  throws(
    () => obj.program("nope"),
    (e: unknown) =>
      (e as BeltError).oneLine() === "object 'belt' has no program 'nope' (it has: xdp_count)",
  );
  throws(() => obj.map("nope"), /has no map 'nope'/);
  throws(() => obj.setGlobal("nope", 1), /has no global 'nope'/);
  obj.setGlobal("only_saddr", 0x0100a8c6);
  obj.close();
  obj.close(); // idempotent
  throws(() => obj.load(), /is closed/);
});

Deno.test("open() of bytes that are not an eBPF object is a clear error", () => {
  throws(() => BpfObject.open(new Uint8Array([1, 2, 3]), { name: "junk" }), (e: unknown) => {
    ok(e instanceof BeltError);
    match(e.message, /cannot open BPF object 'junk'/);
    return true;
  });
});

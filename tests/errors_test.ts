import { equal, ok } from "node:assert/strict";
import {
  BeltError,
  errnoName,
  errorFromErrno,
  NotSupportedError,
  VerifierError,
} from "../bpf/mod.ts";

Deno.test("errorFromErrno() names the errno and keeps the hint", () => {
  const e = errorFromErrno("update map 'x'", 7, "raise max_entries");
  ok(e instanceof BeltError);
  equal(e.code, 7);
  equal(e.oneLine(), "update map 'x': E2BIG (raise max_entries)");
});

Deno.test("errnoName() knows the BPF errnos and falls back to the number", () => {
  equal(errnoName(-524), "ENOTSUPP");
  equal(errnoName(95), "EOPNOTSUPP");
  equal(errnoName(4242), "errno 4242");
});

Deno.test("NotSupportedError names the feature and kernel; VerifierError keeps the log", () => {
  const ns = new NotSupportedError("kprobes", "6.18.0");
  equal(ns.message, "kprobes not supported by this kernel (6.18.0)");
  ok(ns instanceof BeltError);
  const v = new VerifierError("prog", "R1 invalid mem access", 13);
  equal(v.message, "the verifier rejected program 'prog' (EACCES)");
  equal(v.log, "R1 invalid mem access");
});

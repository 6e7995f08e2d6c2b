import { deepEqual, equal, throws } from "node:assert/strict";
import {
  array,
  be16,
  be32,
  bytes,
  cstring,
  decode,
  encode,
  i32,
  pad,
  struct,
  sumValues,
  u16,
  u32,
  u64,
  u8,
} from "../bpf/mod.ts";

Deno.test("struct() lays members out like C and round-trips values", () => {
  const s = struct({
    a: u8,
    _p: pad(1),
    b: u16,
    c: u32,
    d: u64,
    name: cstring(8),
    raw: bytes(4),
    list: array(u16, 2),
  });
  deepEqual(s.layout.map((f) => [f.name, f.offset, f.size]), [
    ["a", 0, 1],
    ["_p", 1, 1],
    ["b", 2, 2],
    ["c", 4, 4],
    ["d", 8, 8],
    ["name", 16, 8],
    ["raw", 24, 4],
    ["list", 28, 4],
  ]);
  equal(s.size, 32);
  const value = {
    a: 1,
    _p: undefined,
    b: 515,
    c: 0xdeadbeef,
    d: 2n ** 63n,
    name: "bash",
    raw: new Uint8Array([9, 8, 7, 6]),
    list: [1, 2],
  };
  deepEqual(s.unpack(s.pack(value)), value);
});

Deno.test("struct() refuses implicit padding and names the member", () => {
  throws(() => struct({ a: u8, b: u32 }), /member 'b' at offset 1 needs 4-byte alignment/);
  throws(() => struct({ a: u64, b: u32 }), /struct ends at 12, not a multiple of its alignment 8/);
});

Deno.test("network-order codecs write big-endian bytes", () => {
  deepEqual([...encode(be16, 0x1234)], [0x12, 0x34]);
  deepEqual([...encode(be32, 0xc6120001)], [198, 18, 0, 1]);
  deepEqual([...encode(u16, 0x1234)], [0x34, 0x12]);
  equal(decode(i32, encode(i32, -5)), -5);
});

Deno.test("cstring() stops at NUL and truncates to leave room for it", () => {
  const c = cstring(4);
  equal(decode(c, new Uint8Array([104, 105, 0, 120])), "hi");
  deepEqual([...encode(c, "abcdef")], [97, 98, 99, 0]);
});

Deno.test("sumValues() adds per-CPU numbers field by field", () => {
  deepEqual(sumValues([{ p: 1n, b: 2 }, { p: 3n, b: 4 }]), { p: 4n, b: 6 });
  // Arrays of counters (e.g. one per direction) add element by element.
  deepEqual(sumValues([{ d: [1n, 2n] }, { d: [10n, 20n] }]), { d: [11n, 22n] });
  equal(sumValues([1n, 2n, 3n]), 6n);
});

Deno.test("unpack() of too few bytes is a clear error", () => {
  throws(
    () => struct({ a: u32 }).unpack(new Uint8Array(2)),
    /need 4 bytes to decode the struct, got 2/,
  );
});

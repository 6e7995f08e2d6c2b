/**
 * Builds what the bench runs into a temp dir, at bench time: the bench eBPF
 * object (clang), the XDP object the cold-start peer loads with bpftool
 * (the same source and flags `deno task build` embeds for belt), and the C
 * helpers against libbpf (gcc). Nothing is written into the tree.
 */
import { join } from "node:path";
import { run } from "./proc.ts";

const root = new URL("../..", import.meta.url).pathname;
const here = new URL(".", import.meta.url).pathname;

/** Paths of the built artifacts. */
export interface Built {
  dir: string;
  benchObject: string;
  xdpCountObject: string;
  mapOps: string;
  ringProduce: string;
  ringConsume: string;
}

async function multiarchInclude(): Promise<string> {
  const { stdout } = await run(["gcc", "-dumpmachine"]);
  return `/usr/include/${stdout.trim()}`;
}

async function clang(source: string, out: string, include: string): Promise<void> {
  await run([
    "clang",
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-Wall",
    "-I",
    join(root, "bpf/include"),
    "-I",
    join(source, ".."),
    "-I",
    include,
    "-c",
    source,
    "-o",
    out,
  ], { timeoutMs: 60_000 });
  await run(["llvm-strip", "-g", out]); // as scripts/build.ts: DWARF out, BTF stays
}

async function gcc(source: string, out: string, libs = ["-lbpf"]): Promise<void> {
  await run([
    "gcc",
    "-O2",
    "-Wall",
    "-I",
    here,
    "-I",
    join(here, "native"),
    source,
    ...libs,
    "-o",
    out,
  ], { timeoutMs: 60_000 });
}

/** Compiles everything into `dir`. */
export async function buildAll(dir: string): Promise<Built> {
  const include = await multiarchInclude();
  const built: Built = {
    dir,
    benchObject: join(dir, "bench.bpf.o"),
    xdpCountObject: join(dir, "xdp_count.bpf.o"),
    mapOps: join(dir, "map_ops"),
    ringProduce: join(dir, "ring_produce"),
    ringConsume: join(dir, "ring_consume"),
  };
  await Promise.all([
    clang(join(here, "bench.bpf.c"), built.benchObject, include),
    clang(join(root, "tests/bpf/xdp_count.bpf.c"), built.xdpCountObject, include),
    gcc(join(here, "native/map_ops.c"), built.mapOps),
    gcc(join(here, "native/ring_produce.c"), built.ringProduce),
    gcc(join(here, "native/ring_consume.c"), built.ringConsume),
  ]);
  return built;
}

/** The connect bench's loop alone (no libbpf: it only makes TCP connections). */
export async function buildConnectLoop(dir: string): Promise<string> {
  const out = join(dir, "connect_loop");
  await gcc(join(here, "native/connect_loop.c"), out, ["-pthread"]);
  return out;
}

/**
 * belt's core: everything that talks to libbpf and the kernel. Open an
 * object, set globals, load it, attach its programs (XDP, TC, tracepoints,
 * kprobes, socket filters), read its maps and events.
 *
 * @example Count packets with an XDP program inside a namespace
 * ```ts ignore
 * import { attachXdp, BpfObject, u32, u64, withNetns } from "@belt/belt/bpf";
 * using obj = BpfObject.open(await Deno.readFile("xdp_count.bpf.o"));
 * obj.load();
 * withNetns("belt-a", () => attachXdp(obj.program("count"), "eth0"));
 * console.log(obj.map("counters").typed(u32, u64).getSum(0));
 * ```
 *
 * @module
 */
export {
  BeltError,
  errnoName,
  errorFromErrno,
  NotSupportedError,
  PermissionError,
  VerifierError,
} from "./errors.ts";
export type { BeltErrorOptions } from "./errors.ts";
export { BpfObject } from "./object.ts";
export type { GlobalValue, OpenOptions } from "./object.ts";
export { enableRunStats, Program, programInfo, programMapIds } from "./program.ts";
export type {
  LinkOwner,
  ProgramInfo,
  ProgramStats,
  TestRunOptions,
  TestRunResult,
} from "./program.ts";
export {
  BpfMap,
  MapType,
  openPinnedMap,
  openProgramMap,
  possibleCpuCount,
  sumValues,
  TypedMap,
  UpdateFlag,
} from "./map.ts";
export { Link } from "./link.ts";
export type { Closable, LinkInfo } from "./link.ts";
export { attachXdp, queryXdp } from "./xdp.ts";
export type { XdpMode, XdpOptions } from "./xdp.ts";
export { attachTc, hasTcFilters, listTcx, removeEmptyParents, removeStaleFilters } from "./tc.ts";
export type { TcDirection, TcMode, TcOptions } from "./tc.ts";
export {
  attachBtfTracepoint,
  attachBySection,
  attachFentry,
  attachKprobe,
  attachRawTracepoint,
  attachTracepoint,
} from "./trace.ts";
export type { KprobeOptions } from "./trace.ts";
export { PacketSocket } from "./socket.ts";
export type { PacketSocketOptions } from "./socket.ts";
export { PacketRing } from "./packet_ring.ts";
export type { CapturedFrame, PacketRingOptions, PacketRingStats } from "./packet_ring.ts";
export { RingBuffer } from "./ringbuf.ts";
export type { RingBufferOptions } from "./ringbuf.ts";
export { PerfBuffer } from "./perfbuf.ts";
export { interfaceIndex, interfaceName, listInterfaces } from "./iface.ts";
export { withNetns } from "./netns.ts";
export {
  ensureTracefs,
  isBpffs,
  isRoot,
  kernelRelease,
  kernelVersion,
  monotonicToRealtimeNs,
  pathExists,
} from "./kernel.ts";
export { isVerbose, setVerbose } from "./log.ts";
export { closeTracked, leaveSignalsToCaller } from "./cleanup.ts";
export { markPinned, readTc } from "./tcstate.ts";
export type { TcRecord } from "./tcstate.ts";
export {
  array,
  be16,
  be32,
  bytes,
  cstring,
  decode,
  encode,
  i16,
  i32,
  i64,
  i8,
  pad,
  struct,
  u16,
  u32,
  u64,
  u8,
} from "./codec.ts";
export type { Codec, Decoded, FieldLayout, FieldsOf, StructCodec } from "./codec.ts";
export type { BtfStruct } from "./btf.ts";
export { embeddedObject } from "./embed.ts";
export { probeFeatures } from "./features.ts";
export type { Feature } from "./features.ts";

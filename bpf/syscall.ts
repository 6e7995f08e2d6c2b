/**
 * bpf(2) commands that libbpf 1.1 does not wrap (TCX links, mprog queries),
 * issued through libc's syscall(). Attribute layouts follow `union bpf_attr`
 * in the kernel's uapi linux/bpf.h.
 *
 * @module
 */
import { errno, libbpf, libc } from "./ffi.ts";
import { errorFromErrno } from "./errors.ts";

const SYS_BPF = Deno.build.arch === "aarch64" ? 280 : 321;
const BPF_PROG_QUERY = 16;
const BPF_LINK_CREATE = 28;

/** Attach types belt uses (enum bpf_attach_type). */
export const AttachType = { XDP: 37, TCX_INGRESS: 46, TCX_EGRESS: 47 } as const;

/** mprog flags for TCX ordering (BPF_F_BEFORE, BPF_F_AFTER, BPF_F_ID, BPF_F_LINK). */
export const MprogFlag = { BEFORE: 1 << 3, AFTER: 1 << 4, ID: 1 << 5, LINK: 1 << 13 } as const;

function bpf(cmd: number, attr: Uint8Array<ArrayBuffer>): number {
  const rc = Number(libc().syscall(BigInt(SYS_BPF), BigInt(cmd), attr, BigInt(attr.length)));
  return rc < 0 ? -errno() : rc;
}

/** Options of a BPF_LINK_CREATE call. */
export interface LinkCreateOptions {
  /** Program fd to attach. */
  progFd: number;
  /** Interface index (XDP, TCX). */
  ifindex: number;
  /** An {@linkcode AttachType}. */
  attachType: number;
  /** Attach flags (XDP mode, or TCX ordering flags). */
  flags?: number;
  /** TCX: fd or id of the program/link to order against. */
  relative?: number;
}

/** BPF_LINK_CREATE; returns the link fd or a negative errno. */
export function linkCreate(o: LinkCreateOptions): number {
  const attr = new Uint8Array(64);
  const v = new DataView(attr.buffer);
  v.setUint32(0, o.progFd, true);
  v.setUint32(4, o.ifindex, true);
  v.setUint32(8, o.attachType, true);
  v.setUint32(12, o.flags ?? 0, true);
  v.setUint32(16, o.relative ?? 0, true); // tcx.relative_fd / relative_id
  return bpf(BPF_LINK_CREATE, attr);
}

/** Program and link ids attached at one mprog hook (TCX), in run order. */
export interface HookQuery {
  /** Program ids in the order they run. */
  progIds: number[];
  /** Link ids, parallel to progIds (0 when attached without a link). */
  linkIds: number[];
  /** The hook's revision, bumped on every change. */
  revision: bigint;
}

/** BPF_PROG_QUERY on an ifindex hook; throws a BeltError on failure. */
export function queryHook(ifindex: number, attachType: number, max = 64): HookQuery {
  const progIds = new Uint32Array(max);
  const linkIds = new Uint32Array(max);
  const attr = new Uint8Array(64);
  const v = new DataView(attr.buffer);
  v.setUint32(0, ifindex, true);
  v.setUint32(4, attachType, true);
  v.setBigUint64(16, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(progIds))), true);
  v.setUint32(24, max, true);
  v.setBigUint64(40, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(linkIds))), true);
  const rc = bpf(BPF_PROG_QUERY, attr);
  if (rc < 0) throw errorFromErrno(`query attach type ${attachType} on ifindex ${ifindex}`, -rc);
  const count = v.getUint32(24, true);
  return {
    progIds: [...progIds.subarray(0, count)],
    linkIds: [...linkIds.subarray(0, count)],
    revision: v.getBigUint64(56, true),
  };
}

/** Reads `struct bpf_*_info` for any bpf fd into a zeroed buffer of `size` bytes. */
export function objectInfo(fd: number, size: number): DataView {
  const info = new Uint8Array(size);
  const len = new Uint32Array([size]);
  const rc = libbpf().bpf_obj_get_info_by_fd(fd, info, new Uint8Array(len.buffer));
  if (rc < 0) throw errorFromErrno(`read info of bpf fd ${fd}`, -rc);
  return new DataView(info.buffer);
}

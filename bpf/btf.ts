/**
 * Reads type information from an object's BTF: struct layouts (to prove a
 * TypeScript codec matches the C struct) and the variables of a data section
 * (to set read-only globals by name).
 *
 * @module
 */
import { cstr, libbpf, readCString } from "./ffi.ts";
import { BeltError } from "./errors.ts";
import type { FieldLayout } from "./codec.ts";

const KIND_STRUCT = 4;
const KIND_DATASEC = 15;
const BTF_TYPE_SIZE = 12; // struct btf_type: name_off, info, size/type
const BTF_MEMBER_SIZE = 12; // struct btf_member / btf_var_secinfo

/** A struct as the compiler laid it out. */
export interface BtfStruct {
  /** The struct's name. */
  name: string;
  /** `sizeof` the struct. */
  size: number;
  /** Members with byte offsets and sizes. */
  members: FieldLayout[];
}

function typeView(btf: Deno.PointerObject, id: number): Deno.UnsafePointerView {
  const ptr = libbpf().btf__type_by_id(btf, id);
  if (!ptr) throw new BeltError(`BTF has no type id ${id}`);
  return new Deno.UnsafePointerView(ptr);
}

function findType(btf: Deno.PointerObject, name: string, kind: number, what: string): number {
  const id = libbpf().btf__find_by_name_kind(btf, cstr(name), kind);
  if (id < 0) throw new BeltError(`BTF has no ${what} '${name}'`);
  return id;
}

/**
 * The layout of `struct name` in a BTF blob (from `BpfObject.btfStruct`).
 * Bitfield members report their containing byte offset and size 0.
 */
export function readBtfStruct(btf: Deno.PointerObject, name: string): BtfStruct {
  const id = findType(btf, name, KIND_STRUCT, "struct");
  const t = typeView(btf, id);
  const info = t.getUint32(4);
  const vlen = info & 0xffff;
  const bitfields = (info >>> 31) === 1;
  const members: FieldLayout[] = [];
  for (let i = 0; i < vlen; i++) {
    const at = BTF_TYPE_SIZE + i * BTF_MEMBER_SIZE;
    const memberName = readCString(libbpf().btf__name_by_offset(btf, t.getUint32(at)));
    const memberType = t.getUint32(at + 4);
    const rawOffset = t.getUint32(at + 8);
    const bitSize = bitfields ? rawOffset >>> 24 : 0;
    const bitOffset = bitfields ? rawOffset & 0xffffff : rawOffset;
    const size = bitSize ? 0 : Number(libbpf().btf__resolve_size(btf, memberType));
    members.push({ name: memberName, offset: Math.floor(bitOffset / 8), size });
  }
  return { name, size: t.getUint32(8), members };
}

/** The variables of a data section (e.g. ".rodata") with offsets and sizes. */
export function readBtfDatasec(btf: Deno.PointerObject, section: string): FieldLayout[] {
  const id = libbpf().btf__find_by_name_kind(btf, cstr(section), KIND_DATASEC);
  if (id < 0) return [];
  const t = typeView(btf, id);
  const vlen = t.getUint32(4) & 0xffff;
  const vars: FieldLayout[] = [];
  for (let i = 0; i < vlen; i++) {
    const at = BTF_TYPE_SIZE + i * BTF_MEMBER_SIZE;
    const varType = typeView(btf, t.getUint32(at));
    const name = readCString(libbpf().btf__name_by_offset(btf, varType.getUint32(0)));
    vars.push({ name, offset: t.getUint32(at + 4), size: t.getUint32(at + 8) });
  }
  return vars;
}

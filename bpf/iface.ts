/**
 * Interface names to indexes, resolved in the calling thread's network
 * namespace (so they follow {@linkcode withNetns}).
 *
 * @module
 */
import { cstr, libc, readCString } from "./ffi.ts";
import { BeltError } from "./errors.ts";

/**
 * The interfaces of the current network namespace, as [index, name].
 *
 * @example
 * ```ts
 * import { listInterfaces } from "@belt/belt/bpf";
 * console.log(listInterfaces().map(([, name]) => name));
 * ```
 */
export function listInterfaces(): [number, string][] {
  const head = libc().if_nameindex();
  if (!head) return [];
  const out: [number, string][] = [];
  const view = new Deno.UnsafePointerView(head);
  for (let off = 0;; off += 16) { // struct if_nameindex { unsigned if_index; char *if_name; }
    const index = view.getUint32(off);
    if (index === 0) break;
    out.push([index, readCString(view.getPointer(off + 8))]);
  }
  libc().if_freenameindex(head);
  return out;
}

/**
 * The index of an interface given by name (or index), or a BeltError that
 * lists the interfaces that exist.
 *
 * @example
 * ```ts
 * import { interfaceIndex } from "@belt/belt/bpf";
 * console.log(interfaceIndex("lo")); // 1
 * ```
 */
export function interfaceIndex(iface: string | number): number {
  if (typeof iface === "number") return iface;
  const index = iface.length < 16 ? libc().if_nametoindex(cstr(iface)) : 0;
  if (index === 0) {
    const names = listInterfaces().map(([, name]) => name).join(", ");
    throw new BeltError(`unknown interface '${iface}'`, {
      code: 19,
      hint: `interfaces here: ${names}`,
    });
  }
  return index;
}

/**
 * The name of an interface given by index or name, for messages.
 *
 * @example
 * ```ts
 * import { interfaceName } from "@belt/belt/bpf";
 * console.log(interfaceName(1)); // "lo"
 * ```
 */
export function interfaceName(iface: string | number): string {
  if (typeof iface === "string") return iface;
  return listInterfaces().find(([index]) => index === iface)?.[1] ?? `ifindex ${iface}`;
}

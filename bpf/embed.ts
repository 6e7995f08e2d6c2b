/**
 * Decodes the eBPF objects that scripts/build.ts embeds in generated
 * `*.bpf.ts` modules as base64, so users need no compiler.
 *
 * @module
 */

/**
 * The bytes of an embedded object.
 *
 * @example
 * ```ts
 * import { embeddedObject } from "@belt/belt/bpf";
 * console.log(embeddedObject("f0VMRg==")); // the ELF magic
 * ```
 */
export function embeddedObject(base64: string): Uint8Array<ArrayBuffer> {
  const binary = atob(base64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

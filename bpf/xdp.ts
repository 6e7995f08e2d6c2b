/**
 * XDP attachment through a kernel bpf_link: the program goes away when the
 * link fd closes, so a crashed process leaves nothing on the interface.
 *
 * @module
 */
import { libbpf, libc } from "./ffi.ts";
import { BeltError, errorFromErrno } from "./errors.ts";
import { interfaceIndex, interfaceName } from "./iface.ts";
import { Link } from "./link.ts";
import { programInfo } from "./program.ts";
import type { Program } from "./program.ts";
import { AttachType, linkCreate } from "./syscall.ts";

/** auto: native when the driver has it, else generic; or force one. */
export type XdpMode = "auto" | "native" | "generic";

const MODE_FLAGS: Record<XdpMode, number> = { auto: 0, generic: 1 << 1, native: 1 << 2 };
const ATTACHED_MODE = ["none", "native", "generic", "offload", "multi"];

/** Options of {@linkcode attachXdp}. */
export interface XdpOptions {
  /** Driver mode; default "auto". */
  mode?: XdpMode;
}

/**
 * The XDP program on an interface: its id and mode, or id 0.
 *
 * @example
 * ```ts ignore
 * import { queryXdp } from "@belt/belt/bpf";
 * console.log(queryXdp("eth0")); // { progId: 0, mode: "none" }
 * ```
 */
export function queryXdp(iface: string | number): { progId: number; mode: string } {
  const opts = new Uint8Array(32); // struct bpf_xdp_query_opts
  const v = new DataView(opts.buffer);
  v.setBigUint64(0, 32n, true);
  const rc = libbpf().bpf_xdp_query(interfaceIndex(iface), 0, opts);
  if (rc < 0) throw errorFromErrno(`query XDP on ${interfaceName(iface)}`, -rc);
  return { progId: v.getUint32(8, true), mode: ATTACHED_MODE[v.getUint8(24)] ?? "unknown" };
}

/**
 * Attaches an XDP program to an interface. One XDP program per interface:
 * if one is there already, the error names it.
 *
 * @example
 * ```ts ignore
 * import { attachXdp } from "@belt/belt/bpf";
 * const link = attachXdp(obj.program("xdp_firewall"), "eth0", { mode: "generic" });
 * console.log(link.info.detail); // "generic"
 * link.close();
 * ```
 */
export function attachXdp(prog: Program, iface: string | number, options: XdpOptions = {}): Link {
  const mode = options.mode ?? "auto";
  if (!(mode in MODE_FLAGS)) {
    throw new BeltError(`unknown XDP mode '${mode}'`, { hint: "use auto, native or generic" });
  }
  const ifindex = interfaceIndex(iface);
  const name = interfaceName(iface);
  const fd = linkCreate({
    progFd: prog.fd,
    ifindex,
    attachType: AttachType.XDP,
    flags: MODE_FLAGS[mode],
  });
  if (fd < 0) {
    const code = -fd;
    if (code === 16 || code === 17) {
      const current = queryXdp(ifindex);
      let holder = "";
      try {
        holder = ` '${programInfo(current.progId).name}'`;
      } catch {
        // it may have gone in the meantime; the id still says which
      }
      throw new BeltError(
        `${name} already has an XDP program${holder} (id ${current.progId}, ${current.mode})`,
        {
          code,
          hint:
            "one XDP program per interface: detach it first (belt detach, or ip link set dev IF xdp off)",
        },
      );
    }
    if (code === 95 && mode === "native") {
      throw new BeltError(`${name}: the driver has no native XDP`, {
        code,
        hint: "use --mode generic",
      });
    }
    throw errorFromErrno(`attach XDP program '${prog.name}' to ${name}`, code);
  }
  let attached: string;
  try {
    attached = queryXdp(ifindex).mode;
  } catch {
    attached = "unknown"; // the link exists: a failed query must not orphan it
  }
  const link = new Link(
    { kind: "xdp", target: name, detail: attached },
    fd,
    () => libc().close(fd),
  );
  return prog.adopt(link);
}

/**
 * belt's VXLAN transmit devices: one external (collect_md) VXLAN device per
 * UDP port in a network namespace, named `belt-vx<port>`, shared by every
 * mirror running there. The kernel's VXLAN code does the encapsulation
 * (RFC 7348 header, outer source port from the flow hash, VLAN tag put back,
 * outer fragmentation); the mirror's tunnel program tells it where each copy
 * goes. Created on first use, deleted when no program is left on it.
 *
 * @module
 */
import {
  BeltError,
  hasTcFilters,
  interfaceIndex,
  listInterfaces,
  listTcx,
  removeStaleFilters,
} from "../../bpf/mod.ts";
import { ip } from "./iproute.ts";

/** A belt VXLAN device in use by one mirror. */
export interface TunnelDevice {
  /** `belt-vx<port>`. */
  readonly name: string;
  /** Its interface index. */
  readonly ifindex: number;
  /** UDP destination port of the copies it sends. */
  readonly port: number;
  /** Deletes the device if no program is left on it (idempotent). */
  close(): void;
}

function exists(name: string): boolean {
  return listInterfaces().some(([, n]) => n === name);
}

/** Whether any TC program (TCX or cls_bpf, anyone's) is attached to `name`. */
function inUse(name: string): boolean {
  return listTcx(name, "egress").length > 0 || listTcx(name, "ingress").length > 0 ||
    hasTcFilters(name);
}

function describe(name: string): { external: boolean; port: number } | undefined {
  const r = ip(["-j", "-d", "link", "show", "dev", name]);
  if (!r.ok) return undefined;
  const info = JSON.parse(r.out)[0]?.linkinfo;
  if (info?.info_kind !== "vxlan") return undefined;
  return { external: Boolean(info.info_data?.external), port: Number(info.info_data?.port) };
}

/**
 * Opens (creating if needed) the VXLAN device for UDP `port` in the calling
 * thread's network namespace.
 *
 * @example
 * ```ts ignore
 * import { openTunnelDevice } from "@belt/belt";
 * using dev = openTunnelDevice(4789);
 * console.log(dev.name, dev.ifindex); // belt-vx4789 7
 * ```
 */
export function openTunnelDevice(port: number): TunnelDevice & Disposable {
  const name = `belt-vx${port}`;
  if (exists(name)) {
    const d = describe(name);
    if (!d?.external || d.port !== port) {
      throw new BeltError(
        `${name} exists but is not belt's external VXLAN device for port ${port}`,
        {
          hint: `remove it (ip link del ${name}) or mirror to another port`,
        },
      );
    }
  } else {
    const add = ip([
      "link",
      "add",
      name,
      "type",
      "vxlan",
      "external",
      "dstport",
      String(port),
      "nolearning",
    ]);
    if (!add.ok) {
      const taken = /exists|in use/i.test(add.err);
      throw new BeltError(
        taken
          ? `cannot send VXLAN on UDP port ${port}: another VXLAN device or socket in this network namespace uses it (${add.err})`
          : `cannot create VXLAN device ${name}: ${add.err}`,
        {
          hint: taken
            ? `give the collector another port (--to HOST:PORT), or stop what uses ${port}`
            : "is the vxlan module available? (modprobe vxlan)",
        },
      );
    }
    // No IPv6 link-local address (no ND/MLD of its own), room for any frame.
    ip(["link", "set", name, "addrgenmode", "none"]);
    ip(["link", "set", name, "mtu", "65535"]);
    const up = ip(["link", "set", name, "up"]);
    if (!up.ok) {
      ip(["link", "del", name]);
      throw new BeltError(`cannot bring ${name} up: ${up.err}`);
    }
  }
  const ifindex = interfaceIndex(name);
  let open = true;
  const device = {
    name,
    ifindex,
    port,
    close() {
      if (!open) return;
      open = false;
      // Another mirror still sends through it: leave it to the last one.
      if (exists(name) && interfaceIndex(name) === ifindex && !inUse(name)) {
        ip(["link", "del", name]);
      }
    },
    [Symbol.dispose]() {
      device.close();
    },
  };
  return device;
}

/**
 * Deletes belt VXLAN devices that no program uses any more (what a mirror
 * killed with SIGKILL leaves, with its cls_bpf filters on kernels before 6.6)
 * in the calling thread's network namespace. Returns their names.
 *
 * @example
 * ```ts ignore
 * import { removeIdleTunnelDevices } from "@belt/belt";
 * console.log(removeIdleTunnelDevices()); // ["belt-vx4789"]
 * ```
 */
export function removeIdleTunnelDevices(): string[] {
  const removed: string[] = [];
  for (const [, name] of listInterfaces()) {
    if (!/^belt-vx\d+$/.test(name)) continue;
    // Before 6.6 a SIGKILLed mirror's cls_bpf filters outlive it on the device as well.
    removeStaleFilters(name);
    if (inUse(name)) continue;
    if (ip(["link", "del", name]).ok) removed.push(name);
  }
  return removed;
}

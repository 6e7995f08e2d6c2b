/**
 * The receiving end of `belt mirror --to`: VXLAN datagrams (RFC 7348) in,
 * inner Ethernet frames out to pcapng, one pcapng interface and one stats
 * row per sender and VNI.
 *
 * @module
 */
import { PcapngWriter } from "../pcapng.ts";

/**
 * VXLAN header length: flags, reserved, 24-bit VNI, reserved.
 *
 * @example
 * ```ts
 * import { VXLAN_HEADER } from "@belt/belt";
 * console.log(VXLAN_HEADER); // 8
 * ```
 */
export const VXLAN_HEADER = 8;

/**
 * The VNI of a VXLAN datagram's payload, or undefined when it is not VXLAN
 * (too short, or the I flag that says a VNI is present is clear).
 *
 * @example
 * ```ts
 * import { vxlanVni } from "@belt/belt";
 * console.log(vxlanVni(new Uint8Array([8, 0, 0, 0, 0, 0, 42, 0, 1, 2]))); // 42
 * ```
 */
export function vxlanVni(datagram: Uint8Array): number | undefined {
  if (datagram.length < VXLAN_HEADER + 14 || !(datagram[0]! & 0x08)) return undefined;
  return (datagram[4]! << 16) | (datagram[5]! << 8) | datagram[6]!;
}

/** Counters of one sender and VNI. */
export interface SenderStats {
  /** Source address of the VXLAN datagrams. */
  sender: string;
  /** Their VNI. */
  vni: number;
  /** Inner frames received. */
  frames: number;
  /** Their bytes. */
  bytes: number;
}

/**
 * Decapsulates VXLAN datagrams into a pcapng writer and counts them per
 * sender and VNI; datagrams that are not VXLAN are counted as malformed.
 *
 * @example
 * ```ts
 * import { PcapngWriter, VxlanCollector } from "@belt/belt";
 * const w = new PcapngWriter({ write() {} });
 * const c = new VxlanCollector(w);
 * const frame = new Uint8Array(8 + 60);
 * frame[0] = 8;
 * frame[6] = 7; // VNI 7
 * c.receive(frame, "198.18.1.1", 1_700_000_000_000_000_000n);
 * console.log(c.stats()); // [{ sender: "198.18.1.1", vni: 7, frames: 1, bytes: 60 }]
 * ```
 */
export class VxlanCollector {
  readonly #writer: PcapngWriter | undefined;
  readonly #rows = new Map<string, SenderStats & { iface: number }>();
  #malformed = 0;

  /** Frames go to `writer` (none: count only). */
  constructor(writer?: PcapngWriter) {
    this.#writer = writer;
  }

  /** Takes one UDP payload from `sender`, received at `tsNs` (ns since the epoch). */
  receive(datagram: Uint8Array, sender: string, tsNs: bigint): void {
    const vni = vxlanVni(datagram);
    if (vni === undefined) {
      this.#malformed++;
      return;
    }
    const key = `${sender}/${vni}`;
    let row = this.#rows.get(key);
    if (!row) {
      const iface = this.#writer?.addInterface({
        name: `${sender} vni ${vni}`,
        description: `VXLAN from ${sender}, VNI ${vni}`,
      }) ?? -1;
      row = { sender, vni, frames: 0, bytes: 0, iface };
      this.#rows.set(key, row);
    }
    const frame = datagram.subarray(VXLAN_HEADER);
    row.frames++;
    row.bytes += frame.length;
    this.#writer?.writePacket(row.iface, tsNs, frame, frame.length);
  }

  /** Datagrams that were not VXLAN. */
  get malformed(): number {
    return this.#malformed;
  }

  /** One row per sender and VNI, in order of first arrival. */
  stats(): SenderStats[] {
    return [...this.#rows.values()].map(({ iface: _, ...row }) => row);
  }
}

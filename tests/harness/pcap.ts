/**
 * Reads classic libpcap files (what `tcpdump -w` writes): the tests' ground
 * truth. Micro- and nanosecond variants, either byte order.
 */

/** One captured frame. */
export interface PcapFrame {
  /** Captured bytes. */
  data: Uint8Array;
  /** Length on the wire. */
  wireLength: number;
}

/** The frames of a pcap file; throws on anything else. */
export function readPcap(bytes: Uint8Array): PcapFrame[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) throw new Error("pcap: shorter than its file header");
  const magic = v.getUint32(0, true);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && v.getUint32(0, false) !== 0xa1b2c3d4 && v.getUint32(0, false) !== 0xa1b23c4d) {
    throw new Error(`pcap: bad magic 0x${magic.toString(16)}`);
  }
  const frames: PcapFrame[] = [];
  for (let o = 24; o + 16 <= bytes.length;) {
    const capLen = v.getUint32(o + 8, le);
    const wireLength = v.getUint32(o + 12, le);
    if (o + 16 + capLen > bytes.length) break; // a capture cut short by the signal
    frames.push({ data: bytes.slice(o + 16, o + 16 + capLen), wireLength });
    o += 16 + capLen;
  }
  return frames;
}

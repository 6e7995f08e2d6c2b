/**
 * Counting frames in capture files, for the `--pcap` vs `tcpdump -w` bench:
 * classic pcap (tcpdump) and pcapng (belt). Both walkers stop at a truncated
 * last record and say so rather than throw; belt's file is also checked with
 * belt's own reader (`readPcapng`).
 */
import { readPcapng } from "../../plugins/pcapng.ts";

/** What a capture file holds. */
export interface FileCount {
  /** Every frame (packet record) in the file. */
  frames: number;
  /** Frames of the numbered stream: IPv4, UDP, destination port `port`. */
  stream: number;
  /** Bytes left over after the last whole record (0 for a well-formed file). */
  trailing: number;
  /** readPcapng's verdict on belt's file: undefined when it parsed. */
  error?: string;
}

function isStream(frame: Uint8Array, port: number): boolean {
  if (frame.length < 14 + 20 + 4) return false;
  if (frame[12] !== 0x08 || frame[13] !== 0x00 || frame[23] !== 17) return false;
  const l4 = 14 + (frame[14]! & 0x0f) * 4;
  return frame.length >= l4 + 4 && ((frame[l4 + 2]! << 8) | frame[l4 + 3]!) === port;
}

/** Counts a classic pcap file (either byte order, µs or ns time stamps). */
export function countPcap(bytes: Uint8Array, port: number): FileCount {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) return { frames: 0, stream: 0, trailing: bytes.length };
  const magic = v.getUint32(0, true);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && v.getUint32(0, false) !== 0xa1b2c3d4 && v.getUint32(0, false) !== 0xa1b23c4d) {
    throw new Error("not a pcap file");
  }
  let o = 24;
  let frames = 0;
  let stream = 0;
  while (o + 16 <= bytes.length) {
    const caplen = v.getUint32(o + 8, little);
    if (o + 16 + caplen > bytes.length) break;
    frames++;
    if (isStream(bytes.subarray(o + 16, o + 16 + caplen), port)) stream++;
    o += 16 + caplen;
  }
  return { frames, stream, trailing: bytes.length - o };
}

/** Counts Enhanced Packet Blocks of a little-endian pcapng file. */
export function countPcapng(bytes: Uint8Array, port: number): FileCount {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  let frames = 0;
  let stream = 0;
  while (o + 12 <= bytes.length) {
    const type = v.getUint32(o, true);
    const size = v.getUint32(o + 4, true);
    if (size < 12 || size % 4 || o + size > bytes.length) break;
    if (type === 6 && size >= 32) {
      const caplen = v.getUint32(o + 20, true);
      frames++;
      if (isStream(bytes.subarray(o + 28, o + 28 + caplen), port)) stream++;
    }
    o += size;
  }
  const count: FileCount = { frames, stream, trailing: bytes.length - o };
  try {
    const parsed = readPcapng(bytes);
    if (parsed.packets.length !== frames) {
      count.error = `readPcapng found ${parsed.packets.length} packets, the walker ${frames}`;
    }
  } catch (e) {
    count.error = e instanceof Error ? e.message : String(e);
  }
  return count;
}

/**
 * sniff: eBPF on a raw socket. A socket filter decides in the kernel which
 * frames of an interface reach user space (expression, L7 condition) and
 * how many bytes of each; the frames arrive through a memory-mapped
 * TPACKET_V3 ring. The traffic itself is never touched.
 *
 * @module
 */
export { Sniffer } from "./sniffer.ts";
export type { SnifferOptions, SniffL7, SniffStats } from "./sniffer.ts";
export { SNIFF, sniffStats } from "./layout.ts";
export type { SniffStatsStruct } from "./layout.ts";
export { readFrameHeaders } from "./frame.ts";
export type { FrameHeaders } from "./frame.ts";
export {
  dnsTypeName,
  formatL7,
  HTTP_METHODS,
  L7_DNS,
  L7_HTTP,
  L7_TLS,
  l7End,
  readL7,
  readL7Fields,
} from "./l7.ts";
export type { DnsRecord, HttpRecord, L7Fields, L7Record, TlsRecord } from "./l7.ts";
export { decodeFrame, formatFrame, frameRecord, tcpFlagsText } from "./summary.ts";
export type { FrameRecord } from "./summary.ts";

/**
 * `belt sniff --help`.
 *
 * @example
 * ```ts
 * import { SNIFF_HELP } from "@belt/belt";
 * console.log(SNIFF_HELP.split("\n")[0]); // belt sniff — capture with an eBPF socket filter
 * ```
 */
export const SNIFF_HELP = `belt sniff — capture with an eBPF socket filter

Usage: belt sniff IFACE [EXPR] [options]

The kernel runs EXPR (and the L7 condition) on every frame of IFACE, both
directions, and hands over only the matching ones, cut to --snaplen, through a
memory-mapped ring. Output: one tcpdump-like line per frame; with --http,
--dns or --tls-sni the decoded request instead; --json for JSON lines;
--pcap for pcapng. A summary (captured, seen, dropped) ends on stderr.

EXPR: terms joined by 'and' (or spaces), alternatives by 'or' (up to 16):
  tcp udp icmp icmp6 ip ip6 arp       proto N      vlan [ID]
  [src|dst] host ADDR                 [src|dst] net CIDR (IPv4 or IPv6)
  [src|dst] port P[-Q]  sport dport   in | out (received / sent)
  icmp type NAME|N [code N]           ether [src|dst|host] MAC, ether proto N
  e.g.  tcp and dst port 80 and net 198.18.0.0/15 or udp port 53
  No 'not' and no parentheses: write the alternatives out.

Options:
  --http             only HTTP/1.x requests: METHOD TARGET VERSION Host
  --dns              only DNS queries (UDP port 53): type and name
  --tls-sni          only TLS ClientHellos with a server name (SNI)
                     (several: any of them; TCP on any port)
  --snaplen N        keep the first N bytes of each frame (default: whole);
                     an L7 match keeps at least the bytes its record needs
  --pcap FILE|-      write pcapng to FILE (in blocks, at least once a second),
                     or to stdout with - (within 50 ms, e.g. into wireshark -k -i -)
  --count N          stop after N frames
  --duration S       stop after S seconds
  --no-promisc       leave the interface's promiscuous mode alone
  --json             one JSON record per frame, then a summary record

Runs until Ctrl-C/SIGTERM, --count or --duration; nothing stays attached.`;

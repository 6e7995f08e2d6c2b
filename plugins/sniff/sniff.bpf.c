/* sniff: a socket filter (SEC("socket")) for an AF_PACKET socket. It decides
 * in the kernel which frames reach `belt sniff` and how many bytes of each:
 * the expression's rules (OR-ed, belt_match.h), then an optional L7
 * condition (HTTP request, DNS query, TLS ClientHello with a server name,
 * belt_l7.h), then the snap length. It only reads the frame: the traffic
 * itself is untouched, the socket gets a copy.
 *
 * Every byte is read with bpf_skb_load_bytes() (socket filters have no
 * direct packet access), so paged skbs parse like linear ones. */
#define BELT_CURSOR_LOAD_BYTES
#include "belt_l7.h"
#include "belt_match.h"
#include "sniff.h"

#define PACKET_OUTGOING 4 /* skb->pkt_type of a frame this host sends */

const volatile __u32 n_rules = 0;
const volatile __u32 l7_mask = 0; /* SNIFF_L7_* bits; 0: no L7 condition */
const volatile __u32 snaplen = 0; /* bytes kept per frame; 0: the whole frame */
/* Not const: clang would fold reads through a pointer into a const array to
 * its all-zero initializer. */
struct belt_rule rules[SNIFF_MAX_RULES] SEC(".data") = {};

/* belt_packet and belt_l7 (368 bytes) do not fit the 512-byte stack beside
 * the parsers' frames; one per CPU (socket filters run with BHs off). */
struct sniff_scratch {
	struct belt_packet pkt;
	struct belt_l7 l7;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sniff_scratch);
} sniff_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sniff_stats);
} sniff_stats SEC(".maps");

static __always_inline int wanted(const struct belt_packet *p, __u8 dir)
{
	for (__u32 i = 0; i < SNIFF_MAX_RULES; i++) {
		if (i >= n_rules)
			break;
		if (belt_rule_match(&rules[i], p, dir))
			return 1;
	}
	return 0;
}

/* Bytes from the frame's start that user space needs to read the same L7
 * record back (plugins/sniff/l7.ts): the whole window the HTTP parser read
 * (the Host line may end anywhere in it), a DNS name and its QTYPE/QCLASS,
 * a TLS server name. */
static __always_inline __u32 l7_need(const struct belt_l7 *l7, __u32 end)
{
	__u32 window_end = l7->payload_off + BELT_HTTP_WINDOW;

	if (l7->proto == BELT_L7_HTTP)
		return window_end < end ? window_end : end;
	if (l7->proto == BELT_L7_DNS)
		return l7->name_off + l7->name_wire + 4;
	return l7->name_off + l7->name_len;
}

SEC("socket")
int sniff(struct __sk_buff *skb)
{
	struct sniff_scratch *w;
	struct sniff_stats *st;
	struct belt_cursor c;
	__u32 key = 0, keep, need;
	int proto;
	__u8 dir;

	st = bpf_map_lookup_elem(&sniff_stats, &key);
	w = bpf_map_lookup_elem(&sniff_scratch, &key);
	if (!st || !w)
		return 0;
	st->seen++;
	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, &w->pkt);
	dir = skb->pkt_type == PACKET_OUTGOING ? BELT_DIR_OUT : BELT_DIR_IN;
	if (n_rules && !wanted(&w->pkt, dir))
		return 0;
	st->matched++;
	keep = snaplen && snaplen < skb->len ? snaplen : skb->len;
	if (l7_mask) {
		proto = belt_l7_parse(skb, &w->pkt, &w->l7);
		if (!proto || !(l7_mask & (1u << proto)))
			return 0;
		need = l7_need(&w->l7, belt_l7_end(&w->pkt, skb->len));
		if (need > keep)
			keep = need;
	}
	st->passed++;
	st->bytes += keep;
	return keep;
}

/* BTF for the layout test. */
struct sniff_stats *unused_sniff_stats __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";

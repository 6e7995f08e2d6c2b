/* belt_l7.h: application-layer fields read in the kernel from an skb, past
 * the headers belt_parse() found: an HTTP/1.x request line (and its Host
 * header), a DNS query's first question, a TLS ClientHello's server name.
 *
 * Every byte is read with bpf_skb_load_bytes(), so the parsers work from
 * socket filters (no direct packet access) and TC alike, paged skbs
 * included. Offsets are from skb->data, like belt_packet's l3_off/l4_off.
 *
 * Rules for readers of struct belt_l7:
 *   - proto says which parser matched; when it is 0, every field is 0;
 *   - a field is reported only when every length leading to it was checked
 *     against the end of the packet (and of the IP datagram): a truncated
 *     or malformed payload gives no match, never a guess;
 *   - only this packet is read: a request line, question or ClientHello
 *     that continues in the next TCP segment matches only if what is needed
 *     is in this one (e.g. a big ClientHello whose server_name extension
 *     sits in its second segment does not match).
 *
 * Usage, in a socket filter:
 *
 *	#define BELT_CURSOR_LOAD_BYTES
 *	#include "belt_l7.h"
 *	...
 *	belt_cursor_init_skb(&c, skb);
 *	belt_parse(&c, pkt);
 *	if (belt_l7_parse(skb, pkt, l7) == BELT_L7_DNS && l7->qtype == 28) ...
 *
 * pkt and l7 must point to memory the verifier knows the size of (stack or
 * map value); struct belt_l7 is 288 bytes, a map value suits it best.
 *
 * The parsers are global functions: the verifier checks each once, whatever
 * the caller's state (about 30k instructions processed for all three), and
 * libbpf loads only those a program calls. Byte scans over data-dependent
 * positions run in bpf_loop() (kernel 5.17+). Including this file creates
 * a per-CPU scratch map, belt_l7_scratch (2 KiB per CPU). */
#ifndef BELT_L7_H
#define BELT_L7_H

#include "belt_packet.h"

#ifndef __noinline
#define __noinline __attribute__((noinline))
#endif

/* struct belt_l7.proto */
#define BELT_L7_HTTP 1 /* HTTP/1.x request line */
#define BELT_L7_DNS  2 /* DNS query (UDP, destination port 53) */
#define BELT_L7_TLS  3 /* TLS ClientHello with a server_name */

/* struct belt_l7.method: HTTP request methods, in this order. */
#define BELT_HTTP_GET     1
#define BELT_HTTP_POST    2
#define BELT_HTTP_PUT     3
#define BELT_HTTP_DELETE  4
#define BELT_HTTP_HEAD    5
#define BELT_HTTP_OPTIONS 6
#define BELT_HTTP_PATCH   7
#define BELT_HTTP_CONNECT 8
#define BELT_HTTP_TRACE   9

/* Limits. */
#define BELT_L7_NAME_MAX   255  /* longest name reported (SNI, Host; a DNS name is <= 253) */
#define BELT_HTTP_LINE_MAX 512  /* longest request line, "GET /... HTTP/1.1" without CRLF */
#define BELT_HTTP_WINDOW   2048 /* payload bytes read from an HTTP request: the Host
                                 * header is found only if its line ends within them */
#define BELT_DNS_NAME_MAX  255  /* wire length of a DNS name, label lengths and root included */
#define BELT_TLS_MAX_EXT   32   /* ClientHello extensions walked looking for server_name */

/* What the parsers found. Naturally aligned, no implicit padding (checked
 * below); numbers are host order, text is NUL-padded. */
struct belt_l7 {
	__u8  proto;       /*  0: BELT_L7_*, 0 if nothing matched (then all fields are 0) */
	__u8  method;      /*  1: HTTP: BELT_HTTP_* */
	__u8  version;     /*  2: HTTP: minor version, 0 or 1 (HTTP/1.0, HTTP/1.1) */
	__u8  pad0;        /*  3 */
	__u16 qtype;       /*  4: DNS: QTYPE of the first question (1 A, 28 AAAA, 15 MX...) */
	__u16 qclass;      /*  6: DNS: QCLASS (1 IN) */
	__u32 target_off;  /*  8: HTTP: offset of the request target (path) in the packet */
	__u16 target_len;  /* 12: HTTP: its length (>= 1; the line is <= BELT_HTTP_LINE_MAX) */
	__u16 name_len;    /* 14: length of name[]: DNS: the dotted name (0 for the root);
	                    *     TLS: the server name; HTTP: the Host value, 0 if not found */
	__u32 name_off;    /* 16: offset in the packet: DNS: of the name's first length byte;
	                    *     TLS: of the server name; HTTP: of the Host value (0: none) */
	__u16 name_wire;   /* 20: bytes the name takes in the packet: DNS: name_len + 2 (label
	                    *     lengths and root), 1 for the root; TLS, HTTP: name_len */
	__u16 pad1;        /* 22 */
	__u32 payload_off; /* 24: offset of the L4 payload the parser read */
	__u32 pad2;        /* 28 */
	char  name[256];   /* 32: the name as text (see name_len), NUL-padded */
};

_Static_assert(sizeof(struct belt_l7) == 288, "belt_l7 layout changed");
_Static_assert(__builtin_offsetof(struct belt_l7, name) == 32, "belt_l7 layout changed");

#define BELT_HTTP_MASK (BELT_HTTP_WINDOW - 1)
_Static_assert((BELT_HTTP_WINDOW & BELT_HTTP_MASK) == 0, "BELT_HTTP_WINDOW: a power of two");

struct belt_l7_window {
	__u8 b[BELT_HTTP_WINDOW];
};

/* Scratch for the HTTP parser: too big for the stack. Per CPU: socket
 * filters and TC programs run in softirq or with bottom halves off, so no
 * other run on the same CPU comes in between. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct belt_l7_window);
} belt_l7_scratch SEC(".maps");

/* Copy len bytes at off into to, if [off, off + len) lies before end. */
static __always_inline int belt_l7_load(struct __sk_buff *skb, __u32 off, __u32 end,
					void *to, __u32 len)
{
	if (off > end || end - off < len)
		return -1;
	return bpf_skb_load_bytes(skb, off, to, len) ? -1 : 0;
}

static __always_inline __u16 belt_be16(const __u8 *p)
{
	return (__u16)p[0] << 8 | p[1];
}

/* Names reported as text hold printable ASCII only (0x21-0x7e), so that the
 * text is the name: no spaces, controls or NULs that would read as
 * something else. Checks out->name[0, len). */
__noinline int belt_l7_printable(const struct belt_l7 *out, __u32 len)
{
	if (!out)
		return 0;
	for (__u32 i = 0; i < BELT_L7_NAME_MAX; i++) {
		if (i >= len)
			break;
		if (out->name[i] < 0x21 || out->name[i] > 0x7e)
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------------
 * HTTP/1.x request: METHOD SP request-target SP HTTP/1.x CRLF, then header
 * lines; Host is "Host:" (any case) OWS value OWS CRLF. */

#define BELT_LE4(a, b, c, d) ((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24)
#define BELT_LE8(a, b, c, d, e, f, g, h) \
	(BELT_LE4(a, b, c, d) | BELT_LE4(e, f, g, h) << 32)

/* Method from the first 8 payload bytes (little-endian word): sets *len to
 * the method's length; the byte after it must be a space. */
static __always_inline __u8 belt_http_method(__u64 w, __u32 *len)
{
	__u64 w4 = w & 0xffffffffULL, w5 = w & 0xffffffffffULL, w6 = w & 0xffffffffffffULL;
	__u64 w7 = w & 0xffffffffffffffULL;

	*len = 3;
	if (w4 == BELT_LE4('G', 'E', 'T', ' '))
		return BELT_HTTP_GET;
	if (w4 == BELT_LE4('P', 'U', 'T', ' '))
		return BELT_HTTP_PUT;
	*len = 4;
	if (w5 == BELT_LE8('P', 'O', 'S', 'T', ' ', 0, 0, 0))
		return BELT_HTTP_POST;
	if (w5 == BELT_LE8('H', 'E', 'A', 'D', ' ', 0, 0, 0))
		return BELT_HTTP_HEAD;
	*len = 5;
	if (w6 == BELT_LE8('P', 'A', 'T', 'C', 'H', ' ', 0, 0))
		return BELT_HTTP_PATCH;
	if (w6 == BELT_LE8('T', 'R', 'A', 'C', 'E', ' ', 0, 0))
		return BELT_HTTP_TRACE;
	*len = 6;
	if (w7 == BELT_LE8('D', 'E', 'L', 'E', 'T', 'E', ' ', 0))
		return BELT_HTTP_DELETE;
	*len = 7;
	if (w == BELT_LE8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' '))
		return BELT_HTTP_OPTIONS;
	if (w == BELT_LE8('C', 'O', 'N', 'N', 'E', 'C', 'T', ' '))
		return BELT_HTTP_CONNECT;
	return 0;
}

/* Byte i of the window. The mask keeps the verifier's offset in bounds (the
 * callers check i < n, so it never wraps); barrier_var() stops clang from
 * dropping it where clang knows the bound from a check the verifier saw on
 * another register. */
static __always_inline __u8 belt_w(const struct belt_l7_window *w, __u32 i)
{
	barrier_var(i);
	return w->b[i & BELT_HTTP_MASK];
}
#define BELT_W(w, i) belt_w(w, i)

/* The scanning loops below live in global functions and count from 0 to a
 * constant: the verifier checks each loop once, for any start and length,
 * instead of once per position a caller could pass. */

/* The request target starts at t: returns the offset of the space after it
 * (the target is then w[t, sp)), or 0 if a control character or the end of
 * the line limit or of the data (n) comes first. */
__noinline int belt_http_target(const struct belt_l7_window *w, __u32 t, __u32 n)
{
	if (!w || t >= BELT_HTTP_LINE_MAX)
		return 0;
	for (__u32 k = 0; k < BELT_HTTP_LINE_MAX; k++) {
		__u32 i = t + k;
		__u8 ch;

		if (i >= n || i >= BELT_HTTP_LINE_MAX)
			return 0;
		ch = BELT_W(w, i);
		if (ch == ' ')
			return i;
		if (ch < 0x21 || ch == 0x7f)
			return 0;
	}
	return 0;
}

/* State of the Host header scan, one bpf_loop() step per window byte (a
 * plain loop over 2048 bytes has more branches than the verifier follows). */
struct belt_http_scan {
	const struct belt_l7_window *w;
	__u32 n;     /* bytes in w */
	__u32 from;  /* first byte of the header lines */
	__u32 line;  /* start of the current line */
	__u32 vs;    /* Host: where its value may start (after "host:") */
	__u32 fs;    /* first byte of the value, 0 until seen */
	__u32 ve;    /* one past its last byte */
	__u32 state; /* BELT_HTTP_SCAN_* */
};

#define BELT_HTTP_SCAN_LINES 0 /* looking for "host:" at line starts */
#define BELT_HTTP_SCAN_VALUE 1 /* in the Host value */
#define BELT_HTTP_SCAN_FOUND 2 /* the value ended with CRLF */

static int belt_http_host_step(__u32 k, void *data)
{
	struct belt_http_scan *s = data;
	const struct belt_l7_window *w = s->w;
	__u32 i = s->from + k;
	__u8 ch, next;

	if (i + 1 >= s->n)
		return 1; /* the line does not end in the window */
	ch = BELT_W(w, i);
	next = BELT_W(w, i + 1);
	if (s->state == BELT_HTTP_SCAN_LINES) {
		if (i == s->line) {
			if (ch == '\r' && next == '\n')
				return 1; /* the blank line: end of the headers */
			if (i + 5 <= s->n && (ch | 0x20) == 'h' && (next | 0x20) == 'o' &&
			    (BELT_W(w, i + 2) | 0x20) == 's' && (BELT_W(w, i + 3) | 0x20) == 't' &&
			    BELT_W(w, i + 4) == ':') {
				s->state = BELT_HTTP_SCAN_VALUE;
				s->vs = i + 5;
				return 0;
			}
		}
		if (ch == '\r' && next == '\n')
			s->line = i + 2;
		return 0;
	}
	if (i < s->vs)
		return 0; /* still "ost:" */
	if (ch == '\r') {
		if (next == '\n' && s->fs)
			s->state = BELT_HTTP_SCAN_FOUND;
		return 1;
	}
	if (ch == ' ' || ch == '\t')
		return 0; /* spaces around the value are not part of it */
	if (s->ve && s->ve != i)
		return 1; /* a space inside the value: not a host */
	if (!s->fs)
		s->fs = i;
	s->ve = i + 1;
	return 0;
}

/* Find the Host header among the header lines at w[from, n) and fill out's
 * name fields (out->payload_off is where w starts in the packet). Returns 1
 * if found. */
__noinline int belt_http_host(struct __sk_buff *skb, const struct belt_l7_window *w, __u32 from,
			      __u32 n, struct belt_l7 *out)
{
	struct belt_http_scan s = { .w = w, .n = n, .from = from, .line = from };
	__u64 len; /* sizes are 64-bit: a u32 would be checked on a zero-extended copy */

	if (!w || !out || from >= n || n > BELT_HTTP_WINDOW)
		return 0;
	bpf_loop(n - from, belt_http_host_step, &s, 0);
	if (s.state != BELT_HTTP_SCAN_FOUND || s.ve <= s.fs)
		return 0;
	len = (__u64)s.ve - s.fs;
	if (!belt_size_ok(&len, BELT_L7_NAME_MAX) ||
	    bpf_skb_load_bytes(skb, out->payload_off + s.fs, out->name, len))
		goto none;
	if (!belt_l7_printable(out, len))
		goto none;
	out->name_off = out->payload_off + s.fs;
	out->name_len = len;
	out->name_wire = len;
	return 1;
none:
	__builtin_memset(out->name, 0, sizeof(out->name));
	return 0;
}

/* Parse an HTTP/1.x request line at payload offset off (a TCP payload);
 * end: first offset past the payload. Returns BELT_L7_HTTP or 0. */
__noinline int belt_http_parse(struct __sk_buff *skb, __u32 off, __u32 end, struct belt_l7 *out)
{
	const char *v = "HTTP/1.";
	struct belt_l7_window *w;
	__u32 key = 0, mlen, t, sp;
	__u64 first, n; /* 64 bits: a u32 would be checked on a zero-extended copy */
	__u8 method, minor;

	if (!out)
		return 0;
	__builtin_memset(out, 0, sizeof(*out));
	if (off >= end)
		return 0;
	n = (__u64)end - off;
	if (n > BELT_HTTP_WINDOW)
		n = BELT_HTTP_WINDOW;
	if (n < 16) /* "GET / HTTP/1.0\r\n" */
		return 0;
	/* The method first, so that other payloads cost one 8-byte copy. */
	if (bpf_skb_load_bytes(skb, off, &first, sizeof(first)))
		return 0;
	method = belt_http_method(first, &mlen);
	if (!method)
		return 0;
	w = bpf_map_lookup_elem(&belt_l7_scratch, &key);
	if (!w || bpf_skb_load_bytes(skb, off, w->b, n))
		return 0;
	t = mlen + 1;
	sp = belt_http_target(w, t, n);
	/* Then exactly "HTTP/1.0\r\n" or "HTTP/1.1\r\n", within the line limit. */
	if (sp <= t || sp + 11 > n || sp + 9 > BELT_HTTP_LINE_MAX)
		return 0;
#pragma unroll
	for (int k = 0; k < 7; k++)
		if (BELT_W(w, sp + 1 + k) != v[k])
			return 0;
	minor = BELT_W(w, sp + 8);
	if ((minor != '0' && minor != '1') || BELT_W(w, sp + 9) != '\r' ||
	    BELT_W(w, sp + 10) != '\n')
		return 0;

	out->proto = BELT_L7_HTTP;
	out->method = method;
	out->version = minor - '0';
	out->payload_off = off;
	out->target_off = off + t;
	out->target_len = sp - t;
	belt_http_host(skb, w, sp + 11, n, out);
	return BELT_L7_HTTP;
}

/* ------------------------------------------------------------------------
 * DNS query: 12-byte header (QR = 0, QDCOUNT >= 1), then the first
 * question: QNAME as labels (no compression pointer), QTYPE, QCLASS. */

/* One bpf_loop() step per byte of a DNS name's text: in a plain loop, the
 * verifier would follow every label layout apart (the position of the
 * next length byte depends on the data). */
struct belt_dns_scan {
	struct belt_l7 *out;
	__u32 text; /* length of the text */
	__u32 next; /* where the next length byte sits in it */
	__u32 bad;  /* set if a byte may not be reported */
};

static int belt_dns_text_step(__u32 i, void *data)
{
	struct belt_dns_scan *s = data;
	__u8 ch;

	if (i >= s->text)
		return 1;
	ch = s->out->name[i & 0xff]; /* text <= 253: the mask changes nothing */
	if (i == s->next) {
		s->out->name[i & 0xff] = '.';
		s->next = i + 1 + ch;
	} else if (ch < 0x21 || ch > 0x7e || ch == '.') {
		/* Not printable, or a dot inside a label: the text would misread. */
		s->bad = 1;
		return 1;
	}
	return 0;
}

/* Copy the dotted text of a DNS name already walked by belt_dns_parse()
 * into out->name: the wire name at off, without its first length byte
 * (whose value is first) and root byte, the other length bytes turned into
 * dots; text is its length (1-253). Returns 0 if a label holds a dot or a
 * byte that is not printable (see belt_l7_printable()). */
__noinline int belt_dns_text(struct __sk_buff *skb, __u32 off, __u32 text, __u32 first,
			     struct belt_l7 *out)
{
	struct belt_dns_scan s = { .text = text, .next = first };
	__u64 len = text; /* a size: 64-bit, see belt_http_host() */

	if (!out || !belt_size_ok(&len, BELT_DNS_NAME_MAX - 2) ||
	    bpf_skb_load_bytes(skb, off + 1, out->name, len))
		return 0;
	s.out = out;
	bpf_loop(text, belt_dns_text_step, &s, 0);
	return !s.bad;
}

/* Parse a DNS query at payload offset off (a UDP payload); end: first
 * offset past it. Returns BELT_L7_DNS or 0. */
__noinline int belt_dns_parse(struct __sk_buff *skb, __u32 off, __u32 end, struct belt_l7 *out)
{
	__u8 hdr[12], tail[4], len = 0, first = 0;
	__u32 name, pos, wire;

	if (!out)
		return 0;
	__builtin_memset(out, 0, sizeof(*out));
	if (belt_l7_load(skb, off, end, hdr, sizeof(hdr)))
		return 0;
	if ((hdr[2] & 0x80) || belt_be16(&hdr[4]) == 0) /* a response, or no question */
		return 0;

	/* Walk the labels, one length byte at a time: each must lie in the
	 * packet, and the name within BELT_DNS_NAME_MAX bytes. */
	name = off + sizeof(hdr);
	pos = name;
	for (int k = 0; k <= BELT_DNS_NAME_MAX / 2; k++) {
		if (belt_l7_load(skb, pos, end, &len, 1))
			return 0;
		if (len == 0)
			break;
		if (len & 0xc0) /* a compression pointer (0xc0), or the reserved 0x40/0x80 */
			return 0;
		if (k == 0)
			first = len;
		pos += 1 + len;
		if (pos - name + 1 > BELT_DNS_NAME_MAX) /* + 1: the root byte still to come */
			return 0;
	}
	if (len != 0)
		return 0;
	wire = pos - name + 1;
	if (belt_l7_load(skb, pos + 1, end, tail, sizeof(tail)))
		return 0;
	/* The root alone ("") has no text. */
	if (wire > 1 && !belt_dns_text(skb, name, wire - 2, first, out)) {
		__builtin_memset(out, 0, sizeof(*out));
		return 0;
	}
	out->proto = BELT_L7_DNS;
	out->qtype = belt_be16(&tail[0]);
	out->qclass = belt_be16(&tail[2]);
	out->payload_off = off;
	out->name_off = name;
	out->name_len = wire > 1 ? wire - 2 : 0;
	out->name_wire = wire;
	return BELT_L7_DNS;
}

/* ------------------------------------------------------------------------
 * TLS ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2) in a handshake record,
 * server_name extension (RFC 6066 3): the first entry, host_name (0). */

/* Parse a ClientHello's server name at payload offset off (a TCP payload);
 * end: first offset past it. Returns BELT_L7_TLS or 0. Reads stay inside
 * the first record: a hello fragmented over records has another record
 * header in the middle, so whatever lies past the first record is not read. */
__noinline int belt_tls_parse(struct __sk_buff *skb, __u32 off, __u32 end, struct belt_l7 *out)
{
	__u8 rec[5], hs[4], b[4];
	__u32 lim, pos, hello_end, ext_end, len;

	if (!out)
		return 0;
	__builtin_memset(out, 0, sizeof(*out));
	/* Record header: handshake (22), version 3.x, length. */
	if (belt_l7_load(skb, off, end, rec, sizeof(rec)))
		return 0;
	if (rec[0] != 22 || rec[1] != 3)
		return 0;
	lim = off + sizeof(rec) + belt_be16(&rec[3]);
	if (lim > end)
		lim = end; /* the record goes on in the next segment */
	/* Handshake header: client_hello (1), 24-bit length. */
	pos = off + sizeof(rec);
	if (belt_l7_load(skb, pos, lim, hs, sizeof(hs)) || hs[0] != 1)
		return 0;
	hello_end = pos + sizeof(hs) + ((__u32)hs[1] << 16 | (__u32)hs[2] << 8 | hs[3]);
	pos += sizeof(hs);
	/* legacy_version 3.x, random (32), session id (<= 32). */
	if (belt_l7_load(skb, pos, lim, b, 2) || b[0] != 3)
		return 0;
	pos += 2 + 32;
	if (belt_l7_load(skb, pos, lim, b, 1) || b[0] > 32)
		return 0;
	pos += 1 + b[0];
	/* cipher_suites: 2-byte entries, at least one. */
	if (belt_l7_load(skb, pos, lim, b, 2))
		return 0;
	len = belt_be16(b);
	if (len < 2 || (len & 1))
		return 0;
	pos += 2 + len;
	/* compression_methods: at least one. */
	if (belt_l7_load(skb, pos, lim, b, 1) || b[0] < 1)
		return 0;
	pos += 1 + b[0];
	/* extensions, which must end inside the hello. */
	if (belt_l7_load(skb, pos, lim, b, 2))
		return 0;
	pos += 2;
	ext_end = pos + belt_be16(b);
	if (ext_end > hello_end)
		return 0;
	for (int k = 0; k < BELT_TLS_MAX_EXT; k++) {
		__u32 type, elen;
		__u64 nlen; /* a size: 64-bit, see belt_http_host() */

		if (pos + 4 > ext_end || belt_l7_load(skb, pos, lim, b, 4))
			return 0; /* no server_name in the extensions (or in this packet) */
		type = belt_be16(&b[0]);
		elen = belt_be16(&b[2]);
		pos += 4;
		if (pos + elen > ext_end)
			return 0;
		if (type != 0) {
			pos += elen;
			continue;
		}
		/* server_name: the list length (the rest of the extension), then
		 * the first entry: name_type host_name (0), 16-bit length, name. */
		if (elen < 5 || belt_l7_load(skb, pos, lim, b, 4))
			return 0;
		if (belt_be16(b) != elen - 2 || b[2] != 0)
			return 0;
		if (belt_l7_load(skb, pos + 3, lim, b, 2))
			return 0;
		nlen = belt_be16(b);
		barrier_var(nlen); /* or clang re-derives it after the checks, unchecked */
		if (5 + nlen > elen || pos + 5 + nlen > lim)
			return 0;
		if (!belt_size_ok(&nlen, BELT_L7_NAME_MAX) ||
		    bpf_skb_load_bytes(skb, pos + 5, out->name, nlen))
			goto none;
		if (!belt_l7_printable(out, nlen))
			goto none;
		out->proto = BELT_L7_TLS;
		out->payload_off = off;
		out->name_off = pos + 5;
		out->name_len = nlen;
		out->name_wire = nlen;
		return BELT_L7_TLS;
	}
	return 0; /* more than BELT_TLS_MAX_EXT extensions before server_name */
none:
	__builtin_memset(out, 0, sizeof(*out));
	return 0;
}

/* ------------------------------------------------------------------------
 * Dispatch on a parsed packet. */

/* First offset past the L4 payload: the packet's end, or the IP datagram's
 * if that comes first (Ethernet padding is not payload). A 0 IPv4 total
 * length or IPv6 payload length (BIG TCP, jumbograms) says nothing. */
static __always_inline __u32 belt_l7_end(const struct belt_packet *pkt, __u32 skb_len)
{
	__u32 ip_end = pkt->l3_off + pkt->ip_len;

	if (pkt->ip_len > (pkt->ip_version == 6 ? 40u : 0u) && ip_end < skb_len)
		return ip_end;
	return skb_len;
}

/* Run the parser the packet calls for: TCP payloads are tried as a TLS
 * ClientHello, then as an HTTP request (any port); UDP to port 53 as a DNS
 * query. pkt must come from belt_parse() on this skb. Returns the
 * BELT_L7_* found, or 0 with *out zeroed. */
static __always_inline int belt_l7_parse(struct __sk_buff *skb, const struct belt_packet *pkt,
					 struct belt_l7 *out)
{
	__u32 off = pkt->l4_off + pkt->l4_hdr_len, end = belt_l7_end(pkt, skb->len);

	if ((pkt->flags & BELT_F_L4) && pkt->l4_proto == IPPROTO_TCP) {
		if (belt_tls_parse(skb, off, end, out))
			return BELT_L7_TLS;
		return belt_http_parse(skb, off, end, out);
	}
	if ((pkt->flags & BELT_F_L4) && pkt->l4_proto == IPPROTO_UDP && pkt->dst_port == 53)
		return belt_dns_parse(skb, off, end, out);
	__builtin_memset(out, 0, sizeof(*out));
	return 0;
}

#endif /* BELT_L7_H */

/* match_rule.bpf.c: runs belt_match.h in the kernel for tests/rules_test.ts.
 *
 * One test run parses the frame with belt_parse() onto the stack (as the
 * plugins do) and evaluates every rule of map `rules` on it in both
 * directions, so a single BPF_PROG_TEST_RUN answers rules x 2 questions.
 * Map `out` receives the parsed struct belt_packet and one verdict byte (0 or
 * 1) per rule and direction; the test poisons it before each run, so a slot
 * left unwritten shows. The rules loop is a bpf_loop() callback, verified
 * once however many rules there are, and belt_rule_match() sits in a global
 * function, which the verifier checks once for any rule and any packet. */
#include "belt_match.h"

#define MATCH_MAX_RULES 512

/* The rule array exactly as packRules(rules, MATCH_MAX_RULES) packs it, then the count. */
struct match_rules {
	struct belt_rule rule[MATCH_MAX_RULES]; /*     0 */
	__u32 count;                            /* 53248 (512 * 104): rules to evaluate */
};

struct match_out {
	struct belt_packet pkt;              /*  0: belt_parse() of the frame */
	__u8 verdict[MATCH_MAX_RULES][2];    /* 80: [rule][direction - 1] */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct match_rules);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct match_out);
} out SEC(".maps");

struct match_ctx {
	struct belt_packet pkt; /* on the caller's stack, read by the callback */
};

/* Global, not inlined: inlined into the callback, belt_rule_match() is
 * verified again for each state of the stack packet that belt_parse()'s paths
 * leave behind (known flag bits and fields): 865k instructions processed with
 * the 80-byte rule, over the 1M limit once MAC and ICMP conditions came. As a
 * global function the whole program takes about 11k. */
__noinline int match_dir(const struct belt_rule *r, const struct belt_packet *p, __u8 dir)
{
	if (!r || !p)
		return 0;
	return belt_rule_match(r, p, dir);
}

static int match_one(__u32 i, void *data)
{
	struct match_ctx *ctx = data;
	struct match_rules *rs;
	struct match_out *o;
	__u32 key = 0;

	rs = bpf_map_lookup_elem(&rules, &key);
	o = bpf_map_lookup_elem(&out, &key);
	if (!rs || !o)
		return 1;
	/* The caller passes at most MATCH_MAX_RULES; the check must be on the very
	 * register that indexes, so keep clang from checking a copy. */
	barrier_var(i);
	if (i >= MATCH_MAX_RULES)
		return 1;
	/* dir is a run-time value here, as in a plugin that serves both hooks. */
	for (__u8 dir = BELT_DIR_IN; dir <= BELT_DIR_OUT; dir++)
		o->verdict[i][dir - 1] = match_dir(&rs->rule[i], &ctx->pkt, dir) ? 1 : 0;
	return 0;
}

SEC("tc")
int match_rule(struct __sk_buff *skb)
{
	struct belt_cursor c;
	struct match_ctx ctx;
	struct match_rules *rs;
	struct match_out *o;
	__u32 key = 0, n;

	rs = bpf_map_lookup_elem(&rules, &key);
	o = bpf_map_lookup_elem(&out, &key);
	if (!rs || !o)
		return BELT_NEXT;
	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, &ctx.pkt);
	__builtin_memcpy(&o->pkt, &ctx.pkt, sizeof(ctx.pkt));
	n = rs->count;
	if (n > MATCH_MAX_RULES)
		n = MATCH_MAX_RULES;
	bpf_loop(n, match_one, &ctx, 0);
	return BELT_NEXT;
}

char LICENSE[] SEC("license") = "GPL";

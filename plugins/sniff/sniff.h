/* sniff.h: what plugins/sniff/sniff.bpf.c shares with user space
 * (plugins/sniff/layout.ts; a test checks it against this file's BTF). */
#ifndef SNIFF_H
#define SNIFF_H

#define SNIFF_MAX_RULES 16 /* terms of the expression joined by `or` */

/* Bits of l7_mask: a frame must also carry one of these (BELT_L7_* from
 * belt_l7.h, as bit numbers). */
#define SNIFF_L7_HTTP (1u << 1) /* BELT_L7_HTTP */
#define SNIFF_L7_DNS  (1u << 2) /* BELT_L7_DNS */
#define SNIFF_L7_TLS  (1u << 3) /* BELT_L7_TLS */

/* Counters, per CPU, summed by user space. */
struct sniff_stats {
	__u64 seen;     /* frames the filter ran on */
	__u64 matched;  /* ... that matched the expression */
	__u64 passed;   /* ... and the L7 condition: handed to the socket */
	__u64 bytes;    /* bytes handed to the socket (after the snap length) */
};

#endif /* SNIFF_H */

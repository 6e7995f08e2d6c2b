/* belt.h: verdicts and small helpers shared by every belt eBPF program.
 *
 * A TC program in a belt chain returns BELT_NEXT to hand the packet to the
 * next program (TC_ACT_UNSPEC, which TCX also reads as "next"), or a final
 * verdict that ends the chain. */
#ifndef BELT_H
#define BELT_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define BELT_NEXT TC_ACT_UNSPEC /* -1: run the next program of the chain */
#define BELT_PASS TC_ACT_OK     /*  0: accept, end the chain */
#define BELT_DROP TC_ACT_SHOT   /*  2: drop, end the chain */

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Whether *n is a size in [1, max], for helpers that refuse 0 (bpf_skb_load_bytes). Kernels
 * before 6.8 learn no lower bound from `n != 0`, so `n == 0 || n > max` leaves their verifier
 * with a possible 0; one unsigned compare on n - 1 (0 wraps) and handing back (n - 1) + 1 gives
 * every verifier [1, max]. barrier_var() keeps clang from folding that back into n. */
static __always_inline int belt_size_ok(__u64 *n, __u64 max)
{
	__u64 m = *n - 1;

	barrier_var(m);
	if (m >= max)
		return 0;
	*n = m + 1;
	return 1;
}

#endif /* BELT_H */

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

#endif /* BELT_H */

/* firewall.h: structs the firewall shares with user space
 * (plugins/firewall/ TypeScript packs and reads them; tests/layout_test.ts checks
 * the layouts against this file's BTF).
 *
 * Rules live in one array (`fw_rules`, index = slot). Two indexes lead from
 * a packet to the few rules that can match it, per generation (see
 * fw_config), direction and side (source or destination address):
 *   - fw_hosts: hash of whole addresses (/32, /128) -> up to FW_SLOTS slots;
 *   - fw_nets:  LPM trie of shorter prefixes -> up to FW_SLOTS slots; rules
 *     without any address are kept under the /0 prefix of the source side.
 * A rule with a source prefix is indexed by it; else by its destination
 * prefix; a rule with `host`/`net` (either side) is indexed on both sides.
 * Slots in an index entry are sorted by rule order, and the program keeps
 * the matching rule with the lowest order: first match wins. */
#ifndef FIREWALL_H
#define FIREWALL_H

#include <linux/types.h>
#include "belt_match.h"

#define FW_SLOTS 32              /* rules per index entry (one prefix, one side) */
#define FW_CAPACITY 131072       /* default number of rule slots */
#define FW_NO_MATCH 0xffffffffu  /* order/slot: nothing matched */

#define FW_SIDE_SRC 0
#define FW_SIDE_DST 1

#define FW_ACT_PASS 1
#define FW_ACT_DROP 2
#define FW_ACT_LIMIT 3 /* per-source token bucket: pass within rate, drop above */

/* One rule (array fw_rules, index = slot). A slot is written only while no
 * index refers to it, so the program never sees a rule half-written. */
struct fw_rule {
	struct belt_rule match; /*   0: conditions, all must hold */
	__u32 order;            /* 104: lower runs first (first match wins) */
	__u32 id;               /* 108: unique while loaded; keys rate-limit buckets */
	__u8  action;           /* 112: FW_ACT_* */
	__u8  in_use;           /* 113: 1 while the rule is part of the rule set */
	__u8  origin;           /* 114: where it came from (user space's bookkeeping) */
	__u8  pad;              /* 115 */
	__u32 rate;             /* 116: FW_ACT_LIMIT: packets per second per source */
	__u64 interval_ns;      /* 120: 1e9 / rate */
	__u64 tolerance_ns;     /* 128: interval_ns * burst */
};

/* Key of fw_hosts. */
struct fw_host_key {
	__u8 gen;      /* 0: index generation (fw_config.gen says which is live) */
	__u8 dir;      /* 1: BELT_DIR_IN or BELT_DIR_OUT */
	__u8 side;     /* 2: FW_SIDE_* */
	__u8 pad;      /* 3 */
	__u8 addr[16]; /* 4: belt_packet's 16-byte form */
};

/* Key of fw_nets: prefixlen counts the gen, dir and side bytes too (24 +
 * the address prefix length), so each is its own subtree. */
struct fw_net_key {
	__u32 prefixlen; /*  0 */
	__u8 gen;        /*  4 */
	__u8 dir;        /*  5 */
	__u8 side;       /*  6 */
	__u8 addr[16];   /*  7 */
	__u8 pad;        /* 23: never part of a prefix */
};

/* Bits of fw_net_key.prefixlen before the address. */
#define FW_NET_KEY_BITS 24

/* Value of both indexes: the rules with this exact prefix, by order. */
struct fw_slots {
	__u8  len;            /* 0: address prefix length (0-128) of this entry */
	__u8  count;          /* 1: slots used */
	__u8  pad[2];         /* 2 */
	__u32 slots[FW_SLOTS]; /* 4 */
};

/* Per-rule counters (per-CPU array fw_counters, index = slot). */
struct fw_counter {
	__u64 packets; /*  0: packets the rule decided */
	__u64 bytes;   /*  8 */
	__u64 limited; /* 16: FW_ACT_LIMIT: packets over the rate, dropped */
};

/* Per-CPU totals (fw_totals[0]); arrays indexed [0] in, [1] out. */
struct fw_totals {
	__u64 packets[2];         /*  0 */
	__u64 bytes[2];           /* 16 */
	__u64 dropped[2];         /* 32: by a rule, a limit or the default */
	__u64 default_passed[2];  /* 48: no rule matched, default allow */
	__u64 default_dropped[2]; /* 64: no rule matched, default deny */
	__u64 kept_nd;            /* 80: ARP / IPv6 ND passed despite default deny */
	__u64 fragments;          /* 88: non-first fragments (no ports, see docs) */
	__u64 malformed;          /* 96: parsing stopped early (truncated, malformed) */
};

/* fw_config[0]: written by user space, one byte per setting, so a reader
 * never sees a setting half-written.
 *
 * Rule changes are atomic for the program: user space keeps two copies
 * (generations) of both indexes, writes the change into the one not in
 * use, flips `gen`, then brings the other copy up to date. The program
 * reads `gen` once per packet. */
struct fw_config {
	__u8 default_in;  /* 0: FW_ACT_PASS or FW_ACT_DROP */
	__u8 default_out; /* 1 */
	__u8 keep_nd;     /* 2: 1: ARP and ND pass when only the default would drop them */
	__u8 gen;         /* 3: live index generation, 0 or 1 */
	__u8 egress;      /* 4: 1 when the egress program is attached */
	__u8 present[8];  /* 5: index FW_PRESENT(dir, side, net): 1 when that index may hold
	                   *    entries, so the program skips lookups into empty ones */
	__u8 pad[3];      /* 13 */
	__u32 slots_used; /* 16: user space only: slots past this one are all free */
};

/* Which fw_config.present byte covers an index: direction 1-2, FW_SIDE_*, 0 hosts / 1 nets. */
#define FW_PRESENT(dir, side, net) ((((dir) - 1) * 2 + (side)) * 2 + (net))

/* Key and value of fw_buckets (per-source rate limiting, GCRA). */
struct fw_bucket_key {
	__u32 id;      /* 0: fw_rule.id */
	__u8 addr[16]; /* 4: source address */
};

struct fw_bucket {
	__u64 tat; /* 0: theoretical arrival time of the next packet (CLOCK_MONOTONIC ns) */
};

_Static_assert(sizeof(struct fw_rule) == 136, "fw_rule layout changed");
_Static_assert(sizeof(struct fw_net_key) == 24, "fw_net_key layout changed");
_Static_assert(sizeof(struct fw_host_key) == 20, "fw_host_key layout changed");
_Static_assert(sizeof(struct fw_slots) == 132, "fw_slots layout changed");

#endif /* FIREWALL_H */

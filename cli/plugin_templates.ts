/** The files `belt plugin new NAME` writes: a working pass-through counter to start from. */

/** File name → contents for a new plugin called `name`, importing belt from `belt`. */
export function pluginTemplates(name: string, belt: string): Record<string, string> {
  const upper = name.toUpperCase();
  const camel = name.replace(/_(.)/g, (_, c: string) => c.toUpperCase());
  return {
    [`${name}.h`]:
      `/* Structs ${name} shares with TypeScript (mod.ts); ${name}_test.ts checks the layout. */
#ifndef ${upper}_H
#define ${upper}_H

#include <linux/types.h>

struct ${name}_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
`,
    [`${name}.bpf.c`]:
      `/* ${name}: counts packets per direction and hands every packet on (BELT_NEXT). */
#include "belt.h"
#include "${name}.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* 0: ingress, 1: egress */
	__type(key, __u32);
	__type(value, struct ${name}_counter);
} counters SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, __u32 direction)
{
	struct ${name}_counter *c = bpf_map_lookup_elem(&counters, &direction);
	if (c) {
		c->packets += 1;
		c->bytes += skb->len;
	}
	return BELT_NEXT;
}

SEC("tc")
int ${name}_in(struct __sk_buff *skb)
{
	return count(skb, 0);
}

SEC("tc")
int ${name}_out(struct __sk_buff *skb)
{
	return count(skb, 1);
}

/* Keeps the shared struct in BTF for the layout test. */
struct ${name}_counter *unused_${name}_counter __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
`,
    "mod.ts": `/** The ${name} plugin: packets and bytes per direction. */
import { BeltError, definePlugin, struct, u32, u64 } from "${belt}";
import { ${camel}Object } from "./${name}.bpf.ts";

/** struct ${name}_counter (${name}.h). */
export const counter = struct({ packets: u64, bytes: u64 });

/** The plugin: attach with \`belt run\` or \`startPlugin(${camel}, { iface })\`. */
export const ${camel} = definePlugin<Record<string, never>>({
  name: "${name}",
  description: "packets and bytes per direction",
  object: ${camel}Object,
  programs: [
    { program: "${name}_in", hook: "tc-ingress" },
    { program: "${name}_out", hook: "tc-egress" },
  ],
  options(raw, where) {
    const [key] = Object.keys(raw);
    if (key) throw new BeltError(\`\${where}.\${key}: ${name} takes no options\`);
    return {};
  },
  stats(obj) {
    const counters = obj.map("counters").typed(u32, counter);
    const ingress = counters.getSum(0)!;
    const egress = counters.getSum(1)!;
    return { packets_in: ingress.packets, packets_out: egress.packets };
  },
});
`,
    [`${name}_test.ts`]: `import { deepEqual } from "node:assert/strict";
import { BpfObject } from "${belt}";
import { counter } from "./mod.ts";
import { ${camel}Object } from "./${name}.bpf.ts";

Deno.test("${name}: the TypeScript counter matches struct ${name}_counter", () => {
  using obj = BpfObject.open(${camel}Object);
  const btf = obj.btfStruct("${name}_counter");
  deepEqual({ size: counter.size, members: counter.layout }, { size: btf.size, members: btf.members });
});
`,
  };
}

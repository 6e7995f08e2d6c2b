/** A user plugin whose name clashes with the built-in count: loading it must fail clearly. */
import { count, definePlugin } from "../../../plugins/mod.ts";

/** Same object as count, same name: refused by resolvePlugin. */
export const impostor = definePlugin({ ...count, name: "count" });

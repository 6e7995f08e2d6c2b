/** Terminal colour that respects NO_COLOR and non-terminal output. */
import { styleText } from "node:util";

/** `text` in `color` when stdout is a terminal and NO_COLOR is unset. */
export function styled(text: string, color: "green" | "yellow" | "red" | "bold"): string {
  if (Deno.env.get("NO_COLOR") || !Deno.stdout.isTerminal()) return text;
  return styleText(color, text);
}

/** Small statistics and number formatting for the bench report. */

/** The median (mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Events or operations per second from a count and nanoseconds. */
export function perSecond(count: number, ns: number): number {
  return ns > 0 ? count / (ns / 1e9) : NaN;
}

/** 1234567 -> "1.23 M", 45678 -> "45.7 k". */
export function rate(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return value.toFixed(0);
}

/** A ratio as "0.83x". */
export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

/** Milliseconds with one decimal. */
export function ms(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(1)} ms` : "n/a";
}

/** Nanoseconds per operation from ops/s. */
export function nsPerOp(opsPerSecond: number): string {
  return Number.isFinite(opsPerSecond) ? `${(1e9 / opsPerSecond).toFixed(0)} ns` : "n/a";
}

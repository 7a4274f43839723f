// Small statistics for benchmark samples: order statistics, not means, because these shared
// machines have long tails.

export interface Summary {
  n: number;
  median: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function summarise(samples: ArrayLike<number>): Summary {
  const s = Float64Array.from(samples as ArrayLike<number>).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    mean: s.length ? sum / s.length : NaN,
    min: s.length ? s[0]! : NaN,
    max: s.length ? s[s.length - 1]! : NaN,
  };
}

/** The middle value (the mean of the two middle values for an even count). */
export function median(values: number[]): number {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export function fmt(v: number, digits = 1): string {
  if (!Number.isFinite(v)) return '-';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table: first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

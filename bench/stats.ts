/**
 * Small statistics and formatting helpers for the benchmark: percentiles, medians, timed loops.
 *
 * @module
 */

/** The `p`-th percentile (0..100) of `values` by the nearest-rank method; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(rank, 1)) - 1];
}

/** The median of `values`; NaN when empty. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** The arithmetic mean of `values`; NaN when empty. */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Wall-clock milliseconds since the epoch with sub-millisecond resolution. */
export function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Times each of `count` sequential calls of `call`, in milliseconds. */
export async function timeEach(count: number, call: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await call();
    times.push(performance.now() - started);
  }
  return times;
}

/** What a closed loop of calls achieved. */
export interface LoopResult {
  calls: number;
  seconds: number;
  callsPerSecond: number;
}

/**
 * Runs `concurrency` loops, each calling `call` back to back, for `durationMs` (each loop
 * finishes its call in progress), and counts the calls.
 */
export async function closedLoop(
  concurrency: number,
  durationMs: number,
  call: (loop: number) => Promise<unknown>,
): Promise<LoopResult> {
  let calls = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(Array.from({ length: concurrency }, async (_, loop) => {
    while (performance.now() < deadline) {
      await call(loop);
      calls++;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return { calls, seconds, callsPerSecond: calls / seconds };
}

/** Runs `call` for each of `items` with at most `concurrency` at once. */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  call: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await call(items[next++]);
  }));
}

/** Milliseconds with a precision that suits their size. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** Bytes as MB (10^6) with one decimal. */
export function formatMB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : "-";
}

/** A ratio such as `1.23x`. */
export function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-";
}

/** A Markdown table whose columns are padded to line up (as `deno fmt` would). */
export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)]
    .join("\n");
}

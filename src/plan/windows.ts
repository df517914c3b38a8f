import { floorTo } from './time.ts';

/** Estimated rows per cursor bucket, epoch ms, `starts` strictly increasing (validated by the planner). */
export type Histogram = { starts: readonly number[]; rows: readonly number[] };

export type SplitOptions = {
  /** The cursor: first instant of the backlog. */
  start: number;
  /** Exclusive end of the backlog; for candles already a bucket boundary. Must be after `start`. */
  end: number;
  maxSpanMs: number;
  /** Candle interval: every window end is a multiple of it, and no window is shorter than one. */
  unitMs?: number | undefined;
  maxRows?: number | undefined;
  histogram?: Histogram | undefined;
  maxWindows: number;
};

/**
 * First index from `from` whose start is at or after `t`. A forward scan: the windows move forward, so
 * one split reads each bucket twice at most; and unlike a binary search's, no mutant of it loops without
 * end (each such mutant cost a mutation run its whole time limit).
 */
function firstAtOrAfter(starts: readonly number[], t: number, from = 0): number {
  let k = from;
  while (
    // Stryker disable next-line ConditionalExpression,EqualityOperator: past the end `undefined < t` stops the scan as well
    k < starts.length &&
    (starts[k] as number) < t
  )
    k++;
  return k;
}

/**
 * Cuts `[start, end)` into contiguous windows, in order, each within the span cap and, when a histogram
 * is given, within `maxRows` estimated rows. A bucket's rows count in the window holding its start. A
 * window never cuts finer than one histogram bucket (or one candle): a bucket that alone exceeds the cap
 * becomes a window of its own, because an exact cap would need a cut inside it that nothing can estimate.
 * Stops after `maxWindows`; the caller compares the last end with `end` to learn whether more remains.
 */
export function splitWindows(options: SplitOptions): Array<[number, number]> {
  const { start, end, maxSpanMs, unitMs, maxRows, histogram, maxWindows } = options;
  const align = (t: number) => (unitMs ? floorTo(t, unitMs) : t);
  const starts = histogram?.starts ?? [];
  const rows = histogram?.rows ?? [];
  const useRows = maxRows !== undefined && starts.length > 0;
  const windows: Array<[number, number]> = [];
  let s = start;
  let i = useRows ? firstAtOrAfter(starts, s) : 0;
  // Counted in the loop's head, so the loop ends even if its body stopped moving `s`.
  for (let n = 0; n < maxWindows && s < end; n++) {
    // Span cap, but never below one candle: a misaligned cursor is realigned by its first window.
    let e = Math.min(end, Math.max(align(s + maxSpanMs), unitMs ? floorTo(s, unitMs) + unitMs : s + 1));
    if (useRows) {
      const first = i;
      let acc = 0;
      for (; i < starts.length && (starts[i] as number) < e; i++) {
        const t = starts[i] as number;
        const n = rows[i] as number;
        if (acc + n <= (maxRows as number)) {
          acc += n;
          continue;
        }
        let cut = align(t);
        // Nothing estimated before this bucket (or it shares the first candle): take its unit whole.
        if (cut <= s || acc === 0) cut = Math.min(e, unitMs ? align(t) + unitMs : (starts[i + 1] ?? e));
        e = cut;
        break;
      }
      // A candle cut may fall before buckets already counted: they belong to the next window.
      i = firstAtOrAfter(starts, e, first);
    }
    windows.push([s, e]);
    s = e;
  }
  return windows;
}

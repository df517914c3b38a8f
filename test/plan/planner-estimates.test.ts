import { describe, expect, it } from 'vitest';
import type { Batch } from '../../src/plan/batch.ts';
import { planPass, type RowBucket } from '../../src/plan/planner.ts';
import { batchesOf, configWith, expectContiguous, iso, MIN, ms, spans, watermarks } from './fixtures.ts';

const C = ms('2026-11-22T00:00:00Z');
const now = '2026-11-22T04:00:00Z';
const perMinute = (from: number, rows: (minute: number) => number, minutes: number): RowBucket[] =>
  Array.from({ length: minutes }, (_, i) => ({ start: iso(from + i * MIN), rows: rows(i) }));
const estimate = (b: Batch, histogram: RowBucket[]) =>
  histogram
    .filter((h) => ms(h.start) >= ms(b.windowStart) && ms(h.start) < ms(b.windowEnd))
    .reduce((n, h) => n + h.rows, 0);

describe('row estimates: bronze', () => {
  const table = 'bronze_trades_binance';
  const config = configWith({ [table]: { maxRowsPerBatch: 1000 } });
  const plan = (histogram: RowBucket[], maxBatchesPerTable = 100) =>
    planPass({
      config,
      tables: [table],
      watermarks: watermarks(config, iso(C)),
      now,
      estimates: { [table]: histogram },
      maxBatchesPerTable,
    });

  it('fills each batch up to maxRowsPerBatch, cutting only at bucket starts, losing no bucket', () => {
    const hot = 90; // 01:30 holds more than a batch on its own
    const histogram = perMinute(C, (i) => (i === hot ? 5000 : 50 + ((i * 37) % 200)), 240);
    const batches = batchesOf(plan(histogram), table);
    expectContiguous(batches, C);
    expect(batches.at(-1)?.windowEnd).toBe('2026-11-22T03:55:00.000Z');
    expect(batches.reduce((n, b) => n + estimate(b, histogram), 0)).toBe(
      histogram.filter((h) => ms(h.start) < ms('2026-11-22T03:55:00Z')).reduce((n, h) => n + h.rows, 0),
    );
    expect(spans(batches.filter((b) => estimate(b, histogram) > 1000))).toEqual([
      ['2026-11-22T01:30:00.000Z', '2026-11-22T01:31:00.000Z'],
    ]);
    batches.forEach((b, i) => {
      expect(ms(b.windowEnd) % MIN).toBe(0);
      const next = histogram.find((h) => h.start === b.windowEnd);
      // Greedy: the next bucket would not have fitted (the last batch ends at the lateness bound instead).
      if (i < batches.length - 1 && next) expect(estimate(b, histogram) + next.rows).toBeGreaterThan(1000);
    });
  });

  it('with a sparse histogram, counts nothing in the gaps and still caps the span', () => {
    const histogram = [
      { start: '2026-11-22T00:00:00Z', rows: 600 },
      { start: '2026-11-22T00:40:00Z', rows: 600 },
      { start: '2026-11-22T02:00:00Z', rows: 600 },
    ];
    expect(spans(batchesOf(plan(histogram), table))).toEqual([
      ['2026-11-22T00:00:00.000Z', '2026-11-22T00:40:00.000Z'],
      ['2026-11-22T00:40:00.000Z', '2026-11-22T01:40:00.000Z'],
      ['2026-11-22T01:40:00.000Z', '2026-11-22T02:40:00.000Z'],
      ['2026-11-22T02:40:00.000Z', '2026-11-22T03:40:00.000Z'],
      ['2026-11-22T03:40:00.000Z', '2026-11-22T03:55:00.000Z'],
    ]);
  });

  it('gives a bucket larger than the cap a batch of its own, joined to the empty stretches around it', () => {
    const histogram = [
      { start: '2026-11-22T00:10:00Z', rows: 5000 },
      { start: '2026-11-22T00:11:00Z', rows: 10 },
      { start: '2026-11-22T00:12:00Z', rows: 5000 },
    ];
    expect(spans(batchesOf(plan(histogram), table)).slice(0, 3)).toEqual([
      ['2026-11-22T00:00:00.000Z', '2026-11-22T00:11:00.000Z'],
      ['2026-11-22T00:11:00.000Z', '2026-11-22T00:12:00.000Z'],
      // The last bucket reaches to the span cap: nothing is estimated after it, so no reason to cut.
      ['2026-11-22T00:12:00.000Z', '2026-11-22T01:12:00.000Z'],
    ]);
  });

  it('ignores buckets before the cursor and caps the batch count', () => {
    const histogram = perMinute(C - 60 * MIN, () => 400, 300);
    const p = plan(histogram, 5);
    const batches = batchesOf(p, table);
    expect(batches).toHaveLength(5);
    expectContiguous(batches, C);
    for (const b of batches) expect(ms(b.windowEnd) - ms(b.windowStart)).toBe(2 * MIN);
    expect(p.more).toBe(true);
  });
});

describe('row estimates: candles', () => {
  const table = 'ohlcv_5m';
  const config = configWith({ [table]: { maxRowsPerBatch: 1000, latenessSeconds: 300 } });
  const plan = (rows: (minute: number) => number) =>
    batchesOf(
      planPass({
        config,
        tables: [table],
        watermarks: watermarks(config, now, { [table]: iso(C) }),
        now,
        estimates: { [table]: perMinute(C, rows, 240) },
        maxBatchesPerTable: 100,
      }),
      table,
    );

  it('cuts only on candle boundaries, never inside a candle', () => {
    const batches = plan((i) => (i < 60 ? 100 : 150));
    expectContiguous(batches, C);
    for (const b of batches) expect(ms(b.windowEnd) % (5 * MIN)).toBe(0);
    // 100 rows a minute: two candles (1000 rows) per batch; 150 a minute: one candle (750) per batch.
    expect(ms(batches[0]?.windowEnd as string) - C).toBe(10 * MIN);
    expect(ms(batches.at(-2)?.windowEnd as string) - ms(batches.at(-2)?.windowStart as string)).toBe(5 * MIN);
    expect(batches.at(-1)?.windowEnd).toBe('2026-11-22T03:55:00.000Z');
  });

  it('keeps a candle whole even when it alone exceeds the cap', () => {
    const batches = plan((i) => (i === 32 ? 5000 : 10));
    expect(
      spans(batches.filter((b) => ms(b.windowStart) <= C + 32 * MIN && ms(b.windowEnd) > C + 32 * MIN)),
    ).toEqual([['2026-11-22T00:30:00.000Z', '2026-11-22T00:35:00.000Z']]);
    expect(batches[0]?.windowEnd).toBe('2026-11-22T00:30:00.000Z');
  });
});

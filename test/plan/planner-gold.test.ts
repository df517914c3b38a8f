import { describe, expect, it } from 'vitest';
import { CANDLE_INTERVALS } from '../../src/config/defaults.ts';
import { planPass } from '../../src/plan/planner.ts';
import {
  batchesOf,
  configWith,
  DAY,
  expectContiguous,
  iso,
  ms,
  skipOf,
  spans,
  watermarks,
} from './fixtures.ts';

// Candles closing 5 minutes after their end (the default waits longer for late trades; same rules).
const config = configWith(
  Object.fromEntries(CANDLE_INTERVALS.map((c) => [`ohlcv_${c.suffix}`, { latenessSeconds: 300 }])),
);
const C = ms('2026-11-22T00:00:00Z'); // a boundary of every interval, 1d included (UTC midnight)
const LATE = 5 * 60_000;
const at = (gold: number, silver: number) =>
  watermarks(
    config,
    iso(silver),
    Object.fromEntries(CANDLE_INTERVALS.map((c) => [`ohlcv_${c.suffix}`, iso(gold)])),
  );

describe.each(CANDLE_INTERVALS)('ohlcv_$suffix', ({ suffix, seconds }) => {
  const table = `ohlcv_${suffix}`;
  const I = seconds * 1000;
  const plan = (now: number, silver = now, gold = C, until?: number) =>
    planPass({
      config,
      tables: [table],
      watermarks: at(gold, silver),
      now: iso(now),
      until: until === undefined ? undefined : iso(until),
    });

  it('offloads a bucket the instant it is closed: start + interval <= now - lateness', () => {
    const p = plan(C + I + LATE);
    expect(spans(batchesOf(p, table))).toEqual([[iso(C), iso(C + I)]]);
    expect(p.more).toBe(false);
  });

  it('leaves a bucket open one millisecond earlier, saying when it closes', () => {
    const p = plan(C + I + LATE - 1);
    expect(batchesOf(p, table)).toEqual([]);
    const end = iso(C + I).replace('.000Z', 'Z');
    const closes = iso(C + I + LATE).replace('.000Z', 'Z');
    const span = end.slice(0, 11) === '2026-11-22T' ? end.slice(11) : end;
    expect(skipOf(p, table)).toEqual({
      table,
      reason: 'bucket-open',
      detail: `next bucket 2026-11-22T00:00:00Z to ${span} closes at ${closes} (lateness 5 min); now is ${iso(C + I + LATE - 1)}`,
    });
  });

  it('never offloads the open bucket after closed ones', () => {
    const p = plan(C + 2 * I + I / 2 + LATE);
    const batches = batchesOf(p, table);
    expectContiguous(batches, C);
    expect(batches.at(-1)?.windowEnd).toBe(iso(C + 2 * I));
    for (const b of batches) expect((ms(b.windowEnd) - C) % I).toBe(0);
  });

  it('waits for silver to pass the end of the next bucket', () => {
    const p = plan(C + 10 * I, C + I - 1000);
    expect(skipOf(p, table)?.reason).toBe('waiting-for-upstream');
    expect(skipOf(p, table)?.detail).toContain(
      `needs upstream cursors at ${iso(C + I).replace('.000Z', 'Z')} or later: silver_trades at ${iso(C + I - 1000).replace('.000Z', 'Z')} (not selected in this run)`,
    );
    expect(spans(batchesOf(plan(C + 10 * I, C + I), table))).toEqual([[iso(C), iso(C + I)]]);
  });

  it('stops at the last bucket closed by until', () => {
    expect(spans(batchesOf(plan(C + 10 * I, C + 10 * I, C, C + 2 * I - 1), table))).toEqual([
      [iso(C), iso(C + I)],
    ]);
    const p = plan(C + 10 * I, C + 10 * I, C, C + I - 1);
    expect(skipOf(p, table)?.reason).toBe('up-to-date');
    expect(skipOf(p, table)?.detail).toContain('ends after until');
  });

  it('realigns a cursor that is not on a boundary with its first window', () => {
    const cursor = C + I + 1000;
    const now = C + 50 * I + 2 * DAY;
    const batches = batchesOf(plan(now, now, cursor), table);
    expectContiguous(batches, cursor);
    // One span cap (a day, or one candle for 1d) from the cursor, cut back to the boundary before it.
    expect(batches[0]?.windowEnd).toBe(iso(suffix === '1d' ? C + 2 * I : C + I + DAY));
    for (const b of batches) expect((ms(b.windowEnd) - C) % I).toBe(0);
  });
});

describe('gold backlog', () => {
  it('splits three days of 1m candles into one-day windows on minute boundaries', () => {
    const now = C + 3 * DAY + 30 * 60_000 + 17_000;
    const p = planPass({ config, tables: ['ohlcv_1m', 'ohlcv_1d'], watermarks: at(C, now), now: iso(now) });
    expect(spans(batchesOf(p, 'ohlcv_1m'))).toEqual([
      [iso(C), iso(C + DAY)],
      [iso(C + DAY), iso(C + 2 * DAY)],
      [iso(C + 2 * DAY), iso(C + 3 * DAY)],
      [iso(C + 3 * DAY), iso(C + 3 * DAY + 25 * 60_000)],
    ]);
    expect(spans(batchesOf(p, 'ohlcv_1d'))).toEqual([
      [iso(C), iso(C + DAY)],
      [iso(C + DAY), iso(C + 2 * DAY)],
      [iso(C + 2 * DAY), iso(C + 3 * DAY)],
    ]);
  });

  it('follows silver on the next pass when silver advances in this one', () => {
    const now = C + 6 * 3600_000;
    const wm = watermarks(config, iso(now - 3600_000), { silver_trades: iso(C + 90 * 60_000) });
    for (const g of CANDLE_INTERVALS) wm[`ohlcv_${g.suffix}`] = iso(C);
    const first = planPass({ config, watermarks: wm, now: iso(now) });
    expect(batchesOf(first, 'silver_trades').at(-1)?.windowEnd).toBe(iso(now - 3600_000));
    expect(batchesOf(first, 'ohlcv_1h').at(-1)?.windowEnd).toBe(iso(C + 3600_000));
    expect(first.more).toBe(true);
    const second = planPass({
      config,
      watermarks: { ...wm, silver_trades: iso(now - 3600_000), ohlcv_1h: iso(C + 3600_000) },
      now: iso(now),
    });
    expect(spans(batchesOf(second, 'ohlcv_1h'))).toEqual([[iso(C + 3600_000), iso(now - 3600_000)]]);
  });
});

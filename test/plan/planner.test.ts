import { describe, expect, it } from 'vitest';
import { makeBatch } from '../../src/plan/batch.ts';
import { planPass } from '../../src/plan/planner.ts';
import {
  BRONZE,
  batchesOf,
  configWith,
  expectContiguous,
  HOUR,
  ms,
  skipOf,
  spans,
  watermarks,
} from './fixtures.ts';

const config = configWith();
// Downstream tables far in the past unless a test says otherwise; bronze is what most tests look at.
const at = (bronze: string, rest = '2026-11-22T00:00:00Z') =>
  watermarks(config, rest, Object.fromEntries(BRONZE.map((b) => [b, bronze])));

describe('planPass: bronze windows', () => {
  it.each([
    // [lateness seconds, now, expected window end]
    [300, '2026-11-22T03:20:30Z', '2026-11-22T03:15:30.000Z'],
    [0, '2026-11-22T03:20:30Z', '2026-11-22T03:20:30.000Z'],
    [600, '2026-11-22T03:20:30Z', '2026-11-22T03:10:30.000Z'],
    // Sub-second clocks are cut to whole seconds: never later than now - lateness.
    [300, '2026-11-22T03:20:30.999Z', '2026-11-22T03:15:30.000Z'],
    // Exactly on an hour: the window ends exactly at now - lateness.
    [300, '2026-11-22T03:05:00Z', '2026-11-22T03:00:00.000Z'],
  ])('lateness %i s at %s ends the window at %s', (lateness, now, end) => {
    const cfg = configWith({ bronze_trades_binance: { latenessSeconds: lateness } });
    const plan = planPass({
      config: cfg,
      tables: ['bronze_trades_binance'],
      watermarks: at('2026-11-22T02:30:00Z'),
      now,
    });
    expect(spans(batchesOf(plan, 'bronze_trades_binance'))).toEqual([['2026-11-22T02:30:00.000Z', end]]);
    expect(plan.more).toBe(false);
  });

  it('splits a 24-hour backlog into 24 one-hour batches, contiguous and in order', () => {
    const plan = planPass({
      config,
      tables: BRONZE,
      watermarks: at('2026-11-21T03:00:00Z'),
      now: '2026-11-22T03:05:00Z',
    });
    for (const table of BRONZE) {
      const batches = batchesOf(plan, table);
      expect(batches).toHaveLength(24);
      expectContiguous(batches, ms('2026-11-21T03:00:00Z'));
      expect(batches.at(-1)?.windowEnd).toBe('2026-11-22T03:00:00.000Z');
      for (const b of batches) expect(ms(b.windowEnd) - ms(b.windowStart)).toBe(HOUR);
    }
    expect(plan.more).toBe(false);
  });

  it('takes at most maxBatchesPerTable per pass and says more remains; the next pass continues', () => {
    const first = planPass({ config, watermarks: at('2026-11-21T03:00:00Z'), now: '2026-11-22T03:17:42Z' });
    const head = batchesOf(first, 'bronze_trades_kraken');
    expect(head).toHaveLength(24);
    expect(first.more).toBe(true);
    const reached = head.at(-1)?.windowEnd as string;
    const second = planPass({ config, watermarks: at(reached), now: '2026-11-22T03:17:42Z' });
    expect(spans(batchesOf(second, 'bronze_trades_kraken'))).toEqual([
      ['2026-11-22T03:00:00.000Z', '2026-11-22T03:12:42.000Z'],
    ]);
    const small = planPass({
      config,
      tables: ['bronze_trades_kraken'],
      watermarks: at('2026-11-21T03:00:00Z'),
      now: '2026-11-22T03:17:42Z',
      maxBatchesPerTable: 3,
    });
    expect(batchesOf(small, 'bronze_trades_kraken')).toHaveLength(3);
    expect(small.more).toBe(true);
  });

  it('plans nothing when the cursor is exactly at now - lateness (no empty window)', () => {
    const plan = planPass({
      config,
      tables: BRONZE,
      watermarks: at('2026-11-22T03:00:00Z'),
      now: '2026-11-22T03:05:00Z',
    });
    expect(plan.tables).toEqual([]);
    expect(plan.more).toBe(false);
    expect(skipOf(plan, 'bronze_trades_binance')).toEqual({
      table: 'bronze_trades_binance',
      reason: 'up-to-date',
      detail:
        'cursor 2026-11-22T03:00:00Z has reached now minus lateness 5 min (2026-11-22T03:00:00Z); now is 2026-11-22T03:05:00Z',
    });
    // One second later there is a one-second window.
    const later = planPass({
      config,
      tables: BRONZE,
      watermarks: at('2026-11-22T03:00:00Z'),
      now: '2026-11-22T03:05:01Z',
    });
    expect(spans(batchesOf(later, 'bronze_trades_coinbase'))).toEqual([
      ['2026-11-22T03:00:00.000Z', '2026-11-22T03:00:01.000Z'],
    ]);
  });
});

describe('planPass: upstream cap and loop-back', () => {
  const now = '2026-11-22T04:00:00Z';
  const wm = watermarks(config, '2026-11-22T03:50:00Z', {
    bronze_trades_binance: '2026-11-22T03:10:00Z',
    bronze_trades_kraken: '2026-11-22T02:40:00Z',
    bronze_trades_coinbase: '2026-11-22T03:30:00Z',
    silver_trades: '2026-11-22T02:00:00Z',
  });

  it('caps silver at the slowest bronze cursor as it is now, and asks for another pass', () => {
    const plan = planPass({ config, tables: [...BRONZE, 'silver_trades'], watermarks: wm, now });
    expect(spans(batchesOf(plan, 'silver_trades'))).toEqual([
      ['2026-11-22T02:00:00.000Z', '2026-11-22T02:40:00.000Z'],
    ]);
    expect(spans(batchesOf(plan, 'bronze_trades_kraken'))).toEqual([
      ['2026-11-22T02:40:00.000Z', '2026-11-22T03:40:00.000Z'],
      ['2026-11-22T03:40:00.000Z', '2026-11-22T03:55:00.000Z'],
    ]);
    expect(plan.tables.map((t) => t.layer)).toEqual(['bronze', 'bronze', 'bronze', 'silver']);
    expect(plan.more).toBe(true);
  });

  it('does not ask for another pass when the capping upstream cannot move in this one', () => {
    const leased = planPass({
      config,
      tables: [...BRONZE, 'silver_trades'],
      watermarks: wm,
      now,
      leasedByOthers: [
        { table: 'bronze_trades_kraken', holder: 'cycle-7', expiresAt: '2026-11-22T04:10:00Z' },
      ],
    });
    expect(skipOf(leased, 'bronze_trades_kraken')).toEqual({
      table: 'bronze_trades_kraken',
      reason: 'leased',
      detail: 'leased by cycle-7 until 2026-11-22T04:10:00Z; skipped in this pass, not waited on',
    });
    expect(batchesOf(leased, 'bronze_trades_kraken')).toEqual([]);
    expect(spans(batchesOf(leased, 'silver_trades'))).toEqual([
      ['2026-11-22T02:00:00.000Z', '2026-11-22T02:40:00.000Z'],
    ]);
    expect(leased.more).toBe(false);
    const alone = planPass({ config, tables: ['silver_trades'], watermarks: wm, now });
    expect(alone.more).toBe(false);
    expect(skipOf(alone, 'bronze_trades_kraken')?.reason).toBe('not-selected');
  });

  it('explains a table waiting on its upstreams, naming them and their cursors', () => {
    const waiting = { ...wm, silver_trades: '2026-11-22T02:40:00Z' };
    const plan = planPass({ config, tables: [...BRONZE, 'silver_trades'], watermarks: waiting, now });
    expect(skipOf(plan, 'silver_trades')).toEqual({
      table: 'silver_trades',
      reason: 'waiting-for-upstream',
      detail:
        'cursor 2026-11-22T02:40:00Z has caught up with upstream bronze_trades_kraken at 2026-11-22T02:40:00Z (advances in this pass)',
    });
    expect(plan.more).toBe(true);
  });
});

describe('planPass: until, leases, selection', () => {
  const wm = at('2026-11-22T01:00:00Z');
  const now = '2026-11-22T04:00:00Z';
  it.each([
    [
      '2026-11-22T02:30:00Z',
      [
        ['2026-11-22T01:00:00.000Z', '2026-11-22T02:00:00.000Z'],
        ['2026-11-22T02:00:00.000Z', '2026-11-22T02:30:00.000Z'],
      ],
    ],
    ['2026-11-22T01:00:00Z', []],
    ['2026-11-21T23:00:00Z', []],
    // until inside the lateness buffer: lateness still applies.
    [
      '2026-11-22T03:58:00Z',
      [
        ['2026-11-22T01:00:00.000Z', '2026-11-22T02:00:00.000Z'],
        ['2026-11-22T02:00:00.000Z', '2026-11-22T03:00:00.000Z'],
        ['2026-11-22T03:00:00.000Z', '2026-11-22T03:55:00.000Z'],
      ],
    ],
  ])('until %s bounds the windows', (until, expected) => {
    const plan = planPass({ config, tables: ['bronze_trades_binance'], watermarks: wm, now, until });
    expect(spans(batchesOf(plan, 'bronze_trades_binance'))).toEqual(expected);
    expect(plan.more).toBe(false);
    if (expected.length === 0) expect(skipOf(plan, 'bronze_trades_binance')?.reason).toBe('up-to-date');
  });

  it('refuses an until in the future, naming it and now', () => {
    expect(() => planPass({ config, watermarks: wm, now, until: '2026-11-22T04:00:01Z' })).toThrow(
      'until: 2026-11-22T04:00:01Z is in the future (now is 2026-11-22T04:00:00Z)',
    );
  });

  it('reports every table outside the selection as not-selected', () => {
    const plan = planPass({ config, tables: ['bronze_trades_binance'], watermarks: wm, now });
    expect(plan.tables.map((t) => t.table)).toEqual(['bronze_trades_binance']);
    expect(plan.skipped.filter((s) => s.reason === 'not-selected')).toHaveLength(9);
    expect(skipOf(plan, 'ohlcv_1d')?.detail).toBe('not among the requested tables (bronze_trades_binance)');
  });

  it('starts a table without a watermark at its initialCursor', () => {
    const cfg = configWith({ bronze_trades_binance: { initialCursor: '2026-11-22T03:30:00Z' } });
    const plan = planPass({ config: cfg, tables: ['bronze_trades_binance'], watermarks: {}, now });
    expect(spans(batchesOf(plan, 'bronze_trades_binance'))).toEqual([
      ['2026-11-22T03:30:00.000Z', '2026-11-22T03:55:00.000Z'],
    ]);
  });
});

describe('planPass: batch identity', () => {
  it('gives the same batch ids when re-planned later and after a partial commit', () => {
    const wm = at('2026-11-21T20:00:00Z');
    const first = batchesOf(
      planPass({ config, watermarks: wm, now: '2026-11-22T03:20:00Z' }),
      'bronze_trades_binance',
    );
    const later = batchesOf(
      planPass({ config, watermarks: wm, now: '2026-11-22T03:35:00Z' }),
      'bronze_trades_binance',
    );
    // Full windows are identical; only the tail grows with the clock.
    expect(later.slice(0, -1)).toEqual(first.slice(0, -1));
    expect(later.at(-1)?.windowStart).toBe(first.at(-1)?.windowStart);
    expect(later.at(-1)?.batchId).not.toBe(first.at(-1)?.batchId);
    const resumed = planPass({
      config,
      watermarks: at(first[2]?.windowEnd as string),
      now: '2026-11-22T03:20:00Z',
    });
    expect(batchesOf(resumed, 'bronze_trades_binance')).toEqual(first.slice(3));
    for (const b of first) expect(b).toEqual(makeBatch(b.table, b.windowStart, b.windowEnd));
    expect(new Set(first.map((b) => b.batchId)).size).toBe(first.length);
  });
});

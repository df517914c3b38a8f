import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { planPass } from '../../src/plan/planner.ts';
import { formatDuration } from '../../src/plan/time.ts';
import { splitWindows } from '../../src/plan/windows.ts';
import { thrownBy } from '../support/rejection.ts';
import { BRONZE, batchesOf, configWith, HOUR, iso, MIN, ms, skipOf, spans, watermarks } from './fixtures.ts';

const config = configWith();
const now = '2026-11-22T04:00:00Z';
const wm = watermarks(config, '2026-11-22T01:00:00Z');

const refusal = (fn: () => unknown): InputError => {
  const error = thrownBy<InputError>(fn);
  expect(error).toBeInstanceOf(InputError);
  return error;
};

describe('planPass: refusals name the field and the value an operator has to fix', () => {
  it.each([
    [
      'an until in the future',
      { until: '2026-11-22T04:00:01Z' },
      { field: 'until', value: '2026-11-22T04:00:01Z' },
    ],
    ['zero batches per pass', { maxBatchesPerTable: 0 }, { field: 'maxBatchesPerTable', value: 0 }],
    ['an until that is no instant', { until: 'tomorrow' }, { field: 'until', value: 'tomorrow' }],
    ['an unknown selected table', { tables: ['gold'] }, { field: 'tables', value: 'gold' }],
    [
      'a negative estimate',
      { estimates: { silver_trades: [{ start: '2026-11-22T02:00:00Z', rows: -1 }] } },
      { field: 'estimates.silver_trades[0].rows', value: -1 },
    ],
    [
      'an estimate without a start',
      { estimates: { silver_trades: [{ rows: 1 }] } },
      { field: 'estimates.silver_trades[0].start', value: undefined },
    ],
    [
      'an estimate that is null (a JSON event with a hole)',
      { estimates: { silver_trades: [null] } },
      { field: 'estimates.silver_trades[0].start', value: undefined },
    ],
    [
      'two estimates of the same bucket',
      {
        estimates: {
          silver_trades: [
            { start: '2026-11-22T02:00:00Z', rows: 1 },
            { start: '2026-11-22T02:00:00Z', rows: 2 },
          ],
        },
      },
      { field: 'estimates.silver_trades[1].start', value: '2026-11-22T02:00:00Z' },
    ],
  ])('%s', (_label, patch, details) => {
    const error = refusal(() => planPass({ config, watermarks: wm, now, ...(patch as object) }));
    expect(error.details).toEqual(details);
  });

  it('refuses a table configured twice: its two cursors could not both be right', () => {
    const twice = { tables: [...config.tables, config.tables[1] as (typeof config.tables)[number]] };
    const error = refusal(() => planPass({ config: twice, watermarks: wm, now }));
    expect(error.message).toBe(`config.tables: table ${config.tables[1]?.name} is configured twice`);
    expect(error.details).toEqual({ field: 'config.tables', value: config.tables[1]?.name });
  });

  it('names the table whose initialCursor is not an instant', () => {
    const bad = {
      tables: config.tables.map((t) => (t.name === 'silver_trades' ? { ...t, initialCursor: 'soon' } : t)),
    };
    const error = refusal(() => planPass({ config: bad, watermarks: {}, now }));
    expect(error.details).toEqual({ field: 'table silver_trades: initialCursor', value: 'soon' });
  });
});

describe('planPass: the edges of what it accepts', () => {
  it('plans one batch per table when asked for one', () => {
    const plan = planPass({
      config,
      tables: ['bronze_trades_binance'],
      watermarks: wm,
      now,
      maxBatchesPerTable: 1,
    });
    expect(spans(batchesOf(plan, 'bronze_trades_binance'))).toEqual([
      ['2026-11-22T01:00:00.000Z', '2026-11-22T02:00:00.000Z'],
    ]);
    expect(plan.more).toBe(true);
  });

  it('accepts an until equal to now', () => {
    const plan = planPass({ config, tables: ['bronze_trades_binance'], watermarks: wm, now, until: now });
    expect(batchesOf(plan, 'bronze_trades_binance').at(-1)?.windowEnd).toBe('2026-11-22T03:55:00.000Z');
  });

  it('plans upstream layers first, whatever order the config lists them in', () => {
    const reversed = { tables: [...config.tables].reverse() };
    const staggered = watermarks(config, '2026-11-22T00:00:00Z', {
      ...Object.fromEntries(BRONZE.map((b) => [b, '2026-11-22T03:00:00Z'])),
      silver_trades: '2026-11-22T01:00:00Z',
    });
    const plan = planPass({ config: reversed, watermarks: staggered, now });
    const layers = plan.tables.map((t) => t.layer);
    const rank = (layer: string) => ['bronze', 'silver', 'gold'].indexOf(layer);
    expect(new Set(layers)).toEqual(new Set(['bronze', 'silver', 'gold']));
    expect(layers).toEqual([...layers].sort((a, b) => rank(a) - rank(b)));
  });
});

describe('planPass: why a table has nothing to do', () => {
  it('names every requested table when others are not selected', () => {
    const plan = planPass({
      config,
      tables: ['bronze_trades_binance', 'silver_trades'],
      watermarks: wm,
      now,
    });
    expect(skipOf(plan, 'ohlcv_1d')?.detail).toBe(
      'not among the requested tables (bronze_trades_binance, silver_trades)',
    );
  });

  it('says a cursor is at until, without a bucket for a table of rows', () => {
    const plan = planPass({
      config,
      tables: ['bronze_trades_binance'],
      watermarks: wm,
      now,
      until: '2026-11-22T01:00:00Z',
    });
    expect(skipOf(plan, 'bronze_trades_binance')?.detail).toBe(
      'cursor 2026-11-22T01:00:00Z is at or after until 2026-11-22T01:00:00Z',
    );
  });

  it('lists each upstream that holds a table back, with why it does not move', () => {
    const caught = { ...wm, silver_trades: '2026-11-22T01:00:00Z' };
    const plan = planPass({
      config,
      tables: ['bronze_trades_binance', 'bronze_trades_coinbase', 'silver_trades'],
      watermarks: caught,
      now,
      leasedByOthers: [{ table: 'bronze_trades_coinbase', holder: 'cycle-9', expiresAt: now }],
    });
    expect(skipOf(plan, 'silver_trades')?.detail).toBe(
      'cursor 2026-11-22T01:00:00Z has caught up with upstream bronze_trades_binance at 2026-11-22T01:00:00Z (advances in this pass), bronze_trades_kraken at 2026-11-22T01:00:00Z (not selected in this run), bronze_trades_coinbase at 2026-11-22T01:00:00Z (leased by cycle-9)',
    );
  });
});

describe('splitWindows', () => {
  const start = ms('2026-11-22T00:00:00Z');
  it('ignores a histogram when no row cap is set: the span cap alone cuts', () => {
    const windows = splitWindows({
      start,
      end: start + 3 * HOUR,
      maxSpanMs: HOUR,
      histogram: { starts: [start, start + MIN], rows: [10, 1_000_000] },
      maxWindows: 10,
    });
    expect(windows.map(([s, e]) => [iso(s), iso(e)])).toEqual([
      ['2026-11-22T00:00:00.000Z', '2026-11-22T01:00:00.000Z'],
      ['2026-11-22T01:00:00.000Z', '2026-11-22T02:00:00.000Z'],
      ['2026-11-22T02:00:00.000Z', '2026-11-22T03:00:00.000Z'],
    ]);
  });

  it('never cuts a candle: a span cap shorter than the interval still takes one whole candle', () => {
    const windows = splitWindows({
      start: start + 5 * MIN,
      end: start + 3 * HOUR,
      maxSpanMs: 10 * MIN,
      unitMs: HOUR,
      maxWindows: 10,
    });
    expect(windows.map(([s, e]) => [iso(s), iso(e)])).toEqual([
      ['2026-11-22T00:05:00.000Z', '2026-11-22T01:00:00.000Z'],
      ['2026-11-22T01:00:00.000Z', '2026-11-22T02:00:00.000Z'],
      ['2026-11-22T02:00:00.000Z', '2026-11-22T03:00:00.000Z'],
    ]);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [30, '30 s'],
    [60, '1 min'],
    [90, '90 s'],
    [300, '5 min'],
    [3600, '1 h'],
    [5400, '90 min'],
    [86_400, '1 d'],
    [172_800, '2 d'],
  ])('%i s reads %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

it('the fixtures keep the three exchanges upstream of silver', () => {
  expect(config.tables.find((t) => t.name === 'silver_trades')?.dependsOn).toEqual(BRONZE);
});

import { describe, expect, it } from 'vitest';
import { planPass } from '../../src/plan/planner.ts';
import { BRONZE, configWith, watermarks } from './fixtures.ts';

const config = configWith();
const at = (bronze: string, rest = '2026-11-22T00:00:00Z') =>
  watermarks(config, rest, Object.fromEntries(BRONZE.map((b) => [b, bronze])));

describe('planPass: bad input', () => {
  const wm = at('2026-11-22T01:00:00Z');
  const now = '2026-11-22T04:00:00Z';
  it.each([
    [
      'unknown selected table',
      { tables: ['bronze_trades_ftx'] },
      'tables: unknown table "bronze_trades_ftx"; configured tables: bronze_trades_binance,',
    ],
    [
      'unknown watermark table',
      { watermarks: { ...wm, trades: '2026-11-22T01:00:00Z' } },
      'watermarks: unknown table "trades"',
    ],
    [
      'watermark without a zone',
      { watermarks: { ...wm, silver_trades: '2026-11-22T01:00:00' } },
      'watermarks.silver_trades: "2026-11-22T01:00:00" is not an instant',
    ],
    ['unparseable now', { now: 'yesterday' }, 'now: "yesterday" is not an instant'],
    [
      'unknown leased table',
      { leasedByOthers: [{ table: 'gold', holder: 'x', expiresAt: now }] },
      'leasedByOthers: unknown table "gold"',
    ],
    ['unknown estimated table', { estimates: { gold: [] } }, 'estimates: unknown table "gold"'],
    [
      'unsorted estimates',
      {
        estimates: {
          silver_trades: [
            { start: '2026-11-22T02:00:00Z', rows: 1 },
            { start: '2026-11-22T01:59:00Z', rows: 1 },
          ],
        },
      },
      "estimates.silver_trades[1].start: 2026-11-22T01:59:00Z is not after the previous bucket's 2026-11-22T02:00:00Z",
    ],
    [
      'negative estimate',
      { estimates: { silver_trades: [{ start: '2026-11-22T02:00:00Z', rows: -1 }] } },
      'estimates.silver_trades[0].rows: -1 is not a row count',
    ],
    [
      'zero batches per pass',
      { maxBatchesPerTable: 0 },
      'maxBatchesPerTable: 0 must be a whole number of at least 1',
    ],
  ])('%s', (_label, patch, message) => {
    expect(() => planPass({ config, watermarks: wm, now, ...patch })).toThrow(message);
    try {
      planPass({ config, watermarks: wm, now, ...patch });
    } catch (error) {
      expect((error as Error).name).toBe('InputError');
    }
  });

  it('refuses a dependsOn naming a table that is not configured', () => {
    const tables = config.tables.map((t) =>
      t.name === 'silver_trades' ? { ...t, dependsOn: ['bronze_trades_ftx'] } : t,
    );
    expect(() => planPass({ config: { tables }, watermarks: wm, now })).toThrow(
      'table silver_trades: dependsOn: unknown table "bronze_trades_ftx"',
    );
  });
});

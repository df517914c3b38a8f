import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import { stageBatch } from '../../src/stage/stage.ts';
import { TEST_NOW } from '../support/clock.ts';
import { batchSpec, openTestClickHouse, readParquet } from './support.ts';

const config = defaultConfig();
const HOUR = 3_600_000;
// Recent instants: the demo tables' TTLs (7 and 30 days) would delete anything older.
const end = new Date(TEST_NOW.getTime() - 2 * HOUR);
const iso = (ms: number) => new Date(ms).toISOString();
const sqlTime = (ms: number) => `toDateTime64('${iso(ms).slice(0, 23).replace('T', ' ')}', 6, 'UTC')`;

let ch: Awaited<ReturnType<typeof openTestClickHouse>>;
const stage = (name: string, from: number, to: number) => {
  const table = tableByName(config, name);
  return stageBatch(table, batchSpec(table, iso(from), iso(to), join(ch.dir, 'staging')), {
    client: ch.client,
  });
};

beforeAll(async () => {
  ch = await openTestClickHouse('stage-demo');
  await createDemoSchema(ch.client);
  await generateTrades(ch.client, { rows: 3000, spanHours: 2, end, lateFraction: 0.05, seed: 11 });
});
afterAll(async () => ch?.close());

describe('staging the demo hot tier', () => {
  it('stages silver with its lists, maps, uuids, enums and nullables, one file per (day, exchange, asset class)', async () => {
    const from = end.getTime() - HOUR;
    const result = await stage('silver_trades', from, end.getTime());
    const normal = `toString(message_id) AS id, toString(side) AS side, toString(asset_class) AS asset_class,
      toString(price) AS price, trade_conditions, vendor_data, source_sequence, platform_sequence, is_valid,
      validation_errors, toUnixTimestamp64Micro(timestamp) AS ts, toUnixTimestamp64Micro(processed_at) AS processed_at`;
    const want = await queryRows(
      ch.client,
      `SELECT ${normal} FROM (SELECT * FROM k2.silver_trades WHERE processed_at >= ${sqlTime(from)} AND processed_at < ${sqlTime(end.getTime())}) ORDER BY id`,
    );
    expect(want.length).toBeGreaterThan(1000);
    expect(result.rows).toBe(want.length);
    const got = await readParquet(
      ch.client,
      result.files.map((f) => f.uri),
      normal,
      '',
    );
    got.sort((a, b) => String(a.id).localeCompare(String(b.id)));
    expect(got).toEqual(want);
    expect(got.some((r) => (r.trade_conditions as string[]).includes('late_arrival'))).toBe(true);
    for (const file of result.files) {
      const [p] = await readParquet<{ n: number }>(
        ch.client,
        [file.uri],
        'uniqExact(toYYYYMMDD(timestamp), exchange, asset_class) AS n',
      );
      expect(p?.n).toBe(1);
    }
  });

  it('stages one row per candle with final values while the candle is still several partial rows', async () => {
    const minute = end.getTime() - 30 * 60_000;
    const trade = (at: number, price: number, qty = 1) =>
      `(generateUUIDv4(), 'x', 'kraken', 'TEST/USD', 'TEST/USD', 'crypto', 'USD', ${price}, ${qty}, ${price * qty}, 'BUY', [], ${sqlTime(at)}, ${sqlTime(at)}, ${sqlTime(at)}, NULL, NULL, map(), true, [])`;
    const insert = (rows: string[]) =>
      ch.client.command({ query: `INSERT INTO k2.silver_trades VALUES ${rows.join(', ')}` });
    // Two insert blocks for the same candle: the view writes two partial rows. Merges are held off so
    // the rows stay partial (a merge would sum volumes and keep one block's open/close, as in the seed).
    await ch.client.command({ query: 'SYSTEM STOP MERGES k2.ohlcv_1m' });
    await insert([trade(minute + 5_000, 100), trade(minute + 50_000, 105, 2)]);
    await insert([
      trade(minute + 1_000, 99),
      trade(minute + 20_000, 95),
      trade(minute + 30_000, 110),
      trade(minute + 59_000, 101),
    ]);
    await insert([trade(minute + 60_000, 500)]);
    const stored = await queryRows<{ n: number }>(
      ch.client,
      `SELECT count() AS n FROM k2.ohlcv_1m WHERE canonical_symbol = 'TEST/USD' AND window_start = ${sqlTime(minute)}`,
    );
    expect(Number(stored[0]?.n)).toBe(2);

    const result = await stage('ohlcv_1m', minute, minute + 60_000);
    const got = await readParquet(
      ch.client,
      result.files.map((f) => f.uri),
      `exchange, canonical_symbol, toUnixTimestamp64Milli(window_start) AS ws, toUnixTimestamp64Milli(open_time) AS open_time,
       toString(open_price) AS open, toUnixTimestamp64Milli(close_time) AS close_time, toString(close_price) AS close,
       toString(high_price) AS high, toString(low_price) AS low, toString(volume) AS volume, trade_count`,
      "WHERE canonical_symbol = 'TEST/USD'",
    );
    expect(got).toEqual([
      {
        exchange: 'kraken',
        canonical_symbol: 'TEST/USD',
        ws: minute,
        open_time: minute + 1_000,
        open: '99',
        close_time: minute + 59_000,
        close: '101',
        high: '110',
        low: '95',
        volume: '7',
        trade_count: 6,
      },
    ]);
  });

  it('stages gold without duplicate candles and keeps each (month, exchange) in its own files', async () => {
    const result = await stage('ohlcv_1h', end.getTime() - 2 * HOUR, end.getTime());
    const keys = await readParquet<{ n: number; d: number }>(
      ch.client,
      result.files.map((f) => f.uri),
      'exchange, canonical_symbol, window_start',
    );
    expect(result.rows).toBe(keys.length);
    expect(new Set(keys.map((k) => JSON.stringify(k))).size).toBe(keys.length);
    for (const file of result.files) {
      const [p] = await readParquet<{ n: number }>(
        ch.client,
        [file.uri],
        'uniqExact(toYYYYMM(window_start), exchange) AS n',
      );
      expect(p?.n).toBe(1);
    }
  });
});

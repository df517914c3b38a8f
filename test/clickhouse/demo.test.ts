import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/clickhouse/client.ts';
import { createDemoSchema, DEMO_EXCHANGES } from '../../src/clickhouse/demo.ts';
import { type GeneratedTrades, generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { detectDrift } from '../../src/clickhouse/drift.ts';
import { defaultConfig } from '../../src/config/load.ts';
import { InputError } from '../../src/errors.ts';
import { openTestClickHouse } from '../stage/support.ts';
import { TEST_NOW } from '../support/clock.ts';

const HOUR = 3_600_000;
const end = TEST_NOW;
const num = async (query: string) =>
  Number((await queryRows<{ n: string | number }>(ch.client, query))[0]?.n);

let ch: Awaited<ReturnType<typeof openTestClickHouse>>;
let generated: GeneratedTrades;

beforeAll(async () => {
  ch = await openTestClickHouse('demo');
  await createDemoSchema(ch.client);
  await createDemoSchema(ch.client); // idempotent
  generated = await generateTrades(ch.client, {
    rows: 20_000,
    spanHours: 3,
    end,
    lateFraction: 0.05,
    seed: 5,
  });
});
afterAll(async () => ch?.close());

describe('demo schema', () => {
  it('creates the ten tables of the seed with their engines, keys, TTLs and defaults, and nine views', async () => {
    const tables = await queryRows<{
      name: string;
      engine: string;
      partition_key: string;
      sorting_key: string;
      q: string;
    }>(
      ch.client,
      "SELECT name, engine, partition_key, sorting_key, create_table_query AS q FROM system.tables WHERE database = 'k2' ORDER BY name",
    );
    const byName = new Map(tables.map((t) => [t.name, t]));
    expect(tables.filter((t) => t.engine === 'MaterializedView')).toHaveLength(9);
    expect(byName.get('bronze_trades_coinbase')).toMatchObject({
      engine: 'MergeTree',
      partition_key: 'toYYYYMMDD(exchange_timestamp)',
      sorting_key: 'symbol, exchange_timestamp, sequence_number',
    });
    expect(byName.get('silver_trades')).toMatchObject({
      partition_key: '(exchange, asset_class, toYYYYMMDD(timestamp))',
      sorting_key: 'exchange, asset_class, canonical_symbol, timestamp',
    });
    expect(byName.get('ohlcv_1d')?.q).toMatch(/SummingMergeTree\(\(volume, quote_volume, trade_count\)\)/);
    expect(byName.get('ohlcv_1d')?.q).toMatch(/TTL toDateTime\(window_start\) \+ toIntervalYear\(2\)/);
    expect(byName.get('bronze_trades_kraken')?.q).toMatch(
      /TTL toDateTime\(exchange_timestamp\) \+ toIntervalDay\(7\)/,
    );
    const defaults = await queryRows<{ table: string; name: string; default_expression: string }>(
      ch.client,
      "SELECT table, name, default_expression FROM system.columns WHERE database = 'k2' AND default_kind = 'DEFAULT' ORDER BY table, name",
    );
    expect(defaults).toContainEqual({
      table: 'bronze_trades_binance',
      name: 'ingestion_timestamp',
      default_expression: 'now()',
    });
    expect(defaults).toContainEqual({
      table: 'silver_trades',
      name: 'processed_at',
      default_expression: 'now64(6)',
    });
  });

  it('matches the default table config column for column (no drift)', async () => {
    for (const table of defaultConfig().tables)
      expect(await detectDrift(ch.client, table), table.name).toEqual([]);
  });
});

describe('generateTrades', () => {
  it('inserts the requested rows, split over three exchanges, with several symbols each', async () => {
    expect(generated.rows).toEqual({ binance: 10_000, kraken: 6_000, coinbase: 4_000 });
    for (const e of DEMO_EXCHANGES) {
      expect(await num(`SELECT count() AS n FROM k2.bronze_trades_${e.name}`)).toBe(generated.rows[e.name]);
      expect(await num(`SELECT uniqExact(symbol) AS n FROM k2.bronze_trades_${e.name}`)).toBe(
        e.symbols.length,
      );
      const dupes = `SELECT count() AS n FROM (SELECT symbol, sequence_number FROM k2.bronze_trades_${e.name} GROUP BY ALL HAVING count() > 1)`;
      expect(await num(dupes)).toBe(0);
    }
  });

  it('spreads ingestion (the bronze cursor) over the span and leaves some trades late', async () => {
    expect(generated).toMatchObject({
      from: new Date(end.getTime() - 3 * HOUR).toISOString(),
      to: end.toISOString(),
    });
    const [range] = await queryRows<{ lo: string; hi: string; hours: number }>(
      ch.client,
      `SELECT toString(min(ingestion_timestamp)) AS lo, toString(max(ingestion_timestamp)) AS hi,
        uniqExact(toStartOfHour(ingestion_timestamp)) AS hours FROM k2.bronze_trades_binance`,
    );
    expect(range?.lo).toBe(generated.from.slice(0, 19).replace('T', ' '));
    expect(Date.parse(`${range?.hi}Z`)).toBeLessThan(end.getTime());
    expect(Number(range?.hours)).toBe(3);
    const late = await num(
      "SELECT countIf(dateDiff('second', exchange_timestamp, ingestion_timestamp) > 60) / count() AS n FROM k2.bronze_trades_binance",
    );
    expect(late).toBeGreaterThan(0.03);
    expect(late).toBeLessThan(0.07);
  });

  it('walks prices near each symbol’s level, with positive quantities and quote volume = price x quantity', async () => {
    const [btc] = await queryRows<{ lo: number; hi: number; q: number; bad: number }>(
      ch.client,
      `SELECT min(price) AS lo, max(price) AS hi, min(quantity) AS q,
        countIf(abs(toFloat64(quote_volume) - toFloat64(price) * toFloat64(quantity)) > 0.00000002) AS bad
       FROM k2.bronze_trades_binance WHERE symbol = 'BTCUSDT'`,
    );
    expect(Number(btc?.lo)).toBeGreaterThan(55_000);
    expect(Number(btc?.hi)).toBeLessThan(75_000);
    expect(Number(btc?.hi)).toBeGreaterThan(Number(btc?.lo));
    expect(Number(btc?.q)).toBeGreaterThan(0);
    expect(Number(btc?.bad)).toBe(0);
  });

  it('feeds silver and the six candle tables through the views', async () => {
    expect(await num('SELECT count() AS n FROM k2.silver_trades')).toBe(20_000);
    const mismatched = `SELECT count() AS n FROM k2.silver_trades s INNER JOIN k2.bronze_trades_kraken b
      ON s.source_sequence = b.sequence_number AND s.symbol = b.symbol
      WHERE s.exchange = 'kraken' AND (s.processed_at != toDateTime64(b.ingestion_timestamp, 6, 'UTC') OR s.canonical_symbol NOT LIKE '%/USD')`;
    expect(await num(mismatched)).toBe(0);
    expect(
      await num("SELECT uniqExact(canonical_symbol) AS n FROM k2.silver_trades WHERE symbol = 'XBT/USD'"),
    ).toBe(1);
    for (const suffix of ['1m', '5m', '15m', '30m', '1h', '1d'])
      expect(await num(`SELECT sum(trade_count) AS n FROM k2.ohlcv_${suffix}`), suffix).toBe(20_000);
  });

  it('makes the same rows from the same seed', async () => {
    await createDemoSchema(ch.client, 'k2b');
    await generateTrades(ch.client, {
      rows: 20_000,
      spanHours: 3,
      end,
      lateFraction: 0.05,
      seed: 5,
      database: 'k2b',
    });
    const digest = (db: string) =>
      num(
        `SELECT sum(cityHash64(exchange_timestamp, sequence_number, symbol, price, quantity, ingestion_timestamp)) AS n FROM ${db}.bronze_trades_coinbase`,
      );
    expect(await digest('k2b')).toBe(await digest('k2'));
  });

  it('gives a second stream over the same arrival instants keys of its own with a sequence offset', async () => {
    const replay = { rows: 20_000, spanHours: 3, end, lateFraction: 0.05, seed: 6 };
    const repeated = `SELECT count() - uniqExact(symbol, sequence_number) AS n FROM k2c.bronze_trades_binance`;
    await createDemoSchema(ch.client, 'k2c');
    await generateTrades(ch.client, { ...replay, seed: 5, database: 'k2c' });
    await generateTrades(ch.client, { ...replay, database: 'k2c' });
    // Without an offset the two streams share every key: the same trade twice, which no offload can fix.
    expect(await num(repeated)).toBe(10_000);
    await ch.client.command({ query: 'TRUNCATE TABLE k2c.bronze_trades_binance' });
    await generateTrades(ch.client, { ...replay, seed: 5, database: 'k2c' });
    await generateTrades(ch.client, { ...replay, database: 'k2c', sequenceOffset: 10 ** 16 });
    expect(await num(repeated)).toBe(0);
    expect(await num(`SELECT count() AS n FROM k2c.bronze_trades_binance`)).toBe(20_000);
    await expect(generateTrades(ch.client, { ...replay, sequenceOffset: -1 })).rejects.toThrow(
      'generateTrades: sequenceOffset must be between 0 and 10000000000000000000, got -1',
    );
  });

  it('refuses impossible options with the value and the fix', async () => {
    await expect(generateTrades(ch.client, { rows: -1 })).rejects.toThrow(InputError);
    await expect(generateTrades(ch.client, { rows: 100_000_000, spanHours: 1 / 60 })).rejects.toThrow(
      /widen spanHours/,
    );
  });
});

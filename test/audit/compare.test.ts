import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffKeys, duplicatedKeys, hourPrints, keysOf, SAMPLE_SIZE } from '../../src/audit/compare.ts';
import { queryRows } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import { openTestClickHouse } from '../stage/support.ts';
import { TEST_NOW } from '../support/clock.ts';

/**
 * The audit's comparisons on their own, one chDB session holding both sides: the hot tier's table and a
 * copy standing for what Iceberg holds, changed the way a faulty offload would leave it (a key lost,
 * one written twice, one changed). What the audit then says about an hour rests on these numbers.
 */
const HOUR = 3_600_000;
const bronze = tableByName(defaultConfig(), 'bronze_trades_binance');
const candles = tableByName(defaultConfig(), 'ohlcv_1m');
const SOURCE = 'k2.bronze_trades_binance';
const iso = (ms: number) => new Date(ms).toISOString();
/** The two hours of trades: [first, second) and [second, end). */
const first = TEST_NOW.getTime() - 2 * HOUR;
const second = first + HOUR;
const end = TEST_NOW.getTime();

let ch: Awaited<ReturnType<typeof openTestClickHouse>>;
const side = (from: string) => ({ client: ch.client, from });
type Key = { symbol: string; sequence_number: string; at: string };
/** Trades of one hour by sequence number, as keys in the audit's text form. */
let keys: { first: Key[]; second: Key[] };

/** A copy of the source without the trades `where` selects (none by default), then the rows `add` selects. */
async function copy(name: string, where = '0', add: string[] = []): Promise<string> {
  const to = `k2.${name}`;
  await ch.client.command({ query: `DROP TABLE IF EXISTS ${to}` });
  await ch.client.command({
    query: `CREATE TABLE ${to} ENGINE = MergeTree ORDER BY tuple() AS SELECT * FROM ${SOURCE} WHERE NOT (${where})`,
  });
  for (const select of add) await ch.client.command({ query: `INSERT INTO ${to} ${select}` });
  return to;
}
const one = (k: Key) => `symbol = '${k.symbol}' AND sequence_number = ${k.sequence_number}`;
const again = (k: Key) => `SELECT * FROM ${SOURCE} WHERE ${one(k)}`;
/** The trade `k` under another sequence number: its natural key changed. */
const rekeyed = (k: Key, sequence: number) =>
  `SELECT * REPLACE (toUInt64(${sequence}) AS sequence_number) FROM (${again(k)})`;
const key = (k: Key) => ({ symbol: k.symbol, sequence_number: k.sequence_number });

beforeAll(async () => {
  ch = await openTestClickHouse('compare');
  await createDemoSchema(ch.client);
  await generateTrades(ch.client, { rows: 6_000, spanHours: 2, end: TEST_NOW, lateFraction: 0, seed: 21 });
  const hourKeys = (from: number) =>
    queryRows<Key>(
      ch.client,
      `SELECT symbol, toString(sequence_number) AS sequence_number, toString(ingestion_timestamp) AS at
       FROM ${SOURCE} WHERE ingestion_timestamp >= ${from / 1000} AND ingestion_timestamp < ${(from + HOUR) / 1000}
       ORDER BY symbol, sequence_number`,
    );
  keys = { first: await hourKeys(first), second: await hourKeys(second) };
});
afterAll(async () => ch?.close());

describe("the audit's hour prints", () => {
  it('print one line per hour of the range: its rows, distinct keys and no duplicate for a clean copy', async () => {
    const prints = await hourPrints(ch.client, bronze, SOURCE, iso(first), iso(end));
    expect(prints.map((p) => p.hour)).toEqual([
      iso(first).replace('.000', ''),
      iso(second).replace('.000', ''),
    ]);
    expect(prints.map((p) => [p.rows, p.keys, p.duplicateKeys])).toEqual([
      [keys.first.length, keys.first.length, 0],
      [keys.second.length, keys.second.length, 0],
    ]);
    expect(await hourPrints(ch.client, bronze, await copy('clean'), iso(first), iso(end))).toEqual(prints);
  });

  it('count rows from the range start on and stop before its end, whatever the hour', async () => {
    const since = keys.second[10] as Key;
    const until = keys.second[20] as Key;
    const inRange = keys.second.filter((k) => k.at >= since.at && k.at < until.at).length;
    const [print] = await hourPrints(
      ch.client,
      bronze,
      SOURCE,
      `${since.at.replace(' ', 'T')}Z`,
      `${until.at.replace(' ', 'T')}Z`,
    );
    expect(print?.rows).toBe(inRange);
    expect(print?.rows).toBeGreaterThan(0);
  });

  it('a key held twice: one row more, the same keys and digest, one duplicated key', async () => {
    const k = keys.second[3] as Key;
    const twice = await copy('twice', '0', [again(k)]);
    const [, clean] = await hourPrints(ch.client, bronze, SOURCE, iso(first), iso(end));
    const [, doubled] = await hourPrints(ch.client, bronze, twice, iso(first), iso(end));
    expect(doubled).toEqual({ ...clean, rows: (clean?.rows ?? 0) + 1, duplicateKeys: 1 });
  });

  it('a key changed: the same rows and key count, another digest', async () => {
    const k = keys.first[5] as Key;
    const changed = await copy('changed', one(k), [rekeyed(k, 7)]);
    const [clean] = await hourPrints(ch.client, bronze, SOURCE, iso(first), iso(second));
    const [print] = await hourPrints(ch.client, bronze, changed, iso(first), iso(second));
    expect(print).toMatchObject({ rows: clean?.rows, keys: clean?.keys, duplicateKeys: 0 });
    expect(print?.digest).not.toBe(clean?.digest);
  });
});

describe("the audit's key differences", () => {
  it('one key missing and another extra in the same hour: one of each, exact, and each named', async () => {
    const lost = keys.second[0] as Key;
    const moved = keys.second[1] as Key;
    const b = await copy('swap', one(lost), [rekeyed(moved, 9)]);
    const diff = await diffKeys(side(SOURCE), side(b), bronze, iso(second));
    expect(diff).toMatchObject({ onlyInA: 1, onlyInB: 1, exact: true });
    const [since, until] = [iso(second), iso(end)];
    expect(await keysOf(side(SOURCE), bronze, diff.sampleA, since, until)).toEqual([key(lost)]);
    expect(await keysOf(side(b), bronze, diff.sampleB, since, until)).toEqual([
      { symbol: moved.symbol, sequence_number: '9' },
    ]);
    // The hour before differs in nothing.
    expect(await diffKeys(side(SOURCE), side(b), bronze, iso(first))).toEqual({
      onlyInA: 0,
      onlyInB: 0,
      exact: true,
      sampleA: [],
      sampleB: [],
    });
  });

  it('only the part of the hour asked for: a missing key outside it is not counted', async () => {
    const early = keys.second[0] as Key;
    const late = keys.second.at(-1) as Key;
    const b = await copy('ends', `${one(early)} OR ${one(late)}`);
    const mid = `${(keys.second[100] as Key).at.replace(' ', 'T')}Z`;
    const head = await diffKeys(side(SOURCE), side(b), bronze, iso(second), {
      since: iso(second),
      until: mid,
    });
    const tail = await diffKeys(side(SOURCE), side(b), bronze, iso(second), { since: mid, until: iso(end) });
    const whole = await diffKeys(side(SOURCE), side(b), bronze, iso(second));
    expect([head.onlyInA, tail.onlyInA, whole.onlyInA]).toEqual([1, 1, 2]);
    // A range reaching past the hour is clipped to it: the next hour's rows are not this hour's.
    const past = await diffKeys(side(SOURCE), side(b), bronze, iso(first), {
      since: iso(first),
      until: iso(end),
    });
    expect(past.onlyInA).toBe(0);
  });

  it('more differing keys than it fetches: counted from the key totals, marked inexact, samples real', async () => {
    const lost = keys.first.filter((_, i) => i % 4 === 0);
    expect(lost.length).toBeGreaterThan(300);
    const b = await copy('many', lost.map(one).join(' OR '), [rekeyed(keys.first[1] as Key, 11)]);
    // Each side's queries, to see how much of the hour is fetched key by key.
    const queries: string[] = [];
    const recorded = (from: string) => ({
      client: new Proxy(ch.client, {
        get: (target, name) =>
          name === 'query'
            ? (params: { query: string }) => {
                queries.push(params.query);
                return target.query(params as Parameters<typeof target.query>[0]);
              }
            : Reflect.get(target, name),
      }),
      from,
    });
    const diff = await diffKeys(recorded(SOURCE), recorded(b), bronze, iso(first));
    // Memory stays small however big the hour: the keys of four buckets only, on each side.
    const fetched = queries.filter((q) => q.includes('SELECT DISTINCT'));
    expect(fetched).toHaveLength(2);
    for (const q of fetched) expect(/IN \(([^)]*)\)/.exec(q)?.[1]?.split(',')).toHaveLength(4);
    // The totals say the net difference: one extra key hides one missing key.
    expect(diff).toMatchObject({ onlyInA: lost.length - 1, onlyInB: 0, exact: false });
    expect(diff.sampleA).toHaveLength(SAMPLE_SIZE);
    const named = await keysOf(side(SOURCE), bronze, diff.sampleA, iso(first), iso(second));
    expect(named).toHaveLength(SAMPLE_SIZE);
    for (const k of named) expect(lost.map(key)).toContainEqual(k);
    // More extra than missing: the difference is counted as extra keys.
    const more = await copy('more', '0', [
      `SELECT * REPLACE (toUInt64(100 + rowNumberInAllBlocks()) AS sequence_number)
       FROM (SELECT * FROM ${SOURCE} WHERE ingestion_timestamp < ${second / 1000} LIMIT 400)`,
    ]);
    expect(await diffKeys(side(SOURCE), side(more), bronze, iso(first))).toMatchObject({
      onlyInA: 0,
      onlyInB: 400,
      exact: false,
    });
  });

  it('a big hour (tens of keys a bucket): the totals count every key of every bucket', async () => {
    // 30,000 keys in one hour: about 29 in each of the buckets the difference is narrowed by.
    const trades = (where: string) =>
      `(SELECT 'BTCUSDT' AS symbol, toUInt64(number) AS sequence_number,
               toDateTime64(${first / 1000} + number / 10, 6, 'UTC') AS ingestion_timestamp
        FROM numbers(30000) WHERE ${where})`;
    const diff = await diffKeys(side(trades('1')), side(trades('number % 3 != 0')), bronze, iso(first));
    expect(diff).toMatchObject({ onlyInA: 10_000, onlyInB: 0, exact: false });
  });

  it('an hour one side lacks entirely: every key counted, exactly, however many', async () => {
    const b = await copy('half', `ingestion_timestamp < ${second / 1000}`);
    expect(await diffKeys(side(SOURCE), side(b), bronze, iso(first))).toMatchObject({
      onlyInA: keys.first.length,
      onlyInB: 0,
      exact: true,
    });
    expect(await diffKeys(side(b), side(SOURCE), bronze, iso(first))).toMatchObject({
      onlyInA: 0,
      onlyInB: keys.first.length,
      exact: true,
    });
  });

  it('a candle whose values changed under the same key: one missing, one extra (every column hashed)', async () => {
    const SOURCE_CANDLES = 'k2.ohlcv_1m';
    // One row per candle, as the offload writes them: the hot tier's partial rows merged.
    await ch.client.command({ query: `OPTIMIZE TABLE ${SOURCE_CANDLES} FINAL` });
    const [c] = await queryRows<{ exchange: string; canonical_symbol: string; at: string }>(
      ch.client,
      `SELECT exchange, canonical_symbol, toString(window_start) AS at FROM ${SOURCE_CANDLES}
       WHERE window_start >= ${second / 1000} ORDER BY window_start LIMIT 1`,
    );
    const where = `exchange = '${c?.exchange}' AND canonical_symbol = '${c?.canonical_symbol}' AND window_start = '${c?.at}'`;
    await ch.client.command({
      query: `CREATE TABLE k2.candles_b ENGINE = MergeTree ORDER BY tuple() AS SELECT * FROM ${SOURCE_CANDLES}`,
    });
    await ch.client.command({
      query: `ALTER TABLE k2.candles_b UPDATE volume = volume + 1 WHERE ${where}`,
      clickhouse_settings: { mutations_sync: '2' },
    });
    const hour = iso(Math.floor(Date.parse(`${c?.at.replace(' ', 'T')}Z`) / HOUR) * HOUR);
    const diff = await diffKeys(side(SOURCE_CANDLES), side('k2.candles_b'), candles, hour);
    expect(diff).toMatchObject({ onlyInA: 1, onlyInB: 1, exact: true });
  });
});

describe("the audit's named keys", () => {
  it('names keys held more than once with their copies, in key order, five at most', async () => {
    const [a, b, ...rest] = keys.second;
    const extra = [
      again(a as Key),
      again(a as Key),
      again(b as Key),
      ...rest.slice(0, 6).map((k) => again(k)),
    ];
    const dup = await copy('dup', '0', extra);
    const found = await duplicatedKeys(side(dup), bronze, iso(second), iso(end));
    expect(found).toEqual([
      { key: key(a as Key), copies: 3 },
      { key: key(b as Key), copies: 2 },
      ...rest.slice(0, SAMPLE_SIZE - 2).map((k) => ({ key: key(k), copies: 2 })),
    ]);
    // Outside the range asked for, none: the duplicates are all in the second hour.
    expect(await duplicatedKeys(side(dup), bronze, iso(first), iso(second))).toEqual([]);
    expect(await duplicatedKeys(side(SOURCE), bronze, iso(first), iso(end))).toEqual([]);
  });

  it('names the keys whose hashes it is given, within the range only, none for no hashes', async () => {
    const b = await copy('seven', keys.first.slice(0, 7).map(one).join(' OR '));
    const diff = await diffKeys(side(SOURCE), side(b), bronze, iso(first));
    expect(diff.onlyInA).toBe(7);
    const named = await keysOf(side(SOURCE), bronze, diff.sampleA, iso(first), iso(second));
    expect(named).toHaveLength(SAMPLE_SIZE);
    expect(await keysOf(side(SOURCE), bronze, diff.sampleA, iso(second), iso(end))).toEqual([]);
    expect(await keysOf(side(SOURCE), bronze, [], iso(first), iso(end))).toEqual([]);
  });
});

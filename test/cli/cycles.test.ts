import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../src/audit/audit.ts';
import type { RunReport } from '../../src/cli/commands/run.ts';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { tableByName } from '../../src/config/load.ts';
import type { CyclePreview } from '../../src/pipeline/preview.ts';
import { TEST_NOW } from '../support/clock.ts';
import { compareKeys, icebergSource, openWorld, rows, type World } from '../support/world.ts';
import { cli } from './support.ts';

type Trade = { seq: number; exchangeAt: number; ingestedAt: number; price: number; qty: number };

const MIN = 60_000;
// Three hours before the tests' now (a noon), on an hour boundary: candle buckets of every size start at B.
const B = TEST_NOW.getTime() - 3 * 3_600_000;
const at = (minutes: number, seconds = 0) => B + minutes * MIN + seconds * 1000;
const sql = (ms: number) =>
  `toDateTime64('${new Date(ms).toISOString().replace('T', ' ').slice(0, 23)}', 3, 'UTC')`;

async function insertTrades(world: World, trades: Trade[], exchange = 'binance', symbol = 'BTCUSDT') {
  const values = trades
    .map(
      (t) =>
        `(${sql(t.exchangeAt)}, ${t.seq}, '${symbol}', ${t.price}, ${t.qty}, ${t.price * t.qty}, ${sql(t.exchangeAt)}, ${t.seq}, 0, toDateTime(${Math.floor(t.ingestedAt / 1000)}, 'UTC'))`,
    )
    .join(', ');
  await world.clickhouse.command({
    query: `INSERT INTO k2.bronze_trades_${exchange} (exchange_timestamp, sequence_number, symbol, price, quantity,
      quote_volume, event_time, kafka_offset, kafka_partition, ingestion_timestamp) VALUES ${values}`,
  });
}

/**
 * The CLI in this process against the world's components (same chDB data directory, the world's
 * Postgres database and warehouse), with the clock set by each step. The table config closes candles
 * 5 minutes after their end (the default waits 2 h 5 min for late trades), so that a late trade can
 * arrive after its candle was offloaded, the case the audit must catch.
 */
describe('k2-offload run: late rows, re-runs and open candles', () => {
  let world: World;
  let env: NodeJS.ProcessEnv;
  let configPath: string;
  const run = (argv: string[], now: number) =>
    cli([...argv, '--config', configPath], env, () => new Date(now));
  const metadataFiles = async () =>
    (await readdir(join(world.dir, 'warehouse'), { recursive: true })).filter((f) =>
      f.endsWith('.metadata.json'),
    );

  beforeAll(async () => {
    world = await openWorld();
    configPath = join(world.dir, 'tables.json');
    const tables = DEFAULT_TABLES.map((t) => (t.layer === 'gold' ? { ...t, latenessSeconds: 300 } : t));
    await writeFile(configPath, JSON.stringify({ tables }));
    env = { K2_HOME: world.dir, WAREHOUSE: join(world.dir, 'warehouse'), DATABASE_URL: world.databaseUrl };
    // Minute 10-12: trades of closed candles. Minute 20: the first trade of the 15-minute candle
    // [15, 30), still open when the first cycle runs at minute 30 (it closes at 30 + 5 min lateness).
    await insertTrades(world, [
      { seq: 1, exchangeAt: at(10), ingestedAt: at(10, 1), price: 100, qty: 1 },
      { seq: 2, exchangeAt: at(11), ingestedAt: at(11, 1), price: 101, qty: 2 },
      { seq: 3, exchangeAt: at(12), ingestedAt: at(12, 1), price: 99, qty: 1 },
      { seq: 4, exchangeAt: at(20), ingestedAt: at(20, 1), price: 200, qty: 1 },
    ]);
    // Silver waits for all three bronze tables; each has a trade, so each has a starting point.
    await insertTrades(
      world,
      [{ seq: 1, exchangeAt: at(10), ingestedAt: at(10, 1), price: 100, qty: 1 }],
      'kraken',
      'XBT/USD',
    );
    await insertTrades(
      world,
      [{ seq: 1, exchangeAt: at(10), ingestedAt: at(10, 1), price: 100, qty: 1 }],
      'coinbase',
      'BTC-USD',
    );
  });
  afterAll(() => world?.close());

  it('plan shows the batches of the first pass, which the run then commits, and that more follow', async () => {
    const plan = await run(['plan', '--json'], at(30));
    expect(plan.code).toBe(0);
    const preview = plan.json() as CyclePreview;
    const planned = preview.tables.flatMap((t) => t.batches.map((b) => b.batchId));
    expect(planned.length).toBeGreaterThan(0);
    // Silver and gold move in loop-back passes, once bronze has: the preview says so.
    expect(preview.more).toBe(true);
    // Each bronze batch's estimate is its rows: binance's four trades, one batch (the first of them in
    // the minute the first offload starts in, past that minute's start).
    const binancePlan = preview.tables.find((t) => t.table === 'bronze_trades_binance');
    expect(binancePlan?.batches.map((b) => b.estimatedRows)).toEqual([4]);
    // Planning wrote nothing: no watermark row, no lease.
    expect(await world.deps().watermarks.list()).toEqual([]);

    const first = await run(['run', '--json', '--log-format', 'json'], at(30));
    expect(first.code).toBe(0);
    const report = first.json() as RunReport;
    // stdout is the result alone; stderr one JSON event per line, a line per committed batch.
    const events = first.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const binance = events.filter(
      (e) => e.event === 'batch-committed' && e.table === 'bronze_trades_binance',
    );
    expect(binance.at(-1)).toMatchObject({ command: 'run', cursor: new Date(at(25)).toISOString() });
    expect(binance.reduce((n, e) => n + (e.rows as number), 0)).toBe(4);
    expect(report.tables.find((t) => t.table === 'bronze_trades_binance')).toMatchObject({
      status: 'succeeded',
      rows: 4,
      cursor: new Date(at(25)).toISOString(),
    });
    const committed = (await world.deps().watermarks.history({ limit: 1000 }))
      .filter((h) => h.outcome === 'committed')
      .map((h) => h.batchId);
    expect(committed).toEqual(expect.arrayContaining(planned));
    expect(committed.length).toBeGreaterThan(planned.length);
  });

  it('an immediate re-run writes nothing new', async () => {
    const files = await metadataFiles();
    const again = await run(['run', '--json'], at(30));
    expect(again.code).toBe(0);
    expect((again.json() as RunReport).rows).toBe(0);
    expect(await metadataFiles()).toEqual(files);
  });

  it('keeps an open candle out of Iceberg and says why', async () => {
    const deps = world.deps();
    const source = await icebergSource(deps, tableByName(deps.config, 'ohlcv_15m'));
    const candles = source
      ? await rows<{ w: string }>(world.clickhouse, `SELECT toString(window_start) AS w FROM ${source}`)
      : [];
    expect(candles.map((c) => c.w)).not.toContain(
      new Date(at(15)).toISOString().replace('T', ' ').slice(0, 19),
    );
    const plan = await run(['plan', '--tables', 'ohlcv_15m', '--json'], at(30));
    const t = (plan.json() as CyclePreview).tables.find((x) => x.table === 'ohlcv_15m');
    expect(t?.batches).toEqual([]);
    // Open at minute 30 twice over: it closes at 30 + lateness, and silver is only offloaded up to 25.
    expect(t?.skip?.detail).toContain(`next bucket ${new Date(at(15)).toISOString().slice(0, 19)}Z to`);
  });

  it('late rows inserted after a cycle arrive in the next one, once; the closed candle has final values', async () => {
    // Arrived at minute 31, after the first cycle, though they happened at minutes 5 and 22.
    await insertTrades(world, [
      { seq: 5, exchangeAt: at(5), ingestedAt: at(31), price: 98, qty: 3 },
      { seq: 6, exchangeAt: at(22), ingestedAt: at(31), price: 210, qty: 2 },
      { seq: 7, exchangeAt: at(28), ingestedAt: at(31), price: 190, qty: 1 },
    ]);
    const next = await run(['run', '--json'], at(40));
    expect(next.code).toBe(0);
    expect((next.json() as RunReport).tables.find((t) => t.table === 'bronze_trades_binance')?.rows).toBe(3);

    const deps = world.deps();
    for (const name of ['bronze_trades_binance', 'silver_trades', 'ohlcv_15m']) {
      const table = tableByName(deps.config, name);
      const w = await deps.watermarks.get(name);
      const diff = await compareKeys(world, deps, table, w.cursor);
      expect({ name, missing: diff.missing, duplicated: diff.duplicated, extra: diff.extra }).toEqual({
        name,
        missing: [],
        duplicated: [],
        extra: [],
      });
    }
    const bronze = await icebergSource(deps, tableByName(deps.config, 'bronze_trades_binance'));
    const seqs = await rows<{ s: string }>(
      world.clickhouse,
      `SELECT toString(sequence_number) AS s FROM ${bronze} ORDER BY sequence_number`,
    );
    expect(seqs.map((r) => r.s)).toEqual(['1', '2', '3', '4', '5', '6', '7']);

    // Candle [15, 30) closed at minute 30 (+5 min lateness): trades 4, 6 and 7, in exchange time order.
    const gold = await icebergSource(deps, tableByName(deps.config, 'ohlcv_15m'));
    const candle = await rows<Record<string, string>>(
      world.clickhouse,
      `SELECT toString(open_price) AS open, toString(close_price) AS close, toString(high_price) AS high,
              toString(low_price) AS low, toString(volume) AS volume, toString(trade_count) AS trades
       FROM ${gold} WHERE window_start = ${sql(at(15))} AND canonical_symbol = 'BTC/USDT'`,
    );
    expect(candle).toEqual([
      { open: '200', close: '190', high: '210', low: '190', volume: '4', trades: '3' },
    ]);
  });

  it('audit: bronze, silver and closed candles agree; it finds the candles a late trade opened or changed below the gold watermark', async () => {
    const r = await run(['audit', '--hours', '6', '--json'], at(40));
    const report = r.json() as AuditReport;
    const hour = new Date(B).toISOString().replace('.000Z', 'Z');
    for (const t of report.tables)
      if (t.table === 'ohlcv_1m' || t.table === 'ohlcv_5m' || t.table === 'ohlcv_15m') {
        // Trades 5 and 6 happened at minutes 5 and 22 but arrived at minute 31: candles 1m [5, 6), [22, 23)
        // and 5m [5, 10) are new keys below the gold watermark (25), which no later cycle offloads, and
        // trade 6 changed the values of 5m [20, 25) and trade 5 those of 15m [0, 15), offloaded before they
        // arrived (one candle missing with its final values, one extra with its old ones). The audit
        // exists to catch exactly these.
        expect(t.ok, t.table).toBe(false);
        const [missing, extra] = { ohlcv_1m: [2, 0], ohlcv_5m: [2, 1], ohlcv_15m: [1, 1] }[
          t.table
        ] as number[];
        expect(t.hours.filter((h) => !h.ok).map((h) => [h.hour, h.missingKeys, h.extraKeys])).toEqual([
          [hour, missing, extra],
        ]);
      } else expect({ table: t.table, ok: t.ok }).toEqual({ table: t.table, ok: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
  });
});

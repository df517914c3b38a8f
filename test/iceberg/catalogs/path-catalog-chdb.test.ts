import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../../src/config/load.ts';
import { fastAppend } from '../../../src/iceberg/commit.ts';
import { fileUri, LocalObjectStore } from '../../../src/iceberg/local-store.ts';
import { createPathCatalog } from '../../../src/iceberg/path-catalog.ts';
import { createTable } from '../../../src/iceberg/table.ts';
import { makeBatch } from '../../../src/plan/batch.ts';
import { openChdb, rows, stagingSelect, writeParquet } from '../chdb-helpers.ts';

/**
 * The path catalog is what readers without a catalog service use: here our writer commits through it,
 * two appends at once included, and ClickHouse's `icebergLocal` (which only knows file names) reads it.
 */
const gold = tableByName(defaultConfig(), 'ohlcv_1h');
const candles = (exchange: string, day: string) => ({
  exchange: `'${exchange}'`,
  canonical_symbol: "['BTC/USD', 'ETH/USD'][number % 2 + 1]",
  window_start: `toStartOfHour(toDateTime64('${day}', 6, 'UTC') + number * 3600)`,
  open_time: `toDateTime64('${day}', 6, 'UTC') + number * 3600 + 1`,
  open_price: 'toDecimal64(100 + number, 8)',
  close_time: `toDateTime64('${day}', 6, 'UTC') + number * 3600 + 3599`,
  close_price: 'toDecimal64(101 + number, 8)',
  high_price: 'toDecimal64(102 + number, 8)',
  low_price: 'toDecimal64(99 + number, 8)',
  volume: 'toDecimal128(number, 8) / 3',
  quote_volume: 'toDecimal128(number, 8) * 1000',
  trade_count: 'number * 10',
});

describe('path catalog read by chDB icebergLocal', () => {
  const cwd = process.cwd();
  const store = new LocalObjectStore();
  let dir: string;
  let chdb: ClickHouseClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-path-chdb-'));
    chdb = openChdb(dir);
  });
  afterAll(async () => {
    await chdb?.close();
    process.chdir(cwd);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps both of two concurrent appends, and chDB reads the newest version with a stale hint', async () => {
    const catalog = createPathCatalog(store, fileUri(join(dir, 'warehouse')));
    const deps = { store, catalog };
    const ident = gold.target;
    await createTable(deps, { table: ident, config: gold, location: catalog.tableLocation(ident) });

    const dataDir = join(dir, 'warehouse', ident.namespace, ident.name, 'data');
    mkdirSync(dataDir, { recursive: true });
    const stage = async (exchange: string, day: string, n: number) => {
      const batch = makeBatch(gold.name, `${day}T00:00:00Z`, `${day}T${String(n).padStart(2, '0')}:00:00Z`);
      const path = join(dataDir, `${batch.batchId}.parquet`);
      await writeParquet(chdb, path, stagingSelect(gold, candles(exchange, day)), `numbers(${n})`);
      return { table: ident, marker: { ...batch, rows: n }, files: [fileUri(path)] };
    };
    const a = await stage('binance', '2024-05-01', 24);
    const b = await stage('kraken', '2024-05-02', 12);
    const c = await stage('coinbase', '2024-05-03', 6);

    const [ra, rb] = await Promise.all([fastAppend(deps, a), fastAppend(deps, b)]);
    expect([ra.status, rb.status]).toEqual(['committed', 'committed']);
    expect(Math.max(ra.attempts, rb.attempts)).toBe(2);
    await fastAppend(deps, c);

    const metadataDir = `${catalog.tableLocation(ident)}/metadata`;
    expect(await catalog.currentMetadataLocation(ident)).toBe(`${metadataDir}/v4.metadata.json`);
    expect(new TextDecoder().decode(await store.get(catalog.versionHintLocation(ident)))).toBe('4');
    await store.put(catalog.versionHintLocation(ident), new TextEncoder().encode('2'));

    const table = `icebergLocal('${join(dir, 'warehouse', ident.namespace, ident.name)}')`;
    const counts = await rows<{ exchange: string; n: string }>(
      chdb,
      `SELECT exchange, toString(count()) AS n FROM ${table} GROUP BY exchange ORDER BY exchange`,
    );
    expect(counts).toEqual([
      { exchange: 'binance', n: '24' },
      { exchange: 'coinbase', n: '6' },
      { exchange: 'kraken', n: '12' },
    ]);
    expect(await catalog.currentMetadataLocation(ident)).toBe(`${metadataDir}/v4.metadata.json`);
  });
});

import { mkdirSync, renameSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import { fastAppend } from '../../src/iceberg/commit.ts';
import { dataFileFromParquet } from '../../src/iceberg/data-file.ts';
import { fileUri, LocalObjectStore } from '../../src/iceberg/local-store.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { defaultTableLocation, newTableMetadata } from '../../src/iceberg/new-table.ts';
import { nameMapping } from '../../src/iceberg/schema.ts';
import { createTable, loadTable } from '../../src/iceberg/table.ts';
import { fromBytes } from '../../src/iceberg/values.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { openChdb, profileQuery, rows, stagingSelect, writeParquet } from './chdb-helpers.ts';
import { from, generators } from './generators.ts';

const config = defaultConfig();
let dir: string;
let chdb: ClickHouseClient;
const cwd = process.cwd();
const store = new LocalObjectStore();
const catalog = new MemoryCatalog();
const deps = { store, catalog };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k2-iceberg-chdb-'));
  chdb = openChdb(dir);
});
afterAll(async () => {
  await chdb?.close();
  process.chdir(cwd);
  await rm(dir, { recursive: true, force: true });
});

const tablePath = (t: TableConfig) => join(dir, 'warehouse', t.target.namespace, t.target.name);

/** Creates the table, stages one Parquet file per partition of each batch, appends batch by batch. */
async function offload(
  table: TableConfig,
  batches: Array<{ start: string; end: string; files: Record<string, string> }>,
) {
  const ident = table.target;
  await createTable(deps, {
    table: ident,
    config: table,
    location: defaultTableLocation(fileUri(join(dir, 'warehouse')), ident),
  });
  const dataDir = join(tablePath(table), 'data');
  mkdirSync(dataDir, { recursive: true });
  const snapshots: bigint[] = [];
  for (const b of batches) {
    const batch = makeBatch(table.name, b.start, b.end);
    const uris: string[] = [];
    let count = 0;
    for (const [name, from] of Object.entries(b.files)) {
      const path = join(dataDir, `${batch.batchId}-${name}.parquet`);
      await writeParquet(chdb, path, stagingSelect(table, generators[table.layer]), from);
      const [r] = await rows<{ c: string }>(chdb, `SELECT toString(count()) AS c FROM file('${path}')`);
      count += Number(r?.c);
      uris.push(fileUri(path));
    }
    const result = await fastAppend(deps, {
      table: ident,
      marker: { ...batch, rows: count },
      files: uris,
    });
    expect(result.status).toBe('committed');
    snapshots.push(result.marker.snapshotId);
  }
  return snapshots;
}

const iceberg = (t: TableConfig) => `icebergLocal('${tablePath(t)}')`;
const staged = (t: TableConfig) => `file('${join(tablePath(t), 'data')}/*.parquet')`;

describe('tables we write, read back by ClickHouse (chDB icebergLocal)', () => {
  const bronze = tableByName(config, 'bronze_trades_binance');
  const silver = tableByName(config, 'silver_trades');
  const gold = tableByName(config, 'ohlcv_1h');
  let bronzeSnapshots: bigint[] = [];

  it('bronze (day partitions): same rows and per-column min/max/sum as the staged files', async () => {
    bronzeSnapshots = await offload(bronze, [
      {
        start: '2024-01-01T00:00:00Z',
        end: '2024-01-02T00:00:00Z',
        files: { d1: from(1000, { day: '2024-01-01' }) },
      },
      {
        start: '2024-01-02T00:00:00Z',
        end: '2024-01-03T00:00:00Z',
        files: { d2: from(700, { day: '2024-01-02' }) },
      },
    ]);
    const [got] = await rows(chdb, profileQuery(bronze, iceberg(bronze)));
    const [want] = await rows(chdb, profileQuery(bronze, staged(bronze)));
    expect(got).toEqual(want);
    expect(got?.rows).toBe('1700');
    expect(got?.sequence_number_max).toBe('9007199254741992');
  });

  it('silver: arrays, maps, uuids, decimal(38), nullable and timestamptz columns, three partition fields', async () => {
    await offload(silver, [
      {
        start: '2024-03-01T00:00:00Z',
        end: '2024-03-01T01:00:00Z',
        files: {
          a: from(300, { day: '2024-03-01', exchange: 'binance', asset_class: 'crypto' }),
          b: from(200, { day: '2024-03-01', exchange: 'kraken', asset_class: 'crypto' }),
        },
      },
      {
        start: '2024-03-02T00:00:00Z',
        end: '2024-03-02T01:00:00Z',
        files: { c: from(100, { day: '2024-03-02', exchange: 'coinbase', asset_class: 'equities' }) },
      },
    ]);
    const [got] = await rows(chdb, profileQuery(silver, iceberg(silver)));
    const [want] = await rows(chdb, profileQuery(silver, staged(silver)));
    expect(got).toEqual(want);
    expect(got?.rows).toBe('600');
    const [sample] = await rows(
      chdb,
      `SELECT trade_conditions, vendor_data, toTypeName(message_id) AS uuid_type, source_sequence
       FROM ${iceberg(silver)} WHERE exchange = 'kraken' AND trade_id = '5'`,
    );
    expect(sample).toEqual({
      trade_conditions: ['c0', 'c1'],
      vendor_data: { seq: '5', src: 'kraken' },
      uuid_type: expect.stringMatching(/UUID/),
      source_sequence: null,
    });
  });

  it('gold (month and identity partitions): same rows and aggregates', async () => {
    await offload(gold, [
      {
        start: '2024-05-01T00:00:00Z',
        end: '2024-05-02T00:00:00Z',
        files: {
          a: from(24, { day: '2024-05-01', exchange: 'binance' }),
          b: from(24, { day: '2024-05-01', exchange: 'kraken' }),
        },
      },
    ]);
    const [got] = await rows(chdb, profileQuery(gold, iceberg(gold)));
    const [want] = await rows(chdb, profileQuery(gold, staged(gold)));
    expect(got).toEqual(want);
    expect(got?.rows).toBe('48');
  });

  it('time travel to each snapshot, by id and by timestamp', async () => {
    const { metadata } = await loadTable(deps, bronze.target);
    const counts: string[] = [];
    for (const id of bronzeSnapshots) {
      const [byId] = await rows<{ c: string }>(
        chdb,
        `SELECT toString(count()) AS c FROM ${iceberg(bronze)} SETTINGS iceberg_snapshot_id = ${id}`,
      );
      const ts = metadata.snapshots.find((s) => s['snapshot-id'] === id)?.['timestamp-ms'];
      const [byTime] = await rows<{ c: string }>(
        chdb,
        `SELECT toString(count()) AS c FROM ${iceberg(bronze)} SETTINGS iceberg_timestamp_ms = ${ts}`,
      );
      expect(byTime?.c).toBe(byId?.c);
      counts.push(byId?.c ?? '');
    }
    expect(counts).toEqual(['1000', '1700']);
  });

  /** Hides one data file: a reader that prunes by our partition values does not notice, one that does not fails. */
  async function expectPruned(table: TableConfig, hidden: string, where: string, count: string) {
    const file = join(tablePath(table), 'data', hidden);
    renameSync(file, `${file}.hidden`);
    try {
      const query = (pruning: 0 | 1) =>
        `SELECT toString(count()) AS c FROM ${iceberg(table)} WHERE ${where}
         SETTINGS use_iceberg_partition_pruning = ${pruning}, use_iceberg_metadata_files_cache = 0`;
      expect(await rows(chdb, query(1))).toEqual([{ c: count }]);
      await expect(rows(chdb, query(0))).rejects.toThrow();
    } finally {
      renameSync(`${file}.hidden`, file);
    }
  }
  const fileOf = (t: TableConfig, start: string, end: string, name: string) =>
    `${makeBatch(t.name, start, end).batchId}-${name}.parquet`;

  it('prunes partitions: a filtered query never opens the files of other partitions', async () => {
    await expectPruned(
      bronze,
      fileOf(bronze, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', 'd1'),
      "exchange_timestamp >= toDateTime64('2024-01-02 00:00:00', 6, 'UTC')",
      '700',
    );
    await expectPruned(
      silver,
      fileOf(silver, '2024-03-01T00:00:00Z', '2024-03-01T01:00:00Z', 'b'),
      "exchange = 'binance'",
      '300',
    );
    await expectPruned(
      silver,
      fileOf(silver, '2024-03-01T00:00:00Z', '2024-03-01T01:00:00Z', 'a'),
      "asset_class = 'equities'",
      '100',
    );
    await expectPruned(
      gold,
      fileOf(gold, '2024-05-01T00:00:00Z', '2024-05-02T00:00:00Z', 'a'),
      "exchange = 'kraken'",
      '24',
    );
  });

  it('an empty table, then an empty batch, read as zero rows; the empty batch still carries its marker', async () => {
    const table = tableByName(config, 'bronze_trades_kraken');
    const ident = table.target;
    await createTable(deps, {
      table: ident,
      config: table,
      location: defaultTableLocation(fileUri(join(dir, 'warehouse')), ident),
    });
    expect(await rows(chdb, `SELECT toString(count()) AS c FROM ${iceberg(table)}`)).toEqual([{ c: '0' }]);
    const batch = makeBatch(table.name, '2024-01-01T00:00:00Z', '2024-01-01T01:00:00Z');
    const result = await fastAppend(deps, { table: ident, marker: { ...batch, rows: 0 }, files: [] });
    expect(result.status).toBe('committed');
    expect(result.marker.rows).toBe(0);
    expect(await rows(chdb, `SELECT toString(count()) AS c FROM ${iceberg(table)}`)).toEqual([{ c: '0' }]);
  });

  it('bounds from ClickHouse-written footers equal the true per-column min and max (negatives, uuids, timestamps)', async () => {
    const path = join(dir, 'bounds.parquet');
    const exprs = {
      ...generators.silver,
      message_id: 'generateUUIDv4(number)',
      price: 'toDecimal128(number, 8) / 7 - 300',
      source_sequence: 'if(number % 5 = 0, NULL, toInt64(number) - 1000)',
      trade_id: "concat('trade-with-a-long-identifier-', toString(number))",
    };
    await writeParquet(
      chdb,
      path,
      stagingSelect(silver, exprs),
      from(500, { day: '2024-03-01', exchange: 'x', asset_class: 'y' }),
    );
    const metadata = newTableMetadata(silver, { location: fileUri(dir), tableUuid: 'u', nowMs: 0 });
    const schema = metadata.schemas[0]!;
    const file = await dataFileFromParquet({
      store,
      uri: fileUri(path),
      schema,
      spec: metadata['partition-specs'][0]!,
      mapping: nameMapping(schema),
    });
    // The truth, from the rows: uuids compared as unsigned bytes (Iceberg's order, not ClickHouse's).
    const [truth] = await rows<Record<string, string>>(
      chdb,
      `SELECT min(hex(message_id)) AS uuid_lo, max(hex(message_id)) AS uuid_hi,
              toString(min(price)) AS price_lo, toString(max(price)) AS price_hi,
              toString(min(toUnixTimestamp64Micro(timestamp))) AS ts_lo, toString(max(toUnixTimestamp64Micro(timestamp))) AS ts_hi,
              toString(min(source_sequence)) AS seq_lo, toString(max(source_sequence)) AS seq_hi,
              toString(countIf(source_sequence IS NULL)) AS seq_nulls, min(trade_id) AS trade_lo
       FROM file('${path}')`,
    );
    const id = (name: string) => schema.fields.find((f) => f.name === name)!.id;
    const bound = (name: string, type: string, which: 'lower_bounds' | 'upper_bounds') =>
      fromBytes(type, file[which]!.get(id(name))!);
    const decimal = (v: unknown) => {
      const n = v as bigint;
      const sign = n < 0n ? '-' : '';
      const abs = (n < 0n ? -n : n).toString().padStart(9, '0');
      return `${sign}${abs.slice(0, -8)}.${abs.slice(-8)}`.replace(/\.?0+$/, '');
    };
    const hexOf = (v: unknown) =>
      Buffer.from(v as Uint8Array)
        .toString('hex')
        .toUpperCase();
    expect({
      uuid_lo: hexOf(bound('message_id', 'uuid', 'lower_bounds')),
      uuid_hi: hexOf(bound('message_id', 'uuid', 'upper_bounds')),
      price_lo: decimal(bound('price', 'decimal(38, 8)', 'lower_bounds')),
      price_hi: decimal(bound('price', 'decimal(38, 8)', 'upper_bounds')),
      ts_lo: String(bound('timestamp', 'timestamptz', 'lower_bounds')),
      ts_hi: String(bound('timestamp', 'timestamptz', 'upper_bounds')),
      seq_lo: String(bound('source_sequence', 'long', 'lower_bounds')),
      seq_hi: String(bound('source_sequence', 'long', 'upper_bounds')),
      seq_nulls: String(file.null_value_counts?.get(id('source_sequence'))),
      trade_lo: `${bound('trade_id', 'string', 'lower_bounds')}`,
    }).toEqual({ ...truth, trade_lo: truth?.trade_lo?.slice(0, 16) });
    expect(file.record_count).toBe(500);
    expect(file.partition).toEqual({ timestamp_day: 19783, exchange: 'x', asset_class: 'y' });
  });
});

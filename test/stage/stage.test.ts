import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/clickhouse/client.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import { InputError, StagingMismatchError } from '../../src/errors.ts';
import { stageBatch } from '../../src/stage/stage.ts';
import { batchSpec, openTestClickHouse, readParquet } from './support.ts';

/**
 * A table with every kind of column the offload carries, 300 rows ingested every 30 s from 00:00,
 * event times `at` reaching back into the previous day, and two values of `kind`: four partitions.
 */
const DDL = `CREATE TABLE t.events (
  id UInt64, name LowCardinality(String), kind Enum8('buy' = 1, 'sell' = 2),
  amount Decimal(18, 8), big Decimal128(8), u UUID, tags Array(String), attrs Map(String, String),
  maybe Nullable(UInt64), ok Bool, day Date, at DateTime64(3), ingested DateTime
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(at) ORDER BY id`;
const ROWS = `INSERT INTO t.events SELECT
  number, concat('n', toString(number % 4)), if(number % 2 = 1, 'buy', 'sell'),
  toDecimal64(number / 8, 8), toDecimal128(concat(toString(number), '123456789012345678.12345678'), 8),
  reinterpretAsUUID(MD5(toString(number))), arrayMap(i -> concat('t', toString(i)), range(number % 3)),
  if(number % 4 = 0, map(), map('n', toString(number), 'q', 'it''s')), if(number % 5 = 0, NULL, number * 1000),
  number % 3 = 0, toDate('2026-11-20') + number % 3,
  toDateTime64('2026-11-22 00:00:00', 3, 'UTC') + toIntervalSecond(number * 30) - toIntervalHour(number % 7) - toIntervalMillisecond(123),
  toDateTime('2026-11-22 00:00:00', 'UTC') + number * 30
FROM numbers(300)`;

const table: TableConfig = parseConfig({
  tables: [
    {
      name: 'events',
      layer: 'bronze',
      source: { database: 't', table: 'events' },
      target: { namespace: 'cold', name: 'events' },
      cursor: { kind: 'ingestion_time', column: 'ingested' },
      ttlSeconds: 7 * 86_400,
      columns: [
        { name: 'id', type: 'UInt64', required: true },
        { name: 'name', type: 'LowCardinality(String)', required: true },
        { name: 'kind', type: "Enum8('buy' = 1, 'sell' = 2)", required: true },
        { name: 'amount', type: 'Decimal(18, 8)', required: true },
        { name: 'big', type: 'Decimal128(8)', required: true },
        { name: 'u', type: 'UUID', required: true },
        { name: 'tags', type: 'Array(String)', required: true },
        { name: 'attrs', type: 'Map(String, String)', required: true },
        { name: 'maybe', type: 'Nullable(UInt64)' },
        { name: 'ok', type: 'Bool', required: true },
        { name: 'day', type: 'Date', required: true },
        { name: 'at', type: 'DateTime64(3)', required: true },
        { name: 'ingested', type: 'DateTime', required: true },
      ],
      naturalKey: ['id'],
      partitionSpec: [
        { column: 'at', transform: 'day' },
        { column: 'kind', transform: 'identity' },
      ],
    },
  ],
}).tables[0] as TableConfig;

/** One projection for both sides: values as text, instants as epoch microseconds. */
const NORMAL = `id, toString(name) AS name, toString(kind) AS kind, toString(amount) AS amount, toString(big) AS big,
  toString(u) AS u, tags, attrs, maybe, ok, toString(day) AS day,
  toUnixTimestamp64Micro(toDateTime64(at, 6, 'UTC')) AS at, toUnixTimestamp64Micro(toDateTime64(ingested, 6, 'UTC')) AS ingested`;

let ch: Awaited<ReturnType<typeof openTestClickHouse>>;
const stage = (start: string, end: string, options: Partial<Parameters<typeof stageBatch>[2]> = {}) =>
  stageBatch(table, batchSpec(table, start, end, join(ch.dir, 'staging')), { client: ch.client, ...options });
const source = (where: string) =>
  queryRows<Record<string, unknown>>(
    ch.client,
    `SELECT ${NORMAL} FROM (SELECT * FROM t.events WHERE ${where}) ORDER BY id`,
  );
const staged = async (uris: string[]) =>
  (await readParquet<Record<string, unknown>>(ch.client, uris, NORMAL)).sort(
    (a, b) => Number(a.id) - Number(b.id),
  );

/** A fresh copy of t.events under another name, and its table config. */
async function copyOfEvents(name: string): Promise<TableConfig> {
  await ch.client.command({ query: `DROP TABLE IF EXISTS t.${name}` });
  await ch.client.command({
    query: `CREATE TABLE t.${name} ENGINE = MergeTree ORDER BY id AS SELECT * FROM t.events`,
  });
  return { ...table, name, source: { database: 't', table: name } };
}

beforeAll(async () => {
  ch = await openTestClickHouse('stage');
  await ch.client.command({ query: 'CREATE DATABASE t' });
  await ch.client.command({ query: DDL });
  await ch.client.command({ query: ROWS });
});
afterAll(async () => ch?.close());

const folderOf = (uri: string | undefined) => (uri as string).replace(/[^/]+$/, '');

describe('stageBatch to local Parquet', () => {
  it('writes exactly the rows of the half-open window, values intact', async () => {
    const result = await stage('2026-11-22T01:00:00Z', '2026-11-22T02:00:00Z');
    const want = await source("ingested >= '2026-11-22 01:00:00' AND ingested < '2026-11-22 02:00:00'");
    expect(want).toHaveLength(120);
    expect(result.rows).toBe(120);
    const got = await staged(result.files.map((f) => f.uri));
    expect(got).toEqual(want);
    // A row exactly at windowStart is in, one exactly at windowEnd is out.
    expect(got[0]?.id).toBe(120);
    expect(got.at(-1)?.id).toBe(239);
    expect(got.some((r) => r.maybe === null) && got.some((r) => (r.tags as string[]).length === 2)).toBe(
      true,
    );
  });

  it('compares a DateTime cursor with a window bound inside a second exactly', async () => {
    const result = await stage('2026-11-22T01:00:00.500Z', '2026-11-22T02:00:00.500Z');
    const got = await staged(result.files.map((f) => f.uri));
    expect(got.map((r) => r.id)).toEqual(Array.from({ length: 120 }, (_, i) => 121 + i));
  });

  it('writes Iceberg-ready Parquet: zstd, UTC microsecond timestamps, decimals, uuid, list, map', async () => {
    const result = await stage('2026-11-22T01:00:00Z', '2026-11-22T02:00:00Z');
    const bytes = await readFile(new URL(result.files[0]?.uri as string));
    const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const field = (name: string) => meta.schema.find((s) => s.name === name);
    expect(field('at')?.logical_type).toEqual({ type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' });
    expect(field('ingested')?.logical_type).toEqual({
      type: 'TIMESTAMP',
      isAdjustedToUTC: true,
      unit: 'MICROS',
    });
    expect(field('amount')?.logical_type).toEqual({ type: 'DECIMAL', precision: 18, scale: 8 });
    expect(field('big')?.logical_type).toEqual({ type: 'DECIMAL', precision: 38, scale: 8 });
    expect(field('u')?.logical_type).toEqual({ type: 'UUID' });
    expect(field('id')?.type).toBe('INT64');
    expect(field('kind')?.logical_type).toEqual({ type: 'STRING' });
    expect(field('tags')?.logical_type).toEqual({ type: 'LIST' });
    expect(field('attrs')?.logical_type).toEqual({ type: 'MAP' });
    expect(field('maybe')?.repetition_type).toBe('OPTIONAL');
    expect(meta.row_groups[0]?.columns[0]?.meta_data?.codec).toBe('ZSTD');
  });

  it('puts each Iceberg partition (UTC day of at, kind) in files of its own', async () => {
    const result = await stage('2026-11-22T00:00:00Z', '2026-11-22T03:00:00Z');
    expect(result.rows).toBe(300);
    expect(result.files.length).toBe(4);
    for (const file of result.files) {
      const [one] = await readParquet<{ n: number }>(
        ch.client,
        [file.uri],
        'uniqExact(toYYYYMMDD(at), kind) AS n',
      );
      expect(one?.n, file.uri).toBe(1);
    }
  });

  it('splits a window into files of bounded rows, and a burst inside one instant by key hash', async () => {
    const many = await stage('2026-11-22T00:00:00Z', '2026-11-22T03:00:00Z', { maxRowsPerFile: 40 });
    expect(many.rows).toBe(300);
    expect(many.files.length).toBeGreaterThan(8);
    const counts = await Promise.all(
      many.files.map((f) => readParquet<{ c: number }>(ch.client, [f.uri], 'count() AS c')),
    );
    for (const [c] of counts) expect(c?.c).toBeLessThanOrEqual(40);
    expect(await staged(many.files.map((f) => f.uri))).toEqual(await source('1'));

    await ch.client.command({
      query: `CREATE TABLE t.burst ENGINE = MergeTree ORDER BY id AS SELECT * FROM t.events`,
    });
    await ch.client.command({
      query: `ALTER TABLE t.burst UPDATE ingested = toDateTime('2026-11-22 00:00:07', 'UTC') WHERE 1 SETTINGS mutations_sync = 2`,
    });
    const burstTable = { ...table, name: 'burst', source: { database: 't', table: 'burst' } };
    const burst = await stageBatch(
      burstTable,
      batchSpec(burstTable, '2026-11-22T00:00:00Z', '2026-11-22T00:01:00Z', join(ch.dir, 'staging')),
      { client: ch.client, maxRowsPerFile: 100 },
    );
    expect(burst.rows).toBe(300);
    expect(new Set(burst.files.map((f) => f.uri)).size).toBe(burst.files.length);
    const ids = (
      await readParquet<{ id: number }>(
        ch.client,
        burst.files.map((f) => f.uri),
        'id',
      )
    ).map((r) => r.id);
    expect(new Set(ids).size).toBe(300);
  });

  it('never replaces a file: another attempt writes the same files in its own folder', async () => {
    const window = ['2026-11-22T00:00:00Z', '2026-11-22T03:00:00Z'] as const;
    const first = await stage(...window);
    const names = (files: { uri: string }[]) => files.map((f) => f.uri.split('/').pop());
    expect(names(first.files)).toEqual([
      'part-00000.parquet',
      'part-00001.parquet',
      'part-00002.parquet',
      'part-00003.parquet',
    ]);
    const again = await stage(...window);
    expect(again.files.map((f) => f.bytes)).toEqual(first.files.map((f) => f.bytes));
    expect(again.files[0]?.uri).not.toBe(first.files[0]?.uri);
    // The same folder again (a second writer of one attempt): refused, the existing files untouched.
    const spec = { ...batchSpec(table, ...window, '/unused'), stagingPrefix: folderOf(first.files[0]?.uri) };
    for (const writer of ['clickhouse', 'stream'] as const) {
      const before = await Promise.all(first.files.map((f) => readFile(new URL(f.uri))));
      await expect(stageBatch(table, spec, { client: ch.client, writer })).rejects.toThrow(
        /already exists|cannot be appended|EEXIST/,
      );
      expect(await Promise.all(first.files.map((f) => readFile(new URL(f.uri))))).toEqual(before);
    }
  });

  it('streams the same rows through this process with the stream writer', async () => {
    const viaStream = await stage('2026-11-22T00:30:00Z', '2026-11-22T02:30:00Z', { writer: 'stream' });
    const viaClickHouse = await stage('2026-11-22T00:30:00Z', '2026-11-22T02:30:00Z');
    expect(viaStream.rows).toBe(viaClickHouse.rows);
    const name = (f: { uri: string }) => f.uri.split('/').pop();
    expect(viaStream.files.map(name)).toEqual(viaClickHouse.files.map(name));
    expect(await staged(viaStream.files.map((f) => f.uri))).toEqual(
      await source("ingested >= '2026-11-22 00:30:00' AND ingested < '2026-11-22 02:30:00'"),
    );
  });

  it('returns no files for an empty window', async () => {
    expect(await stage('2026-11-23T00:00:00Z', '2026-11-23T01:00:00Z')).toMatchObject({ rows: 0, files: [] });
  });

  it('refuses rows that change while staging instead of returning files that miss some', async () => {
    await ch.client.command({ query: 'CREATE VIEW t.flaky AS SELECT * FROM t.events WHERE rand() % 2 = 0' });
    const flaky = { ...table, name: 'flaky', source: { database: 't', table: 'flaky' } };
    const spec = batchSpec(flaky, '2026-11-22T00:00:00Z', '2026-11-22T03:00:00Z', join(ch.dir, 'staging'));
    await expect(stageBatch(flaky, spec, { client: ch.client })).rejects.toThrow(StagingMismatchError);
  });

  // The ClickHouse writer writes a slice that fits in one row group in one INSERT, a bigger one a
  // partition at a time: small row groups send these 300-row slices down the second path.
  const WRITERS = [
    ['clickhouse', { writer: 'clickhouse' }],
    ['clickhouse, one partition at a time', { writer: 'clickhouse', rowGroupRows: 100 }],
    ['stream', { writer: 'stream' }],
  ] as const;

  it.each(WRITERS)(
    'is not disturbed by rows outside the window in partitions the window lacks, with the %s writer',
    async (_, writer) => {
      const wide = await copyOfEvents('wide');
      await ch.client.command({
        query: `INSERT INTO t.wide SELECT * REPLACE (1000 AS id, toDateTime64('2026-12-01 00:00:00', 3) AS at,
          toDateTime('2026-11-22 05:00:00', 'UTC') AS ingested) FROM (SELECT * FROM t.events WHERE id = 1)`,
      });
      const spec = batchSpec(wide, '2026-11-22T00:00:00Z', '2026-11-22T03:00:00Z', join(ch.dir, 'staging'));
      const result = await stageBatch(wide, spec, { client: ch.client, ...writer });
      expect(result.rows).toBe(300);
      expect(result.files.length).toBe(4);
    },
  );

  it.each(WRITERS)(
    'refuses a row of a new partition inserted after planning, with the %s writer',
    async (_, writer) => {
      const late = await copyOfEvents('late');
      // The late row lands between the histogram (the plan's only read) and the write.
      const query = ch.client.query.bind(ch.client);
      ch.client.query = (async (params: Parameters<typeof query>[0]) => {
        const result = await query(params);
        if (/GROUP BY b, k/.test(params.query)) {
          ch.client.query = query;
          await ch.client.command({
            query: `INSERT INTO t.late SELECT * REPLACE (1000 AS id, toDateTime64('2026-12-01 00:00:00', 3) AS at)
              FROM (SELECT * FROM t.events WHERE id = 1)`,
          });
        }
        return result;
      }) as typeof query;
      const spec = batchSpec(late, '2026-11-22T00:00:00Z', '2026-11-22T03:00:00Z', join(ch.dir, 'staging'));
      await expect(stageBatch(late, spec, { client: ch.client, ...writer })).rejects.toThrow(
        /appeared after planning/,
      );
      // The retry is a new attempt, in a folder of its own.
      const retry = batchSpec(late, spec.windowStart, spec.windowEnd, join(ch.dir, 'staging'));
      await expect(stageBatch(late, retry, { client: ch.client, ...writer })).resolves.toMatchObject({
        rows: 301,
      });
    },
  );

  it('refuses a batch for another table and a staging prefix that is not a safe URI', async () => {
    const spec = batchSpec(table, '2026-11-22T00:00:00Z', '2026-11-22T01:00:00Z', join(ch.dir, 'staging'));
    await expect(stageBatch(table, { ...spec, table: 'other' }, { client: ch.client })).rejects.toThrow(
      InputError,
    );
    await expect(
      stageBatch(
        table,
        { ...spec, stagingPrefix: "file:///tmp/x', 'CSV') SELECT 1 --/" },
        { client: ch.client },
      ),
    ).rejects.toThrow(/staging prefix/);
    const [count] = await queryRows<{ c: string | number }>(ch.client, 'SELECT count() AS c FROM t.events');
    expect(Number(count?.c)).toBe(300);
  });
});

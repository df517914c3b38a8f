import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoDrift,
  canonicalType,
  detectDrift,
  sourceColumns,
  suggestedColumns,
} from '../../src/clickhouse/drift.ts';
import {
  cursorRange,
  duplicateKeys,
  hourlyCounts,
  pendingRows,
  rowHistogram,
  ttlHeadroom,
} from '../../src/clickhouse/inspect.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import { InputError, SchemaDriftError } from '../../src/errors.ts';
import { openTestClickHouse } from '../stage/support.ts';

let ch: Awaited<ReturnType<typeof openTestClickHouse>>;

const config = (
  name: string,
  columns: Array<{ name: string; type: string }>,
  extra: object = {},
): TableConfig =>
  parseConfig({
    tables: [
      {
        name,
        layer: 'bronze',
        source: { database: 'i', table: name },
        target: { namespace: 'cold', name },
        cursor: { kind: 'ingestion_time', column: 'ingested' },
        ttlSeconds: 86_400,
        columns,
        naturalKey: ['id'],
        ...extra,
      },
    ],
  }).tables[0] as TableConfig;

const trades = config('trades', [
  { name: 'id', type: 'UInt64' },
  { name: 'sym', type: 'String' },
  { name: 'px', type: 'Decimal64(8)' },
  { name: 'ingested', type: 'DateTime' },
]);

beforeAll(async () => {
  ch = await openTestClickHouse('inspect');
  await ch.client.command({ query: 'CREATE DATABASE i' });
  await ch.client.command({
    query: `CREATE TABLE i.trades (id UInt64, sym LowCardinality(String), px Decimal(18, 8), ingested DateTime('UTC'))
      ENGINE = MergeTree ORDER BY id`,
  });
  // 100 rows, one a minute from 10:00; ids 0..4 delivered twice.
  await ch.client.command({
    query: `INSERT INTO i.trades SELECT number, 'BTC', number, toDateTime('2026-11-22 10:00:00', 'UTC') + number * 60 FROM numbers(100)`,
  });
  await ch.client.command({
    query: `INSERT INTO i.trades SELECT number, 'BTC', number, toDateTime('2026-11-22 10:00:00', 'UTC') + number * 60 FROM numbers(5)`,
  });
});
afterAll(async () => ch?.close());

describe('schema drift', () => {
  it('treats aliases of the same type as equal', () => {
    expect(canonicalType('Decimal128(8)')).toBe(canonicalType('Decimal(38, 8)'));
    expect(canonicalType('LowCardinality(String)')).toBe('String');
    expect(canonicalType("DateTime64(3, 'UTC')")).toBe(canonicalType('DateTime64(3)'));
    expect(canonicalType('DateTime64(3)')).not.toBe(canonicalType('DateTime64(6)'));
    expect(canonicalType("Enum8('a' = 1, 'b' = 2)")).not.toBe(canonicalType("Enum8('a' = 1, 'c' = 2)"));
  });

  it('finds nothing when ClickHouse matches the config', async () => {
    expect(await detectDrift(ch.client, trades)).toEqual([]);
    await expect(assertNoDrift(ch.client, trades)).resolves.toBeUndefined();
  });

  it('names a missing, an added and a retyped column, both types, and what to do', async () => {
    await ch.client.command({
      query: `CREATE TABLE i.drifted (id UInt64, px Decimal(38, 8), venue String, ingested DateTime) ENGINE = MergeTree ORDER BY id`,
    });
    const drifted = { ...trades, name: 'drifted', source: { database: 'i', table: 'drifted' } };
    expect(await detectDrift(ch.client, drifted)).toEqual([
      { column: 'sym', kind: 'missing', configured: 'String' },
      { column: 'px', kind: 'retyped', configured: 'Decimal64(8)', actual: 'Decimal(38, 8)' },
      { column: 'venue', kind: 'added', actual: 'String' },
    ]);
    const error = await assertNoDrift(ch.client, drifted).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaDriftError);
    const message = (error as Error).message;
    expect(message).toContain('column sym (configured as String) is missing from ClickHouse i.drifted');
    expect(message).toContain(
      'column px is Decimal(38, 8) in ClickHouse i.drifted but configured as Decimal64(8)',
    );
    expect(message).toContain(
      'column venue (String) exists in ClickHouse i.drifted but not in the table config',
    );
    expect(message).toContain('add it to the table config');
    // The exact config change, as diff lines of the column list, and the rename hint (never a guess).
    expect(message.split('\n').slice(4)).toEqual([
      'The config change that matches ClickHouse now (columns of drifted; k2-offload config suggest prints the whole config):',
      '  - {"name":"sym","type":"String"}',
      '  ~ {"name":"px","type":"Decimal(38, 8)"} (was Decimal64(8))',
      '  + {"name":"venue","type":"String"}',
      'If a column was renamed, give the new entry "renamedFrom": "<old name>" so Iceberg keeps its field id.',
    ]);
    expect(suggestedColumns(drifted, await sourceColumns(ch.client, drifted))).toEqual([
      { name: 'id', type: 'UInt64' },
      { name: 'px', type: 'Decimal(38, 8)' },
      { name: 'venue', type: 'String' },
      { name: 'ingested', type: 'DateTime' },
    ]);
  });

  it('says so when the source table does not exist', async () => {
    const gone = { ...trades, source: { database: 'i', table: 'nope' } };
    await expect(detectDrift(ch.client, gone)).rejects.toThrow(/i\.nope does not exist/);
  });
});

describe('counts for the planner and the audit', () => {
  const window = { from: '2026-11-22T10:00:00Z', to: '2026-11-22T11:30:00Z' };

  it('counts rows per epoch-aligned cursor bucket in the half-open window', async () => {
    expect(await rowHistogram(ch.client, trades, window, 1800)).toEqual([
      { start: '2026-11-22T10:00:00.000Z', rows: 35 },
      { start: '2026-11-22T10:30:00.000Z', rows: 30 },
      { start: '2026-11-22T11:00:00.000Z', rows: 30 },
    ]);
    expect(
      await hourlyCounts(ch.client, trades, { from: '2026-11-22T10:00:00Z', to: '2026-11-22T12:00:00Z' }),
    ).toEqual([
      { start: '2026-11-22T10:00:00.000Z', rows: 65 },
      { start: '2026-11-22T11:00:00.000Z', rows: 40 },
    ]);
  });

  it('finds duplicate natural keys in a window', async () => {
    expect(await duplicateKeys(ch.client, trades, window, 2)).toEqual({
      keys: 5,
      extraRows: 5,
      examples: [
        { key: { id: '0' }, copies: 2 },
        { key: { id: '1' }, copies: 2 },
      ],
    });
    expect(
      await duplicateKeys(ch.client, trades, { from: '2026-11-22T11:00:00Z', to: '2026-11-22T12:00:00Z' }),
    ).toEqual({
      keys: 0,
      extraRows: 0,
      examples: [],
    });
  });

  it('reports the cursor range, and TTL headroom of the oldest row not yet offloaded', async () => {
    expect(await cursorRange(ch.client, trades)).toEqual({
      min: '2026-11-22T10:00:00.000Z',
      max: '2026-11-22T11:39:00.000Z',
      rows: 105,
    });
    const now = new Date('2026-11-22T20:30:00Z');
    const pending = await pendingRows(ch.client, trades, '2026-11-22T11:00:00Z');
    expect(pending).toEqual({
      rows: 40,
      oldest: '2026-11-22T11:00:00.000Z',
      oldestForTtl: '2026-11-22T11:00:00.000Z',
    });
    expect(ttlHeadroom(trades, pending, now)).toEqual({
      oldestUnoffloaded: '2026-11-22T11:00:00.000Z',
      ageSeconds: 34_200,
      headroomSeconds: 86_400 - 34_200,
    });
    const none = await pendingRows(ch.client, trades, '2026-11-23T00:00:00Z');
    expect(none).toEqual({ rows: 0 });
    expect(ttlHeadroom(trades, none, now)).toEqual({ ageSeconds: 0, headroomSeconds: 86_400 });
  });

  it('measures TTL headroom on the TTL column: a late trade is nearer deletion than its cursor says', async () => {
    await ch.client.command({
      query: `CREATE TABLE i.fills (id UInt64, traded DateTime('UTC'), ingested DateTime('UTC'))
        ENGINE = MergeTree ORDER BY id`,
    });
    // Ingested from 11:00; one trade made at 08:00 arrived with them.
    await ch.client.command({
      query: `INSERT INTO i.fills SELECT number, if(number = 3, toDateTime('2026-11-22 08:00:00', 'UTC'),
        toDateTime('2026-11-22 11:00:00', 'UTC') + number * 60), toDateTime('2026-11-22 11:00:00', 'UTC') + number * 60
        FROM numbers(10)`,
    });
    const fills = (ttlColumn?: string) =>
      config(
        'fills',
        [
          { name: 'id', type: 'UInt64' },
          { name: 'traded', type: 'DateTime' },
          { name: 'ingested', type: 'DateTime' },
        ],
        ttlColumn ? { ttlColumn } : {},
      );
    const now = new Date('2026-11-22T20:00:00Z');
    const byCursor = ttlHeadroom(fills(), await pendingRows(ch.client, fills(), '2026-11-22T11:00:00Z'), now);
    const byTtl = ttlHeadroom(
      fills('traded'),
      await pendingRows(ch.client, fills('traded'), '2026-11-22T11:00:00Z'),
      now,
    );
    expect(byCursor.headroomSeconds).toBe(86_400 - 9 * 3600);
    expect(byTtl).toEqual({
      oldestUnoffloaded: '2026-11-22T08:00:00.000Z',
      ageSeconds: 12 * 3600,
      headroomSeconds: 86_400 - 12 * 3600,
    });
    expect(() => fills('id')).toThrow(
      /ttlColumn: column id is UInt64; the TTL column must be a Date or DateTime/,
    );
  });

  it('refuses inverted windows and bad identifiers before any SQL runs', async () => {
    await expect(rowHistogram(ch.client, trades, { from: window.to, to: window.from }, 60)).rejects.toThrow(
      InputError,
    );
    await expect(rowHistogram(ch.client, trades, window, 0)).rejects.toThrow(/bucketSeconds/);
    const evil = { ...trades, source: { database: 'i', table: 'trades; DROP TABLE i.trades' } };
    await expect(cursorRange(ch.client, evil)).rejects.toThrow(InputError);
    expect(await cursorRange(ch.client, trades)).toMatchObject({ rows: 105 });
  });
});

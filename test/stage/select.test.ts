import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { ident, instantLiteral, stringLiteral } from '../../src/clickhouse/sql.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import { ConfigError, InputError } from '../../src/errors.ts';
import { partitionKeySql, partitionTupleSql, stagingSelect } from '../../src/stage/select.ts';
import { hasNestedColumns, writeTuning } from '../../src/stage/stage.ts';
import {
  parseStagingPrefix,
  s3HttpUrl,
  s3StagingFromEnv,
  tableFunctionSql,
} from '../../src/stage/targets.ts';

const config = defaultConfig();
const bronze = tableByName(config, 'bronze_trades_binance');
const gold = tableByName(config, 'ohlcv_1m');
const W = ['2026-11-22T00:00:00.000Z', '2026-11-22T01:00:00.000Z'] as const;

describe('SQL text is built only from checked parts', () => {
  it('quotes identifiers and refuses anything that is not one', () => {
    expect(ident('price')).toBe('`price`');
    for (const bad of ['a`b', 'x; DROP TABLE k2.t', '1abc', '', 'a b', "a'"])
      expect(() => ident(bad)).toThrow(InputError);
  });

  it('escapes string literals so quotes and backslashes stay inert', () => {
    expect(stringLiteral("it's \\ fine")).toBe("'it\\'s \\\\ fine'");
  });

  it('writes instants as exact UTC microsecond literals and refuses non-instants', () => {
    expect(instantLiteral('2026-11-22T03:00:00.5+01:00')).toBe(
      "toDateTime64('2026-11-22 02:00:00.500000', 6, 'UTC')",
    );
    expect(() => instantLiteral("2026-11-22'); DROP TABLE x; --")).toThrow(InputError);
  });

  it('refuses a table config whose names would inject SQL, even when it skipped validation', () => {
    const evil = (patch: Partial<TableConfig>): TableConfig => ({ ...bronze, ...patch });
    expect(() => stagingSelect(evil({ source: { database: 'k2', table: 't`; DROP' } }), ...W)).toThrow(
      InputError,
    );
    expect(() =>
      stagingSelect(evil({ cursor: { kind: 'ingestion_time', column: 'x) OR 1=1 --' } }), ...W),
    ).toThrow(InputError);
    const columns = [...bronze.columns, { name: "a' OR '1", type: 'String', required: false }];
    expect(() => stagingSelect(evil({ columns }), ...W)).toThrow(InputError);
    const reaggregate = { groupBy: ['exchange'], columns: { open_price: 'sleep(3)' } };
    expect(() => stagingSelect({ ...gold, reaggregate }, ...W)).toThrow(ConfigError);
  });
});

describe('stagingSelect', () => {
  it('filters the half-open window on the stored cursor and casts to staging types in config order', () => {
    const sql = stagingSelect(bronze, ...W);
    expect(sql).toContain(
      "`ingestion_timestamp` >= toDateTime64('2026-11-22 00:00:00.000000', 6, 'UTC') AND `ingestion_timestamp` < toDateTime64('2026-11-22 01:00:00.000000', 6, 'UTC')",
    );
    expect(sql).toContain("CAST(`exchange_timestamp` AS DateTime64(6, 'UTC')) AS `exchange_timestamp`");
    expect(sql).toContain("accurateCast(`sequence_number`, 'Int64') AS `sequence_number`");
    expect(sql.indexOf('`exchange_timestamp`')).toBeLessThan(sql.indexOf('`sequence_number`'));
  });

  it('re-aggregates candle tables by their group columns', () => {
    const sql = stagingSelect(gold, ...W);
    expect(sql).toContain('argMin(`open_price`, `open_time`) AS `__agg_open_price`');
    expect(sql).toContain('GROUP BY `exchange`, `canonical_symbol`, `window_start`');
  });
});

describe('partition keys', () => {
  it('renders the default tables partition specs', () => {
    expect(partitionTupleSql(bronze)).toBe('tuple(toString(toYYYYMMDD(`exchange_timestamp`)))');
    expect(partitionTupleSql(gold)).toBe('tuple(toString(toYYYYMM(`window_start`)), toString(`exchange`))');
    expect(partitionTupleSql({ ...bronze, partitionSpec: [] })).toBe("tuple('')");
  });

  it('uses the Iceberg murmur3 bucket and truncate definitions', () => {
    expect(partitionKeySql(bronze, { column: 'symbol', transform: 'bucket[16]' })).toBe(
      'toString(bitAnd(murmurHash3_32(`symbol`), 2147483647) % 16)',
    );
    expect(partitionKeySql(bronze, { column: 'kafka_partition', transform: 'truncate[10]' })).toBe(
      'toString(`kafka_partition` - (((`kafka_partition` % 10) + 10) % 10))',
    );
  });

  it('refuses transforms it cannot compute exactly, naming table, column and transform', () => {
    expect(() => partitionKeySql(bronze, { column: 'price', transform: 'bucket[4]' })).toThrow(
      /bronze_trades_binance: partition transform bucket\[4\] on column price/,
    );
    expect(() => partitionKeySql(bronze, { column: 'symbol', transform: 'day' })).toThrow(ConfigError);
  });
});

describe('staging targets', () => {
  it('accepts file and s3 prefixes and always ends them with a slash', () => {
    expect(parseStagingPrefix('file:///tmp/k2/staging/t/b')).toEqual({
      kind: 'file',
      prefix: 'file:///tmp/k2/staging/t/b/',
      dir: '/tmp/k2/staging/t/b/',
    });
    expect(parseStagingPrefix('s3://my-bucket/staging/t/b/')).toMatchObject({
      kind: 's3',
      bucket: 'my-bucket',
      key: 'staging/t/b/',
    });
  });

  it('refuses prefixes that would escape a ClickHouse string or expand as globs', () => {
    for (const bad of [
      "file:///tmp/x'), file('/etc/passwd",
      'file:///tmp/*/',
      'file:///tmp/{a,b}/',
      's3://b/k?x',
      '/tmp/plain/path',
      'http://host/x',
    ])
      expect(() => parseStagingPrefix(bad), bad).toThrow(InputError);
  });

  it('addresses S3 path-style on a custom endpoint and names a collection or nothing, never a secret', () => {
    expect(s3HttpUrl('bkt', 'a/b', { endpoint: 'http://127.0.0.1:5000/' })).toBe(
      'http://127.0.0.1:5000/bkt/a/b',
    );
    expect(s3HttpUrl('bkt', 'a/b', { region: 'eu-west-1' })).toBe(
      'https://bkt.s3.eu-west-1.amazonaws.com/a/b',
    );
    const target = parseStagingPrefix('s3://bkt/p/');
    expect(tableFunctionSql(target, 'x.parquet')).toBe(
      "s3('https://bkt.s3.us-east-1.amazonaws.com/p/x.parquet', 'Parquet')",
    );
    expect(tableFunctionSql(target, 'x.parquet', { namedCollection: 'k2_stage' })).toBe(
      "s3(`k2_stage`, url = 'https://bkt.s3.us-east-1.amazonaws.com/p/x.parquet', format = 'Parquet')",
    );
    expect(() => tableFunctionSql(target, 'x', { namedCollection: "k'; DROP" })).toThrow(/named collection/);
  });

  it('takes the S3 staging writer from the environment, refusing values it does not know', () => {
    expect(s3StagingFromEnv({})).toEqual({ writer: 'stream' });
    expect(
      s3StagingFromEnv({ K2_STAGING_S3_WRITER: 'clickhouse', K2_STAGING_S3_NAMED_COLLECTION: 'k2_stage' }),
    ).toEqual({ writer: 'clickhouse', namedCollection: 'k2_stage' });
    expect(s3StagingFromEnv({ K2_STAGING_S3_WRITER: 'clickhouse' })).toEqual({
      writer: 'clickhouse',
      namedCollection: undefined,
    });
    expect(() => s3StagingFromEnv({ K2_STAGING_S3_WRITER: 'keys' })).toThrow(/K2_STAGING_S3_WRITER="keys"/);
    expect(() => s3StagingFromEnv({ K2_STAGING_S3_NAMED_COLLECTION: 'c' })).toThrow(/is not "clickhouse"/);
  });
});

const MIB = 1024 * 1024;

describe('write tuning', () => {
  it('tells rows with arrays or maps (far more bytes per row) from flat ones', () => {
    const config = defaultConfig();
    const nested = config.tables.filter(hasNestedColumns).map((t) => t.name);
    expect(nested).toEqual(['silver_trades']);
    const table = tableByName(config, 'bronze_trades_binance');
    expect(
      hasNestedColumns({
        ...table,
        columns: [{ name: 'x', type: 'Nullable(Array(String))' }],
      } as TableConfig),
    ).toBe(true);
    expect(
      hasNestedColumns({ ...table, columns: [{ name: 'x', type: 'LowCardinality(String)' }] } as TableConfig),
    ).toBe(false);
  });

  it('the embedded engine encodes on both threads; wide rows in 8K-row blocks and row groups of 4 MiB at most', async () => {
    const config = defaultConfig();
    const dir = await mkdtemp(join(tmpdir(), 'k2-tuning-'));
    const embedded = openClickHouse({ dataDir: join(dir, 'chdb') });
    try {
      const flat = { rowGroupRows: 65_536, rowGroupBytes: 16 * MIB, maxThreads: 2, boundPartitions: true };
      expect(writeTuning(embedded, tableByName(config, 'bronze_trades_binance'))).toEqual(flat);
      expect(writeTuning(embedded, tableByName(config, 'silver_trades'))).toEqual({
        ...flat,
        blockRows: 8192,
        rowGroupBytes: 4 * MIB,
      });
      expect(
        writeTuning(embedded, tableByName(config, 'silver_trades'), { rowGroupRows: 1000 }),
      ).toMatchObject({
        rowGroupRows: 1000,
      });
    } finally {
      await embedded.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a server's threads and blocks are its own (its memory is not this process's)", () => {
    const server = createClient({ url: 'http://127.0.0.1:1' });
    for (const name of ['bronze_trades_binance', 'silver_trades'])
      expect(writeTuning(server, tableByName(defaultConfig(), name))).toEqual({
        rowGroupRows: 262_144,
        rowGroupBytes: 16 * MIB,
        maxThreads: undefined,
        boundPartitions: false,
      });
  });
});

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TABLES, GOLD_LATENESS_SECONDS } from '../../src/config/defaults.ts';
import { defaultConfig, loadConfig, parseConfig, selectTables } from '../../src/config/load.ts';
import { ConfigError, InputError } from '../../src/errors.ts';

describe('default tables', () => {
  it('load as the ten tables of the hot tier, in layer order', () => {
    const config = defaultConfig();
    expect(config.tables.map((t) => [t.name, t.layer, `${t.target.namespace}.${t.target.name}`])).toEqual([
      ['bronze_trades_binance', 'bronze', 'cold.bronze_trades_binance'],
      ['bronze_trades_kraken', 'bronze', 'cold.bronze_trades_kraken'],
      ['bronze_trades_coinbase', 'bronze', 'cold.bronze_trades_coinbase'],
      ['silver_trades', 'silver', 'cold.silver_trades'],
      ['ohlcv_1m', 'gold', 'cold.gold_ohlcv_1m'],
      ['ohlcv_5m', 'gold', 'cold.gold_ohlcv_5m'],
      ['ohlcv_15m', 'gold', 'cold.gold_ohlcv_15m'],
      ['ohlcv_30m', 'gold', 'cold.gold_ohlcv_30m'],
      ['ohlcv_1h', 'gold', 'cold.gold_ohlcv_1h'],
      ['ohlcv_1d', 'gold', 'cold.gold_ohlcv_1d'],
    ]);
  });

  it('cursor on the insert time for trades and on the candle start, per interval, for gold', () => {
    const config = defaultConfig();
    const cursors = Object.fromEntries(config.tables.map((t) => [t.name, t.cursor]));
    expect(cursors.bronze_trades_kraken).toEqual({ kind: 'ingestion_time', column: 'ingestion_timestamp' });
    expect(cursors.silver_trades).toEqual({ kind: 'ingestion_time', column: 'processed_at' });
    expect(cursors.ohlcv_15m).toEqual({
      kind: 'closed_bucket',
      column: 'window_start',
      intervalSeconds: 900,
    });
    expect(cursors.ohlcv_1d).toEqual({
      kind: 'closed_bucket',
      column: 'window_start',
      intervalSeconds: 86_400,
    });
    // Candles wait for trades arriving up to 2 h late; everything else 5 minutes.
    for (const t of config.tables)
      expect(t.latenessSeconds).toBe(t.layer === 'gold' ? GOLD_LATENESS_SECONDS : 300);
    expect(GOLD_LATENESS_SECONDS).toBe(2 * 3600 + 300);
  });

  it('load from a file, and the same tables without one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k2-config-'));
    const path = join(dir, 'tables.json');
    await writeFile(path, JSON.stringify({ tables: DEFAULT_TABLES.slice(0, 3) }));
    expect((await loadConfig(path)).tables.map((t) => t.name)).toEqual([
      'bronze_trades_binance',
      'bronze_trades_kraken',
      'bronze_trades_coinbase',
    ]);
    expect(await loadConfig()).toEqual(defaultConfig());
    await writeFile(path, '{"tables": [');
    await expect(loadConfig(path)).rejects.toThrow(`table config ${path} is not valid JSON`);
    await expect(loadConfig(join(dir, 'missing.json'))).rejects.toThrow(
      `cannot read table config ${join(dir, 'missing.json')}`,
    );
  });
});

type Path = Array<string | number>;
/** The default tables with one value replaced at `path` (table index first), as a user might edit the file. */
function tablesWith(path: Path, value: unknown): unknown[] {
  const tables = structuredClone(DEFAULT_TABLES) as unknown[];
  let node = tables as unknown as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1] as string | number] = value;
  return tables;
}
const [binance, silver, oneMinute] = [0, 3, 4];

describe('bad config', () => {
  it.each<[string, Path, unknown, string[]]>([
    [
      'an unknown key',
      [binance, 'lateness'],
      60,
      ['tables.0 (table "bronze_trades_binance")', 'Unrecognized key: "lateness"'],
    ],
    [
      'a table name that is not an identifier',
      [binance, 'name'],
      'trades; DROP TABLE x',
      ['tables.0.name', 'must be an identifier', '"trades; DROP TABLE x"'],
    ],
    [
      'a column name that is not an identifier',
      [silver, 'columns', 0, 'name'],
      'bad-name',
      ['tables.3.columns.0.name (table "silver_trades")', '"bad-name"'],
    ],
    [
      'a source database that is not an identifier',
      [silver, 'source', 'database'],
      'k2.prod',
      ['tables.3.source.database', '"k2.prod"'],
    ],
    ['an unknown layer', [binance, 'layer'], 'platinum', ['tables.0.layer', '"platinum"']],
    ['a negative lateness', [binance, 'latenessSeconds'], -5, ['tables.0.latenessSeconds', '-5']],
    [
      'an initialCursor without a zone',
      [binance, 'initialCursor'],
      '2026-01-01T00:00:00',
      ['tables.0.initialCursor', '"2026-01-01T00:00:00"'],
    ],
    [
      'an unknown dependsOn',
      [silver, 'dependsOn'],
      ['bronze_trades_ftx'],
      ['table silver_trades: dependsOn: unknown table "bronze_trades_ftx"'],
    ],
    [
      'a dependsOn in a later layer',
      [silver, 'dependsOn'],
      ['ohlcv_1m'],
      ['table silver_trades: dependsOn: ohlcv_1m is in layer gold'],
    ],
    [
      'a cursor column missing from columns',
      [silver, 'cursor', 'column'],
      'processed_time',
      ['table silver_trades: cursor.column: column "processed_time" is not in columns'],
    ],
    [
      'a natural key missing from columns',
      [binance, 'naturalKey'],
      ['symbol', 'trade_id'],
      ['table bronze_trades_binance: naturalKey: column "trade_id"'],
    ],
    [
      'a bad partition transform',
      [binance, 'partitionSpec', 0, 'transform'],
      'week',
      [
        'tables.0.partitionSpec.0.transform',
        'must be identity, year, month, day, hour, bucket[N] or truncate[N]',
        '"week"',
      ],
    ],
    [
      'a bucket transform without a count',
      [binance, 'partitionSpec', 0, 'transform'],
      'bucket[0]',
      ['partitionSpec.0.transform', '"bucket[0]"'],
    ],
    [
      'an aggregate expression that is not fn(column)',
      [oneMinute, 'reaggregate', 'columns', 'volume'],
      'sum(volume) * 2',
      ['table ohlcv_1m: reaggregate.columns.volume: "sum(volume) * 2"', 'must be fn(column)'],
    ],
    [
      'an aggregate function not allowed',
      [oneMinute, 'reaggregate', 'columns', 'volume'],
      'sleep(volume)',
      ['reaggregate.columns.volume: "sleep(volume)"'],
    ],
    [
      'an aggregate over an unknown column',
      [oneMinute, 'reaggregate', 'columns', 'volume'],
      'sum(size)',
      ['reaggregate.columns.volume: column "size" is not in columns'],
    ],
    [
      'an unparseable ClickHouse type',
      [silver, 'columns', 7, 'type'],
      'Decimal128(8',
      ['table silver_trades: column price: cannot parse ClickHouse type "Decimal128(8"', 'expected , or )'],
    ],
    [
      'an unsupported ClickHouse type',
      [silver, 'columns', 7, 'type'],
      'Tuple(String, UInt8)',
      ['table silver_trades: column price: ClickHouse type Tuple(String, UInt8) is not supported'],
    ],
    [
      'a decimal Iceberg cannot hold',
      [silver, 'columns', 7, 'type'],
      'Decimal(76, 8)',
      ['column price: Decimal(76, 8) has no Iceberg equivalent'],
    ],
    [
      'a window cap that cuts candles',
      [oneMinute, 'maxWindowSeconds'],
      90,
      ['table ohlcv_1m: maxWindowSeconds 90 must be a multiple of the bucket interval 60'],
    ],
    [
      'a renamedFrom naming a column still in the config',
      [binance, 'columns', 2, 'renamedFrom'],
      'price',
      [
        'table bronze_trades_binance: columns.symbol.renamedFrom: price is still a column',
        "a renamed column's old name cannot be used again",
      ],
    ],
    [
      'a dropped column that is also configured',
      [binance, 'droppedColumns'],
      ['price'],
      ['table bronze_trades_binance: droppedColumns: price is also in columns; remove it from one of them'],
    ],
    [
      'a table configured twice',
      [10],
      DEFAULT_TABLES[binance],
      ['table bronze_trades_binance is configured twice'],
    ],
  ])('refuses %s, naming the field and the value', (_label, path, value, parts) => {
    const run = () => parseConfig({ tables: tablesWith(path, value) }, 'tables.json');
    expect(run).toThrow(ConfigError);
    for (const part of parts) expect(run).toThrow(part);
  });

  it('refuses an empty config and a non-object table', () => {
    expect(() => parseConfig({ tables: [] })).toThrow('config: tables: Too small');
    expect(() => parseConfig({ tables: [5] })).toThrow('config: tables.0: Invalid input: expected object');
  });
});

describe('selectTables', () => {
  it('resolves names and refuses an unknown one, listing the configured tables', () => {
    const config = defaultConfig();
    expect(selectTables(config, ['ohlcv_1h', 'silver_trades']).map((t) => t.name)).toEqual([
      'ohlcv_1h',
      'silver_trades',
    ]);
    expect(selectTables(config)).toHaveLength(10);
    expect(() => selectTables(config, ['ohlcv_2h'])).toThrow(InputError);
    expect(() => selectTables(config, ['ohlcv_2h'])).toThrow(
      'unknown table "ohlcv_2h"; configured tables: bronze_trades_binance',
    );
  });
});

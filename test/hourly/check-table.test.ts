import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig, tableByName } from '../../src/config/load.ts';
import type { OffloadConfig, TableConfig } from '../../src/config/schema.ts';
import { checkCycleHours, checkTableHours } from '../../src/hourly/check.ts';
import type { Catalog } from '../../src/iceberg/catalog.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import { serializeTableMetadata, type TableMetadata } from '../../src/iceberg/metadata.ts';
import { newTableMetadata } from '../../src/iceberg/new-table.ts';
import { markerSummary } from '../../src/iceberg/table.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import type { HourCount, HourlyCheck, HourMismatch } from '../../src/watermark/hourly-types.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import type { WatermarkStore } from '../../src/watermark/store.ts';

/**
 * The per-hour check on in-memory stores: which hours of which tables it compares, what it reports,
 * stores, publishes and logs, and how one table's failure stays that table's. ClickHouse is a table of
 * per-hour counts (below); test/hourly/check-cycle.test.ts runs the same check after a real cycle.
 */
const BINANCE = 'bronze_trades_binance';
const KRAKEN = 'bronze_trades_kraken';
const COINBASE = 'bronze_trades_coinbase';
const SILVER = 'silver_trades';
const CANDLES = 'ohlcv_1h';
const HOUR = 3_600_000;
/** An instant on the hour `h` (minute `m`) of one fixed day. */
const at = (h: number, m = 0) => new Date(Date.UTC(2026, 10, 22, h, m)).toISOString();
const NOW = at(12, 40);
/** Every cursor below: the checked hours end at 12:00. */
const CURSOR = at(12, 30);

/** The tables of the default config named here, with these changes. */
function configOf(names: string[], changes: Record<string, Partial<TableConfig>> = {}): OffloadConfig {
  const tables = defaultConfig()
    .tables.filter((t) => names.includes(t.name))
    .map((t) => ({ ...t, ...changes[t.name] }));
  return parseConfig({ tables }, 'test config');
}

type Held = Record<string, Array<[hour: string, rows: number, checksum?: string]>>;
type Asked = { table: string; from: string; to: string };

/** `2026-11-22 05:00:00.000000` (how bounds reach ClickHouse) -> ISO instant. */
const isoOfLiteral = (text: string) => new Date(`${text.slice(0, 10)}T${text.slice(11, 23)}Z`).toISOString();

/**
 * A ClickHouse whose source tables hold these rows per hour, answering the check's one grouped count
 * for the hours in the range it asks; any other query fails the test, so a new query is noticed.
 */
function clickhouseHolding(held: Held): ClickHouseClient & { asked: Asked[] } {
  const asked: Asked[] = [];
  const query = async ({ query }: { query: string }) => {
    const table = /FROM `k2`\.`(\w+)`/.exec(query)?.[1];
    const [from, to] = [...query.matchAll(/toDateTime64\('([^']+)', 6, 'UTC'\)/g)].map((m) =>
      isoOfLiteral(m[1] ?? ''),
    );
    if (
      !/^SELECT formatDateTime\(.* AS hour, toString\(count\(\)\) AS rows, .* AS checksum\s/.test(query) ||
      !query.endsWith('GROUP BY hour ORDER BY hour') ||
      table === undefined ||
      from === undefined ||
      to === undefined
    )
      throw new Error(`the check asked ClickHouse something unexpected: ${query}`);
    asked.push({ table, from, to });
    const rows = (held[table] ?? [])
      .filter(([hour]) => hour >= from && hour < to)
      .map(([hour, rows, checksum]) => ({ hour, rows: String(rows), checksum: checksum ?? '0' }));
    return { json: async () => rows };
  };
  return { query, asked } as unknown as ClickHouseClient & { asked: Asked[] };
}

/** A catalog that is down: a check that needs no Iceberg must not ask it. */
const catalogDown = new Proxy({} as Catalog, {
  get: () => async () => {
    throw new Error('the catalog is unreachable');
  },
});

type Setup = {
  config: OffloadConfig;
  /** Tables with a watermark (at CURSOR); the others are configured but have none yet. */
  watermarked?: string[];
  held?: Held;
  catalog?: Catalog;
};

async function checking(setup: Setup) {
  const clock = () => new Date(NOW);
  const watermarks = createMemoryWatermarkStore({ clock });
  const names = setup.watermarked ?? setup.config.tables.map((t) => t.name);
  await watermarks.ensureTables(names.map((table) => ({ table, initialCursor: at(0) })));
  for (const table of names)
    await watermarks.setCursor({
      table,
      cursor: CURSOR,
      actor: 'test',
      reason: 'test',
      allowBackwards: false,
    });
  const clickhouse = clickhouseHolding(setup.held ?? {});
  const metrics: EmfRecord[] = [];
  const logged: Array<Record<string, unknown>> = [];
  const store = new MemoryObjectStore(clock);
  const deps: PipelineDeps = {
    config: setup.config,
    clickhouse,
    watermarks,
    catalog: setup.catalog ?? new MemoryCatalog(),
    store,
    warehouse: 's3://lake/warehouse',
    clock,
    leaseSeconds: 900,
    faults: NO_FAULTS,
    metrics: (r) => metrics.push(...r),
    log: (line) => logged.push(line),
  };
  return { deps, watermarks, clickhouse, store, metrics, logged };
}

/** An offload batch of [start, end) committing these rows (and checksums) per hour. */
async function offloaded(
  watermarks: WatermarkStore,
  table: string,
  start: string,
  end: string,
  hours: Array<[hour: string, rows: number, checksum?: string]>,
) {
  await watermarks.recordHours({
    table,
    batchId: `${table}-${start}`,
    kind: 'offload',
    windowStart: start,
    windowEnd: end,
    hours: hours.map(([hour, rows, checksum]): HourCount => ({ hour, rows, checksum: checksum ?? '0' })),
  });
}

const mismatch = (hour: string, clickhouseRows: number, committedRows: number): HourMismatch => ({
  hour,
  clickhouseRows,
  committedRows,
  clickhouseChecksum: '0',
  committedChecksum: '0',
});

describe("one table's per-hour check", () => {
  /** BINANCE offloaded 08:00-12:30 in two batches, 10 rows an hour; ClickHouse now holds these. */
  async function binance(held: Held[string], setup: Partial<Setup> = {}) {
    const p = await checking({
      config: configOf([BINANCE]),
      catalog: catalogDown,
      ...setup,
      held: { [BINANCE]: held },
    });
    await offloaded(p.watermarks, BINANCE, at(8), at(10), [
      [at(8), 10],
      [at(9), 10],
    ]);
    await offloaded(p.watermarks, BINANCE, at(10), CURSOR, [
      [at(10), 10],
      [at(11), 10],
      [at(12), 4],
    ]);
    return p;
  }
  const agreeing: Held[string] = [
    [at(8), 10],
    [at(9), 10],
    [at(10), 10],
    [at(11), 10],
    [at(12), 9],
  ];

  it('reports the closed hours whose rows differ from what was committed, and stores what it found', async () => {
    const p = await binance([
      [at(7), 3],
      [at(8), 10],
      [at(9), 12],
      [at(11), 10],
      [at(12), 9],
    ]);
    const check = await checkTableHours(p.deps, tableByName(p.deps.config, BINANCE));
    // 07:00 has no batch to compare with; 12:00 is the cursor's own hour, still open; 10:00 lost its rows.
    expect(check).toEqual({
      table: BINANCE,
      checkedAt: NOW,
      from: new Date(Date.parse(at(12)) - 48 * HOUR).toISOString(),
      to: at(12),
      checkedHours: 4,
      mismatches: [mismatch(at(9), 12, 10), mismatch(at(10), 0, 10)],
    } satisfies HourlyCheck);
    expect(await p.watermarks.lastCheck(BINANCE)).toEqual(check);
    // One grouped count over the hours the ledger covers, nothing more (and no Iceberg read at all).
    expect(p.clickhouse.asked).toEqual([{ table: 'bronze_trades_binance', from: at(8), to: at(12) }]);
  });

  it('finds nothing where every covered hour agrees', async () => {
    const p = await binance(agreeing);
    const check = await checkTableHours(p.deps, tableByName(p.deps.config, BINANCE));
    expect([check.checkedHours, check.mismatches]).toEqual([4, []]);
  });

  it("looks back as far as asked, else as far as the table's own setting", async () => {
    const p = await binance(agreeing);
    const two = await checkTableHours(p.deps, tableByName(p.deps.config, BINANCE), { lookbackHours: 2 });
    expect([two.from, two.to, two.checkedHours]).toEqual([at(10), at(12), 2]);
    expect(p.clickhouse.asked.at(-1)).toEqual({ table: BINANCE, from: at(10), to: at(12) });

    const q = await binance(agreeing, {
      config: configOf([BINANCE], { [BINANCE]: { hourlyCheckHours: 3 } }),
    });
    const three = await checkTableHours(q.deps, tableByName(q.deps.config, BINANCE));
    expect([three.from, three.to, three.checkedHours]).toEqual([at(9), at(12), 3]);
  });

  it('with nothing recorded for the range, checks no hour and asks ClickHouse nothing', async () => {
    const p = await checking({ config: configOf([BINANCE]), catalog: catalogDown });
    const check = await checkTableHours(p.deps, tableByName(p.deps.config, BINANCE));
    expect([check.checkedHours, check.mismatches]).toEqual([0, []]);
    expect(p.clickhouse.asked).toEqual([]);
    expect(await p.watermarks.lastCheck(BINANCE)).toEqual(check);
  });

  it('keeps reporting a differing hour older than the look-back while ClickHouse still holds it', async () => {
    const p = await binance([
      [at(8), 10],
      [at(9), 10],
      [at(10), 10],
      [at(11), 11],
    ]);
    // Bronze keeps 7 days: hours from 14:00 a week ago are still in ClickHouse, older ones may be gone.
    const weekAgo = (h: number) => new Date(Date.parse(at(h)) - 7 * 24 * HOUR).toISOString();
    await p.watermarks.recordCheck({
      table: BINANCE,
      checkedAt: at(11, 40),
      from: weekAgo(14),
      to: at(11),
      checkedHours: 100,
      mismatches: [
        mismatch(weekAgo(13), 1, 0),
        mismatch(weekAgo(14), 2, 0),
        mismatch(at(5), 3, 0),
        mismatch(at(10), 9, 10),
      ],
    });
    const check = await checkTableHours(p.deps, tableByName(p.deps.config, BINANCE), { lookbackHours: 2 });
    // 10:00 lies in the checked range again and now agrees; 11:00 is new.
    expect(check.mismatches).toEqual([
      mismatch(weekAgo(14), 2, 0),
      mismatch(at(5), 3, 0),
      mismatch(at(11), 11, 10),
    ]);
  });

  it('a look-back of 0 checks no hour and asks ClickHouse nothing', async () => {
    const p = await binance([[at(11), 99]]);
    const check = await checkTableHours(p.deps, tableByName(p.deps.config, BINANCE), { lookbackHours: 0 });
    expect([check.from, check.to, check.checkedHours, check.mismatches]).toEqual([at(12), at(12), 0, []]);
    expect(p.clickhouse.asked).toEqual([]);
  });
});

describe("a candle table's check compares values too", () => {
  const config = configOf([CANDLES], { [CANDLES]: { dependsOn: [] } });
  const candles = tableByName(config, CANDLES);
  const location = 's3://lake/warehouse/cold/gold_ohlcv_1h';

  /** Candles offloaded 08:00-12:30, 5 an hour, whose checksums ClickHouse now gives as these. */
  async function candlesHeld(checksums: [string, string, string, string], metadata?: TableMetadata) {
    const p = await checking({
      config,
      held: { ohlcv_1h: [at(8), at(9), at(10), at(11)].map((h, i) => [h, 5, checksums[i]]) },
    });
    await offloaded(p.watermarks, CANDLES, at(8), at(10), [
      [at(8), 5, '80'],
      [at(9), 5, '90'],
    ]);
    await offloaded(p.watermarks, CANDLES, at(10), CURSOR, [
      [at(10), 5, '100'],
      [at(11), 5, '110'],
    ]);
    if (metadata) {
      const metadataLocation = `${location}/metadata/00001-a.metadata.json`;
      await p.store.put(metadataLocation, new TextEncoder().encode(serializeTableMetadata(metadata)));
      await p.deps.catalog.createTable(candles.target, metadataLocation);
    }
    return p;
  }

  /** Candles' metadata: a column added at 10:00, the batches before it written under the old columns. */
  function columnAddedAt10(): TableMetadata {
    const m = newTableMetadata(candles, { location, tableUuid: 'u-1', nowMs: 0 });
    const [old] = m.schemas;
    if (!old) throw new Error('no schema');
    const added = m['last-column-id'] + 1;
    m.schemas.push({
      ...old,
      'schema-id': 1,
      fields: [...old.fields, { id: added, name: 'vwap', required: false, type: 'double' }],
    });
    m['current-schema-id'] = 1;
    m['last-column-id'] = added;
    const windows: Array<[number, number, number]> = [
      [0, 8, 10],
      [1, 10, 12],
    ];
    windows.forEach(([schemaId, start, end], i) => {
      m.snapshots.push({
        'snapshot-id': BigInt(i + 1),
        ...(i === 0 ? {} : { 'parent-snapshot-id': BigInt(i) }),
        'sequence-number': BigInt(i + 1),
        'timestamp-ms': i,
        'manifest-list': `${location}/metadata/snap-${i + 1}.avro`,
        'schema-id': schemaId,
        summary: {
          operation: 'append',
          ...markerSummary({
            batchId: `b${i}`,
            table: CANDLES,
            windowStart: at(start),
            windowEnd: at(end),
            rows: 10,
          }),
        },
      });
    });
    m['current-snapshot-id'] = 2n;
    m.refs = { main: { 'snapshot-id': 2n, type: 'branch' } };
    m['last-sequence-number'] = 2n;
    return m;
  }

  it('an hour whose candles changed (same count, other values) differs', async () => {
    const p = await candlesHeld(['80', '91', '100', '110']);
    const check = await checkTableHours(p.deps, candles);
    expect(check.mismatches).toEqual([
      { hour: at(9), clickhouseRows: 5, committedRows: 5, clickhouseChecksum: '91', committedChecksum: '90' },
    ]);
  });

  it('values compare only from the first offload written with the columns the table has now; rows always', async () => {
    const p = await candlesHeld(['81', '91', '101', '110'], columnAddedAt10());
    const check = await checkTableHours(p.deps, candles);
    // 08:00 and 09:00 were hashed over other columns: their checksums say nothing.
    expect(check.mismatches.map((m) => m.hour)).toEqual([at(10)]);
    expect(check.checkedHours).toBe(4);
  });
});

describe("a cycle's per-hour check", () => {
  /**
   * BINANCE and SILVER have watermarks and a look-back, KRAKEN is set to 0, COINBASE was configured
   * since the last cycle (no watermark yet). BINANCE's hours 05:00-11:00 each hold a row more than
   * committed; SILVER's agree.
   */
  async function cycle(overrides: (store: WatermarkStore) => Partial<WatermarkStore> = () => ({})) {
    const config = configOf([BINANCE, KRAKEN, COINBASE, SILVER], { [KRAKEN]: { hourlyCheckHours: 0 } });
    const hours = [5, 6, 7, 8, 9, 10, 11].map((h) => at(h));
    const p = await checking({
      config,
      watermarked: [BINANCE, KRAKEN, SILVER],
      catalog: catalogDown,
      held: {
        [BINANCE]: hours.map((h) => [h, 2]),
        [KRAKEN]: hours.map((h) => [h, 2]),
        [SILVER]: hours.map((h) => [h, 1]),
      },
    });
    for (const table of [BINANCE, KRAKEN, SILVER])
      await offloaded(
        p.watermarks,
        table,
        at(5),
        CURSOR,
        hours.map((h) => [h, 1]),
      );
    const store = p.deps.watermarks;
    p.deps.watermarks = { ...store, ...overrides(store) };
    return p;
  }

  it('checks each table with a watermark and a look-back, stores, publishes and logs what it found', async () => {
    const p = await cycle();
    const checks = await checkCycleHours(p.deps);
    expect(checks.map((c) => [c.table, c.checkedHours, c.mismatches.length])).toEqual([
      [BINANCE, 7, 7],
      [SILVER, 7, 0],
    ]);
    expect(await p.watermarks.lastCheck(BINANCE)).toEqual(checks[0]);
    expect(await p.watermarks.lastCheck(KRAKEN)).toBeNull();
    expect(p.metrics).toEqual([
      { timestamp: Date.parse(NOW), dimensions: { Table: BINANCE }, values: { hourlyMismatchHours: 7 } },
      { timestamp: Date.parse(NOW), dimensions: { Table: SILVER }, values: { hourlyMismatchHours: 0 } },
    ]);
    // The first five differing hours, and only for the table that has any.
    expect(p.logged).toEqual([
      { event: 'hourly-mismatch', table: BINANCE, hours: [5, 6, 7, 8, 9].map((h) => mismatch(at(h), 2, 1)) },
    ]);
  });

  it('a table whose check fails is logged by name with its error; the others are still checked and published', async () => {
    const p = await cycle((store) => ({
      ledger: async (table, range) => {
        if (table === BINANCE) throw new Error('connection reset while reading the ledger');
        return store.ledger(table, range);
      },
    }));
    const checks = await checkCycleHours(p.deps);
    expect(checks.map((c) => c.table)).toEqual([SILVER]);
    expect(p.logged).toEqual([
      { event: 'hourly-check-failed', table: BINANCE, message: 'connection reset while reading the ledger' },
    ]);
    expect(p.metrics.map((m) => m.dimensions?.Table)).toEqual([SILVER]);
    expect(await p.watermarks.lastCheck(BINANCE)).toBeNull();
  });

  it('a watermark store that cannot list the tables: nothing checked, the outage logged, no metric', async () => {
    const p = await cycle(() => ({
      list: async () => {
        throw new Error('the database system is shutting down');
      },
    }));
    expect(await checkCycleHours(p.deps)).toEqual([]);
    expect(p.logged).toEqual([
      { event: 'hourly-check-failed', table: '*', message: 'the database system is shutting down' },
    ]);
    expect(p.metrics).toEqual([]);
    expect(p.clickhouse.asked).toEqual([]);
  });
});

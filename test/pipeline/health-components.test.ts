import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import type { TableIdent } from '../../src/iceberg/catalog.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import { serializeTableMetadata } from '../../src/iceberg/metadata.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import { collectHealth, reachableBound, tableFacts } from '../../src/pipeline/health.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import type { Watermark } from '../../src/watermark/types.ts';
import { committedBatch } from '../support/memory-pipeline.ts';
import { fakeClock } from '../watermark/fake-clock.ts';
import { withBatches } from './marker-chain.ts';

/**
 * What `status` says of each component and of a table it cannot judge, from in-memory stores and a
 * ClickHouse that does not answer (so no table's rows are counted): the rules on real components are
 * in health.test.ts, their words in health-messages.test.ts.
 */
const BINANCE = 'bronze_trades_binance';
const KRAKEN = 'bronze_trades_kraken';
const NOW = '2026-11-22T12:00:00.000Z';
const config = parseConfig(
  { tables: defaultConfig().tables.filter((t) => t.name === BINANCE || t.name === KRAKEN) },
  'two bronze tables',
);
const clickhouseDown = {
  ping: async () => ({ success: false, error: new Error('connect ECONNREFUSED 127.0.0.1:8123') }),
} as unknown as ClickHouseClient;

/** A catalog whose every read fails. */
class UnreadableCatalog extends MemoryCatalog {
  override async currentMetadataLocation(_ident: TableIdent): Promise<string | undefined> {
    throw new Error('AccessDenied: not authorized to read cold\n  request id 42');
  }
}

function checking(setup: { catalog?: MemoryCatalog; warehouse?: string; watermarksOf?: string[] } = {}) {
  const clock = fakeClock(NOW);
  const watermarks = createMemoryWatermarkStore({ clock: clock.now });
  const deps: PipelineDeps = {
    config,
    clickhouse: clickhouseDown,
    watermarks,
    catalog: setup.catalog ?? new MemoryCatalog(),
    store: new MemoryObjectStore(clock.now),
    warehouse: setup.warehouse ?? 's3://lake/warehouse',
    clock: clock.now,
    leaseSeconds: 900,
    faults: NO_FAULTS,
    metrics: () => {},
    log: () => {},
  };
  const ready = watermarks.ensureTables(
    (setup.watermarksOf ?? [BINANCE, KRAKEN]).map((table) => ({
      table,
      initialCursor: '1970-01-01T00:00:00Z',
    })),
  );
  return { deps, watermarks, ready };
}

const componentsOf = (report: Awaited<ReturnType<typeof collectHealth>>) =>
  report.components.map(({ name, ok, detail }) => ({ name, ok, detail }));

describe('status, component by component', () => {
  it('names what each component answered, and a component that failed as critical with its first line', async () => {
    const { deps, ready } = checking({ catalog: new UnreadableCatalog() });
    await ready;
    const report = await collectHealth(deps);
    expect(componentsOf(report)).toEqual([
      { name: 'clickhouse', ok: false, detail: 'connect ECONNREFUSED 127.0.0.1:8123' },
      { name: 'postgres', ok: true, detail: '2 watermark rows' },
      { name: 'catalog', ok: false, detail: `cold.${BINANCE}: AccessDenied: not authorized to read cold` },
    ]);
    expect(report.problems.filter((p) => p.table === null)).toEqual([
      {
        severity: 'critical',
        table: null,
        code: 'clickhouse-down',
        message: 'clickhouse: connect ECONNREFUSED 127.0.0.1:8123',
      },
      {
        severity: 'critical',
        table: null,
        code: 'catalog-down',
        message: `catalog: cold.${BINANCE}: AccessDenied: not authorized to read cold`,
      },
    ]);
    expect(report.components.every((c) => c.ms >= 0 && c.ms < 5000)).toBe(true);
    // With ClickHouse down, no table's rows are counted (and none is reported as not counted).
    expect(report.problems.filter((p) => p.code === 'clickhouse-query')).toEqual([]);
    expect(report.healthy).toBe(false);
  });

  it('a ClickHouse that answers SELECT 1 and tables not offloaded yet: healthy, each table a warning', async () => {
    const { deps, ready } = checking({ watermarksOf: [] });
    await ready;
    const clickhouse = {
      ping: async (p?: { select?: boolean }) =>
        p?.select ? { success: true } : { success: false, error: new Error('/ping is no query') },
    } as unknown as ClickHouseClient;
    const report = await collectHealth({ ...deps, clickhouse });
    expect(componentsOf(report)[0]).toEqual({ name: 'clickhouse', ok: true, detail: 'answers SELECT 1' });
    expect(report.problems.map((p) => [p.severity, p.table, p.code])).toEqual([
      ['warning', BINANCE, 'no-watermark'],
      ['warning', KRAKEN, 'no-watermark'],
    ]);
    expect(report.healthy).toBe(true);
  });

  it('leaves no timer running once it has its answers', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const { deps, ready } = checking();
    await ready;
    const before = timers();
    await collectHealth(deps, { timeoutMs: 60_000 });
    expect(timers()).toBe(before);
  });

  it('Postgres down: reported as down, not thrown, and no table is judged by rows it could not read', async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    const refused = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    const down = Object.create(watermarks) as typeof watermarks;
    down.list = refused;
    down.now = refused;
    down.lastCheck = refused;
    const report = await collectHealth({ ...deps, watermarks: down });
    expect(componentsOf(report)[1]).toEqual({
      name: 'postgres',
      ok: false,
      detail: 'connect ECONNREFUSED 127.0.0.1:5432',
    });
    expect(report.problems.filter((p) => p.table !== null)).toEqual([]);
  });

  it("the last hourly check's differing hours are a table's problem", async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    await watermarks.recordCheck({
      table: BINANCE,
      checkedAt: '2026-11-22T11:30:00.000Z',
      from: '2026-11-22T09:00:00.000Z',
      to: '2026-11-22T11:00:00.000Z',
      checkedHours: 2,
      mismatches: [
        {
          hour: '2026-11-22T10:00:00.000Z',
          clickhouseRows: 11,
          committedRows: 10,
          clickhouseChecksum: '1',
          committedChecksum: '2',
        },
      ],
    });
    const report = await collectHealth(deps);
    expect(
      report.problems.filter((p) => p.code === 'hourly-mismatch').map((p) => [p.severity, p.table]),
    ).toEqual([['critical', BINANCE]]);
  });

  it('a component that does not answer within the limit is down, naming the limit', async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    const hung = Object.create(watermarks) as typeof watermarks;
    hung.list = () => new Promise(() => {});
    const report = await collectHealth({ ...deps, watermarks: hung }, { timeoutMs: 50 });
    const postgres = report.components.find((c) => c.name === 'postgres');
    expect(postgres).toMatchObject({ ok: false, detail: 'no answer within 0.05 s' });
    expect(postgres?.ms).toBeGreaterThanOrEqual(40);
    expect(postgres?.ms).toBeLessThan(5000);
    // A check that waits for the hung store fails here in a second, not at the suite's minute.
  }, 1000);

  it('a local warehouse that is a file is no warehouse; a folder is one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k2-health-'));
    const file = join(dir, 'warehouse');
    await writeFile(file, '');
    const asFile = checking({ warehouse: pathToFileURL(file).href });
    await asFile.ready;
    expect(componentsOf(await collectHealth(asFile.deps)).at(-1)).toEqual({
      name: 'catalog',
      ok: false,
      detail: `warehouse ${file} is a file, not a folder: point WAREHOUSE at a folder (or s3://bucket/prefix)`,
    });
    const asFolder = checking({ warehouse: pathToFileURL(dir).href });
    await asFolder.ready;
    expect(componentsOf(await collectHealth(asFolder.deps)).at(-1)).toEqual({
      name: 'catalog',
      ok: true,
      detail: 'path catalog and warehouse files readable',
    });
  });
});

describe('status of a table it cannot judge from Iceberg', () => {
  it('a table without a watermark row: a warning that the first cycle creates it', async () => {
    const { deps, ready } = checking({ watermarksOf: [BINANCE] });
    await ready;
    const report = await collectHealth(deps);
    expect(report.problems.filter((p) => p.code === 'no-watermark')).toEqual([
      {
        severity: 'warning',
        table: KRAKEN,
        code: 'no-watermark',
        message: 'no watermark row yet: the first cycle creates it at the initial cursor',
      },
    ]);
    // A warning beside critical problems (ClickHouse down, BINANCE never run) does not make it healthy.
    expect(report.healthy).toBe(false);
  });

  it('a table missing here whose watermark passed committed batches is behind, naming where its history is', async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    await committedBatch(watermarks, BINANCE, {
      batchId: 'b'.repeat(32),
      windowEnd: '2026-11-22T10:00:00.000Z',
    });
    const behindOf = async () =>
      (await collectHealth(deps)).tables.find((t) => t.table === BINANCE)?.iceberg.behind;
    const missing = `the path catalog has no table at s3://lake/warehouse/cold/${BINANCE}, but the watermark has passed committed batches`;
    expect(await behindOf()).toBe(missing);
    await watermarks.bindCatalog(BINANCE, { catalog: 'glue', location: `s3://old/cold/${BINANCE}` });
    expect(await behindOf()).toBe(`${missing} (history in the glue catalog at s3://old/cold/${BINANCE})`);
    expect((await collectHealth(deps)).tables.find((t) => t.table === KRAKEN)?.iceberg).toMatchObject({
      exists: false,
      behind: null,
    });
  });
});

describe('rows waiting in ClickHouse', () => {
  const microsOf = (iso: string) => String(BigInt(Date.parse(iso)) * 1000n);
  /** A ClickHouse answering SELECT 1, and the pending-rows count with these rows per source table. */
  const clickhouseWith = (pending: Record<string, { oldest: string; ttl: string; rows: number } | Error>) =>
    ({
      ping: async () => ({ success: true }),
      query: async ({ query }: { query: string }) => {
        const source = /FROM `?\w+`?\.`?(\w+)`?/.exec(query)?.[1] ?? '';
        const table = config.tables.find((t) => t.source.table === source);
        const answer = table && query.includes('count() AS rows') ? pending[table.name] : undefined;
        if (answer instanceof Error) throw answer;
        if (!answer) throw new Error(`unexpected query: ${query}`);
        return {
          json: async () =>
            answer.rows === 0
              ? [{ oldest: '0', ttl: '0', rows: '0' }]
              : [{ oldest: microsOf(answer.oldest), ttl: microsOf(answer.ttl), rows: String(answer.rows) }],
        };
      },
    }) as unknown as ClickHouseClient;

  it('counts them, the oldest, and the hours before the TTL deletes the oldest by its TTL column', async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    await committedBatch(watermarks, BINANCE, {
      batchId: 'a'.repeat(32),
      windowEnd: '2026-11-22T11:00:00.000Z',
      rows: 0,
    });
    const clickhouse = clickhouseWith({
      [BINANCE]: { oldest: '2026-11-22T11:20:00.000Z', ttl: '2026-11-22T10:30:00.000Z', rows: 42 },
      [KRAKEN]: { oldest: '2026-11-22T11:40:00.000Z', ttl: '2026-11-22T11:40:00.000Z', rows: 3 },
    });
    const report = await collectHealth({ ...deps, clickhouse });
    const binance = report.tables.find((t) => t.table === BINANCE);
    // 7 days' TTL less the 1.5 h the oldest row has waited by its TTL column.
    expect(binance).toMatchObject({
      pendingRows: 42,
      oldestPending: '2026-11-22T11:20:00.000Z',
      ttlHeadroomHours: 166.5,
      // From its cursor (11:00), not from its oldest waiting row.
      lagMinutes: 55,
    });
    // A watermark that never moved lags by its oldest row, not by the initial cursor (1970).
    expect(report.tables.find((t) => t.table === KRAKEN)).toMatchObject({
      pendingRows: 3,
      oldestPending: '2026-11-22T11:40:00.000Z',
      lagMinutes: 15,
    });
  });

  it('a never-moved watermark lags by its oldest row, to a tenth of a minute; with none waiting, not at all', async () => {
    const { deps, ready } = checking();
    await ready;
    const clickhouse = clickhouseWith({
      [BINANCE]: { oldest: '', ttl: '', rows: 0 },
      [KRAKEN]: { oldest: '2026-11-22T11:54:54.000Z', ttl: '2026-11-22T11:54:54.000Z', rows: 1 },
    });
    const report = await collectHealth({ ...deps, clickhouse });
    expect(report.tables.map((t) => [t.table, t.pendingRows, t.lagMinutes, t.ttlHeadroomHours])).toEqual([
      [BINANCE, 0, 0, 168],
      [KRAKEN, 1, 0.1, 167.9],
    ]);
  });

  it('a count that fails is amber, saying why: the lag still comes from the watermark', async () => {
    const { deps, ready } = checking();
    await ready;
    const clickhouse = clickhouseWith({
      [BINANCE]: new Error('Code: 241. Memory limit exceeded'),
      [KRAKEN]: { oldest: '', ttl: '', rows: 0 },
    });
    const report = await collectHealth({ ...deps, clickhouse });
    expect(report.problems.filter((p) => p.code === 'clickhouse-query')).toEqual([
      {
        severity: 'warning',
        table: BINANCE,
        code: 'clickhouse-query',
        message: 'pending rows not counted: Code: 241. Memory limit exceeded',
      },
    ]);
    expect(report.tables.find((t) => t.table === BINANCE)?.pendingRows).toBeNull();
  });
});

describe("a table's Iceberg facts", () => {
  async function withIcebergTable(deps: PipelineDeps) {
    const location = `s3://lake/warehouse/cold/${BINANCE}`;
    const metadataLocation = `${location}/metadata/00001-a.metadata.json`;
    const metadata = { ...withBatches([['a'.repeat(32), 0, 2]]), location };
    await deps.store.put(metadataLocation, new TextEncoder().encode(serializeTableMetadata(metadata)));
    await deps.catalog.createTable({ namespace: 'cold', name: BINANCE }, metadataLocation);
  }
  const icebergOf = async (deps: PipelineDeps) =>
    (await collectHealth(deps)).tables.find((t) => t.table === BINANCE)?.iceberg;

  it('a table holding the last batch its watermark passed: its newest batch, not behind', async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    await committedBatch(watermarks, BINANCE, {
      batchId: 'a'.repeat(32),
      windowEnd: '2026-11-22T02:00:00.000Z',
    });
    await withIcebergTable(deps);
    expect(await icebergOf(deps)).toEqual({
      table: `cold.${BINANCE}`,
      exists: true,
      newestWindowEnd: '2026-11-22T02:00:00.000Z',
      newestBatchId: 'a'.repeat(32),
      behind: null,
    });
  });

  it('a table lacking the last batch its watermark passed is behind, saying which', async () => {
    const { deps, watermarks, ready } = checking();
    await ready;
    await committedBatch(watermarks, BINANCE, {
      batchId: 'b'.repeat(32),
      windowEnd: '2026-11-22T04:00:00.000Z',
    });
    await withIcebergTable(deps);
    expect((await icebergOf(deps))?.behind).toMatch(
      new RegExp(
        `^the watermark's last committed batch ${'b'.repeat(32)} \\(cursor 2026-11-22T04:00:00.000Z\\)`,
      ),
    );
  });
});

describe("a table's facts from its watermark row", () => {
  const table = config.tables.find((t) => t.name === BINANCE) as (typeof config.tables)[number];
  const now = new Date(NOW);
  const row = (over: Partial<Watermark>): Watermark => ({
    table: BINANCE,
    cursor: '2026-11-22T11:31:00.000Z',
    version: 4,
    status: 'ok',
    lastBatchId: 'b4',
    lastMarkerBatchId: 'b4',
    lastSuccessAt: '2026-11-22T11:00:00.000Z',
    lastCheckedAt: null,
    lastRows: 10,
    lastDurationMs: 1000,
    consecutiveFailures: 0,
    lastError: null,
    lease: null,
    leaseToken: '4',
    iceberg: null,
    ...over,
  });
  const factsOf = (over: Partial<Watermark>, dbNow = now) => tableFacts(table, row(over), now, dbNow);

  it('a table reaches now minus its lateness; a candle table only the last bucket closed by then', () => {
    const at = new Date('2026-12-05T12:07:30.400Z');
    const reach = (name: string) =>
      new Date(
        reachableBound(defaultConfig().tables.find((t) => t.name === name) as TableConfig, at),
      ).toISOString();
    // Bronze: 5 minutes' lateness, to the second.
    expect(reach(BINANCE)).toBe('2026-12-05T12:02:30.000Z');
    // Candles: 125 minutes' lateness (10:02:30), then down to the bucket's start.
    expect(reach('ohlcv_1m')).toBe('2026-12-05T10:02:00.000Z');
    expect(reach('ohlcv_30m')).toBe('2026-12-05T10:00:00.000Z');
    expect(reach('ohlcv_1h')).toBe('2026-12-05T10:00:00.000Z');
    expect(reach('ohlcv_1d')).toBe('2026-12-05T00:00:00.000Z');
  });

  it('lag: minutes from the cursor to what it can reach now (now less lateness), to a tenth, never below 0', () => {
    expect(reachableBound(table, now)).toBe(Date.parse('2026-11-22T11:55:00.000Z'));
    expect(factsOf({}).lagMinutes).toBe(24);
    expect(factsOf({ cursor: '2026-11-22T11:54:54.000Z' }).lagMinutes).toBe(0.1);
    expect(factsOf({ cursor: '2026-11-22T11:58:00.000Z' }).lagMinutes).toBe(0);
  });

  it('pass age: seconds since the newer of its last commit and its last check that found nothing', () => {
    expect(factsOf({}).watermarkAgeSeconds).toBe(3600);
    expect(factsOf({ lastCheckedAt: '2026-11-22T11:50:00.000Z' }).watermarkAgeSeconds).toBe(600);
    expect(
      factsOf({ lastSuccessAt: null, lastCheckedAt: '2026-11-22T11:59:59.600Z' }).watermarkAgeSeconds,
    ).toBe(0);
    expect(factsOf({ lastSuccessAt: null }).watermarkAgeSeconds).toBeNull();
  });

  it("a lease is live until the instant it expires by the database's clock, not this process's", () => {
    const lease = (expiresAt: string) => ({
      token: '5',
      holder: 'cycle-a',
      expiresAt,
      host: 'ip-10-0-0-1',
      pid: 4242,
      startedAt: '2026-11-22T11:45:00.000Z',
    });
    const dbNow = new Date('2026-11-22T12:10:00.000Z');
    const { token: _, ...shown } = lease('2026-11-22T12:05:00.000Z');
    expect(factsOf({ lease: lease('2026-11-22T12:05:00.000Z') }, dbNow).lease).toEqual({
      ...shown,
      live: false,
    });
    expect(factsOf({ lease: lease('2026-11-22T12:10:00.000Z') }, dbNow).lease?.live).toBe(false);
    expect(factsOf({ lease: lease('2026-11-22T12:10:00.001Z') }, dbNow).lease?.live).toBe(true);
  });

  it('a table without a row: nothing known of it but its Iceberg name', () => {
    expect(tableFacts(table, undefined, now, now)).toMatchObject({
      cursor: null,
      lagMinutes: null,
      watermarkAgeSeconds: null,
      consecutiveFailures: null,
      lease: null,
      iceberg: { table: `cold.${BINANCE}`, exists: null, behind: null },
    });
  });
});

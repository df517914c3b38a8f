import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig, tableByName } from '../../src/config/load.ts';
import type { OffloadConfig, TableConfig } from '../../src/config/schema.ts';
import { ConfigError, InputError, UnavailableError } from '../../src/errors.ts';
import { serializeTableMetadata } from '../../src/iceberg/metadata.ts';
import type { CyclePlan } from '../../src/pipeline/events.ts';
import { crashAt } from '../../src/pipeline/faults.ts';
import { firstOffloadStart, startAtOldestRow } from '../../src/pipeline/first-offload.ts';
import {
  estimateFor,
  MAX_BATCHES_PER_PASS,
  notConfiguredPlan,
  planCycle,
} from '../../src/pipeline/plan-cycle.ts';
import type { WatermarkStore } from '../../src/watermark/store.ts';
import { cursorSetTo, memoryPipeline } from '../support/memory-pipeline.ts';
import { withBatches } from './marker-chain.ts';

/**
 * One planning pass on in-memory stores, the decisions of PlanCycle one at a time: which tables it
 * leases and plans, which it skips or fails and what it tells of them, what it repairs from Iceberg,
 * when a loop-back pass stops, and that it gives back every lease when it cannot finish. ClickHouse is
 * a table of row instants (below); the rig suites run the same step against chDB and Postgres.
 */
const BINANCE = 'bronze_trades_binance';
const KRAKEN = 'bronze_trades_kraken';
const NOW = '2026-11-22T06:00:00.000Z';
/** Where BINANCE's Iceberg table lives in the warehouse below. */
const LOCATION = `s3://lake/warehouse/cold/${BINANCE}`;
const config = parseConfig(
  { tables: defaultConfig().tables.filter((t) => t.name === BINANCE || t.name === KRAKEN) },
  'two bronze tables',
);
const tableOf = (name: string): TableConfig => {
  const table = config.tables.find((t) => t.name === name);
  if (!table) throw new Error(`no table ${name}`);
  return table;
};

type Setup = {
  config?: OffloadConfig;
  rows?: Record<string, string[]>;
  columns?: (table: TableConfig) => Array<{ name: string; type: string }>;
  cycleBudgetSeconds?: number;
};

/** Fresh in-memory stores, ClickHouse holding `rows`, every clock at NOW. */
const planning = (setup: Setup = {}) =>
  memoryPipeline({ ...setup, config: setup.config ?? config, now: NOW });

const batchesOf = (plan: CyclePlan, table: string) =>
  plan.layers.flatMap((l) => l.tables).find((t) => t.table === table)?.batches ?? [];
const skipOf = (plan: CyclePlan, table: string) => plan.skipped.find((s) => s.table === table);

describe("a cycle's first pass", () => {
  it('starts each untouched table at its oldest row, leases the tables with rows and plans their batches', async () => {
    const { deps, watermarks, metrics } = await planning({
      rows: {
        [BINANCE]: ['2026-11-22T03:00:10.000Z', '2026-11-22T03:00:20.000Z', '2026-11-22T04:30:00.000Z'],
      },
    });
    const plan = await planCycle(deps, {});
    expect(plan.cycleId).toMatch(/^cycle-2026-11-22T06-00-00-000Z-[0-9a-f]{6}$/);
    expect(plan.startedAt).toBe(NOW);
    expect(plan.input).toEqual({});
    const binance = await watermarks.get(BINANCE);
    expect(binance.lease?.holder).toBe(plan.cycleId);
    const batches = batchesOf(plan, BINANCE);
    // From the oldest row to the table's bound (now less its lateness), in windows of at most an hour.
    expect(batches[0]?.windowStart).toBe('2026-11-22T03:00:10.000Z');
    expect(batches.at(-1)?.windowEnd).toBe('2026-11-22T05:55:00.000Z');
    expect(batches.slice(1).map((b) => b.windowStart)).toEqual(batches.slice(0, -1).map((b) => b.windowEnd));
    expect(batches.map((b) => b.lastOfTable)).toEqual(batches.map((_, i) => i === batches.length - 1));
    for (const batch of batches)
      expect(batch).toMatchObject({
        cycleId: plan.cycleId,
        table: BINANCE,
        layer: 'bronze',
        leaseToken: binance.lease?.token,
        committer: 'lambda',
        target: { namespace: 'cold', name: BINANCE },
        stagingPrefix: `${LOCATION}/data/${batch.batchId}/`,
      });
    expect(plan.layers.map((l) => [l.layer, l.tables.map((t) => [t.table, t.leaseToken])])).toEqual([
      ['bronze', [[BINANCE, binance.lease?.token]]],
    ]);
    expect(metrics).toEqual([
      { timestamp: Date.parse(NOW), values: { cyclesStarted: 1 }, properties: { cycleId: plan.cycleId } },
    ]);
  });

  it('an empty table starts at its bound, is told why it has nothing to do, and its lease is given back', async () => {
    const { deps, watermarks } = await planning({ rows: { [BINANCE]: ['2026-11-22T05:00:00.000Z'] } });
    const plan = await planCycle(deps, {});
    const kraken = await watermarks.get(KRAKEN);
    expect(kraken.cursor).toBe('2026-11-22T05:55:00.000Z');
    expect(kraken.lease).toBeNull();
    expect(batchesOf(plan, KRAKEN)).toEqual([]);
    const skip = skipOf(plan, KRAKEN);
    expect(skip?.reason).toBe('up-to-date');
    const [noop] = (await watermarks.history({ table: KRAKEN })).filter((r) => r.outcome === 'noop');
    expect(noop?.note).toBe(skip?.detail);
    expect(noop?.note).not.toBe('');
  });

  it('each table with nothing to do is told its own reason', async () => {
    const later = parseConfig(
      { tables: config.tables.map((t) => (t.name === KRAKEN ? { ...t, latenessSeconds: 600 } : t)) },
      'kraken later',
    );
    const { deps, watermarks } = await planning({ config: later });
    const plan = await planCycle(deps, {});
    for (const table of [BINANCE, KRAKEN]) {
      const [noop] = (await watermarks.history({ table })).filter((r) => r.outcome === 'noop');
      expect(noop?.note).toBe(skipOf(plan, table)?.detail);
    }
    expect(skipOf(plan, BINANCE)?.detail).not.toBe(skipOf(plan, KRAKEN)?.detail);
  });

  it('plans only the tables asked for, and carries the operator input to the next pass', async () => {
    const { deps, watermarks } = await planning({
      rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'], [KRAKEN]: ['2026-11-22T04:00:00.000Z'] },
    });
    const until = '2026-11-22T05:00:00.000Z';
    const plan = await planCycle(deps, { tables: [KRAKEN], until });
    expect(plan.input).toEqual({ tables: [KRAKEN], until });
    expect(batchesOf(plan, KRAKEN).at(-1)?.windowEnd).toBe(until);
    expect(batchesOf(plan, BINANCE)).toEqual([]);
    expect((await watermarks.get(BINANCE)).lease).toBeNull();
    expect((await watermarks.get(BINANCE)).version).toBe(0);
  });

  it('at most eight batches a table in one pass, and says there is more', async () => {
    // Two rows an hour over half a day, each hour a window of its own.
    const rows = Array.from(
      { length: 12 },
      (_, h) => new Date(Date.parse('2026-11-21T18:00:00.000Z') + h * 3_600_000),
    );
    const { deps } = await planning({ rows: { [BINANCE]: rows.map((r) => r.toISOString()) } });
    const plan = await planCycle(deps, { tables: [BINANCE] });
    expect(batchesOf(plan, BINANCE)).toHaveLength(MAX_BATCHES_PER_PASS);
    expect(plan.more).toBe(true);
  });

  it('refuses an until in the future, naming it, before any lease or move', async () => {
    const { deps, watermarks } = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    const until = '2026-11-22T06:00:00.001Z';
    const refusal = await planCycle(deps, { until }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(InputError);
    expect(refusal).toMatchObject({ details: { field: 'until', value: until } });
    expect((refusal as Error).message).toBe(
      `until ${until} is in the future (now ${NOW}); rows after now are not final yet, give an instant in the past or omit it`,
    );
    expect((await watermarks.get(BINANCE)).version).toBe(0);
    // Now itself is not the future.
    await expect(planCycle(deps, { until: NOW })).resolves.toBeDefined();
  });

  it('refuses a malformed input, naming the field and the keys it does not know', async () => {
    const { deps } = await planning();
    const refusal = await planCycle(deps, { tables: [BINANCE], unti: 'x', extra: 1 }).catch(
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as Error).message).toMatch(/^execution input \(input\): .*\(unti, extra\); expected \{/);
    expect(refusal).toMatchObject({ details: { field: '(input)' } });
    const nested = await planCycle(deps, { tables: [BINANCE, 7] }).catch((e: unknown) => e);
    expect((nested as Error).message).toBe(
      'execution input tables.1: Invalid input: expected string, received number; expected {"tables"?: ["name", ...], "until"?: "ISO-8601 instant"}',
    );
    expect(nested).toMatchObject({ details: { field: 'tables.1' } });
  });
});

describe('what planning repairs and refuses, table by table', () => {
  /** BINANCE's own metadata, its main branch holding these batches (see withBatches). */
  const ownBatches = (windows: Parameters<typeof withBatches>[0]) => ({
    ...withBatches(windows),
    location: LOCATION,
  });

  /** A catalog already pointing BINANCE at this metadata. */
  async function withIcebergTable(
    p: Awaited<ReturnType<typeof planning>>,
    metadata: ReturnType<typeof withBatches>,
  ) {
    const metadataLocation = `${LOCATION}/metadata/00001-a.metadata.json`;
    await p.store.put(metadataLocation, new TextEncoder().encode(serializeTableMetadata(metadata)));
    await p.catalog.createTable({ namespace: 'cold', name: BINANCE }, metadataLocation);
    return metadataLocation;
  }

  it('moves a watermark behind Iceberg forward to the batch Iceberg holds, and says so', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T00:30:00.000Z'] } });
    await cursorSetTo(p.watermarks, BINANCE, '2026-11-22T00:00:00.000Z');
    await withIcebergTable(p, ownBatches([['a'.repeat(32), 0, 2]]));
    const plan = await planCycle(p.deps, { tables: [BINANCE] });
    const w = await p.watermarks.get(BINANCE);
    expect(w.lastBatchId).toBe('a'.repeat(32));
    expect(batchesOf(plan, BINANCE)[0]?.windowStart).toBe('2026-11-22T02:00:00.000Z');
    expect(p.logged).toContainEqual({
      event: 'reconciled',
      table: BINANCE,
      from: '2026-11-22T00:00:00.000Z',
      to: '2026-11-22T02:00:00.000Z',
    });
    const [reconciled] = (await p.watermarks.history({ table: BINANCE })).filter(
      (r) => r.outcome === 'reconciled',
    );
    expect(reconciled?.note).toBe(
      `Iceberg cold.${BINANCE} snapshot 1 carries batch ${'a'.repeat(32)} ending 2026-11-22T02:00:00.000Z`,
    );
  });

  it('records which catalog and location hold the history, and creates no empty twin of a table seen elsewhere', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    await planCycle(p.deps, { tables: [BINANCE] });
    expect((await p.watermarks.get(BINANCE)).iceberg).toEqual({ catalog: 'path', location: LOCATION });

    const q = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    const there = { catalog: 'glue:prod', location: LOCATION };
    await q.watermarks.bindCatalog(BINANCE, there);
    const plan = await planCycle(q.deps, { tables: [BINANCE] });
    expect(skipOf(plan, BINANCE)?.detail).toMatch(
      /^IcebergBehindError: table bronze_trades_binance: the path catalog has no Iceberg table for it at .*refusing to create an empty twin/,
    );
    expect(await q.catalog.currentMetadataLocation({ namespace: 'cold', name: BINANCE })).toBeUndefined();
    expect((await q.watermarks.get(BINANCE)).iceberg).toEqual(there);
  });

  it('a table that exists here is used whatever catalog the watermark last named, and the binding moves here', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    await withIcebergTable(p, ownBatches([]));
    await p.watermarks.bindCatalog(BINANCE, { catalog: 'path', location: 's3://old/warehouse/cold/x' });
    const plan = await planCycle(p.deps, { tables: [BINANCE] });
    expect(batchesOf(plan, BINANCE).length).toBeGreaterThan(0);
    expect((await p.watermarks.get(BINANCE)).iceberg).toEqual({ catalog: 'path', location: LOCATION });
  });

  it('brings an existing table to its config before planning, and says what changed', async () => {
    const wider = parseConfig(
      {
        tables: config.tables.map((t) =>
          t.name === BINANCE ? { ...t, columns: [...t.columns, { name: 'venue', type: 'String' }] } : t,
        ),
      },
      'a column more',
    );
    const p = await planning({ config: wider, rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    await withIcebergTable(p, ownBatches([]));
    const plan = await planCycle(p.deps, { tables: [BINANCE] });
    expect(batchesOf(plan, BINANCE).length).toBeGreaterThan(0);
    const evolved = p.logged.filter((l) => l.event === 'schema-evolved');
    expect(evolved).toEqual([
      {
        event: 'schema-evolved',
        table: BINANCE,
        changes: [expect.stringContaining('venue')],
        metadataLocation: await p.catalog.currentMetadataLocation({ namespace: 'cold', name: BINANCE }),
      },
    ]);
    // Once there, the next pass changes nothing and says nothing.
    p.logged.length = 0;
    await p.watermarks.releaseLease(BINANCE, batchesOf(plan, BINANCE)[0]?.leaseToken ?? '');
    await planCycle(p.deps, { tables: [BINANCE] });
    expect(p.logged.filter((l) => l.event === 'schema-evolved')).toEqual([]);
  });

  it('a watermark already at Iceberg is not reconciled again', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T00:30:00.000Z'] } });
    await cursorSetTo(p.watermarks, BINANCE, '2026-11-22T02:00:00.000Z');
    await withIcebergTable(p, ownBatches([['a'.repeat(32), 0, 2]]));
    await planCycle(p.deps, { tables: [BINANCE] });
    expect(
      (await p.watermarks.history({ table: BINANCE })).filter((r) => r.outcome === 'reconciled'),
    ).toEqual([]);
    expect(p.logged.filter((l) => l.event === 'reconciled')).toEqual([]);
  });

  it("a catalog pointing at another table's metadata fails that table alone, counted, its lease given back", async () => {
    const p = await planning({
      rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'], [KRAKEN]: ['2026-11-22T04:00:00.000Z'] },
    });
    const foreign = withBatches([]);
    // A long name: what the plan and the metric carry of the message is cut, the watermark keeps it whole.
    const elsewhere = `s3://lake/warehouse/cold/${'elsewhere'.repeat(120)}`;
    foreign.location = elsewhere;
    const metadataLocation = await withIcebergTable(p, foreign);
    const plan = await planCycle(p.deps, {});
    const message = `Iceberg cold.${BINANCE}: the catalog points at ${metadataLocation}, which describes a table located at ${elsewhere}, not ${LOCATION}; nothing of ${BINANCE} is read or written until the catalog points back at this table's own metadata under ${LOCATION}/metadata/`;
    expect(skipOf(plan, BINANCE)).toEqual({
      table: BINANCE,
      reason: 'failed',
      detail: `InvalidMetadataError: ${message}`.slice(0, 1000),
    });
    expect(skipOf(plan, BINANCE)?.detail).toHaveLength(1000);
    expect(batchesOf(plan, BINANCE)).toEqual([]);
    expect(batchesOf(plan, KRAKEN).length).toBeGreaterThan(0);
    const w = await p.watermarks.get(BINANCE);
    expect(w).toMatchObject({
      consecutiveFailures: 1,
      lease: null,
      lastError: { name: 'InvalidMetadataError', message },
    });
    expect(p.metrics).toContainEqual({
      timestamp: Date.parse(NOW),
      dimensions: { Table: BINANCE, ErrorType: 'InvalidMetadataError' },
      values: { errors: 1 },
      properties: { cycleId: plan.cycleId, message: message.slice(0, 500) },
    });
    expect(p.logged).toContainEqual({
      event: 'table-failed',
      step: 'PlanCycle',
      table: BINANCE,
      error: 'InvalidMetadataError',
      message,
    });
  });

  it("metadata at the table's own location, trailing slashes aside, is the table's own", async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    const own = withBatches([]);
    own.location = `${LOCATION}//`;
    await withIcebergTable(p, own);
    const plan = await planCycle(p.deps, { tables: [BINANCE] });
    expect(skipOf(plan, BINANCE)).toBeUndefined();
    expect(batchesOf(plan, BINANCE).length).toBeGreaterThan(0);
  });

  it("metadata carrying another table's offload markers fails the table, naming that table and batch", async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    const metadata = ownBatches([['c'.repeat(32), 0, 1]]);
    const snapshot = metadata.snapshots[0];
    if (!snapshot?.summary) throw new Error('no snapshot');
    for (const key of Object.keys(snapshot.summary))
      if (snapshot.summary[key] === BINANCE) snapshot.summary[key] = KRAKEN;
    await withIcebergTable(p, metadata);
    const plan = await planCycle(p.deps, { tables: [BINANCE] });
    expect(skipOf(plan, BINANCE)?.reason).toBe('failed');
    expect(skipOf(plan, BINANCE)?.detail).toContain(
      `carries offload markers of table ${KRAKEN} (batch ${'c'.repeat(32)})`,
    );
    expect((await p.watermarks.get(BINANCE)).cursor).not.toBe('2026-11-22T01:00:00.000Z');
  });

  it('a ClickHouse table that drifted from its config fails that table alone', async () => {
    const p = await planning({
      rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'], [KRAKEN]: ['2026-11-22T04:00:00.000Z'] },
      columns: (t) => (t.name === KRAKEN ? t.columns.filter((c) => c.name !== 'symbol') : t.columns),
    });
    const plan = await planCycle(p.deps, {});
    expect(skipOf(plan, KRAKEN)?.reason).toBe('failed');
    expect(skipOf(plan, KRAKEN)?.detail).toMatch(
      /^SchemaDriftError: table bronze_trades_kraken: schema drift/,
    );
    expect(batchesOf(plan, BINANCE).length).toBeGreaterThan(0);
    expect((await p.watermarks.get(KRAKEN)).lease).toBeNull();
  });

  it('every table failing plans nothing and ends the cycle, however long their backlog', async () => {
    const backlog = Array.from({ length: 12 }, (_, h) =>
      new Date(Date.parse('2026-11-21T18:00:00.000Z') + h * 3_600_000).toISOString(),
    );
    const p = await planning({
      rows: { [BINANCE]: backlog, [KRAKEN]: backlog },
      columns: (t) => t.columns.filter((c) => c.name !== 'symbol'),
    });
    const plan = await planCycle(p.deps, {});
    expect(plan.layers).toEqual([]);
    expect(plan.more).toBe(false);
    expect(plan.skipped.map((s) => [s.table, s.reason])).toEqual([
      [BINANCE, 'failed'],
      [KRAKEN, 'failed'],
    ]);
  });

  it('a table another cycle holds is left to it: skipped as leased, its lease untouched', async () => {
    const p = await planning({
      rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'], [KRAKEN]: ['2026-11-22T04:00:00.000Z'] },
    });
    await planCycle(p.deps, { tables: [KRAKEN] });
    const other = await p.watermarks.acquireLease(BINANCE, 'cycle-other', 900);
    if (!other.acquired) throw new Error('expected the lease');
    const plan = await planCycle(p.deps, { tables: [BINANCE] });
    expect(skipOf(plan, BINANCE)?.reason).toBe('leased');
    expect((await p.watermarks.get(BINANCE)).lease?.token).toBe(other.token);
    expect((await p.watermarks.get(BINANCE)).consecutiveFailures).toBe(0);
  });
});

describe('a plan that cannot finish gives back the leases it took', () => {
  it('an outage while planning fails the pass, and every lease it took is free for the retry', async () => {
    const p = await planning({
      rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'], [KRAKEN]: ['2026-11-22T04:00:00.000Z'] },
    });
    const down: WatermarkStore = {
      ...p.watermarks,
      list: async () => {
        throw new UnavailableError('Postgres at db:5432 is unavailable');
      },
    };
    await expect(planCycle({ ...p.deps, watermarks: down }, {})).rejects.toThrow(UnavailableError);
    for (const table of [BINANCE, KRAKEN]) {
      const w = await p.watermarks.get(table);
      expect(w.lease).toBeNull();
      expect(w.consecutiveFailures).toBe(0);
    }
    const retry = await planCycle(p.deps, {});
    expect(retry.layers.flatMap((l) => l.tables.map((t) => t.table))).toEqual([BINANCE, KRAKEN]);
  });

  it('ClickHouse unreachable while estimating fails the pass, not one table', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    const histogramDown = {
      query: async (q: { query: string }) => {
        if (q.query.includes('GROUP BY b'))
          throw new UnavailableError('ClickHouse at ch:8123 is unavailable');
        return p.deps.clickhouse.query(q as never);
      },
    } as unknown as ClickHouseClient;
    await expect(planCycle({ ...p.deps, clickhouse: histogramDown }, {})).rejects.toThrow(UnavailableError);
    expect((await p.watermarks.get(BINANCE)).lease).toBeNull();
    expect((await p.watermarks.get(BINANCE)).consecutiveFailures).toBe(0);
  });

  it('the after-plan crash point names the first planned table, or any table when nothing is planned', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] } });
    const crash = crashAt('after-plan', { table: BINANCE });
    await expect(planCycle({ ...p.deps, faults: crash }, {})).rejects.toThrow(/after-plan/);
    const nothing = await planning();
    const anywhere = crashAt('after-plan', { table: '*' });
    await expect(planCycle({ ...nothing.deps, faults: anywhere }, {})).rejects.toThrow(/after-plan/);
  });
});

describe('loop-back passes', () => {
  it('carry the cycle on: no second cycle counted, a table failed earlier in the cycle is left to the next', async () => {
    const p = await planning({
      rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'], [KRAKEN]: ['2026-11-22T04:00:00.000Z'] },
    });
    const first = await planCycle(p.deps, {});
    for (const t of first.layers.flatMap((l) => l.tables)) {
      if (t.table === KRAKEN)
        await p.watermarks.recordFailure({
          table: KRAKEN,
          leaseToken: t.leaseToken,
          error: { name: 'StageError', message: 'x' },
          durationMs: 1,
        });
      else await p.watermarks.releaseLease(t.table, t.leaseToken);
    }
    p.metrics.length = 0;
    const again = await planCycle(p.deps, { cycleId: first.cycleId, cycleStartedAt: first.startedAt });
    expect(again.cycleId).toBe(first.cycleId);
    expect(again.startedAt).toBe(first.startedAt);
    expect(again.layers.flatMap((l) => l.tables.map((t) => t.table))).toEqual([BINANCE]);
    expect((await p.watermarks.get(KRAKEN)).lease).toBeNull();
    expect(p.metrics).toEqual([]);
    // The next cycle does try it again.
    const next = await planCycle(p.deps, {});
    expect(next.layers.flatMap((l) => l.tables.map((t) => t.table))).toContain(KRAKEN);
  });

  it('stop once the budget is spent: nothing leased, every table skipped with why', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] }, cycleBudgetSeconds: 600 });
    const startedAt = '2026-11-22T05:50:00.000Z';
    const plan = await planCycle(p.deps, {
      cycleId: 'cycle-a',
      cycleStartedAt: startedAt,
      tables: [BINANCE],
    });
    const detail = 'the cycle has run 600 s of its 600 s budget for passes; the next cycle carries on';
    expect(plan).toEqual({
      cycleId: 'cycle-a',
      startedAt,
      input: { tables: [BINANCE] },
      layers: [],
      skipped: [{ table: BINANCE, reason: 'time-budget', detail }],
      more: false,
    });
    expect((await p.watermarks.get(BINANCE)).lease).toBeNull();
    expect((await p.watermarks.get(BINANCE)).version).toBe(0);
    expect(p.logged).toEqual([{ event: 'time-budget', cycleId: 'cycle-a', detail }]);
  });

  it('inside the budget a pass plans; a first pass is never held to it', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] }, cycleBudgetSeconds: 600 });
    const inside = await planCycle(p.deps, {
      cycleId: 'cycle-a',
      cycleStartedAt: '2026-11-22T05:50:00.001Z',
    });
    expect(batchesOf(inside, BINANCE).length).toBeGreaterThan(0);
    const q = await planning({ rows: { [BINANCE]: ['2026-11-22T04:00:00.000Z'] }, cycleBudgetSeconds: 0 });
    expect(batchesOf(await planCycle(q.deps, {}), BINANCE).length).toBeGreaterThan(0);
  });
});

describe('a stage not configured yet', () => {
  it('plans nothing and says why, naming the cycle from its input or its clock', async () => {
    const { deps, logged } = await planning();
    const message = 'the ClickHouse secret still holds its placeholder';
    expect(notConfiguredPlan(deps, {}, message)).toEqual({
      cycleId: 'cycle-2026-11-22T06-00-00-000Z-not-configured',
      startedAt: NOW,
      input: {},
      layers: [],
      skipped: [],
      more: false,
    });
    expect(logged).toEqual([{ level: 'warn', event: 'not-configured', message }]);
    const carried = notConfiguredPlan(
      deps,
      { cycleId: 'cycle-b', cycleStartedAt: '2026-11-22T05:00:00.000Z', until: '2026-11-22T04:00:00.000Z' },
      message,
    );
    expect(carried).toMatchObject({
      cycleId: 'cycle-b',
      startedAt: '2026-11-22T05:00:00.000Z',
      input: { until: '2026-11-22T04:00:00.000Z' },
    });
  });
});

describe("where a table's first offload starts", () => {
  const candles = parseConfig(
    { tables: defaultConfig().tables.filter((t) => t.layer !== 'gold' || t.name === 'ohlcv_15m') },
    'one candle table',
  );
  const now = Date.parse(NOW);

  it("at its oldest row, or for an empty table at its bound; a candle table's at a whole bucket", async () => {
    const p = await planning({
      config: candles,
      rows: { [BINANCE]: ['2026-11-22T03:00:10.250Z'], ohlcv_15m: ['2026-11-22T03:07:30.000Z'] },
    });
    const start = async (name: string) =>
      firstOffloadStart(p.deps, tableByName(candles, name), await p.watermarks.get(name), now);
    expect(await start(BINANCE)).toEqual({
      cursor: '2026-11-22T03:00:10.000Z',
      reason: 'first offload: the oldest row in ClickHouse has ingestion_timestamp 2026-11-22T03:00:10.250Z',
    });
    expect(await start('ohlcv_15m')).toEqual({
      cursor: '2026-11-22T03:00:00.000Z',
      reason: 'first offload: the oldest row in ClickHouse has window_start 2026-11-22T03:07:30.000Z',
    });
    // Empty: its bound, now less 7500 s of lateness, down to a whole quarter hour.
    const empty = await planning({ config: candles });
    expect(
      await firstOffloadStart(
        empty.deps,
        tableByName(candles, 'ohlcv_15m'),
        await empty.watermarks.get('ohlcv_15m'),
        now,
      ),
    ).toEqual({
      cursor: '2026-11-22T03:45:00.000Z',
      reason: 'first offload: the table is empty, rows can only arrive after 2026-11-22T03:45:00.000Z',
    });
  });

  it('never for a watermark that moved, nor one already at or past the start', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T03:00:10.000Z'] } });
    const table = tableOf(BINANCE);
    const w = await p.watermarks.get(BINANCE);
    expect(
      await firstOffloadStart(p.deps, table, { ...w, cursor: '2026-11-22T03:00:10.000Z' }, now),
    ).toBeUndefined();
    expect(
      await firstOffloadStart(p.deps, table, { ...w, cursor: '2026-11-22T03:00:11.000Z' }, now),
    ).toBeUndefined();
    expect(await firstOffloadStart(p.deps, table, { ...w, version: 1 }, now)).toBeUndefined();
    // Without a watermark yet, from the configured initial cursor.
    expect((await firstOffloadStart(p.deps, table, undefined, now))?.cursor).toBe('2026-11-22T03:00:10.000Z');
  });

  it('a move refused as leased or, after another cycle moved it, as backwards is left to that cycle; other refusals fail', async () => {
    const p = await planning({ rows: { [BINANCE]: ['2026-11-22T03:00:10.000Z'] } });
    const tables = [tableOf(BINANCE)];
    // Another cycle made the move and offloaded past it while this one stalled before its own move.
    const overtaken: WatermarkStore = {
      ...p.watermarks,
      setCursor: async (input) => {
        await p.watermarks.setCursor(input);
        const lease = await p.watermarks.acquireLease(BINANCE, 'cycle-other', 900);
        if (!lease.acquired) throw new Error('expected the lease');
        await p.watermarks.advance({
          table: BINANCE,
          batchId: 'f'.repeat(32),
          windowStart: input.cursor,
          windowEnd: '2026-11-22T04:00:00.000Z',
          leaseToken: lease.token,
          rows: 1,
          files: 1,
          bytes: 1,
          durationMs: 1,
          outcome: 'committed',
          releaseLease: true,
        });
        return p.watermarks.setCursor(input);
      },
    };
    await startAtOldestRow({ ...p.deps, watermarks: overtaken }, tables, now);
    expect((await p.watermarks.get(BINANCE)).cursor).toBe('2026-11-22T04:00:00.000Z');

    const q = await planning({ rows: { [BINANCE]: ['2026-11-22T03:00:10.000Z'] } });
    await q.watermarks.acquireLease(BINANCE, 'cycle-other', 900);
    await startAtOldestRow(q.deps, tables, now);
    expect((await q.watermarks.get(BINANCE)).version).toBe(0);

    const down: WatermarkStore = {
      ...q.watermarks,
      setCursor: async () => {
        throw new UnavailableError('Postgres at db:5432 is unavailable');
      },
    };
    const r = await planning({ rows: { [BINANCE]: ['2026-11-22T03:00:10.000Z'] } });
    await expect(
      startAtOldestRow({ ...r.deps, watermarks: { ...down, get: r.watermarks.get } }, tables, now),
    ).rejects.toThrow(UnavailableError);
  });
});

describe("a table's row estimate", () => {
  it("counts the first minute's rows from the cursor on, and none for a cursor at or past now", async () => {
    const { deps } = await planning({
      rows: {
        [BINANCE]: ['2026-11-22T04:00:10.000Z', '2026-11-22T04:00:40.000Z', '2026-11-22T04:02:00.000Z'],
      },
    });
    const now = new Date(NOW);
    expect(await estimateFor(deps, tableOf(BINANCE), '2026-11-22T04:00:30.000Z', now)).toEqual([
      { start: '2026-11-22T04:00:30.000Z', rows: 1 },
      { start: '2026-11-22T04:02:00.000Z', rows: 1 },
    ]);
    expect(await estimateFor(deps, tableOf(BINANCE), '2026-11-22T04:00:00.000Z', now)).toEqual([
      { start: '2026-11-22T04:00:00.000Z', rows: 2 },
      { start: '2026-11-22T04:02:00.000Z', rows: 1 },
    ]);
    expect(await estimateFor(deps, tableOf(BINANCE), NOW, now)).toBeUndefined();
    // A candle table's batches are whole buckets: it is planned without an estimate.
    const candles = defaultConfig().tables.find((t) => t.name === 'ohlcv_1m');
    if (!candles) throw new Error('no ohlcv_1m');
    const gold = await planning({ rows: { ohlcv_1m: ['2026-11-22T04:00:00.000Z'] } });
    expect(await estimateFor(gold.deps, candles, '2026-11-22T03:00:00.000Z', now)).toBeUndefined();
    expect(await estimateFor(deps, tableOf(BINANCE), undefined, now)).toBeUndefined();
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { ERROR_NAMES, shorten } from '../../src/errors.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import type { BatchSpec, CycleHandoff, Staged, TableRef } from '../../src/pipeline/events.ts';
import { readPlanObject } from '../../src/pipeline/plan-handoff.ts';
import { FAILURE_CAUSE_CHARS } from '../../src/pipeline/record-failure.ts';
import { compareKeys, openWorld, type World } from '../support/world.ts';
import { asLambda, captureMetrics, handlersOver, LambdaFailure } from './support.ts';

type Handlers = ReturnType<typeof handlersOver>;
const failureOf = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof LambdaFailure)) throw new Error(`expected a Lambda failure, got ${String(error)}`);
  return error;
};

describe('the step handlers invoked with the JSON Step Functions passes', () => {
  let world: World;
  let deps: PipelineDeps;
  let h: Handlers;
  const metrics = captureMetrics();
  const call = (name: keyof Handlers, event: unknown) => asLambda(h[name])(event);
  /** What the state machine's LoadTablePlan step reads for a table of the hand-off. */
  const batchesOf = async (ref: TableRef | undefined): Promise<BatchSpec[]> =>
    ref ? JSON.parse((await readPlanObject(deps.store, ref.plan)).Body) : [];
  beforeAll(async () => {
    world = await openWorld();
    deps = world.deps({ metrics: metrics.sink });
    h = handlersOver(deps);
    await generateTrades(world.clickhouse, {
      rows: 4_000,
      spanHours: 2,
      end: new Date(world.now.getTime() - 60_000),
      seed: 3,
    });
  });
  afterAll(() => world?.close());

  it('plan, stage, commit and watermark land one table exactly once; a retried commit changes nothing', async () => {
    const plan = (await call('planCycle', { tables: ['bronze_trades_binance'] })) as CycleHandoff;
    expect(plan.layers.map((l) => l.layer)).toEqual(['bronze']);
    const batches = await batchesOf(plan.layers[0]?.tables[0]);
    expect(batches.length).toBeGreaterThan(0);
    expect(plan.layers[0]?.tables[0]?.batchCount).toBe(batches.length);
    for (const batch of batches) {
      const staged = (await call('stageBatch', batch)) as Staged;
      const committed = await call('commitBatch', { batch, staged });
      // Step Functions retries a commit whose response was lost: the marker makes it a no-op.
      expect(await call('commitBatch', { batch, staged })).toMatchObject({ status: 'already-committed' });
      expect(await call('commitWatermark', { batch, staged, committed })).toEqual({
        result: 'advanced',
        cursor: batch.windowEnd,
        rows: staged.rows,
      });
    }
    const w = await deps.watermarks.get('bronze_trades_binance');
    expect(w?.cursor).toBe(batches.at(-1)?.windowEnd);
    expect(w?.lease).toBeNull();
    const table = deps.config.tables.find((t) => t.name === 'bronze_trades_binance');
    const diff = await compareKeys(world, deps, table!, w?.cursor as string);
    expect(diff.iceberg).toBeGreaterThan(0);
    expect([diff.missing.length, diff.duplicated.length, diff.extra.length]).toEqual([0, 0, 0]);
  });

  it('errors cross the Lambda boundary with their literal name; the failure step records them', async () => {
    expect(ERROR_NAMES).toContain('MarkerMissingError');
    const malformed = await failureOf(call('stageBatch', { table: 'bronze_trades_kraken' }));
    expect(malformed.name).toBe('ConfigError');
    expect(malformed.errorMessage).toMatch(/^StageBatch input is malformed: .*batchId/);

    const plan = (await call('planCycle', { tables: ['bronze_trades_kraken'] })) as CycleHandoff;
    const batch = (await batchesOf(plan.layers[0]?.tables[0]))[0] as BatchSpec;
    const staged = (await call('stageBatch', batch)) as Staged;
    // The watermark step without a commit before it: Iceberg has no marker, the cursor stays.
    const missing = await failureOf(call('commitWatermark', { batch, staged }));
    expect(missing.name).toBe('MarkerMissingError');
    expect(missing.errorMessage).toContain(`has no snapshot for batch ${batch.batchId}`);
    expect((await deps.watermarks.get('bronze_trades_kraken'))?.cursor).toBe(batch.windowStart);

    // What a Catch hands the failure step: the table's plan and the Lambda error, Cause as JSON.
    const recorded = await call('recordFailure', {
      table: batch.table,
      leaseToken: batch.leaseToken,
      cycleId: plan.cycleId,
      error: { Error: missing.name, Cause: missing.message },
    });
    expect(recorded).toEqual({
      table: 'bronze_trades_kraken',
      consecutiveFailures: 1,
      error: { Error: 'MarkerMissingError', Cause: shorten(missing.errorMessage, FAILURE_CAUSE_CHARS) },
    });
    const w = await deps.watermarks.get('bronze_trades_kraken');
    expect(w?.status).toBe('failed');
    expect(w?.lastError).toEqual({ name: 'MarkerMissingError', message: missing.errorMessage });
    expect(w?.lease).toBeNull();
    expect(metrics.values('errors')).toContainEqual({
      Table: 'bronze_trades_kraken',
      ErrorType: 'MarkerMissingError',
      value: 1,
    });
  });

  it('publish reports the pass; health publishes lag, watermark age, TTL headroom and failures per table', async () => {
    const summary = await call('publishCycle', {
      cycleId: 'cycle-1',
      cycleStartedAt: new Date(world.now.getTime() - 5_000).toISOString(),
      pass: 1,
      final: true,
      more: false,
      skipped: [],
      layers: [
        [
          { table: 'bronze_trades_binance', layer: 'bronze', status: 'succeeded', batches: [] },
          {
            table: 'bronze_trades_kraken',
            layer: 'bronze',
            status: 'failed',
            error: { Error: 'MarkerMissingError' },
          },
        ],
      ],
    });
    expect(summary).toMatchObject({ cycleId: 'cycle-1', status: 'partial' });
    expect(metrics.values('cycles')).toEqual([{ Status: 'partial', value: 1 }]);

    const report = (await call('health', { source: 'schedule' })) as { tables: { table: string }[] };
    expect(report.tables).toHaveLength(deps.config.tables.length);
    const lag = metrics.values('lagMinutes');
    expect(lag.map((r) => r.Table).sort()).toEqual(deps.config.tables.map((t) => t.name).sort());
    expect(metrics.values('consecutiveFailures')).toContainEqual({ Table: 'bronze_trades_kraken', value: 1 });
    const binanceLag = lag.find((r) => r.Table === 'bronze_trades_binance')?.value ?? Number.NaN;
    const silverLag = lag.find((r) => r.Table === 'silver_trades')?.value ?? Number.NaN;
    expect(binanceLag).toBeLessThan(silverLag);
    expect(
      metrics.values('ttlHeadroomHours').find((r) => r.Table === 'bronze_trades_binance')?.value,
    ).toBeGreaterThan(0);

    const bad = await failureOf(call('health', { source: 'cron' }));
    expect(bad.name).toBe('ConfigError');
    expect(bad.errorMessage).toMatch(/^Health input is malformed: source/);
  });

  it('failures in a row are counted; a long cause travels on shortened, a missing one as the error name', async () => {
    const table = 'bronze_trades_coinbase';
    const { leaseToken } = await deps.watermarks.get(table);
    const fail = (name: string, cause: string) =>
      call('recordFailure', { table, leaseToken, cycleId: 'cycle-2', error: { Error: name, Cause: cause } });
    const before = (await deps.watermarks.get(table)).consecutiveFailures;
    // Plain text (not a Lambda's JSON), longer than the cycle's state carries per table.
    const long = `the catalog refused the commit: ${'metadata conflict; '.repeat(40)}`;
    expect(long.length).toBeGreaterThan(FAILURE_CAUSE_CHARS);
    expect(await fail('CommitConflictError', long)).toEqual({
      table,
      consecutiveFailures: before + 1,
      error: { Error: 'CommitConflictError', Cause: shorten(long, FAILURE_CAUSE_CHARS) },
    });
    // The store keeps the whole message.
    expect((await deps.watermarks.get(table)).lastError).toEqual({
      name: 'CommitConflictError',
      message: long,
    });
    // A Step Functions timeout has an empty cause: its name stands for the message.
    expect(await fail('States.Timeout', '')).toEqual({
      table,
      consecutiveFailures: before + 2,
      error: { Error: 'States.Timeout', Cause: 'States.Timeout' },
    });
  });
});

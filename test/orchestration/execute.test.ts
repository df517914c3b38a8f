import { describe, expect, it } from 'vitest';
import { LeaseError, SchemaDriftError, UnavailableError } from '../../src/errors.ts';
import { STATE_NAMES } from '../../src/orchestration/asl.ts';
import type { BatchSpec } from '../../src/pipeline/events.ts';
import { definition, execute, FakeCycle, type FakeTable } from './fake-cycle.ts';

const TABLES: FakeTable[] = [
  { name: 'bronze_trades_binance', layer: 'bronze', backlog: 2 },
  { name: 'bronze_trades_kraken', layer: 'bronze', backlog: 2 },
  { name: 'bronze_trades_coinbase', layer: 'bronze', backlog: 2 },
  { name: 'silver_trades', layer: 'silver', backlog: 2 },
  { name: 'ohlcv_1m', layer: 'gold', backlog: 1 },
  { name: 'ohlcv_1h', layer: 'gold', backlog: 1 },
];

const named = (name: string, message = name) => Object.assign(new Error(message), { name });

describe('the offload cycle, executed in-process', () => {
  it('runs layers in order: no silver step before every bronze table is done, gold after silver', async () => {
    const world = new FakeCycle(TABLES);
    await execute(world, {});
    const layerOf = new Map(TABLES.map((t) => [t.name, t.layer]));
    const lastOf = (layer: string) =>
      Math.max(...world.log.filter((e) => e.table && layerOf.get(e.table) === layer).map((e) => e.seq));
    const firstOf = (layer: string) =>
      Math.min(...world.log.filter((e) => e.table && layerOf.get(e.table) === layer).map((e) => e.seq));
    expect(lastOf('bronze')).toBeLessThan(firstOf('silver'));
    expect(lastOf('silver')).toBeLessThan(firstOf('gold'));
    expect(world.entries('watermark')).toHaveLength(10);
  });

  it('runs the tables of a layer at the same time', async () => {
    const world = new FakeCycle(TABLES.filter((t) => t.layer === 'bronze'));
    // Each bronze table waits in its first stage until all three have started: only a parallel
    // execution gets past this barrier.
    const started = new Set<string>();
    let release!: () => void;
    const all = new Promise<void>((r) => {
      release = r;
    });
    // Only a sequential execution ever sees this fire; a parallel one is released at once.
    let timer: NodeJS.Timeout | undefined;
    const sequential = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('tables ran one at a time')), 30_000);
    });
    world.onStage = async (table) => {
      started.add(table);
      if (started.size === 3) release();
      await Promise.race([all, sequential]);
    };
    await execute(world, {}).finally(() => clearTimeout(timer));
    expect(world.maxInFlightPerLayer.get('bronze')).toBe(3);
    expect(world.entries('failure')).toEqual([]);
  });

  it('limits tables in flight to maxConcurrency', async () => {
    const world = new FakeCycle(TABLES.filter((t) => t.layer === 'bronze'));
    await execute(world, {}, definition({ maxConcurrency: 1 }));
    expect(world.maxInFlightPerLayer.get('bronze')).toBe(1);
  });

  it('runs the batches of a table in window order, each after the previous watermark', async () => {
    const world = new FakeCycle([{ name: 'bronze_trades_binance', layer: 'bronze', backlog: 4 }], 4);
    await execute(world, {});
    const steps = world.log.filter((e) => e.table === 'bronze_trades_binance').map((e) => e.step);
    expect(steps).toEqual(Array(4).fill(['stage', 'commit', 'watermark']).flat());
    const windows = world
      .entries('watermark')
      .map((e) => (e.detail as { batch: BatchSpec }).batch)
      .map((b) => [b.windowStart, b.windowEnd]);
    for (let i = 1; i < windows.length; i++) expect(windows[i]?.[0]).toBe(windows[i - 1]?.[1]);
  });

  it('retries retryable errors in place, then goes on', async () => {
    const world = new FakeCycle([{ name: 'bronze_trades_kraken', layer: 'bronze', backlog: 1 }]);
    world.fail(STATE_NAMES.stageBatch, 'bronze_trades_kraken', new UnavailableError('ClickHouse timed out'));
    world.fail(
      STATE_NAMES.commitBatchLambda,
      'bronze_trades_kraken',
      named('CommitConflictError'),
      named('Lambda.TooManyRequestsException'),
    );
    await execute(world, {});
    expect([...world.attempts.entries()].map(([k, n]) => [k.split(':')[0], n])).toEqual([
      ['stage', 2],
      ['commit', 3],
      ['wm', 1],
    ]);
    expect(world.entries('watermark')).toHaveLength(1);
    expect(world.entries('failure')).toEqual([]);
  });

  it('gives up after 3 retries of a retryable error and records the failure', async () => {
    const world = new FakeCycle([{ name: 'bronze_trades_kraken', layer: 'bronze', backlog: 1 }]);
    const errors = Array.from({ length: 5 }, () => new UnavailableError('Postgres is down'));
    world.fail(STATE_NAMES.commitWatermark, 'bronze_trades_kraken', ...errors);
    await execute(world, {});
    expect([...world.attempts.values()].at(-1)).toBe(4);
    expect(world.entries('failure')).toHaveLength(1);
  });

  it('does not retry errors that cannot succeed on retry', async () => {
    const world = new FakeCycle([{ name: 'bronze_trades_kraken', layer: 'bronze', backlog: 1 }]);
    world.fail(
      STATE_NAMES.stageBatch,
      'bronze_trades_kraken',
      new SchemaDriftError('column price changed type'),
    );
    await execute(world, {});
    expect([...world.attempts.values()]).toEqual([1]);
    const [failure] = world.entries('failure');
    expect(failure?.detail).toMatchObject({
      table: 'bronze_trades_kraken',
      leaseToken: '100',
      cycleId: 'cycle-1',
      error: { Error: 'SchemaDriftError', Cause: 'column price changed type' },
    });
  });

  it('one failing table does not stop the others; its later batches do not run', async () => {
    const world = new FakeCycle(TABLES, 3);
    world.fail(STATE_NAMES.commitWatermark, 'bronze_trades_binance', named('WatermarkConflictError'));
    const result = (await execute(world, {})) as { results: { table: string; status: string }[][] };
    // The in-process interpreter may start staging the next batch before it sees the failure (staging
    // is idempotent and overwritten); what matters is that nothing after the failure is committed.
    const binance = world.log
      .filter((e) => e.table === 'bronze_trades_binance' && e.step !== 'stage')
      .map((e) => e.step);
    expect(binance).toEqual(['commit', 'CommitWatermark:throw', 'failure']);
    for (const t of TABLES.filter((x) => x.name !== 'bronze_trades_binance')) {
      expect(world.entries('watermark').filter((e) => e.table === t.name)).toHaveLength(t.backlog);
    }
    const outcomes = result.results.flat();
    expect(outcomes.find((o) => o.table === 'bronze_trades_binance')).toMatchObject({
      status: 'failed',
      error: { Error: 'WatermarkConflictError' },
    });
    expect(outcomes.filter((o) => o.status === 'succeeded')).toHaveLength(5);
    expect(world.entries('publish')).toHaveLength(1);
  });

  it('a table whose plan object cannot be read fails alone and its lease is released', async () => {
    const world = new FakeCycle(TABLES.filter((t) => t.layer === 'bronze'));
    world.fail(STATE_NAMES.loadTablePlan, 'bronze_trades_kraken', named('S3.NoSuchKeyException', 'gone'));
    const result = (await execute(world, {})) as { results: { table: string; status: string }[][] };
    expect(world.entries('failure').map((e) => e.detail)).toEqual([
      expect.objectContaining({ table: 'bronze_trades_kraken', leaseToken: expect.any(String) }),
    ]);
    expect(world.log.filter((e) => e.table === 'bronze_trades_kraken').map((e) => e.step)).toEqual([
      'LoadTablePlan:throw',
      'failure',
    ]);
    expect(result.results.flat().filter((o) => o.status === 'succeeded')).toHaveLength(2);
  });

  it('a failed table reports its error shortened, and still fails alone when recording it fails', async () => {
    const world = new FakeCycle(TABLES.filter((t) => t.layer === 'bronze'));
    world.fail(STATE_NAMES.stageBatch, 'bronze_trades_binance', new SchemaDriftError('x'.repeat(50_000)));
    world.fail(STATE_NAMES.stageBatch, 'bronze_trades_kraken', new SchemaDriftError('column gone'));
    world.fail(STATE_NAMES.recordFailure, 'bronze_trades_kraken', named('Lambda.Unknown'));
    const result = (await execute(world, {})) as {
      results: { table: string; status: string; error?: { Error: string; Cause?: string } }[][];
    };
    const outcome = (table: string) => result.results.flat().find((o) => o.table === table);
    expect(outcome('bronze_trades_binance')).toMatchObject({
      status: 'failed',
      error: { Error: 'SchemaDriftError' },
    });
    expect(outcome('bronze_trades_binance')?.error?.Cause).toHaveLength(300);
    expect(outcome('bronze_trades_kraken')).toMatchObject({
      status: 'failed',
      error: { Error: 'SchemaDriftError' },
    });
    expect(outcome('bronze_trades_coinbase')).toMatchObject({ status: 'succeeded' });
    expect(world.entries('publish')).toHaveLength(1);
  });

  it('loops back to the planner while more remains, with the same selection, the cycle id and its start', async () => {
    const world = new FakeCycle(
      TABLES.slice(0, 2).map((t) => ({ ...t, backlog: 5 })),
      2,
    );
    const until = '2026-11-22T06:00:00.000Z';
    const cycleStartedAt = '2026-11-22T00:00:00.000Z'; // the fake planner's start, carried to every pass
    await execute(world, { tables: ['bronze_trades_binance', 'bronze_trades_kraken'], until });
    expect(world.planCalls).toBe(3);
    expect(world.entries('plan').map((e) => e.detail)).toEqual([
      { tables: ['bronze_trades_binance', 'bronze_trades_kraken'], until },
      {
        tables: ['bronze_trades_binance', 'bronze_trades_kraken'],
        until,
        cycleId: 'cycle-1',
        cycleStartedAt,
      },
      {
        tables: ['bronze_trades_binance', 'bronze_trades_kraken'],
        until,
        cycleId: 'cycle-1',
        cycleStartedAt,
      },
    ]);
    expect(world.entries('watermark')).toHaveLength(10);
    expect(world.entries('publish').map((e) => (e.detail as { pass: number; final: boolean }).final)).toEqual(
      [false, false, true],
    );
  });

  it('stops looping after maxPasses even if the planner keeps asking for more', async () => {
    const world = new FakeCycle([{ name: 'bronze_trades_kraken', layer: 'bronze', backlog: 1 }], 1, true);
    await execute(world, {}, definition({ maxPasses: 3 }));
    expect(world.planCalls).toBe(3);
  });

  it('fails fast on malformed input, with the planner error name, before any table runs', async () => {
    const world = new FakeCycle(TABLES);
    const error = await execute(world, { bogus: true }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error & { cause?: Error }).cause?.name).toBe('ConfigError');
    expect(world.log.map((e) => e.step)).toEqual(['plan']);
  });

  it('commits emr tables through the Spark job with the batch spec and a deterministic token', async () => {
    const world = new FakeCycle([{ name: 'silver_trades', layer: 'silver', backlog: 1, committer: 'emr' }]);
    await execute(world, {});
    const [emr] = world.entries('emr');
    const request = emr?.detail as {
      ClientToken: string;
      Name: string;
      JobDriver: { SparkSubmit: { EntryPoint: string; EntryPointArguments: string[] } };
    };
    const [watermark] = world.entries('watermark');
    const batch = (watermark?.detail as { batch: BatchSpec } | undefined)?.batch as BatchSpec;
    expect(request.ClientToken).toBe(`${batch.batchId}-${batch.leaseToken}`);
    expect(request.JobDriver.SparkSubmit.EntryPoint).toBe('s3://warehouse/jobs/commit_batch.py');
    expect(request.JobDriver.SparkSubmit.EntryPointArguments[0]).toBe('--batch');
    expect(JSON.parse(request.JobDriver.SparkSubmit.EntryPointArguments[1] ?? '')).toEqual(batch);
    expect(world.entries('commit')).toEqual([]);
    expect(watermark?.detail).toMatchObject({ batch, staged: { rows: 10 } });
    expect(watermark?.detail).not.toHaveProperty('committed');
  });

  it('extends the lease on every poll while the Spark job runs, then commits the watermark', async () => {
    const world = new FakeCycle([{ name: 'silver_trades', layer: 'silver', backlog: 1, committer: 'emr' }]);
    world.jobStates.set('silver_trades', ['SUBMITTED', 'RUNNING', 'RUNNING']);
    await execute(world, {});
    const steps = world.log.filter((e) => e.table === 'silver_trades').map((e) => e.step);
    expect(steps).toEqual(['stage', 'emr', ...Array(4).fill(['heartbeat', 'poll']).flat(), 'watermark']);
    const [beat] = world.entries('heartbeat');
    const [watermark] = world.entries('watermark');
    const batch = (watermark?.detail as { batch: BatchSpec } | undefined)?.batch;
    expect(beat?.detail).toEqual({ table: 'silver_trades', leaseToken: batch?.leaseToken });
  });

  it('a failed Spark job fails its table alone, without a watermark step', async () => {
    const world = new FakeCycle([
      { name: 'silver_trades', layer: 'silver', backlog: 1, committer: 'emr' },
      { name: 'silver_quotes', layer: 'silver', backlog: 1 },
    ]);
    world.jobStates.set('silver_trades', ['RUNNING', 'FAILED']);
    const result = (await execute(world, {})) as {
      results: { table: string; status: string; error?: { Error: string } }[][];
    };
    expect(world.entries('watermark').map((e) => e.table)).toEqual(['silver_quotes']);
    expect(result.results.flat().find((o) => o.table === 'silver_trades')).toMatchObject({
      status: 'failed',
      error: { Error: 'EmrJobFailed' },
    });
  });

  it('a lease taken over while the job runs stops the table before its watermark step', async () => {
    const world = new FakeCycle([{ name: 'silver_trades', layer: 'silver', backlog: 1, committer: 'emr' }]);
    world.jobStates.set('silver_trades', ['RUNNING', 'RUNNING']);
    world.fail(
      STATE_NAMES.extendLease,
      'silver_trades',
      new LeaseError('lease token 100 is no longer current'),
    );
    await execute(world, {});
    expect(world.entries('watermark')).toEqual([]);
    expect(world.entries('failure').map((e) => e.detail)).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ Error: 'LeaseError' }) }),
    ]);
  });
});

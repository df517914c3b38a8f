import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import {
  buildStateMachineDefinition,
  placeholderFunctionArns,
  STATE_NAMES,
} from '../../src/orchestration/asl.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { compareKeys, exact, mismatches, openWorld, type World } from '../support/world.ts';
import { captureMetrics, execute, LambdaFailure } from './support.ts';

/** The definition CDK deploys (placeholder ARNs: every task is bound to its handler by state name). */
const definition = buildStateMachineDefinition({
  functions: placeholderFunctionArns(),
  maxConcurrency: 4,
  emr: {
    applicationId: 'app',
    executionRoleArn: 'arn:aws:iam::123456789012:role/k2-emr',
    entryPoint: 's3://k2-warehouse/jobs/commit_batch.py',
    sparkSubmitParameters: '',
  },
});

const EMR_TABLE = 'bronze_trades_kraken';
const config = (): OffloadConfig => {
  const base = defaultConfig();
  return { tables: base.tables.map((t) => (t.name === EMR_TABLE ? { ...t, committer: 'emr' as const } : t)) };
};

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('the offload state machine with every task bound to its Lambda handler', () => {
  let world: World;
  let deps: PipelineDeps;
  const metrics = captureMetrics();
  beforeAll(async () => {
    world = await openWorld({ config: config() });
    deps = world.deps({ metrics: metrics.sink });
    await generateTrades(world.clickhouse, {
      rows: 20_000,
      spanHours: 3,
      end: new Date(world.now.getTime() - 60_000),
      lateFraction: 0.05,
      seed: 11,
    });
  });
  afterAll(() => world?.close());

  it.each([
    [
      'an unknown table',
      { tables: ['bronze_trades_binance', 'bronze_trades_nasdaq'] },
      'InputError',
      /unknown table "bronze_trades_nasdaq"; configured tables: bronze_trades_binance, /,
    ],
    [
      'a future until',
      { until: '2099-01-01T00:00:00Z' },
      'InputError',
      /until .* is in the future \(now .*\); .*give an instant in the past or omit it/,
    ],
    [
      'an unknown key',
      { tables: ['silver_trades'], untill: '2026-01-01T00:00:00Z' },
      'ConfigError',
      /execution input \(input\): Unrecognized key.*untill.*expected \{"tables"\?/,
    ],
    ['a malformed until', { until: 'yesterday' }, 'ConfigError', /execution input until: .*expected/],
  ])('%s fails the execution at PlanCycle, named, once, writing nothing', async (_, input, name, message) => {
    const before = await deps.watermarks.list();
    const run = await execute(definition, deps, input);
    expect(run.calls).toEqual([STATE_NAMES.planCycle]);
    expect(run.error).toBeInstanceOf(LambdaFailure);
    const failure = run.error as LambdaFailure;
    expect(failure.name).toBe(name);
    expect(failure.errorMessage).toMatch(message);
    expect(await deps.watermarks.list()).toEqual(before);
    expect(before).toEqual([]);
    for (const table of deps.config.tables)
      expect(await deps.catalog.currentMetadataLocation(table.target), table.name).toBeUndefined();
    expect(await filesUnder(join(world.dir, 'warehouse'))).toEqual([]);
  });

  it('a full cycle lands every table in Iceberg, each key once, and advances every watermark', async () => {
    const run = await execute(definition, deps, {});
    expect(run.error).toBeUndefined();
    // Kraken's batches went through the EMR task, the others through the in-Lambda committer.
    expect(run.calls).toContain(STATE_NAMES.commitBatchEmr);
    expect(run.calls).toContain(STATE_NAMES.commitBatchLambda);
    expect(run.calls).not.toContain(STATE_NAMES.recordFailure);
    for (const table of deps.config.tables) {
      const w = await deps.watermarks.get(table.name);
      expect(w?.status, table.name).toBe('ok');
      expect(Date.parse(w?.cursor as string), table.name).toBeGreaterThan(Date.parse(table.initialCursor));
      expect(w?.lease, table.name).toBeNull();
      const diff = await compareKeys(world, deps, table, w?.cursor as string);
      expect(mismatches(table.name, diff)).toEqual(exact(table.name));
      if (table.layer !== 'gold') expect(diff.iceberg, table.name).toBeGreaterThan(0);
    }
    // PublishCycle reported the cycle, by status, as the alarms read it.
    expect(metrics.values('cycles')).toEqual([{ Status: 'succeeded', value: 1 }]);
    const kraken = metrics.values('rows').filter((r) => r.Table === EMR_TABLE);
    expect(kraken.reduce((n, r) => n + (r.value ?? 0), 0)).toBeGreaterThan(0);
  });
});

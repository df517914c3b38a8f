import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/load.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import type { BatchSpec, Staged } from '../../src/pipeline/events.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import { commitLikeEmr, localEmrJobRun } from '../../src/pipeline/local-runner.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';

/**
 * Where EMR is not there (the local cycle), its Spark job is done by our committer: the state machine
 * hands it the same `--batch` and `--staged` arguments it gives EMR, so what a local run proves of the
 * EMR path rests on reading those arguments as the job does.
 */
const TABLE = 'bronze_trades_binance';
const batch: BatchSpec = {
  cycleId: 'cycle-1',
  table: TABLE,
  layer: 'bronze',
  batchId: 'e'.repeat(32),
  windowStart: '2026-11-22T00:00:00.000Z',
  windowEnd: '2026-11-22T01:00:00.000Z',
  leaseToken: '1',
  committer: 'emr',
  target: { namespace: 'cold', name: TABLE },
  stagingPrefix: `s3://lake/warehouse/cold/${TABLE}/data/${'e'.repeat(32)}/`,
  lastOfTable: true,
};
const nothingStaged: Staged = { rows: 0, files: [], durationMs: 3 };

const deps = {
  config: defaultConfig(),
  clickhouse: {} as ClickHouseClient,
  watermarks: createMemoryWatermarkStore(),
  catalog: new MemoryCatalog(),
  store: new MemoryObjectStore(),
  warehouse: 's3://lake/warehouse',
  clock: () => new Date('2026-11-22T02:00:00.000Z'),
  leaseSeconds: 900,
  faults: NO_FAULTS,
  metrics: () => {},
  log: () => {},
} satisfies PipelineDeps;

/** The StartJobRun request the state machine builds: the job's arguments as name, value pairs. */
const jobRun = (args: string[]) => ({ JobDriver: { SparkSubmit: { EntryPointArguments: args } } });

describe("EMR's job, done locally by our committer", () => {
  it('commits the batch its arguments name, in any order, and names the run after the batch', async () => {
    const args = ['--staged', JSON.stringify(nothingStaged), '--batch', JSON.stringify(batch)];
    expect(await commitLikeEmr(deps, jobRun(args))).toEqual({ JobRunId: `local-${batch.batchId}` });
    const batchFirst = ['--batch', JSON.stringify(batch), '--staged', JSON.stringify(nothingStaged)];
    expect(await commitLikeEmr(deps, jobRun(batchFirst))).toEqual({
      JobRunId: `local-${batch.batchId}`,
    });
  });

  it('refuses a request without its batch or its staged files, saying which argument', async () => {
    await expect(commitLikeEmr(deps, jobRun(['--staged', JSON.stringify(nothingStaged)]))).rejects.toThrow(
      'EMR job --batch argument is malformed: (root): Invalid input: expected object, received undefined',
    );
    await expect(commitLikeEmr(deps, jobRun(['--batch', JSON.stringify(batch)]))).rejects.toThrow(
      /^EMR job --staged argument/,
    );
    await expect(commitLikeEmr(deps, {})).rejects.toThrow(/^EMR job --batch argument/);
    // An argument that is not JSON is named too, not a parser's complaint.
    const garbled = ['--batch', '{"cycleId"', '--staged', JSON.stringify(nothingStaged)];
    await expect(commitLikeEmr(deps, jobRun(garbled))).rejects.toThrow(
      'EMR job --batch argument is malformed: (root): Invalid input: expected object, received string',
    );
  });

  it('refuses a batch whose staged rows are not a count, before committing anything', async () => {
    const args = [
      '--batch',
      JSON.stringify(batch),
      '--staged',
      JSON.stringify({ ...nothingStaged, rows: -1 }),
    ];
    await expect(commitLikeEmr(deps, jobRun(args))).rejects.toThrow(/^EMR job --staged argument/);
  });

  it('a polled run has already ended, successfully', async () => {
    expect(await localEmrJobRun()).toEqual({ JobRun: { State: 'SUCCESS' } });
  });
});

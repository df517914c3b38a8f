import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { openClickHouse, queryRows } from '../../src/clickhouse/client.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import type { BatchSpec } from '../../src/pipeline/events.ts';
import { makeBatch } from '../../src/plan/batch.ts';

/** A chDB engine in a fresh temp dir: one per test file (one chDB data dir per process). */
export async function openTestClickHouse(name: string) {
  const dir = await mkdtemp(join(tmpdir(), `k2-${name}-`));
  const client = openClickHouse({ dataDir: join(dir, 'chdb') });
  return {
    client,
    dir,
    close: async () => {
      await client.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let attempts = 0;

/** A batch whose staging prefix is a fresh attempt folder (`t1-<n>/`), as StageBatch gives each attempt. */
export function batchSpec(
  table: TableConfig,
  windowStart: string,
  windowEnd: string,
  stagingRoot: string,
): BatchSpec {
  const batch = makeBatch(table.name, windowStart, windowEnd);
  return {
    cycleId: 'test-cycle',
    table: table.name,
    layer: table.layer,
    batchId: batch.batchId,
    windowStart: batch.windowStart,
    windowEnd: batch.windowEnd,
    leaseToken: '1',
    committer: 'lambda',
    target: table.target,
    stagingPrefix: `${pathToFileURL(stagingRoot).href}/${table.name}/${batch.batchId}/t1-${++attempts}/`,
    lastOfTable: true,
  };
}

/** Reads staged Parquet back through ClickHouse's own Parquet reader (an implementation we did not write). */
export function readParquet<T = Record<string, unknown>>(
  client: ClickHouseClient,
  uris: string[],
  select: string,
  tail = '',
): Promise<T[]> {
  const paths = uris.map((u) => new URL(u).pathname);
  const sources = paths.map((p) => `SELECT ${select} FROM file('${p}', 'Parquet') ${tail}`);
  return queryRows<T>(client, sources.join(' UNION ALL '));
}

import { assertNoDrift } from '../clickhouse/inspect.ts';
import { tableByName } from '../config/load.ts';
import { findMarker, loadTable } from '../iceberg/table.ts';
import { stageBatch as stageToParquet } from '../stage/stage.ts';
import type { PipelineDeps } from './deps.ts';
import { type BatchSpec, batchSpecSchema, type Staged } from './events.ts';
import { InjectedCrash } from './faults.ts';
import { parseEvent } from './parse.ts';
import { targetOf } from './plan-cycle.ts';

/**
 * Step 3: the window's rows as Parquet at the batch's deterministic staging keys (a retry overwrites).
 * A batch Iceberg already holds is not staged again: its files are the table's data files now, and
 * rewriting them in place could change the bytes its manifests describe.
 */
export async function stageBatch(deps: PipelineDeps, raw: unknown): Promise<Staged> {
  const batch: BatchSpec = parseEvent(batchSpecSchema, raw, 'StageBatch input');
  const table = tableByName(deps.config, batch.table);
  const { metadata } = await loadTable(deps, targetOf(table));
  const committed = findMarker(metadata, batch.batchId);
  if (committed) return { rows: committed.rows, files: [], durationMs: 0 };

  await assertNoDrift(deps.clickhouse, table);
  const staged = await stageToParquet(table, batch, {
    client: deps.clickhouse,
    s3: deps.s3,
    objects: deps.store,
  });
  try {
    deps.faults.hit('mid-stage', { table: batch.table, batchId: batch.batchId });
  } catch (crash) {
    // A crash part-way through staging leaves some files missing: take one away before dying.
    const last = staged.files.at(-1);
    if (crash instanceof InjectedCrash && last) await deps.store.delete(last.uri);
    throw crash;
  }
  deps.faults.hit('after-stage', { table: batch.table, batchId: batch.batchId });
  return staged;
}

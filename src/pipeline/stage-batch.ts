import { assertNoDrift } from '../clickhouse/drift.ts';
import { tableByName } from '../config/load.ts';
import { findMarker, loadTable } from '../iceberg/table.ts';
import { attemptPrefix, newAttemptNonce } from '../stage/attempt.ts';
import { stageBatch as stageToParquet } from '../stage/stage.ts';
import type { PipelineDeps } from './deps.ts';
import { type BatchSpec, batchSpecSchema, type Staged } from './events.ts';
import { assertTableAtConfig } from './evolve-table.ts';
import { InjectedCrash } from './faults.ts';
import { assertLeaseHeld } from './lease.ts';
import { parseEvent } from './parse.ts';
import { targetOf } from './plan-cycle.ts';

/**
 * Step 3: the window's rows as Parquet in a folder of this invocation's own below the batch's folder
 * (`t<lease token>-<nonce>/`), checked against the lease just before the first write. No file is ever
 * deleted or replaced: a stalled or timed-out invocation that resumes writes only files no snapshot
 * refers to (orphan removal collects them), and the commit takes only one attempt of the current lease.
 * A batch Iceberg already holds is not staged again.
 */
export async function stageBatch(deps: PipelineDeps, raw: unknown): Promise<Staged> {
  const batch: BatchSpec = parseEvent(batchSpecSchema, raw, 'StageBatch input');
  const table = tableByName(deps.config, batch.table);
  const { metadata } = await loadTable(deps, targetOf(table));
  const committed = findMarker(metadata, batch.batchId);
  // Its hours come from the marker, so the watermark step records the ledger entry all the same.
  if (committed) return { rows: committed.rows, files: [], durationMs: 0, hours: committed.hours };

  assertTableAtConfig(table, metadata);
  await assertNoDrift(deps.clickhouse, table);
  const s3Writer = deps.s3?.staging?.writer === 'clickhouse' ? deps.s3.staging : undefined;
  const prefix = attemptPrefix(batch.stagingPrefix, batch.leaseToken, (deps.nonce ?? newAttemptNonce)());
  const staged = await stageToParquet(
    table,
    { ...batch, stagingPrefix: prefix },
    {
      client: deps.clickhouse,
      s3: deps.s3 && { ...deps.s3, namedCollection: s3Writer?.namedCollection },
      objects: deps.store,
      writer: s3Writer && batch.stagingPrefix.startsWith('s3://') ? 'clickhouse' : undefined,
      beforeWrite: () => assertLeaseHeld(deps.watermarks, batch.table, batch.leaseToken),
    },
  );
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

import { z } from 'zod';
import { tableByName } from '../config/load.ts';
import { UnavailableError, WatermarkConflictError } from '../errors.ts';
import { identString } from '../iceberg/catalog.ts';
import { fastAppend } from '../iceberg/commit.ts';
import type { TableMetadata } from '../iceberg/metadata.ts';
import { newestMarker } from '../iceberg/table.ts';
import { assertAttemptFiles, batchFolder } from '../stage/attempt.ts';
import { icebergDeps, type PipelineDeps } from './deps.ts';
import { type BatchSpec, batchSpecSchema, type Committed, stagedSchema } from './events.ts';
import { assertLeaseHeld } from './lease.ts';
import { parseEvent } from './parse.ts';
import { targetOf } from './plan-cycle.ts';

export const commitBatchInputSchema = z.object({ batch: batchSpecSchema, staged: stagedSchema });

/**
 * Refuses a window that overlaps what Iceberg already holds: the newest marker must end at or before
 * this window's start. Together with the batch id check this makes a duplicate append impossible, even
 * for a holder whose lease was taken over while it ran.
 */
export function requireNoOverlap(batch: BatchSpec) {
  return (metadata: TableMetadata) => {
    const newest = newestMarker(metadata);
    if (newest && Date.parse(newest.windowEnd) > Date.parse(batch.windowStart))
      throw new WatermarkConflictError(
        `Iceberg ${identString(batch.target)} already holds rows up to ${newest.windowEnd} (batch ${newest.batchId}), after this batch's start ${batch.windowStart}; the next cycle re-plans from there`,
        {
          table: batch.table,
          batchId: batch.batchId,
          newestBatch: newest.batchId,
          newestEnd: newest.windowEnd,
        },
      );
  };
}

/** Step 4 (our TypeScript committer): append the staged files in one Iceberg commit carrying the marker. */
export async function commitBatch(deps: PipelineDeps, raw: unknown): Promise<Committed> {
  const { batch, staged } = parseEvent(commitBatchInputSchema, raw, 'CommitBatch input');
  tableByName(deps.config, batch.table);
  if (staged.rows === 0) return { status: 'empty', rows: 0 };
  await assertLeaseHeld(deps.watermarks, batch.table, batch.leaseToken);
  const result = await fastAppend(icebergDeps(deps), {
    table: targetOf(tableByName(deps.config, batch.table)),
    marker: {
      batchId: batch.batchId,
      table: batch.table,
      windowStart: batch.windowStart,
      windowEnd: batch.windowEnd,
      rows: staged.rows,
      hours: staged.hours,
    },
    files: staged.files.map((f) => f.uri),
    require: (metadata) => {
      requireNoOverlap(batch)(metadata);
      // Only one attempt of this lease, in this table's own folder for the batch: never a stalled
      // holder's files, whatever the event says.
      assertAttemptFiles(
        batch,
        batchFolder(metadata.location, batch.batchId),
        staged.files.map((f) => f.uri),
      );
    },
    beforeMetadataCommit: () =>
      deps.faults.hit('after-data-files', { table: batch.table, batchId: batch.batchId }),
  });
  deps.faults.hit('after-iceberg-commit', { table: batch.table, batchId: batch.batchId });
  try {
    deps.faults.hit('lost-commit-response', { table: batch.table, batchId: batch.batchId });
  } catch (lost) {
    // The commit is in Iceberg, but the caller hears only a timeout: the step is retried.
    throw new UnavailableError(
      `commit response for batch ${batch.batchId} was lost`,
      { table: batch.table },
      { cause: lost },
    );
  }
  return { status: result.status, snapshotId: result.marker.snapshotId.toString(), rows: result.marker.rows };
}

import type { PipelineDeps } from '../pipeline/deps.ts';
import type { BatchSpec, Staged } from '../pipeline/events.ts';

/**
 * At the watermark commit, once the marker is verified in Iceberg: the rows the batch committed per
 * hour of the cursor, from the stager's own histogram (no Iceberg scan). Recorded before the cursor
 * moves, so a crash in between leaves a ledger entry for a batch Iceberg holds (a replay records
 * nothing new). A batch staged without hours (one Iceberg already held when it was staged, or a
 * reconciled one) leaves its window out of the ledger: the per-hour check then skips those hours.
 */
export async function recordBatchHours(deps: PipelineDeps, batch: BatchSpec, staged: Staged): Promise<void> {
  if (!staged.hours) return;
  await deps.watermarks.recordHours({
    table: batch.table,
    batchId: batch.batchId,
    kind: 'offload',
    windowStart: batch.windowStart,
    windowEnd: batch.windowEnd,
    hours: staged.hours,
  });
}

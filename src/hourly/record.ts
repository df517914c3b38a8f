import type { FoundMarker } from '../iceberg/table.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import type { HourCount } from '../watermark/hourly-types.ts';

type Window = { table: string; batchId: string; windowStart: string; windowEnd: string };

/**
 * At the watermark commit, once the marker is verified in Iceberg: the rows the batch committed per
 * hour of the cursor, from the stager's own histogram (for a batch Iceberg already held when it was
 * staged, the hours its marker carries; no Iceberg scan either way). Recorded before the cursor
 * moves, so a crash in between leaves a ledger entry for a batch Iceberg holds (a replay records
 * nothing new). A batch with no hours known (committed before markers carried them) leaves its window
 * out of the ledger: the per-hour check then skips those hours.
 */
export async function recordBatchHours(
  deps: PipelineDeps,
  batch: Window,
  hours: HourCount[] | undefined,
): Promise<void> {
  if (!hours) return;
  await deps.watermarks.recordHours({
    table: batch.table,
    batchId: batch.batchId,
    kind: 'offload',
    windowStart: batch.windowStart,
    windowEnd: batch.windowEnd,
    hours,
  });
}

/**
 * When the plan reconciles the watermark forward to what Iceberg holds (the watermark step of those
 * batches never ran: a crash after the Iceberg commit, a takeover), the ledger entries that step would
 * have written come from the markers themselves, so the hours they cover stay checked.
 */
export async function recordReconciledHours(deps: PipelineDeps, markers: FoundMarker[]): Promise<void> {
  for (const marker of markers) await recordBatchHours(deps, marker, marker.hours);
}

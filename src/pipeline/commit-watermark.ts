import { z } from 'zod';
import { tableByName } from '../config/load.ts';
import { MarkerMissingError } from '../errors.ts';
import { recordBatchHours } from '../hourly/record.ts';
import { identString } from '../iceberg/catalog.ts';
import { findMarker, loadTable } from '../iceberg/table.ts';
import type { PipelineDeps } from './deps.ts';
import { batchSpecSchema, committedSchema, stagedSchema } from './events.ts';
import { parseEvent } from './parse.ts';
import { targetOf } from './plan-cycle.ts';

export const commitWatermarkInputSchema = z.object({
  batch: batchSpecSchema,
  staged: stagedSchema,
  // Absent after the EMR job: the marker in Iceberg is checked either way.
  committed: committedSchema.optional(),
});

export type WatermarkCommitted = { result: 'advanced' | 'replayed'; cursor: string; rows: number };

/**
 * Step 5: verify Iceberg holds this batch's marker with the staged row count, then move the watermark
 * by compare-and-set from windowStart to windowEnd under the lease. Only then is the batch done.
 */
export async function commitWatermark(deps: PipelineDeps, raw: unknown): Promise<WatermarkCommitted> {
  const { batch, staged } = parseEvent(commitWatermarkInputSchema, raw, 'CommitWatermark input');
  const table = tableByName(deps.config, batch.table);
  const started = deps.clock().getTime();
  if (staged.rows > 0) {
    const ident = targetOf(table);
    const { metadata } = await loadTable(deps, ident);
    const marker = findMarker(metadata, batch.batchId);
    if (!marker || marker.rows !== staged.rows)
      throw new MarkerMissingError(
        marker
          ? `Iceberg ${identString(ident)} has batch ${batch.batchId} with ${marker.rows} rows, but ${staged.rows} were staged; the watermark stays at ${batch.windowStart}`
          : `Iceberg ${identString(ident)} has no snapshot for batch ${batch.batchId}; the commit did not happen, the watermark stays at ${batch.windowStart} and the next cycle retries`,
        { table: batch.table, batchId: batch.batchId, stagedRows: staged.rows, markerRows: marker?.rows },
      );
  }
  await recordBatchHours(deps, batch, staged.hours);
  deps.faults.hit('during-watermark', { table: batch.table, batchId: batch.batchId });
  const { result } = await deps.watermarks.advance({
    table: batch.table,
    batchId: batch.batchId,
    windowStart: batch.windowStart,
    windowEnd: batch.windowEnd,
    leaseToken: batch.leaseToken,
    rows: staged.rows,
    files: staged.files.length,
    bytes: staged.files.reduce((n, f) => n + f.bytes, 0),
    durationMs: staged.durationMs + (deps.clock().getTime() - started),
    outcome: 'committed',
  });
  deps.faults.hit('after-watermark', { table: batch.table, batchId: batch.batchId });
  if (batch.lastOfTable) await deps.watermarks.releaseLease(batch.table, batch.leaseToken);
  return { result, cursor: batch.windowEnd, rows: staged.rows };
}

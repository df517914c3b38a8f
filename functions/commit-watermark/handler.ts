import {
  commitWatermark,
  commitWatermarkInputSchema,
  type WatermarkCommitted,
} from '../../src/pipeline/commit-watermark.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';

/**
 * CommitWatermark: `{batch, staged, committed?}` in (no `committed` after the EMR job); verifies the
 * marker in Iceberg, then moves the watermark by compare-and-set under the lease.
 */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<WatermarkCommitted> => {
    const input = parseEvent(commitWatermarkInputSchema, event, 'CommitWatermark input');
    return commitWatermark(await deps(), input);
  };
}

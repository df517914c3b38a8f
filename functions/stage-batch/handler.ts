import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { batchSpecSchema, type Staged } from '../../src/pipeline/events.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';
import { stageBatch } from '../../src/pipeline/stage-batch.ts';

/** StageBatch: one batch spec in, its staged Parquet files (uri, bytes) and row count out. */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<Staged> => {
    const batch = parseEvent(batchSpecSchema, event, 'StageBatch input');
    return stageBatch(await deps(), batch);
  };
}

import { commitBatch, commitBatchInputSchema } from '../../src/pipeline/commit-batch.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import type { Committed } from '../../src/pipeline/events.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';

/**
 * CommitBatchLambda: the in-Lambda committer (tables configured with `committer: "lambda"`). `{batch,
 * staged}` in; one Iceberg append carrying the batch marker, or the existing one on a retry, out.
 */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<Committed> => {
    const input = parseEvent(commitBatchInputSchema, event, 'CommitBatch input');
    return commitBatch(await deps(), input);
  };
}

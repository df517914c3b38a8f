import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { failureSchema } from '../../src/pipeline/events.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';
import { recordFailure } from '../../src/pipeline/record-failure.ts';

/**
 * RecordFailure, the Catch target of a table: `{table, leaseToken, cycleId, error: {Error, Cause}}` in;
 * the failure counted, the error kept, the lease released; the table's consecutive failures out.
 */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<{ table: string; consecutiveFailures: number }> => {
    const failure = parseEvent(failureSchema, event, 'RecordFailure input');
    return recordFailure(await deps(), failure);
  };
}

import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { heartbeatSchema } from '../../src/pipeline/events.ts';
import { extendLease } from '../../src/pipeline/extend-lease.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';

/**
 * ExtendLease: `{table, leaseToken}` in, every poll of a running Spark commit job; the table's lease
 * extended by the stage's lease lifetime, or a LeaseError when another cycle holds the table now.
 */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<{ expiresAt: string }> => {
    const beat = parseEvent(heartbeatSchema, event, 'ExtendLease input');
    return extendLease(await deps(), beat);
  };
}

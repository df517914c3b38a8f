import { shorten } from '../errors.ts';
import type { PipelineDeps } from './deps.ts';
import { failureSchema } from './events.ts';
import { parseEvent } from './parse.ts';

/**
 * How much of a failure's message travels on to PublishCycle in Step Functions state (bounded, one per
 * failed table); the whole of it is in the watermark store.
 */
export const FAILURE_CAUSE_CHARS = 300;

/** Step Functions' Catch target: count the failure, keep the error, release the lease; others go on. */
export async function recordFailure(deps: PipelineDeps, raw: unknown) {
  const failure = parseEvent(failureSchema, raw, 'RecordFailure input');
  const message = causeMessage(failure.error.Cause) ?? failure.error.Error;
  // Recording the failure gives the lease back too, if this token still holds it (the store's contract).
  const recorded = await deps.watermarks.recordFailure({
    table: failure.table,
    leaseToken: failure.leaseToken,
    error: { name: failure.error.Error, message },
    durationMs: 0,
  });
  deps.metrics([
    {
      timestamp: deps.clock().getTime(),
      dimensions: { Table: failure.table, ErrorType: failure.error.Error },
      values: { errors: 1 },
      properties: { cycleId: failure.cycleId, message: shorten(message, 500) },
    },
  ]);
  deps.log({ event: 'table-failed', table: failure.table, error: failure.error.Error, message });
  // The error travels on in the cycle's state for every failed table: its message, shortened.
  return {
    table: failure.table,
    consecutiveFailures: recorded.consecutiveFailures,
    error: { Error: failure.error.Error, Cause: shorten(message, FAILURE_CAUSE_CHARS) },
  };
}

/** Lambda puts `{"errorMessage": ...}` JSON in Cause; other sources put plain text. */
function causeMessage(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    return typeof parsed.errorMessage === 'string' ? parsed.errorMessage : cause;
  } catch {
    return cause;
  }
}

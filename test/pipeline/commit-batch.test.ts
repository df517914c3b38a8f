import { describe, expect, it } from 'vitest';
import { WatermarkConflictError } from '../../src/errors.ts';
import { requireNoOverlap } from '../../src/pipeline/commit-batch.ts';
import type { BatchSpec } from '../../src/pipeline/events.ts';
import { at, LOCATION, TABLE, withBatches } from './marker-chain.ts';

/**
 * The commit's overlap requirement on in-memory metadata: a window that starts before what Iceberg
 * already holds would put rows in twice, so it is refused with what the operator needs to know.
 */
const batch = (start: number, end: number): BatchSpec => ({
  cycleId: 'cycle-1',
  table: TABLE,
  layer: 'bronze',
  batchId: 'a'.repeat(32),
  windowStart: at(start),
  windowEnd: at(end),
  leaseToken: '7',
  committer: 'lambda',
  target: { namespace: 'cold', name: TABLE },
  stagingPrefix: `${LOCATION}/data/${'a'.repeat(32)}/`,
  lastOfTable: true,
});

const refusal = (b: BatchSpec, windows: Parameters<typeof withBatches>[0]) => {
  try {
    requireNoOverlap(b)(withBatches(windows));
  } catch (error) {
    return error as WatermarkConflictError;
  }
  return undefined;
};

describe('overlap requirement of a commit', () => {
  it('lets a window start where Iceberg ends, or into a table without markers', () => {
    expect(
      refusal(batch(2, 3), [
        ['b1', 0, 1],
        ['b2', 1, 2],
      ]),
    ).toBeUndefined();
    expect(refusal(batch(2, 3), [])).toBeUndefined();
  });

  it('refuses a window starting before the newest marker ends, naming both and what happens next', () => {
    const error = refusal(batch(1, 3), [
      ['b1', 0, 1],
      ['b2', 1, 2],
    ]);
    expect(error).toBeInstanceOf(WatermarkConflictError);
    expect(error?.message).toBe(
      `Iceberg cold.${TABLE} already holds rows up to ${at(2)} (batch b2), after this batch's start ${at(1)}; the next cycle re-plans from there`,
    );
    expect(error?.details).toEqual({
      table: TABLE,
      batchId: 'a'.repeat(32),
      newestBatch: 'b2',
      newestEnd: at(2),
    });
  });
});

import { describe, expect, it } from 'vitest';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { FAILURE_CAUSE_CHARS, recordFailure } from '../../src/pipeline/record-failure.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import { fakeClock } from '../watermark/fake-clock.ts';

/**
 * Step Functions' Catch target for a failed table: the failure is counted (health turns red on the
 * third), its message kept, the lease given back, a metric and a log line published, and the error
 * travels on to PublishCycle, shortened. Run in this process, as the handler runs it.
 */
async function failing() {
  const clock = fakeClock();
  const watermarks = createMemoryWatermarkStore({ clock: clock.now });
  await watermarks.ensureTables([{ table: 'silver_trades', initialCursor: '2026-11-22T00:00:00.000Z' }]);
  const lease = await watermarks.acquireLease('silver_trades', 'cycle-a', 900);
  if (!lease.acquired) throw new Error('lease not acquired');
  const metrics: EmfRecord[] = [];
  const logged: unknown[] = [];
  const deps = {
    watermarks,
    clock: clock.now,
    metrics: (r: EmfRecord[]) => metrics.push(...r),
    log: (e: unknown) => logged.push(e),
  } as unknown as PipelineDeps;
  const fail = (error: { Error: string; Cause?: string }) =>
    recordFailure(deps, { table: 'silver_trades', leaseToken: lease.token, cycleId: 'cycle-a', error });
  return { watermarks, metrics, logged, fail, now: clock.now };
}

describe('RecordFailure, the Catch target of a failed table', () => {
  it("counts the failure, keeps the Lambda's own message, gives the lease back, publishes and logs it", async () => {
    const { watermarks, metrics, logged, fail, now } = await failing();
    const cause = JSON.stringify({
      errorMessage: 'Postgres at db:5432 is unavailable',
      errorType: 'UnavailableError',
    });
    expect(await fail({ Error: 'UnavailableError', Cause: cause })).toEqual({
      table: 'silver_trades',
      consecutiveFailures: 1,
      error: { Error: 'UnavailableError', Cause: 'Postgres at db:5432 is unavailable' },
    });
    const w = await watermarks.get('silver_trades');
    expect(w).toMatchObject({
      consecutiveFailures: 1,
      lastError: { name: 'UnavailableError', message: 'Postgres at db:5432 is unavailable' },
      lease: null,
    });
    expect(metrics).toEqual([
      {
        timestamp: now().getTime(),
        dimensions: { Table: 'silver_trades', ErrorType: 'UnavailableError' },
        values: { errors: 1 },
        properties: { cycleId: 'cycle-a', message: 'Postgres at db:5432 is unavailable' },
      },
    ]);
    expect(logged).toEqual([
      {
        event: 'table-failed',
        table: 'silver_trades',
        error: 'UnavailableError',
        message: 'Postgres at db:5432 is unavailable',
      },
    ]);
  });

  it('takes a plain-text cause as it is, a JSON one without a Lambda message whole, none as the error name', async () => {
    const plain = await failing();
    expect((await plain.fail({ Error: 'States.Timeout', Cause: 'the task timed out' })).error.Cause).toBe(
      'the task timed out',
    );
    const json = await failing();
    expect((await json.fail({ Error: 'X', Cause: '{"reason":"quota"}' })).error.Cause).toBe(
      '{"reason":"quota"}',
    );
    const none = await failing();
    expect((await none.fail({ Error: 'States.TaskFailed' })).error.Cause).toBe('States.TaskFailed');
    expect((await none.watermarks.get('silver_trades')).lastError?.message).toBe('States.TaskFailed');
  });

  it('keeps the whole message in the store, a shortened one in the state and the metric', async () => {
    const { watermarks, metrics, fail } = await failing();
    const long = 'x'.repeat(2000);
    const out = await fail({ Error: 'InputError', Cause: long });
    expect(out.error.Cause).toHaveLength(FAILURE_CAUSE_CHARS);
    expect(out.error.Cause.endsWith('…')).toBe(true);
    expect(metrics[0]?.properties?.message).toHaveLength(500);
    expect((await watermarks.get('silver_trades')).lastError?.message).toBe(long);
  });

  it('counts failures in a row', async () => {
    const { fail } = await failing();
    await fail({ Error: 'A' });
    expect((await fail({ Error: 'B' })).consecutiveFailures).toBe(2);
  });

  it('refuses a malformed event by field, recording nothing', async () => {
    const { watermarks } = await failing();
    const deps = { watermarks } as unknown as PipelineDeps;
    await expect(
      recordFailure(deps, { table: 'silver_trades', error: { Error: 'X' } }),
    ).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringMatching(/^RecordFailure input is malformed: leaseToken/),
    });
    expect((await watermarks.get('silver_trades')).consecutiveFailures).toBe(0);
  });
});

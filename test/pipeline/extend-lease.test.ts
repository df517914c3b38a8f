import { describe, expect, it } from 'vitest';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { extendLease } from '../../src/pipeline/extend-lease.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import { fakeClock } from '../watermark/fake-clock.ts';

/** The heartbeat step touches the watermark store and nothing else: the other deps are absent. */
function heartbeatDeps(leaseSeconds = 900) {
  const clock = fakeClock();
  const watermarks = createMemoryWatermarkStore({ clock: clock.now });
  const logged: unknown[] = [];
  const deps = { watermarks, leaseSeconds, log: (e: unknown) => logged.push(e) } as Pick<
    PipelineDeps,
    'watermarks' | 'leaseSeconds' | 'log'
  > as PipelineDeps;
  return { clock, watermarks, deps, logged };
}

describe('ExtendLease, the heartbeat of a running Spark job', () => {
  it("extends the table's lease by the stage's lease lifetime from now", async () => {
    const { clock, watermarks, deps, logged } = heartbeatDeps();
    await watermarks.ensureTables([{ table: 'silver_trades', initialCursor: '2026-11-22T00:00:00.000Z' }]);
    const lease = await watermarks.acquireLease('silver_trades', 'cycle-a', 900);
    if (!lease.acquired) throw new Error('lease not acquired');
    clock.advance(600);
    expect(await extendLease(deps, { table: 'silver_trades', leaseToken: lease.token })).toEqual({
      expiresAt: '2026-11-22T03:25:00.000Z',
    });
    // The log says which lease was extended, and until when.
    expect(logged).toEqual([
      {
        event: 'lease-extended',
        table: 'silver_trades',
        token: lease.token,
        until: '2026-11-22T03:25:00.000Z',
      },
    ]);
    clock.advance(600); // past the first expiry: another cycle still cannot take the table
    expect(await watermarks.acquireLease('silver_trades', 'cycle-b', 900)).toMatchObject({ acquired: false });
  });

  it('fails with LeaseError, naming the holder, once another cycle took the table', async () => {
    const { clock, watermarks, deps } = heartbeatDeps(60);
    await watermarks.ensureTables([{ table: 'silver_trades', initialCursor: '2026-11-22T00:00:00.000Z' }]);
    const old = await watermarks.acquireLease('silver_trades', 'cycle-a', 60);
    if (!old.acquired) throw new Error('lease not acquired');
    clock.advance(61);
    await watermarks.acquireLease('silver_trades', 'cycle-b', 60);
    await expect(extendLease(deps, { table: 'silver_trades', leaseToken: old.token })).rejects.toMatchObject({
      name: 'LeaseError',
      message: expect.stringContaining('cycle-b holds token 2'),
    });
  });

  it('refuses a malformed heartbeat by field', async () => {
    const { deps } = heartbeatDeps();
    await expect(extendLease(deps, { table: 'silver_trades' })).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringMatching(/ExtendLease input.*leaseToken/),
    });
  });
});

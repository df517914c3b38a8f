import { describe, expect, it } from 'vitest';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import type { WatermarkStore } from '../../src/watermark/store.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS, MINUTE } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * Seed failure 3: retries, timeouts and manual runs offloaded the same window twice at once. Here two
 * cycles start at the same moment in one process (sharing the chDB client), and a console rerun is
 * started while a scheduled cycle is mid-way: the leases decide, the loser skips the leased tables with
 * reason `leased` (naming the holder), and Iceberg holds every key once.
 */
describe('overlapping cycles in one process', () => {
  const fed = useFedRig({ name: 'overlap', seed: 31, rowsPerHour: 2000, hours: 3 });
  const { clock } = fed;

  it('two cycles started at the same moment: each table is run by one of them, no key twice', async () => {
    const [a, b] = await Promise.all([runCycle(fed.rig.deps(), {}), runCycle(fed.rig.deps(), {})]);
    const failed = [a, b].flatMap((r) =>
      r.passes.flatMap((p) => p.tables.filter((t) => t.status === 'failed')),
    );
    expect(failed).toEqual([]);
    const leased = [a, b].flatMap((r) =>
      r.passes.flatMap((p) => p.skipped.filter((s) => s.reason === 'leased')),
    );
    expect(leased.length).toBeGreaterThan(0);
    for (const skip of leased)
      expect(skip.detail).toMatch(/^leased by cycle-\S+ until \S+; skipped in this pass, not waited on$/);
    expect((await verifyAll(fed.rig.deps())).problems).toEqual([]);
  });

  it('a console rerun during a scheduled cycle skips the tables the schedule holds and says so', async () => {
    // The race above may end with silver behind bronze: one cycle can plan silver up to a bronze cursor
    // the other is still moving, and the other then finds silver leased. A cycle alone catches up, so
    // the schedule below has nothing for silver until its bronze moves.
    const caughtUp = await runCycle(fed.rig.deps(), {});
    const lastPass = caughtUp.passes.at(-1)?.skipped ?? [];
    expect(lastPass.find((s) => s.table === 'silver_trades')?.reason).toBe('up-to-date');
    clock.advance(2 * CYCLE_MS);
    await fed.feed();
    // The scheduled cycle stops just before its first watermark write, holding every lease it took.
    let reached!: () => void;
    const atWatermark = new Promise<void>((r) => {
      reached = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const store = fed.rig.deps().watermarks;
    const paused: WatermarkStore = {
      ...store,
      advance: async (input) => {
        reached();
        await gate;
        return store.advance(input);
      },
    };
    const scheduled = runCycle(fed.rig.deps({ watermarks: paused }), {});
    await atWatermark;

    const until = new Date(clock.now().getTime() - 10 * MINUTE).toISOString();
    const tables = ['bronze_trades_binance', 'bronze_trades_kraken', 'silver_trades'];
    const console_ = await runCycle(fed.rig.deps(), { tables, until });
    const skipped = console_.passes[0]?.skipped ?? [];
    const holder = skipped.find((s) => s.table === 'bronze_trades_binance')?.detail;
    expect(skipped.filter((s) => s.reason === 'leased').map((s) => s.table)).toEqual(tables.slice(0, 2));
    expect(holder).toMatch(/^leased by cycle-\S+ until /);
    // Silver is free (the schedule plans it once bronze has moved), but its inputs are held: it waits.
    const silver = skipped.find((s) => s.table === 'silver_trades');
    expect(silver?.reason).toBe('waiting-for-upstream');
    expect(silver?.detail).toContain('leased by cycle-');
    expect(console_.passes.flatMap((p) => p.tables)).toEqual([]);

    release();
    const done = await scheduled;
    expect(done.passes.flatMap((p) => p.tables.filter((t) => t.status === 'failed'))).toEqual([]);
    expect((await verifyAll(fed.rig.deps())).problems).toEqual([]);

    // Once the schedule is through, the same console rerun finds its windows already done.
    const again = await runCycle(fed.rig.deps(), { tables, until });
    expect(again.passes.reduce((n, p) => n + p.rows, 0)).toBe(0);
    expect((await verifyAll(fed.rig.deps())).problems).toEqual([]);
  });
});

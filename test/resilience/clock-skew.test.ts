import pg from 'pg';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import { collectHealth } from '../../src/pipeline/health.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { createPostgresWatermarkStore } from '../../src/watermark/store.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS, MINUTE } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * Machines' clocks differ. Rows get their ingestion time from ClickHouse's clock and leases their expiry
 * from Postgres's; the offloader's own clock, 10 minutes fast or slow, must change neither what is
 * offloaded nor who holds a table. The rig's fake clock is the world's (ClickHouse's and Postgres's);
 * only the pipeline's process clock is skewed.
 */
// Every layer and both kinds of cursor (arrival time; closed candles of a minute and of an hour), without
// the candle sizes that add only work to eight cycles.
const config = parseConfig(
  {
    tables: defaultConfig().tables.filter(
      (t) => !['ohlcv_5m', 'ohlcv_15m', 'ohlcv_30m', 'ohlcv_1d'].includes(t.name),
    ),
  },
  'skew tables',
);

describe('clock skew', () => {
  const fed = useFedRig({ name: 'clock-skew', seed: 17, rowsPerHour: 2400, hours: 2, config });
  const { clock } = fed;
  const skewed = (ms: number) => fed.rig.deps({ clock: () => new Date(clock.now().getTime() + ms) });
  /** A quarter later, the trades of that quarter arrive (stamped by the world's clock), then a cycle. */
  const cycleWith = async (skewMs: number) => {
    clock.advance(CYCLE_MS);
    await fed.feed();
    return runCycle(skewed(skewMs), {});
  };

  // Two steps of one story, each its own test: a fast clock first, then a slow one on the same tables.
  it('a process clock 10 min fast moves no watermark past what the source clock allows', async () => {
    await runCycle(fed.rig.deps(), {});
    for (let i = 0; i < 3; i++) await cycleWith(10 * MINUTE);
    for (const table of fed.rig.deps().config.tables) {
      const w = await fed.rig.deps().watermarks.get(table.name);
      // Never past what the source's clock allows (its now minus the lateness).
      expect(Date.parse(w.cursor), table.name).toBeLessThanOrEqual(
        clock.now().getTime() - table.latenessSeconds * 1000,
      );
    }
  });

  it('then 10 min slow, it loses and duplicates nothing, and health is green', async () => {
    for (let i = 0; i < 3; i++) await cycleWith(-10 * MINUTE);
    // Rows that arrived after the last cycle, stamped before its bound, wait for the next one.
    await cycleWith(0);
    const { problems } = await verifyAll(fed.rig.deps());
    expect(problems).toEqual([]);
    const health = await collectHealth(skewed(10 * MINUTE));
    expect(health.problems.filter((p) => p.severity === 'critical')).toEqual([]);
    expect(health.healthy).toBe(true);
  });
});

describe('lease expiry by the database clock', () => {
  const pools: pg.Pool[] = [];
  let db: { url: string; drop: () => Promise<void> } | undefined;
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await db?.drop();
  });

  it('a process whose clock runs 20 min fast cannot take a lease Postgres still counts live', async () => {
    const { freshDatabase } = await import('../support/pg.ts');
    db = await freshDatabase('k2skew');
    const open = () => {
      const pool = new pg.Pool({ connectionString: db?.url, max: 2 });
      pools.push(pool);
      return createPostgresWatermarkStore(pool);
    };
    const honest = open();
    await honest.migrate();
    await honest.ensureTables([{ table: 'trades', initialCursor: '2026-01-01T00:00:00Z' }]);
    const held = await honest.acquireLease('trades', 'cycle-honest', 900);
    expect(held.acquired).toBe(true);

    // Only Date is faked: the process believes it is 20 minutes later than the real clock Postgres reads,
    // past the lease's expiry.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 20 * MINUTE });
    const fast = open();
    const taken = await fast.acquireLease('trades', 'cycle-fast', 900);
    expect(taken).toEqual({
      acquired: false,
      holder: 'cycle-honest',
      expiresAt: held.acquired ? held.expiresAt : '',
    });
    // Nor does a manual change pass for "no live lease" on a fast clock.
    await expect(
      fast.setCursor({
        table: 'trades',
        cursor: '2026-02-01T00:00:00Z',
        actor: 'ops',
        reason: 'test',
        allowBackwards: false,
      }),
    ).rejects.toThrow(/holds its lease/);
  });
});

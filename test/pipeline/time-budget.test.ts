import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig } from '../../src/config/load.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { planCycle } from '../../src/pipeline/plan-cycle.ts';
import { compareKeys, exact, mismatches, openWorld, type World } from '../support/world.ts';

const BRONZE = 'bronze_trades_binance';
/** Five-minute windows over three hours of trades: more batches than one pass plans (8 per table). */
const config = {
  tables: defaultConfig().tables.map((t) => (t.name === BRONZE ? { ...t, maxWindowSeconds: 300 } : t)),
};

describe("a cycle's time budget for loop-back passes", () => {
  let world: World;
  beforeAll(async () => {
    world = await openWorld({ config });
    await generateTrades(world.clickhouse, {
      rows: 6_000,
      spanHours: 3,
      end: new Date(world.now.getTime() - 10 * 60_000),
      lateFraction: 0,
      seed: 5,
    });
  });
  afterAll(() => world?.close());

  it('plans a loop-back pass inside the budget and none after it, taking no lease', async () => {
    const started = world.now;
    const at = (seconds: number) => () => new Date(started.getTime() + seconds * 1000);
    const input = { tables: [BRONZE], cycleId: 'cycle-budget', cycleStartedAt: started.toISOString() };

    const inside = await planCycle(world.deps({ cycleBudgetSeconds: 300, clock: at(299) }), input);
    const [bronze] = inside.layers.flatMap((l) => l.tables);
    expect(bronze?.batches.length).toBe(8);
    expect(inside.more).toBe(true);
    await world.deps().watermarks.releaseLease(BRONZE, bronze?.leaseToken as string);

    const spent = await planCycle(world.deps({ cycleBudgetSeconds: 300, clock: at(301) }), input);
    expect(spent.layers).toEqual([]);
    expect(spent.more).toBe(false);
    expect(spent.startedAt).toBe(started.toISOString());
    expect(spent.skipped).toEqual([
      {
        table: BRONZE,
        reason: 'time-budget',
        detail: expect.stringMatching(/run 301 s of its 300 s budget/),
      },
    ]);
    expect((await world.deps().watermarks.get(BRONZE))?.lease).toBeNull();
  });

  it('ends the cycle when the budget is spent; the next cycles carry on and lose nothing', async () => {
    const deps = world.deps({ cycleBudgetSeconds: 0 });
    const first = await runCycle(deps, { tables: [BRONZE] });
    expect(first.passes.map((p) => p.final)).toEqual([false, true]);
    expect(first.passes[0]?.rows).toBeGreaterThan(0);
    expect(first.passes[1]?.rows).toBe(0);
    const afterFirst = (await deps.watermarks.get(BRONZE))?.cursor as string;

    let cycles = 1;
    let caughtUp = false;
    while (!caughtUp && cycles < 10) {
      const next = await runCycle(deps, { tables: [BRONZE] });
      cycles++;
      caughtUp = next.passes.every((p) => p.rows === 0);
    }
    expect(cycles).toBeGreaterThan(2);
    expect(caughtUp).toBe(true);
    const w = await deps.watermarks.get(BRONZE);
    expect(Date.parse(w?.cursor as string)).toBeGreaterThan(Date.parse(afterFirst));
    const table = config.tables.find((t) => t.name === BRONZE);
    if (!table) throw new Error(`${BRONZE} is not configured`);
    const diff = await compareKeys(world, deps, table, w?.cursor as string);
    expect(mismatches(BRONZE, diff)).toEqual(exact(BRONZE));
  });
});

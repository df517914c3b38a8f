import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { compareKeys, exact, mismatches, openWorld, rows, type World } from '../support/world.ts';

describe('one local cycle, executing the deployed state machine definition', () => {
  // The world stands still: both cycles see the same bounds, so no candle closes between them.
  let world: World;
  beforeAll(async () => {
    world = await openWorld();
    await generateTrades(world.clickhouse, {
      rows: 20_000,
      spanHours: 3,
      end: new Date(world.now.getTime() - 10 * 60_000),
      lateFraction: 0.05,
      seed: 7,
    });
  });
  afterAll(() => world?.close());

  it('lands every table in Iceberg up to its watermark, each key exactly once', async () => {
    const deps = world.deps();
    const result = await runCycle(deps, {});
    expect(result.passes.at(-1)?.final).toBe(true);
    for (const table of deps.config.tables) {
      const w = await deps.watermarks.get(table.name);
      expect(w?.status, table.name).toBe('ok');
      const diff = await compareKeys(world, deps, table, w?.cursor as string);
      expect(mismatches(table.name, diff)).toEqual(exact(table.name));
      if (table.layer !== 'gold') expect(diff.iceberg, table.name).toBeGreaterThan(0);
    }
  });

  it('a second cycle right after writes nothing new', async () => {
    const deps = world.deps();
    const before = await rows(
      world.clickhouse,
      `SELECT count() AS n FROM file('warehouse/**/*.metadata.json', 'RawBLOB')`,
    );
    const result = await runCycle(deps, {});
    const written = result.passes.reduce((n, p) => n + p.rows, 0);
    expect(written).toBe(0);
    const after = await rows(
      world.clickhouse,
      `SELECT count() AS n FROM file('warehouse/**/*.metadata.json', 'RawBLOB')`,
    );
    expect(after).toEqual(before);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { compareKeys, openWorld, type World } from '../support/world.ts';

const MIN = 60_000;

describe("a table's first offload", () => {
  let world: World;
  beforeAll(async () => {
    world = await openWorld();
  });
  afterAll(() => world?.close());

  it('an empty hot tier starts every watermark at its bound, not at 1970, and audits why', async () => {
    const now = world.now;
    const deps = world.deps();
    await runCycle(deps, {});
    for (const table of deps.config.tables) {
      const w = await deps.watermarks.get(table.name);
      const step = (table.cursor.kind === 'closed_bucket' ? table.cursor.intervalSeconds : 1) * 1000;
      const bound = Math.floor((now.getTime() - table.latenessSeconds * 1000) / step) * step;
      expect({ table: table.name, cursor: w?.cursor }).toEqual({
        table: table.name,
        cursor: new Date(bound).toISOString(),
      });
    }
    const audit = await deps.watermarks.audit({ table: 'bronze_trades_binance' });
    expect(audit[0]?.reason).toMatch(/table is empty/);
  });

  it('rows arriving afterwards land in the next cycles, every layer, each key once', async () => {
    const start = world.now;
    await generateTrades(world.clickhouse, {
      rows: 3000,
      spanHours: 0.2,
      end: new Date(start.getTime() + 12 * MIN),
      seed: 3,
    });
    // A clock past the candles' lateness, so silver and gold have closed buckets to offload too.
    const later = new Date(start.getTime() + 3 * 3_600_000);
    const deps = world.deps({ clock: () => later, sourceClock: async () => later });
    await runCycle(deps, {});
    for (const table of deps.config.tables) {
      const w = await deps.watermarks.get(table.name);
      const diff = await compareKeys(world, deps, table, w?.cursor as string);
      expect({ table: table.name, missing: diff.missing.length, duplicated: diff.duplicated.length }).toEqual(
        {
          table: table.name,
          missing: 0,
          duplicated: 0,
        },
      );
      // Today's daily candle is still open.
      if (table.name !== 'ohlcv_1d') expect(diff.iceberg, table.name).toBeGreaterThan(0);
    }
  });
});

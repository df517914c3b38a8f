import { describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig } from '../../src/config/load.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { TEST_NOW } from '../support/clock.ts';
import { openWorld } from '../support/world.ts';

const MIN = 60_000;

/** A world of its own (one embedded ClickHouse per process): its config sets a table's initial cursor. */
describe("a table's first offload from a configured cursor", () => {
  it('a table configured to start after its oldest row starts there: no move back, no failure', async () => {
    const base = defaultConfig();
    const start = new Date(TEST_NOW.getTime() - 30 * MIN).toISOString();
    const config = {
      ...base,
      tables: base.tables.map((t) =>
        t.name === 'bronze_trades_kraken' ? { ...t, initialCursor: start } : t,
      ),
    };
    const own = await openWorld({ config });
    try {
      await generateTrades(own.clickhouse, { rows: 600, spanHours: 1, end: own.now, seed: 5 });
      const deps = own.deps();
      const result = await runCycle(deps, { tables: ['bronze_trades_kraken'] });
      expect(result.passes.flatMap((p) => p.tables.filter((t) => t.status === 'failed'))).toEqual([]);
      const audit = await deps.watermarks.audit({ table: 'bronze_trades_kraken' });
      expect(audit.filter((e) => /first offload/.test(e.reason ?? ''))).toEqual([]);
      expect(Date.parse((await deps.watermarks.get('bronze_trades_kraken')).cursor)).toBeGreaterThan(
        Date.parse(start),
      );
    } finally {
      await own.close();
    }
  });
});

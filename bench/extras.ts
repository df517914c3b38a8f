/**
 * The measures around the main comparison, in this process on the benchmark's data once the backlog is
 * offloaded: a normal 10-table cycle's wall time, planning per table, and the watermark commit.
 */
import { join } from 'node:path';
import { generateTrades } from '../src/clickhouse/demo-trades.ts';
import { runCycle } from '../src/pipeline/local-runner.ts';
import { planCycle } from '../src/pipeline/plan-cycle.ts';
import { openRuntime } from '../src/runtime/open.ts';
import type { Place } from './sides.ts';

export type Extras = {
  normal: { ms: number; rows: number; passes: number };
  planMsPerTable: number;
  watermarkMs: { median: number; p95: number };
};

export async function measureExtras(place: Place, backlogEnd: Date): Promise<Extras> {
  let now = new Date(backlogEnd.getTime() + 10 * 60_000);
  const rt = await openRuntime({
    env: {
      ...process.env,
      K2_HOME: join(place.dir, '.k2'),
      WAREHOUSE: place.warehouse,
      DATABASE_URL: place.databaseUrl,
    },
    clock: () => now,
    sourceClock: async () => now,
  });
  try {
    // A normal cycle: ~100K new bronze rows in the last 15 minutes, all ten tables.
    await runCycle(rt, {}); // silver and gold catch up on the backlog first
    const normalEnd = new Date(now.getTime() + 15 * 60_000);
    await generateTrades(rt.clickhouse, {
      rows: 100_000,
      spanHours: 0.25,
      end: normalEnd,
      lateFraction: 0.01,
      seed: 12,
    });
    now = new Date(normalEnd.getTime() + 5 * 60_000);
    let t = performance.now();
    const cycle = await runCycle(rt, {});
    const normal = {
      ms: performance.now() - t,
      rows: cycle.passes.reduce((n, p) => n + p.rows, 0),
      passes: cycle.passes.length,
    };

    // Planning and the watermark commit alone, per table.
    now = new Date(now.getTime() + 60_000);
    t = performance.now();
    const plan = await planCycle(rt, {});
    const planMsPerTable = (performance.now() - t) / rt.config.tables.length;
    for (const l of plan.layers)
      for (const tp of l.tables) await rt.watermarks.releaseLease(tp.table, tp.leaseToken);
    const lease = await rt.watermarks.acquireLease('bronze_trades_binance', 'bench', 60);
    let cursor = (await rt.watermarks.get('bronze_trades_binance'))?.cursor as string;
    const samples: number[] = [];
    for (let i = 0; i < 50 && lease.acquired; i++) {
      const end = new Date(Date.parse(cursor) + 1000).toISOString();
      t = performance.now();
      await rt.watermarks.advance({
        table: 'bronze_trades_binance',
        batchId: `bench${i}`.padEnd(32, '0'),
        windowStart: cursor,
        windowEnd: end,
        leaseToken: lease.token,
        rows: 0,
        files: 0,
        bytes: 0,
        durationMs: 0,
        outcome: 'committed',
      });
      samples.push(performance.now() - t);
      cursor = end;
    }
    samples.sort((a, b) => a - b);
    return {
      normal,
      planMsPerTable,
      watermarkMs: { median: samples[25] ?? Number.NaN, p95: samples[47] ?? Number.NaN },
    };
  } finally {
    await rt.close();
  }
}

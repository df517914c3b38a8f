import { beforeAll, describe, expect, it } from 'vitest';
import { icebergTableFunction } from '../../src/audit/iceberg-source.ts';
import { instantLiteral } from '../../src/clickhouse/sql.ts';
import { crashAt, type FaultPoint, InjectedCrash } from '../../src/pipeline/faults.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS, LEASE_SECONDS, MINUTE } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * DESIGN.md section 3, "a crash between any two steps is repaired by the next attempt or cycle, without
 * a person": for every fault point a cycle dies there (the whole execution stops, as a dead process
 * would), then the next scheduled cycle, once the dead cycle's leases have expired, leaves every key of
 * every table in Iceberg exactly once, rows equal to ClickHouse's, and each watermark at its marker.
 * The crash lands on a different layer's table per point, so bronze, silver and gold each die mid-protocol.
 */
const MATRIX: Array<{ point: FaultPoint; table?: string }> = [
  { point: 'after-plan' },
  { point: 'mid-stage', table: 'silver_trades' },
  { point: 'after-stage', table: 'ohlcv_1m' },
  { point: 'after-data-files', table: 'bronze_trades_coinbase' },
  { point: 'after-iceberg-commit', table: 'silver_trades' },
  { point: 'lost-commit-response', table: 'ohlcv_5m' },
  { point: 'during-watermark', table: 'bronze_trades_binance' },
  { point: 'after-watermark', table: 'ohlcv_1m' },
];

describe('crash matrix (one process): each fault point, then the next cycle', () => {
  // Four hours of history (late trades included) before the first cycle ever runs.
  const fed = useFedRig({ name: 'crash', seed: 11, rowsPerHour: 2000, hours: 4 });
  const { clock } = fed;
  beforeAll(async () => {
    const first = await runCycle(fed.rig.deps(), {});
    expect(first.passes.at(-1)?.status).toBe('succeeded');
  });

  for (const { point, table } of MATRIX) {
    it(`${point}${table ? ` (${table})` : ''}: repaired by the next cycle, each key once`, async () => {
      clock.advance(2 * CYCLE_MS);
      await fed.feed();
      const faults = crashAt(point, table ? { table } : {});
      const dying = runCycle(fed.rig.deps({ faults }), {});
      if (point === 'lost-commit-response') {
        // The commit landed but its answer was lost: the step is retried in the same cycle and finds it.
        const survived = await dying;
        const outcome = survived.passes.flatMap((p) => p.tables).filter((t) => t.table === table);
        expect(outcome.map((t) => t.status)).toContain('succeeded');
        expect(outcome.map((t) => t.status)).not.toContain('failed');
      } else {
        await expect(dying).rejects.toBeInstanceOf(InjectedCrash);
      }
      expect(faults.fired, 'the fault point was reached').toBe(1);

      if (point === 'during-watermark' || point === 'after-watermark') {
        // The dead cycle's leases are still live: a cycle now skips those tables and says why.
        clock.advance(MINUTE);
        await fed.feed();
        const early = await runCycle(fed.rig.deps(), {});
        const leased = early.passes[0]?.skipped.filter((s) => s.reason === 'leased').map((s) => s.table);
        expect(leased).toContain(table);
      }

      // The next scheduled cycle after the leases expired: no person, no manual step.
      clock.advance(LEASE_SECONDS * 1000 + MINUTE);
      await fed.feed();
      const rerun = await runCycle(fed.rig.deps(), {});
      const outcomes = rerun.passes.flatMap((p) => p.tables);
      expect(outcomes.filter((t) => t.status === 'failed')).toEqual([]);
      expect(rerun.passes.flatMap((p) => p.skipped).filter((s) => s.reason === 'leased')).toEqual([]);
      if (point === 'after-iceberg-commit') {
        // Iceberg had the batch, Postgres did not: the watermark was moved to the marker, not re-offloaded.
        const history = await fed.rig.deps().watermarks.history({ table: table as string, limit: 20 });
        expect(history.map((r) => r.outcome)).toContain('reconciled');
      }
      const { problems, verdicts } = await verifyAll(fed.rig.deps());
      expect(problems).toEqual([]);
      for (const v of verdicts.filter((v) => v.table !== 'ohlcv_1d'))
        expect(v.icebergRows, v.table).toBeGreaterThan(0);
      for (const w of await fed.rig.deps().watermarks.list()) {
        expect({ table: w.table, status: w.status, lease: w.lease }).toEqual({
          table: w.table,
          status: 'ok',
          lease: null,
        });
      }
    });
  }

  it("silver's arrays and maps came through whole: the rows compared above carry them (seed failure 11)", async () => {
    const deps = fed.rig.deps();
    const { cursor } = await deps.watermarks.get('silver_trades');
    const location = (await deps.catalog.currentMetadataLocation({
      namespace: 'cold',
      name: 'silver_trades',
    })) as string;
    const profile = async (from: string) => {
      const result = await fed.rig.clickhouse.query({
        query: `SELECT toString(count()) AS rows, toString(countIf(has(trade_conditions, 'late_arrival'))) AS late,
                  toString(countIf(mapContains(vendor_data, 'kafka_offset') AND length(vendor_data) = 2)) AS maps
                FROM ${from}`,
        format: 'JSONEachRow',
      });
      return ((await result.json()) as Array<Record<string, string>>)[0];
    };
    const cold = await profile(icebergTableFunction(location));
    const hot = await profile(
      `(SELECT * FROM k2.silver_trades WHERE processed_at < ${instantLiteral(cursor)})`,
    );
    expect(cold).toEqual(hot);
    expect(Number(cold?.late)).toBeGreaterThan(0);
    expect(cold?.maps).toBe(cold?.rows);
  });
});

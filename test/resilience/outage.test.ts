import { describe, expect, it } from 'vitest';
import { collectHealth } from '../../src/pipeline/health.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { MAX_BATCHES_PER_PASS } from '../../src/pipeline/plan-cycle.ts';
import type { RunRecord } from '../../src/watermark/store.ts';
import { useRig } from './fed-rig.ts';
import { CYCLE_MS, configWith, fakeClock, pastStart, tradeFeed } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * Seed failure 4: after a day of outage the old job read the whole window at once and ran out of memory
 * every time until the TTL deleted the data. Here a 24-hour backlog (half of it quiet, half busy) drains
 * in one cycle's loop-back passes, in batches within the caps (a small override keeps the test fast:
 * windows of at most 3 h or 400 rows; candles 4 h), in cursor order, each layer behind its inputs, and
 * the lag is back under one cycle at the end.
 */
const H = 3_600_000;
const SPAN_CAP_S = 3 * 3600;
const ROW_CAP = 400;
const config = configWith((t) =>
  t.layer === 'gold'
    ? {
        maxWindowSeconds: Math.max(
          4 * 3600,
          t.cursor.kind === 'closed_bucket' ? t.cursor.intervalSeconds : 0,
        ),
      }
    : { maxWindowSeconds: SPAN_CAP_S, maxRowsPerBatch: ROW_CAP },
);

describe('catch-up after a 24-hour outage', () => {
  const clock = fakeClock(pastStart(4));
  const setup = useRig({ name: 'outage', clock, config });

  it('drains in bounded batches, in order, watermarks only forward, lag back under one cycle', async () => {
    const { rig } = setup;
    const deps = rig.deps();
    const feed = tradeFeed(rig.clickhouse, clock, {
      from: clock.now().getTime() - 2 * H,
      seed: 61,
      rowsPerHour: 600,
    });
    await feed();
    await runCycle(deps, {});
    const before = Object.fromEntries((await deps.watermarks.list()).map((w) => [w.table, w.cursor]));
    const lastRunBefore = Math.max(
      ...(await deps.watermarks.history({ limit: 10_000 })).map((r) => Number(r.id)),
    );

    // The scheduler is down for a day: 12 quiet hours, then 12 busy ones.
    clock.advance(12 * H);
    await feed({ rowsPerHour: 60, lateFraction: 0.02 });
    clock.advance(12 * H);
    await feed({ rowsPerHour: 900, lateFraction: 0.02 });
    const started = performance.now();
    const cycle = await runCycle(deps, {});
    const seconds = (performance.now() - started) / 1000;

    expect(cycle.passes.flatMap((p) => p.tables).filter((t) => t.status === 'failed')).toEqual([]);
    expect(cycle.passes.length).toBeGreaterThan(1);
    for (const pass of cycle.passes)
      for (const t of pass.tables) expect(t.batches, t.table).toBeLessThanOrEqual(MAX_BATCHES_PER_PASS);

    const runs = (await deps.watermarks.history({ limit: 10_000 }))
      .filter((r) => Number(r.id) > lastRunBefore && r.outcome === 'committed')
      .sort((a, b) => Number(a.id) - Number(b.id));
    const byTable = new Map<string, RunRecord[]>();
    for (const r of runs) byTable.set(r.table, [...(byTable.get(r.table) ?? []), r]);
    let rowCapped = 0;
    let spanCapped = 0;
    for (const table of config.tables) {
      const mine = byTable.get(table.name) ?? [];
      expect(mine.length, table.name).toBeGreaterThan(table.name === 'ohlcv_1d' ? 0 : 4);
      let at = before[table.name] as string;
      for (const r of mine) {
        const start = r.windowStart as string;
        const end = r.windowEnd as string;
        // Contiguous and forward: each batch starts where the watermark was, none overlaps, none skips.
        expect(start, `${table.name} batch ${r.batchId}`).toBe(at);
        expect(Date.parse(end)).toBeGreaterThan(Date.parse(start));
        expect(Date.parse(end) - Date.parse(start), table.name).toBeLessThanOrEqual(
          table.maxWindowSeconds * 1000,
        );
        if (table.layer !== 'gold') {
          expect(r.rows, `${table.name} ${start}`).toBeLessThanOrEqual(table.maxRowsPerBatch);
          if (Date.parse(end) - Date.parse(start) === table.maxWindowSeconds * 1000) spanCapped++;
          else if ((r.rows ?? 0) > table.maxRowsPerBatch / 2) rowCapped++;
        }
        // Never ahead of its inputs: every upstream had committed past this end before it.
        for (const up of table.dependsOn) {
          const ready = (byTable.get(up) ?? []).some(
            (u) => Number(u.id) < Number(r.id) && Date.parse(u.windowEnd as string) >= Date.parse(end),
          );
          expect(
            ready || Date.parse(before[up] as string) >= Date.parse(end),
            `${table.name} after ${up}`,
          ).toBe(true);
        }
        at = end;
      }
      expect((await deps.watermarks.get(table.name)).cursor, table.name).toBe(at);
    }
    // Both caps did the cutting: the quiet half by time span, the busy half by rows.
    expect(spanCapped).toBeGreaterThan(0);
    expect(rowCapped).toBeGreaterThan(0);

    const health = await collectHealth(deps);
    for (const t of health.tables) expect(t.lagMinutes, t.table).toBeLessThan(CYCLE_MS / 60_000);
    expect((await verifyAll(deps)).problems).toEqual([]);
    console.log(
      `outage catch-up: ${runs.length} batches over ${cycle.passes.length} passes in ${seconds.toFixed(1)} s`,
    );
  });
});

import { describe, expect, it } from 'vitest';
import type { OffloadConfig, TableConfig, TableConfigInput } from '../../src/config/schema.ts';
import { planPass, type RowBucket } from '../../src/plan/planner.ts';
import { configWith, DAY, HOUR, iso, MIN, ms } from './fixtures.ts';

/** Small seeded generator: the same cases on every run, many shapes of state. */
function mulberry32(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const unitOf = (t: TableConfig) =>
  t.cursor.kind === 'closed_bucket' ? t.cursor.intervalSeconds * 1000 : 1000;
const floorTo = (x: number, u: number) => Math.floor(x / u) * u;

/** Where each table must end once the loop settles: the same rules, computed directly and in layer order. */
function fixpoint(config: OffloadConfig, start: Record<string, number>, now: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of config.tables) {
    const upstream = Math.min(...t.dependsOn.map((d) => out[d] as number));
    const bound = floorTo(Math.min(now - t.latenessSeconds * 1000, upstream), unitOf(t));
    out[t.name] = Math.max(start[t.name] as number, bound);
  }
  return out;
}

function randomCase(seed: number) {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)] as T;
  const overrides: Record<string, Partial<TableConfigInput>> = {};
  for (const t of configWith().tables) {
    const unit = t.cursor.kind === 'closed_bucket' ? t.cursor.intervalSeconds : 1;
    overrides[t.name] = {
      latenessSeconds: pick([0, 60, 300, 900]),
      maxWindowSeconds:
        unit === 1
          ? pick([600, 3600, 7200])
          : unit >= 1800
            ? unit * pick([1, 2, 3])
            : pick([3600, 7200, 86_400]),
      maxRowsPerBatch: pick([2000, 20_000, 1_000_000]),
    };
  }
  const config = configWith(overrides);
  const now = ms('2026-11-22T04:00:00Z') + Math.floor(rnd() * DAY) + Math.floor(rnd() * 1000);
  const start: Record<string, number> = {};
  const estimates: Record<string, RowBucket[]> = {};
  for (const t of config.tables) {
    // Some cursors off any boundary, some ahead of their upstream, backlogs up to a day.
    start[t.name] = now - Math.floor(rnd() * DAY) - (rnd() < 0.3 ? 0 : Math.floor(rnd() * HOUR));
    if (rnd() < 0.5) {
      // Five-minute buckets: coarser than the 1m candles, finer than the others.
      const from = floorTo(start[t.name] as number, 5 * MIN) - 30 * MIN;
      const buckets = Math.floor((now - from) / (5 * MIN));
      estimates[t.name] = Array.from({ length: buckets }, (_, i) => ({
        start: iso(from + i * 5 * MIN),
        rows: rnd() < 0.02 ? 25_000 : Math.floor(rnd() * 750),
      }));
    }
  }
  return { config, now, start, estimates, maxBatchesPerTable: 2 + Math.floor(rnd() * 7) };
}

describe('planPass in the cycle loop', () => {
  it.each(Array.from({ length: 30 }, (_, i) => 1000 + i))(
    'case %i: every pass stays within its bounds, and the loop stops exactly at the fixpoint',
    (seed) => {
      const { config, now, start, estimates, maxBatchesPerTable } = randomCase(seed);
      const byName = new Map(config.tables.map((t) => [t.name, t]));
      const parsed = Object.fromEntries(
        Object.entries(estimates).map(([k, hs]) => [
          k,
          hs.map((h) => ({ start: ms(h.start), rows: h.rows })),
        ]),
      );
      const cursor = { ...start };
      let passes = 0;
      let more = true;
      while (more) {
        passes++;
        expect(passes).toBeLessThan(500);
        const plan = planPass({
          config,
          watermarks: Object.fromEntries(Object.entries(cursor).map(([k, v]) => [k, iso(v)])),
          now: iso(now),
          estimates,
          maxBatchesPerTable,
        });
        let moved = 0;
        for (const { table, batches } of plan.tables) {
          const t = byName.get(table) as TableConfig;
          const unit = unitOf(t);
          const upstream = Math.min(...t.dependsOn.map((d) => cursor[d] as number));
          const bound = Math.min(now - t.latenessSeconds * 1000, upstream);
          expect(batches.length).toBeGreaterThan(0);
          expect(batches.length).toBeLessThanOrEqual(maxBatchesPerTable);
          let at = cursor[table] as number;
          for (const b of batches) {
            const [s, e] = [ms(b.windowStart), ms(b.windowEnd)];
            expect(s).toBe(at);
            expect(e).toBeGreaterThan(s);
            expect(e).toBeLessThanOrEqual(bound);
            if (t.cursor.kind === 'closed_bucket') expect(e % unit).toBe(0);
            // Within the span cap, or exactly the one unit a misaligned cursor needs to realign.
            expect(e - s <= t.maxWindowSeconds * 1000 || e === floorTo(s, unit) + unit).toBe(true);
            // Within the row cap, or a single bucket (candle) that alone exceeds it.
            const heavy = (parsed[table] ?? []).filter((h) => h.rows > 0 && h.start >= s && h.start < e);
            const rows = heavy.reduce((n, h) => n + h.rows, 0);
            if (rows > t.maxRowsPerBatch) {
              if (t.cursor.kind === 'closed_bucket')
                for (const h of heavy) expect(h.start).toBeGreaterThanOrEqual(e - unit);
              else expect(heavy).toHaveLength(1);
            }
            at = e;
          }
          // Every batch of the pass commits; layers run in order, so later tables see it next pass.
          cursor[table] = at;
          moved++;
        }
        // The loop only comes back because the previous pass said `more`: that pass promised work.
        if (passes > 1) expect(moved).toBeGreaterThan(0);
        more = plan.more;
      }
      expect(cursor).toEqual(fixpoint(config, start, now));
      const settled = planPass({
        config,
        watermarks: Object.fromEntries(Object.entries(cursor).map(([k, v]) => [k, iso(v)])),
        now: iso(now),
      });
      expect(settled.tables).toEqual([]);
    },
  );
});

import { randomInt } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import { LeaseError } from '../../src/errors.ts';
import { repairTable } from '../../src/hourly/repair.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { crashAt, FAULT_POINTS, InjectedCrash } from '../../src/pipeline/faults.ts';
import { collectHealth } from '../../src/pipeline/health.ts';
import { type LocalCycleResult, runCycle } from '../../src/pipeline/local-runner.ts';
import { useRig } from './fed-rig.ts';
import {
  CYCLE_MS,
  configWith,
  fakeClock,
  gatedCatalog,
  LEASE_SECONDS,
  MINUTE,
  pastStart,
  tradeFeed,
} from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * A seeded random run of many 15-minute cycles on a fake clock: trades (some arriving up to two hours
 * late) between cycles, crashes at random fault points of random tables, two cycles started at once,
 * console reruns with a table list and an `until`, cycles on a process clock 10 minutes fast or slow,
 * cycles whose commit stalls past the lease while another cycle takes the tables over, and back-dated
 * trades (a replayed partition) that the cycles' per-hour check flags and `repair` puts in. At the end
 * every key of every table is in Iceberg exactly once with ClickHouse's values, every watermark sits at
 * its newest marker, and health has nothing to report.
 *
 * Replay a failure with the printed seed: `K2_SOAK_SEED=<seed> npx vitest run test/resilience/soak.test.ts`
 * (`K2_SOAK_CYCLES` sets the length).
 *
 * Late trades arrive up to 2 h after they happened; candles wait 2 h 5 min by default (config defaults),
 * so no trade can change a candle already offloaded, and gold must equal ClickHouse's final candles.
 */
const SEED = Number(process.env.K2_SOAK_SEED ?? randomInt(1, 2 ** 31));
const CYCLES = Number(process.env.K2_SOAK_CYCLES ?? 200);
/**
 * Every layer, kept to five tables so 200 cycles fit in CI (each ClickHouse call costs ~20 ms, and a
 * cycle of all ten tables makes ~50): `K2_SOAK_TABLES=all` soaks the ten (the crash matrix covers them).
 */
const DEFAULT_SOAK_TABLES = [
  'bronze_trades_binance',
  'bronze_trades_kraken',
  'silver_trades',
  'ohlcv_1m',
  'ohlcv_1h',
];
const names =
  process.env.K2_SOAK_TABLES === 'all'
    ? defaultConfig().tables.map((t) => t.name)
    : (process.env.K2_SOAK_TABLES?.split(',') ?? DEFAULT_SOAK_TABLES);
const config = configWith((t) => ({ dependsOn: t.dependsOn.filter((d) => names.includes(d)) }), {
  tables: defaultConfig().tables.filter((t) => names.includes(t.name)),
});

const HOUR = 3_600_000;

/** Tables whose last per-hour check found closed hours differing from what was committed. */
const flaggedTables = async (deps: PipelineDeps) =>
  (await collectHealth(deps)).problems
    .filter((p) => p.code === 'hourly-mismatch')
    .map((p) => p.table as string);

/** mulberry32: small, seedable, good enough to pick actions. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe(`soak: ${CYCLES} random cycles (seed ${SEED})`, () => {
  const clock = fakeClock(pastStart(3) - CYCLES * CYCLE_MS);
  const setup = useRig({ name: 'soak', clock, config });
  beforeAll(() => {
    console.log(
      `soak seed ${SEED} (replay: K2_SOAK_SEED=${SEED} npx vitest run test/resilience/soak.test.ts)`,
    );
  });

  it('ends with every key once, rows equal, watermarks at their markers', {
    timeout: 1_500_000,
  }, async () => {
    const { rig } = setup;
    const random = prng(SEED);
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
    const feedFrom = clock.now().getTime() - 2 * HOUR;
    const feed = tradeFeed(rig.clickhouse, clock, {
      from: feedFrom,
      seed: SEED,
      rowsPerHour: 240,
    });
    await feed();
    const tally = {
      cycles: 0,
      crashes: 0,
      survived: 0,
      concurrent: 0,
      reruns: 0,
      refused: 0,
      skewed: 0,
      stalls: 0,
      backdated: 0,
      repairs: 0,
      rows: 0,
    };
    /** The operator's answer to a red per-hour check: `repair` of each flagged table (a busy one waits). */
    const repairFlagged = async (when: string) => {
      const deps = rig.deps();
      for (const name of await flaggedTables(deps)) {
        const outcome = await repairTable(deps, tableByName(config, name), { holder: 'soak repair' }).then(
          (r) => r.status,
          (error: unknown) => (error instanceof LeaseError ? 'leased' : Promise.reject(error)),
        );
        expect(
          ['repaired', 'already-repaired', 'nothing-to-repair', 'leased'],
          `${when} ${name} (seed ${SEED})`,
        ).toContain(outcome);
        if (outcome === 'repaired') tally.repairs++;
      }
    };
    const started = performance.now();
    for (let i = 0; i < CYCLES; i++) {
      clock.advance(CYCLE_MS);
      // Rows arrive in bursts every quarter or two (then a cycle finds nothing new), some with late trades.
      const rate = Math.round(40 + random() * 400);
      const late = random() < 0.3 ? 0.2 : 0.01;
      await feed({ rowsPerHour: random() < 0.5 ? rate : 0, lateFraction: late });
      // Now and then a replayed partition: trades 5 to 20 hours old, below every watermark (and changing
      // candles already offloaded). No cycle offloads them; the per-hour check flags their hours.
      // (Never older than the first rows: hours before a table's first offload are outside the check.)
      const fedHours = Math.floor((clock.now().getTime() - feedFrom) / HOUR) - 1;
      if (random() < 0.06 && fedHours >= 5) {
        tally.backdated++;
        const hoursAgo = 5 + Math.floor(random() * (Math.min(20, fedHours) - 4));
        await generateTrades(rig.clickhouse, {
          rows: 30,
          spanHours: 10 / 60,
          end: new Date(clock.now().getTime() - hoursAgo * HOUR),
          lateFraction: 0,
          seed: SEED + 7919 * (i + 1),
          // New trades, so keys of their own: arriving over instants the feed already covered, their
          // sequence numbers (arrival µs) could repeat a feed trade's or an earlier replay's (seed
          // 1986117033 did: the same trade twice in ClickHouse, so twice in Iceberg).
          sequenceOffset: (i + 1) * 10 ** 16,
        });
      }
      const roll = random();
      const runs =
        roll < 0.15
          ? [
              {
                faults: crashAt(
                  pick(FAULT_POINTS),
                  random() < 0.7 ? { table: pick(config.tables).name } : {},
                ),
              },
            ]
          : roll < 0.25
            ? [{}, {}]
            : [{}];
      const input =
        roll >= 0.25 && roll < 0.3
          ? {
              tables: [...new Set([pick(config.tables).name, pick(config.tables).name])],
              until: new Date(clock.now().getTime() - Math.floor(random() * 60) * MINUTE).toISOString(),
            }
          : {};
      if (runs.length === 2) tally.concurrent++;
      if (input.tables) tally.reruns++;
      // Some cycles run on a machine whose clock is 10 minutes off: windows follow ClickHouse's clock and
      // leases Postgres's, so the skew changes nothing.
      const skew = random() < 0.1 ? (random() < 0.5 ? -10 : 10) * MINUTE : 0;
      if (skew !== 0) tally.skewed++;
      const skewed = { clock: () => new Date(clock.now().getTime() + skew) };
      // A cycle whose commit stalls at the catalog swap past its lease (a frozen Lambda, a slow catalog):
      // another cycle takes the tables over and commits, then the stalled one resumes.
      const stall = async (): Promise<PromiseSettledResult<LocalCycleResult>[]> => {
        const gate = gatedCatalog(rig.deps().catalog);
        const slow = runCycle(rig.deps({ ...skewed, catalog: gate.catalog }), input).then(
          (value) => ({ status: 'fulfilled' as const, value }),
          (reason: unknown) => ({ status: 'rejected' as const, reason }),
        );
        // With nothing to commit it never reaches the swap, and simply ends.
        if ((await Promise.race([gate.reached.then(() => 'stalled'), slow])) !== 'stalled')
          return [await slow];
        tally.stalls++;
        clock.advance(LEASE_SECONDS * 1000 + MINUTE);
        await feed({ rowsPerHour: rate });
        const takeover = await runCycle(rig.deps(), {});
        gate.release();
        return [{ status: 'fulfilled', value: takeover }, await slow];
      };
      const results =
        roll >= 0.3 && roll < 0.35
          ? await stall()
          : await Promise.allSettled(runs.map((o) => runCycle(rig.deps({ ...o, ...skewed }), input)));
      tally.cycles += runs.length;
      for (const r of results) {
        if (r.status === 'rejected') {
          // Only an injected crash may end a cycle; anything else is a bug.
          expect(r.reason, `cycle ${i} (seed ${SEED})`).toBeInstanceOf(InjectedCrash);
          tally.crashes++;
          continue;
        }
        if (runs[0] && 'faults' in runs[0]) tally.survived++;
        const tables = r.value.passes.flatMap((p) => p.tables);
        tally.rows += tables.reduce((n, t) => n + t.rows, 0);
        // A crash stops the execution, but steps already running in its other branches finish, like a
        // Lambda outliving its execution: their late writes may beat the next cycle's, whose commit is
        // then refused by the overlap guard (or its watermark by the lease). Those refusals are the only
        // failures allowed; the next cycle reconciles.
        const failed = tables.filter((t) => t.status === 'failed');
        tally.refused += failed.length;
        for (const t of failed)
          expect(t.error, `cycle ${i} ${t.table} (seed ${SEED})`).toMatch(
            /^(WatermarkConflictError|LeaseError): /,
          );
      }
      if (random() < 0.05) await repairFlagged(`cycle ${i}`);
    }
    // Two quiet cycles after the storm: whatever a crash left is repaired by schedule alone.
    for (let i = 0; i < 2; i++) {
      clock.advance(CYCLE_MS);
      await feed({ rowsPerHour: 0 });
      await runCycle(rig.deps(), {});
    }
    // Every table a replay left short (keys missing, candles stale) is flagged by the cycles' own check.
    const { verdicts: before } = await verifyAll(rig.deps());
    const short = before.filter((v) => v.missing.length + v.mismatched.length > 0).map((v) => v.table);
    expect(await flaggedTables(rig.deps()), `seed ${SEED}`).toEqual(expect.arrayContaining(short));
    await repairFlagged('after the storm');
    expect(await flaggedTables(rig.deps()), `seed ${SEED}`).toEqual([]);
    // And the schedule goes on from there.
    clock.advance(CYCLE_MS);
    await feed({ rowsPerHour: 0 });
    await runCycle(rig.deps(), {});
    const seconds = (performance.now() - started) / 1000;
    const { problems, verdicts } = await verifyAll(rig.deps());
    console.log(
      `soak seed ${SEED}: ${JSON.stringify(tally)} in ${seconds.toFixed(1)} s; Iceberg rows ${verdicts.map((v) => `${v.table}=${v.icebergRows}`).join(' ')}`,
    );
    expect(problems, `seed ${SEED}: ${JSON.stringify(problems)}`).toEqual([]);
    for (const w of await rig.deps().watermarks.list())
      expect([w.table, w.status, w.lease], `seed ${SEED}`).toEqual([w.table, 'ok', null]);
    expect((await collectHealth(rig.deps())).problems, `seed ${SEED}`).toEqual([]);
  });
});

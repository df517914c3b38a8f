import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, parseConfig, tableByName } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { checkCycleHours, checkTableHours } from '../../src/hourly/check.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import type { WatermarkStore } from '../../src/watermark/store.ts';
import { openWorld, type World } from '../support/world.ts';

const HOUR = 3_600_000;
const BINANCE = 'bronze_trades_binance';
const KRAKEN = 'bronze_trades_kraken';

/** The default tables with the check turned off for one of them. */
function configWithout(table: string): OffloadConfig {
  const base = defaultConfig();
  return parseConfig(
    { tables: base.tables.map((t) => (t.name === table ? { ...t, hourlyCheckHours: 0 } : t)) },
    'test config',
  );
}

type Logged = { event: string; table?: string; message?: string; hours?: unknown[] };

/**
 * The per-hour check as each cycle runs it at its end, on real ClickHouse and Postgres: which tables it
 * checks, what it publishes and logs, how one table's failure stays that table's, and what it stores.
 */
describe("a cycle's per-hour check", () => {
  let world: World;
  const captured = (overrides: Partial<PipelineDeps> = {}) => {
    const metrics: EmfRecord[] = [];
    const logs: Logged[] = [];
    const deps = world.deps({
      metrics: (r) => metrics.push(...r),
      log: (e) => logs.push(e as Logged),
      ...overrides,
    });
    return { deps, metrics, logs };
  };

  beforeAll(async () => {
    world = await openWorld({ config: configWithout(KRAKEN) });
    // Six hours of trades ending well before now: the bronze cursors end past them, every hour closed.
    await generateTrades(world.clickhouse, {
      rows: 6000,
      spanHours: 8,
      end: new Date(world.now.getTime() - 20 * 60_000),
      lateFraction: 0,
      seed: 41,
    });
    await runCycle(world.deps(), {});
  });
  afterAll(() => world?.close());

  it('checks every table with a watermark and a look-back, publishes 0 for each, skips a table set to 0', async () => {
    const { deps, metrics, logs } = captured();
    const checks = await checkCycleHours(deps);
    const checked = checks.map((c) => c.table);
    expect(checked).toContain(BINANCE);
    expect(checked).not.toContain(KRAKEN);
    expect(checked).toEqual(deps.config.tables.filter((t) => t.name !== KRAKEN).map((t) => t.name));
    const binance = checks.find((c) => c.table === BINANCE);
    // The trades' six hours, all closed below the cursor's hour, each wholly inside a recorded window.
    expect(binance?.checkedHours).toBeGreaterThanOrEqual(5);
    expect(checks.flatMap((c) => c.mismatches)).toEqual([]);
    expect(metrics.map((m) => [m.dimensions?.Table, m.values.hourlyMismatchHours])).toEqual(
      checked.map((t) => [t, 0]),
    );
    expect(metrics.every((m) => m.timestamp === world.now.getTime())).toBe(true);
    expect(logs).toEqual([]);
  });

  it('stores what it found: health reads the same check back', async () => {
    const { deps } = captured();
    const [check] = (await checkCycleHours(deps)).filter((c) => c.table === BINANCE);
    expect(await deps.watermarks.lastCheck(BINANCE)).toEqual(check);
    expect(check?.checkedAt).toBe(world.now.toISOString());
  });

  it('a look-back of one hour checks one hour; the default checks all it can', async () => {
    const deps = world.deps();
    const table = tableByName(deps.config, BINANCE);
    const one = await checkTableHours(deps, table, { lookbackHours: 1 });
    expect(one.checkedHours).toBe(1);
    expect(Date.parse(one.to) - Date.parse(one.from)).toBe(HOUR);
    const all = await checkTableHours(deps, table);
    expect(all.checkedHours).toBeGreaterThan(one.checkedHours);
    expect(all.to).toBe(one.to);
  });

  it('a table whose check fails is logged by name, the others are still checked and published', async () => {
    const store = world.deps().watermarks;
    const failing: WatermarkStore = {
      ...store,
      ledger: async (table, range) => {
        if (table === BINANCE) throw new Error('connection reset while reading the ledger');
        return store.ledger(table, range);
      },
    };
    const { deps, metrics, logs } = captured({ watermarks: failing });
    const checks = await checkCycleHours(deps);
    expect(checks.map((c) => c.table)).not.toContain(BINANCE);
    expect(checks.length).toBeGreaterThan(0);
    expect(logs).toEqual([
      {
        event: 'hourly-check-failed',
        table: BINANCE,
        message: 'connection reset while reading the ledger',
      },
    ]);
    expect(metrics.map((m) => m.dimensions?.Table)).toEqual(checks.map((c) => c.table));
  });

  it('a table configured since the last cycle (no watermark yet) is left for after its first cycle', async () => {
    const base = world.deps().config;
    const binance = tableByName(base, BINANCE);
    const added = { ...binance, name: 'bronze_trades_added', target: { ...binance.target, name: 'added' } };
    const config = parseConfig({ tables: [...base.tables, added] }, 'test config');
    const { deps, logs } = captured({ config });
    const checks = await checkCycleHours(deps);
    expect(checks.map((c) => c.table)).not.toContain('bronze_trades_added');
    expect(checks.map((c) => c.table)).toContain(BINANCE);
    expect(logs).toEqual([]);
  });

  it('a watermark store that cannot list the tables: nothing checked, the outage logged, no metric', async () => {
    const store = world.deps().watermarks;
    const down: WatermarkStore = {
      ...store,
      list: async () => {
        throw new Error('the database system is shutting down');
      },
    };
    const { deps, metrics, logs } = captured({ watermarks: down });
    expect(await checkCycleHours(deps)).toEqual([]);
    expect(logs).toEqual([
      { event: 'hourly-check-failed', table: '*', message: 'the database system is shutting down' },
    ]);
    expect(metrics).toEqual([]);
  });

  it('rows back-dated into checked hours: the hours differ, are published and logged (five at most)', async () => {
    const w = await world.deps().watermarks.get(BINANCE);
    // A replayed partition: trades in each of the seven hours below the cursor's hour, keys of their own.
    const cursorHour = Math.floor(Date.parse(w.cursor) / HOUR) * HOUR;
    for (let h = 1; h <= 7; h++)
      await generateTrades(world.clickhouse, {
        rows: 60,
        spanHours: 0.5,
        end: new Date(cursorHour - h * HOUR + 40 * 60_000),
        lateFraction: 0,
        seed: 500 + h,
        sequenceOffset: h * 10 ** 16,
      });
    const { deps, metrics, logs } = captured();
    const checks = await checkCycleHours(deps);
    const binance = checks.find((c) => c.table === BINANCE);
    const checkedHours = binance?.checkedHours ?? 0;
    // Every checked hour (all among the seven) got rows no batch committed.
    expect(checkedHours).toBeGreaterThanOrEqual(6);
    expect(checkedHours).toBeLessThanOrEqual(7);
    const flagged = binance?.mismatches ?? [];
    expect(flagged.length).toBe(checkedHours);
    for (const m of flagged) expect(m.clickhouseRows).toBeGreaterThan(m.committedRows);
    expect(metrics.find((m) => m.dimensions?.Table === BINANCE)?.values.hourlyMismatchHours).toBe(
      flagged.length,
    );
    const mismatch = logs.filter((l) => l.event === 'hourly-mismatch' && l.table === BINANCE);
    expect(mismatch.map((l) => l.hours)).toEqual([flagged.slice(0, 5)]);
    expect(logs.filter((l) => l.table === KRAKEN)).toEqual([]);

    // Checked again with a look-back of one hour, the older hours stay reported (carried): their rows are
    // still in ClickHouse, so time passing must not turn the check green.
    const table = tableByName(deps.config, BINANCE);
    const narrow = await checkTableHours(deps, table, { lookbackHours: 1 });
    expect(narrow.checkedHours).toBe(1);
    expect(narrow.mismatches.map((m) => m.hour).sort()).toEqual(flagged.map((m) => m.hour).sort());
  });
});

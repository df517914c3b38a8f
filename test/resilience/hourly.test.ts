import { beforeAll, describe, expect, it } from 'vitest';
import { auditTables } from '../../src/audit/audit.ts';
import { renderRepair } from '../../src/cli/commands/repair.ts';
import { renderHealth } from '../../src/cli/commands/status.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { tableByName } from '../../src/config/load.ts';
import { checkTableHours } from '../../src/hourly/check.ts';
import { repairTable } from '../../src/hourly/repair.ts';
import { currentSnapshot } from '../../src/iceberg/metadata.ts';
import { liveDataFiles, loadTable, newestMarker } from '../../src/iceberg/table.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import { crashAt, InjectedCrash } from '../../src/pipeline/faults.ts';
import { collectHealth } from '../../src/pipeline/health.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS, configWith, LEASE_SECONDS, MINUTE } from './harness.ts';
import { verifyAll } from './verify.ts';

const HOUR = 3_600_000;
const hourlyProblems = async (deps: Parameters<typeof collectHealth>[0]) =>
  (await collectHealth(deps)).problems.filter((p) => p.code === 'hourly-mismatch');

/**
 * Back-dated rows (a replayed partition: ingestion times hours old) land below every watermark: bronze
 * and silver rows no cycle will offload, and trades later than the candles' lateness that change
 * candles already in Iceberg. The cycle's own per-hour check notices (metric, health red), `repair`
 * puts exactly the difference into Iceberg (no key twice), and health is green again.
 */
describe('back-dated rows and too-late trades: noticed by the cycle, repaired exactly once', () => {
  const fed = useFedRig({ name: 'hourly', seed: 11, rowsPerHour: 1200, hours: 6 });
  const { clock } = fed;
  const cycle = async (metrics: EmfRecord[] = []) => {
    clock.advance(CYCLE_MS);
    await fed.feed();
    return runCycle(fed.rig.deps({ metrics: (r) => metrics.push(...r) }), {});
  };
  /**
   * New trades whose ingestion (and trade) times lie `hoursAgo` in the past, as a replayed partition
   * delivers: with sequence numbers of their own, never a feed trade's (seeds 9001 to 9099).
   */
  const replay = (hoursAgo: number, seed: number) =>
    generateTrades(fed.rig.clickhouse, {
      rows: 60,
      spanHours: 10 / 60,
      end: new Date(clock.now().getTime() - hoursAgo * HOUR + 7_000),
      lateFraction: 0,
      seed,
      sequenceOffset: (seed - 9000) * 10 ** 16,
    });
  const mismatchesIn = (metrics: EmfRecord[]) =>
    new Set(
      metrics
        .filter((r) => (r.values.hourlyMismatchHours ?? 0) > 0)
        .map((r) => r.dimensions?.Table as string),
    );

  beforeAll(async () => {
    await runCycle(fed.rig.deps(), {});
    for (let i = 0; i < 3; i++) await cycle();
  });

  it('a replay below the watermarks: the next cycle is red, repair makes Iceberg equal to ClickHouse, rerun is a no-op', async () => {
    const deps = fed.rig.deps();
    const quiet: EmfRecord[] = [];
    await cycle(quiet);
    expect(mismatchesIn(quiet)).toEqual(new Set());
    expect(quiet.some((r) => r.values.hourlyMismatchHours === 0)).toBe(true);
    expect(await hourlyProblems(deps)).toEqual([]);
    expect((await collectHealth(deps)).healthy).toBe(true);
    expect((await verifyAll(deps)).problems).toEqual([]);

    await replay(3, 9001);
    const metrics: EmfRecord[] = [];
    await cycle(metrics);
    // The cycle itself noticed, in every layer the replay reached below its watermark.
    const flagged = mismatchesIn(metrics);
    expect(flagged).toContain('bronze_trades_binance');
    expect(flagged).toContain('silver_trades');
    expect(flagged).toContain('ohlcv_1m');
    const red = await collectHealth(deps);
    expect(red.healthy).toBe(false);
    expect(red.problems.filter((p) => p.code === 'hourly-mismatch').map((p) => p.table)).toEqual(
      deps.config.tables.map((t) => t.name).filter((n) => flagged.has(n)),
    );
    expect(renderHealth(red)).toMatch(
      /silver_trades: \d+ closed hour\(s\) differ .*k2-offload repair --table silver_trades/,
    );
    // The cycle offloads nothing of it: the rows are below the cursor. The audit sees candle values too.
    const broken = await verifyAll(deps);
    expect(broken.problems.join('\n')).toMatch(/bronze_trades_binance: \d+ keys missing/);
    expect(broken.problems.join('\n')).toMatch(/ohlcv_1m: \d+ rows differ/);
    const audit = await auditTables(deps, { hours: 24, tables: ['ohlcv_1m'], reader: deps.clickhouse });
    expect(audit.ok).toBe(false);

    for (const name of flagged) {
      const result = await repairTable(deps, tableByName(deps.config, name), { holder: 'test repair' });
      expect(result.status, name).toBe('repaired');
      expect(result.after.mismatches, name).toEqual([]);
      // A repair changes the table's rows: a reader that follows new snapshots skips one that says
      // `replace` (files rewritten, rows unchanged) and would miss the corrected rows.
      const table = tableByName(deps.config, name);
      const { metadata } = await loadTable(deps, table.target);
      expect(currentSnapshot(metadata)?.summary.operation, name).toBe(
        table.reaggregate ? 'overwrite' : 'append',
      );
      expect(renderRepair(result)).toMatch(
        /^Repair of \S+: repaired\n[\s\S]*Hours the per-hour check flagged[\s\S]*Checked again: the \d+ checked hour\(s\) agree\.$/,
      );
    }
    expect((await verifyAll(deps)).problems).toEqual([]);
    expect(await hourlyProblems(deps)).toEqual([]);
    expect((await collectHealth(deps)).healthy).toBe(true);
    expect((await auditTables(deps, { hours: 24, reader: deps.clickhouse })).ok).toBe(true);

    // Run twice: nothing to repair, nothing written.
    for (const name of flagged) {
      const table = tableByName(deps.config, name);
      const before = await deps.catalog.currentMetadataLocation(table.target);
      const again = await repairTable(deps, table, { holder: 'test repair' });
      expect(again.status, name).toBe('nothing-to-repair');
      expect(await deps.catalog.currentMetadataLocation(table.target)).toBe(before);
    }
    // The next cycles go on from the same watermarks, green.
    const after: EmfRecord[] = [];
    await cycle(after);
    expect(mismatchesIn(after)).toEqual(new Set());
    expect((await verifyAll(deps)).problems).toEqual([]);
  });

  it('a crash before or after the repair commit: the rerun commits once, exact', async () => {
    await replay(4, 9002);
    await cycle();
    const deps = fed.rig.deps();
    const table = tableByName(deps.config, 'bronze_trades_kraken');
    const candles = tableByName(deps.config, 'ohlcv_5m');
    for (const t of [table, candles]) {
      const crashing = fed.rig.deps({ faults: crashAt('repair-after-commit') });
      const before = await deps.catalog.currentMetadataLocation(t.target);
      await expect(repairTable(crashing, t, { holder: 'test repair' })).rejects.toBeInstanceOf(InjectedCrash);
      const committed = await deps.catalog.currentMetadataLocation(t.target);
      expect(committed).not.toBe(before);
      // Still red: the commit is in Iceberg, the ledger does not know it yet.
      expect((await hourlyProblems(deps)).map((p) => p.table)).toContain(t.name);
      clock.advance(MINUTE);
      const rerun = await repairTable(deps, t, { holder: 'test repair' });
      expect(rerun.status).toBe('already-repaired');
      expect(rerun.after.mismatches).toEqual([]);
      expect(await deps.catalog.currentMetadataLocation(t.target)).toBe(committed);
    }
    // Killed after writing its files, before the commit: nothing in Iceberg; the rerun writes them again.
    const coinbase = tableByName(deps.config, 'bronze_trades_coinbase');
    const untouched = await deps.catalog.currentMetadataLocation(coinbase.target);
    const early = fed.rig.deps({ faults: crashAt('repair-before-commit') });
    await expect(repairTable(early, coinbase, { holder: 'test repair' })).rejects.toBeInstanceOf(
      InjectedCrash,
    );
    expect(await deps.catalog.currentMetadataLocation(coinbase.target)).toBe(untouched);
    expect((await repairTable(deps, coinbase, { holder: 'test repair' })).status).toBe('repaired');
    for (const name of new Set((await hourlyProblems(deps)).map((p) => p.table as string)))
      await repairTable(deps, tableByName(deps.config, name), { holder: 'test repair' });
    expect((await verifyAll(deps)).problems).toEqual([]);
    expect(await hourlyProblems(deps)).toEqual([]);
  });

  it('a batch whose watermark step never ran (crash after its Iceberg commit) is reconciled and its hours stay checked', async () => {
    const name = 'bronze_trades_binance';
    clock.advance(CYCLE_MS);
    await fed.feed();
    const crashing = fed.rig.deps({ faults: crashAt('after-iceberg-commit', { table: name }) });
    await expect(runCycle(crashing, {})).rejects.toBeInstanceOf(InjectedCrash);
    const deps = fed.rig.deps();
    const table = tableByName(deps.config, name);
    const { metadata } = await loadTable(deps, table.target);
    const lost = newestMarker(metadata);
    if (!lost) throw new Error('the crashed cycle committed no batch');
    const { cursor } = await deps.watermarks.get(name);
    expect(Date.parse(lost.windowEnd)).toBeGreaterThan(Date.parse(cursor));
    // The marker carries what the ledger needs; the ledger does not have it yet.
    expect(lost.hours?.reduce((n, h) => n + h.rows, 0)).toBe(lost.rows);
    const window = { from: lost.windowStart, to: lost.windowEnd };
    expect((await deps.watermarks.ledger(name, window)).map((e) => e.batchId)).not.toContain(lost.batchId);

    // The next cycle after the dead one's leases expired reconciles, recording the batch from Iceberg.
    clock.advance(LEASE_SECONDS * 1000 + MINUTE);
    await fed.feed();
    await runCycle(deps, {});
    const entry = (await deps.watermarks.ledger(name, window)).find((e) => e.batchId === lost.batchId);
    expect(entry?.hours).toEqual(lost.hours);

    // Cycles until the batch's hour is closed; a replay into it is noticed, not skipped as unrecorded.
    for (let i = 0; i < 5; i++) await cycle();
    expect(await hourlyProblems(deps)).toEqual([]);
    await generateTrades(fed.rig.clickhouse, {
      rows: 40,
      spanHours: 1 / 60,
      end: new Date(Date.parse(lost.windowEnd) - 1_000),
      lateFraction: 0,
      seed: 9003,
      sequenceOffset: 50 * 10 ** 16,
    });
    await cycle();
    const flagged = await hourlyProblems(deps);
    expect(flagged.map((p) => p.table)).toContain(name);
    const check = await deps.watermarks.lastCheck(name);
    const lostHour = new Date(Math.floor((Date.parse(lost.windowEnd) - 1_000) / HOUR) * HOUR).toISOString();
    expect(check?.mismatches.map((m) => m.hour)).toContain(lostHour);
    for (const t of new Set(flagged.map((p) => p.table as string)))
      expect((await repairTable(deps, tableByName(deps.config, t), { holder: 'test repair' })).status).toBe(
        'repaired',
      );
    expect(await hourlyProblems(deps)).toEqual([]);
    expect((await verifyAll(deps)).problems).toEqual([]);
  });

  it('an hour left unrepaired past the look-back stays red, and a plain repair still reaches it', async () => {
    await replay(6, 9004);
    await cycle();
    const deps = fed.rig.deps();
    const name = 'bronze_trades_kraken';
    const table = tableByName(deps.config, name);
    const flagged = await deps.watermarks.lastCheck(name);
    const replayed = flagged?.mismatches.map((m) => m.hour) ?? [];
    expect(replayed.length).toBeGreaterThan(0);
    // Later checks look back only 2 hours (as the 48 h look-back does two days on): the hours are no
    // longer compared, but their rows are still missing, so they are still reported.
    const narrow = await checkTableHours(deps, table, { lookbackHours: 2 });
    expect(Date.parse(narrow.from)).toBeGreaterThan(Date.parse(replayed.at(-1) as string));
    expect(narrow.mismatches.map((m) => m.hour)).toEqual(replayed);
    expect((await hourlyProblems(deps)).map((p) => p.table)).toContain(name);
    // The operator's `repair --table T`, with no look-back given, reaches back to them.
    const repaired = await repairTable(deps, table, { holder: 'test repair' });
    expect(repaired.status).toBe('repaired');
    expect(repaired.hours).toEqual(replayed);
    for (const t of new Set((await hourlyProblems(deps)).map((p) => p.table as string)))
      await repairTable(deps, tableByName(deps.config, t), { holder: 'test repair' });
    expect(await hourlyProblems(deps)).toEqual([]);
    expect((await verifyAll(deps)).problems).toEqual([]);
  });

  it("a repair waits for the table's lease, and refuses to paper over rows deleted from the hot tier", async () => {
    const deps = fed.rig.deps();
    const table = tableByName(deps.config, 'bronze_trades_coinbase');
    const held = await deps.watermarks.acquireLease(table.name, 'cycle-elsewhere', 900);
    if (!held.acquired) throw new Error('lease not acquired');
    await expect(repairTable(deps, table, { holder: 'test repair' })).rejects.toMatchObject({
      name: 'LeaseError',
      message: expect.stringMatching(/leased by cycle-elsewhere/),
    });
    await deps.watermarks.releaseLease(table.name, held.token);

    // Rows deleted from ClickHouse after their offload: the check sees fewer rows than committed.
    const hour = new Date(Math.floor((clock.now().getTime() - 5 * HOUR) / HOUR) * HOUR).toISOString();
    await fed.rig.clickhouse.command({
      query: `DELETE FROM k2.bronze_trades_coinbase WHERE toStartOfHour(ingestion_timestamp) = parseDateTimeBestEffort('${hour}') AND sequence_number % 10 = 0`,
    });
    await cycle();
    const red = await hourlyProblems(deps);
    expect(red.map((p) => p.table)).toEqual(['bronze_trades_coinbase']);
    const before = await deps.catalog.currentMetadataLocation(table.target);
    const result = await repairTable(deps, table, { holder: 'test repair' });
    expect(result.status).toBe('unrepairable');
    expect(result.detail).toMatch(/fewer rows than were committed/);
    expect(await deps.catalog.currentMetadataLocation(table.target)).toBe(before);
    expect((await hourlyProblems(deps)).map((p) => p.table)).toEqual(['bronze_trades_coinbase']);
  });

  it('after a partition spec change, a candle repair rewrites hours held in files of the old spec', async () => {
    const config = configWith((t) =>
      t.name === 'ohlcv_1m'
        ? {
            partitionSpec: [
              { column: 'window_start', transform: 'day' },
              { column: 'exchange', transform: 'identity' },
            ],
          }
        : {},
    );
    const deps = fed.rig.deps({ config });
    const table = tableByName(config, 'ohlcv_1m');
    clock.advance(CYCLE_MS);
    await fed.feed();
    await runCycle(deps, {});
    const { metadata } = await loadTable(deps, table.target);
    expect(metadata['default-spec-id']).toBe(1);

    await replay(4, 9003);
    clock.advance(CYCLE_MS);
    await fed.feed();
    await runCycle(deps, {});
    expect((await hourlyProblems(deps)).map((p) => p.table)).toContain('ohlcv_1m');
    const oldSpecFiles = (
      await liveDataFiles(deps.store, (await loadTable(deps, table.target)).metadata)
    ).filter((f) => f.specId === 0).length;
    const result = await repairTable(deps, table, { holder: 'test repair' });
    expect(result.status).toBe('repaired');
    expect(result.after.mismatches).toEqual([]);
    const after = await liveDataFiles(deps.store, (await loadTable(deps, table.target)).metadata);
    // The repaired hours' old-spec files were replaced by files of the current spec.
    expect(after.filter((f) => f.specId === 0).length).toBeLessThan(oldSpecFiles);
    const verdict = (await verifyAll(deps)).verdicts.find((v) => v.table === 'ohlcv_1m');
    expect(verdict && [verdict.missing, verdict.duplicated, verdict.extra, verdict.mismatched]).toEqual([
      [],
      [],
      [],
      [],
    ]);
  });

  it('a column added to a candle table does not make hours committed before it look changed', async () => {
    await fed.rig.clickhouse.command({
      query: `ALTER TABLE k2.ohlcv_15m ADD COLUMN venue String DEFAULT 'spot'`,
    });
    const config = configWith((t) =>
      t.name === 'ohlcv_15m'
        ? {
            columns: [...t.columns, { name: 'venue', type: 'String', required: false }],
            reaggregate: {
              groupBy: t.reaggregate?.groupBy ?? [],
              columns: { ...t.reaggregate?.columns, venue: 'any(venue)' },
            },
          }
        : {},
    );
    const deps = fed.rig.deps({ config });
    for (let i = 0; i < 2; i++) {
      clock.advance(CYCLE_MS);
      await fed.feed();
      await runCycle(deps, {});
    }
    const check = await deps.watermarks.lastCheck('ohlcv_15m');
    expect(check?.checkedHours).toBeGreaterThan(0);
    expect(check?.mismatches).toEqual([]);
    expect((await hourlyProblems(deps)).map((p) => p.table)).not.toContain('ohlcv_15m');
  });
});

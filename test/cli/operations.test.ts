import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CatchUpReport } from '../../src/cli/commands/catch-up.ts';
import type { TableMaintenance } from '../../src/cli/commands/maintain.ts';
import type { WatermarkView } from '../../src/cli/commands/watermark.ts';
import type { WatermarkChange } from '../../src/cli/commands/watermark-change.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { tableByName } from '../../src/config/load.ts';
import { liveDataFiles, loadTable } from '../../src/iceberg/table.ts';
import type { HealthReport } from '../../src/pipeline/health.ts';
import { targetOf } from '../../src/pipeline/plan-cycle.ts';
import { compareKeys, icebergSource, openWorld, rows, type World } from '../support/world.ts';
import { cli } from './support.ts';

const TABLE = 'bronze_trades_kraken';
const MIN = 60_000;

/**
 * The operator's commands on one bronze table with a three-hour backlog, in this process, every one at
 * the world's instant unless a test moves it.
 */
describe('k2-offload catch-up, watermark, status and maintain', () => {
  let world: World;
  let env: NodeJS.ProcessEnv;
  let caughtUp: CatchUpReport;
  const run = (argv: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    cli(argv, { ...env, ...extraEnv }, () => world.now);
  const cursor = async () => (await world.deps().watermarks.get(TABLE)).cursor;
  const exactlyOnce = async () => {
    const deps = world.deps();
    const diff = await compareKeys(world, deps, tableByName(deps.config, TABLE), await cursor());
    return { missing: diff.missing.length, duplicated: diff.duplicated.length, extra: diff.extra.length };
  };

  beforeAll(async () => {
    world = await openWorld();
    env = { K2_HOME: world.dir, WAREHOUSE: join(world.dir, 'warehouse'), DATABASE_URL: world.databaseUrl };
    await generateTrades(world.clickhouse, {
      rows: 6000,
      spanHours: 3,
      end: new Date(world.now.getTime() - 10 * MIN),
      lateFraction: 0.05,
      seed: 3,
    });
    const r = await run(['catch-up', '--table', TABLE, '--json']);
    expect(r.stderr).toBe('');
    caughtUp = r.json() as CatchUpReport;
    expect(r.code).toBe(0);
  });
  afterAll(() => world?.close());

  it('catch-up moves one table to its bound in bounded batches, each row once', async () => {
    expect(caughtUp).toMatchObject({ table: TABLE, caughtUp: true, cursor: caughtUp.target });
    // Three hours of backlog, windows of at most one hour.
    expect(caughtUp.batches).toBeGreaterThanOrEqual(3);
    expect(caughtUp.rows).toBe(1800);
    expect(await exactlyOnce()).toEqual({ missing: 0, duplicated: 0, extra: 0 });
  });

  it('catch-up of a table whose upstream is behind stops, says so, exit 1', async () => {
    const r = await run(['catch-up', '--table', 'silver_trades']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('not caught up');
    expect(r.stdout).toContain('waiting-for-upstream');
  });

  it('status: the caught-up table is fine, tables never offloaded make it unhealthy (exit 1)', async () => {
    const r = await run(['status', '--json']);
    expect(r.code).toBe(1);
    const report = r.json() as HealthReport;
    expect(report.healthy).toBe(false);
    const kraken = report.tables.find((t) => t.table === TABLE);
    expect(kraken?.lagMinutes).toBeLessThan(2);
    expect(kraken?.consecutiveFailures).toBe(0);
    expect(kraken?.ttlHeadroomHours).toBeGreaterThan(24 * 6);
    expect(report.problems.filter((p) => p.table === TABLE && p.severity === 'critical')).toEqual([]);
    // Its rows have waited three hours since the oldest arrived: lag from that row, not from 1970.
    const binance = report.problems.filter((p) => p.table === 'bronze_trades_binance');
    expect(binance.map((p) => p.code)).toEqual(['lag', 'never-run']);
    const lag = report.tables.find((t) => t.table === 'bronze_trades_binance')?.lagMinutes ?? 0;
    expect(lag).toBeGreaterThan(170);
    expect(lag).toBeLessThan(200);
  });

  it('status, plan and watermark show fit an 80-column terminal; --wide prints every column whole', async () => {
    for (const argv of [['status'], ['plan'], ['watermark', 'show']]) {
      const narrow = await run(argv, { COLUMNS: '80' });
      const lines = narrow.stdout.split('\n');
      expect(Math.max(...lines.map((l) => l.length)), argv.join(' ')).toBeLessThanOrEqual(80);
      // Nothing that names a table is lost to the narrowing.
      for (const t of DEFAULT_TABLES) expect(narrow.stdout, argv.join(' ')).toContain(t.name);
    }
    const wide = await run(['plan', '--wide'], { COLUMNS: '80' });
    expect(Math.max(...wide.stdout.split('\n').map((l) => l.length))).toBeGreaterThan(80);
  });

  it('watermark set refuses to skip rows ClickHouse has and Iceberg does not, unless forced, and audits it', async () => {
    const before = await cursor();
    const arrived = new Date(Date.parse(before) + 30_000);
    const at = `toDateTime64(${arrived.getTime() / 1000}, 3, 'UTC')`;
    await world.clickhouse.command({
      query: `INSERT INTO k2.bronze_trades_kraken (exchange_timestamp, sequence_number, symbol, price, quantity,
        quote_volume, event_time, kafka_offset, kafka_partition, ingestion_timestamp)
        VALUES (${at}, 999000001, 'XBT/USD', 1, 1, 1, ${at}, 1, 0, toDateTime(${Math.floor(arrived.getTime() / 1000)}, 'UTC'))`,
    });
    const to = new Date(Date.parse(before) + MIN).toISOString();
    const refused = await run(['watermark', 'set', '--table', TABLE, '--to', to]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`it would skip 1 rows that ClickHouse holds in [${before}, ${to})`);
    expect(await cursor()).toBe(before);

    const backwards = await run(['watermark', 'set', '--table', TABLE, '--to', '2020-01-01T00:00:00Z']);
    expect(backwards.code).toBe(2);
    expect(backwards.stderr).toContain('moving backwards is a reset');

    const forced = await run([
      'watermark',
      'set',
      '--table',
      TABLE,
      '--to',
      to,
      '--force',
      '--reason',
      'INC-1: bad prices',
      '--actor',
      'alice',
      '--json',
    ]);
    expect(forced.code).toBe(0);
    expect(forced.json()).toMatchObject({
      changed: true,
      previousCursor: before,
      cursor: to,
      skippedRows: 1,
    });
    expect(await cursor()).toBe(to);
  });

  it('watermark reset is refused while Iceberg holds the range, and re-offloads a skipped range exactly once', async () => {
    const current = await cursor();
    const reset = (to: string) =>
      run([
        'watermark',
        'reset',
        '--table',
        TABLE,
        '--to',
        to,
        '--force',
        '--reason',
        'INC-2: test',
        '--actor',
        'bob',
        '--json',
      ]);
    const before = (await run(['watermark', 'show', '--table', TABLE, '--json'])).json() as WatermarkView;
    // Where Iceberg ends: the newest batch that had rows.
    const icebergEnd = before.watermarks[0]?.icebergMarkers[0]?.windowEnd as string;
    const back = new Date(Date.parse(caughtUp.from) + 30 * MIN).toISOString();
    // Below Iceberg's newest marker a reset would be reconciled away by the next cycle: refused, unchanged.
    const refused = await reset(back);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`still holds rows up to ${icebergEnd}`);
    expect(refused.stderr).toContain('roll the Iceberg table back');
    expect(await cursor()).toBe(current);

    // Back to where Iceberg ends: the range skipped by the forced set is offloaded after all.
    const r = await reset(icebergEnd);
    expect(r.code).toBe(0);
    const change = r.json() as WatermarkChange;
    expect(change).toMatchObject({ changed: true, previousCursor: current, cursor: icebergEnd });

    const shown = await run(['watermark', 'show', '--table', TABLE, '--json']);
    const view = shown.json() as WatermarkView;
    expect(view.audit.map((a) => [a.actor, a.reason, a.backwards])).toEqual([
      ['bob', 'INC-2: test', true],
      ['alice', 'INC-1: bad prices', false],
      ['k2-offload', expect.stringContaining('first offload'), false],
    ]);
    // Markers of the batches that had rows, newest first; the newest is where Iceberg ends.
    expect(view.watermarks[0]?.icebergMarkers[0]?.windowEnd).toBe(change.icebergNewestEnd);

    // Two minutes on, the bound (now minus lateness) has passed the skipped row: it lands, once.
    const later = new Date(world.now.getTime() + 2 * MIN);
    const next = await cli(['run', '--tables', TABLE, '--until', current], env, () => later);
    expect(next.code).toBe(0);
    expect(await cursor()).toBe(current);
    expect(await exactlyOnce()).toEqual({ missing: 0, duplicated: 0, extra: 0 });
    const deps = world.deps();
    const source = await icebergSource(deps, tableByName(deps.config, TABLE));
    const skipped = await rows<{ n: string }>(
      world.clickhouse,
      `SELECT count() AS n FROM ${source} WHERE sequence_number = 999000001`,
    );
    expect(Number(skipped[0]?.n)).toBe(1);
  });

  it('maintain compacts the small files of each batch, under the lease, and the rows stay the same', async () => {
    const deps = world.deps();
    const ident = targetOf(tableByName(deps.config, TABLE));
    const live = async () => liveDataFiles(deps.store, (await loadTable(deps, ident)).metadata);
    const byPartition = new Map<string, number>();
    for (const f of await live()) {
      const key = JSON.stringify(f.file.partition, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
      byPartition.set(key, (byPartition.get(key) ?? 0) + 1);
    }
    // Partitions (days) with two or more small files are merged; a lone file has nothing to merge with.
    const mergeable = [...byPartition.values()].filter((n) => n >= 2).reduce((a, n) => a + n, 0);
    expect(mergeable).toBeGreaterThanOrEqual(2);

    // A dry run says what the real run would do: skip a table a cycle holds.
    const held = await deps.watermarks.acquireLease(TABLE, 'cycle-elsewhere', 600);
    const skipped = await run(['maintain', '--table', TABLE, '--dry-run', '--json']);
    expect((skipped.json() as { tables: TableMaintenance[] }).tables[0]).toMatchObject({
      result: 'skipped',
      note: expect.stringMatching(/^would skip: leased by cycle-elsewhere until /),
    });
    if (held.acquired) await deps.watermarks.releaseLease(TABLE, held.token);

    const dry = await run(['maintain', '--table', TABLE, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect((dry.json() as { tables: TableMaintenance[] }).tables[0]).toMatchObject({
      result: 'would-do',
      compactedFiles: mergeable,
    });
    expect((await live()).length).toBe([...byPartition.values()].reduce((a, n) => a + n, 0));

    const done = await run(['maintain', '--table', TABLE, '--json']);
    expect(done.code).toBe(0);
    expect((done.json() as { tables: TableMaintenance[] }).tables[0]).toMatchObject({
      result: 'done',
      compactedFiles: mergeable,
    });
    expect((await live()).length).toBe(byPartition.size);
    expect((await deps.watermarks.get(TABLE)).lease).toBeNull();
    expect(await exactlyOnce()).toEqual({ missing: 0, duplicated: 0, extra: 0 });
  });
});

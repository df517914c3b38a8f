import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TableIdent } from '../../src/iceberg/catalog.ts';
import { createPathCatalog } from '../../src/iceberg/path-catalog.ts';
import { loadTable, newestMarker } from '../../src/iceberg/table.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { collectHealth, type HealthReport, healthRecords } from '../../src/pipeline/health.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { cli } from '../cli/support.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * History moves back: a catalog restored from a backup (or a Glue table version restored) points at
 * older metadata, or a run uses another catalog that has no table. Iceberg then lacks batches the
 * watermark has passed. The table must stop with a named error and red health, never commit on top of
 * the gap or into an empty twin, and one audited command must bring it back so the gap is offloaded
 * exactly once.
 */
const TABLE = 'bronze_trades_binance';
const target: TableIdent = { namespace: 'cold', name: TABLE };

const problemCodes = (report: HealthReport, table: string) =>
  report.problems.filter((p) => p.table === table && p.severity === 'critical').map((p) => p.code);

describe('catalog history', () => {
  const fed = useFedRig({ name: 'catalog-history', seed: 23, rowsPerHour: 2400, hours: 2 });
  const { clock } = fed;
  const env = () => ({
    ...process.env,
    DATABASE_URL: fed.databaseUrl,
    K2_HOME: fed.rig.dir,
    WAREHOUSE: join(fed.rig.dir, 'warehouse'),
  });
  const nextCycle = async (deps: PipelineDeps = fed.rig.deps()) => {
    clock.advance(CYCLE_MS);
    await fed.feed();
    return runCycle(deps, {});
  };
  const failedTables = (r: Awaited<ReturnType<typeof runCycle>>) =>
    r.passes
      .flatMap((p) => p.tables)
      .filter((t) => t.status === 'failed')
      .map((t) => t.table);

  it('a catalog restored to older metadata stops the table, red, until rewound; the gap is offloaded once', async () => {
    const deps = fed.rig.deps();
    await runCycle(deps, {});
    await nextCycle();
    const older = (await deps.catalog.currentMetadataLocation(target)) as string;
    const olderEnd = newestMarker((await loadTable(deps, target)).metadata)?.windowEnd;
    await nextCycle();
    await nextCycle();
    const newest = (await deps.catalog.currentMetadataLocation(target)) as string;
    const passed = (await deps.watermarks.get(TABLE)).cursor;
    expect(Date.parse(passed)).toBeGreaterThan(Date.parse(olderEnd as string));

    // The restore: the catalog row points at the metadata of two cycles ago.
    await deps.catalog.swapMetadataLocation(target, newest, older);
    const stopped = await nextCycle();
    expect(failedTables(stopped)).toEqual([TABLE]);
    const w = await deps.watermarks.get(TABLE);
    expect(w.lastError?.name).toBe('IcebergBehindError');
    expect(w.lastError?.message).toContain(older);
    expect(w.lastError?.message).toContain('k2-offload watermark rewind');
    expect(w.cursor).toBe(passed);
    // Nothing was committed on top of the gap.
    expect(await deps.catalog.currentMetadataLocation(target)).toBe(older);

    const red = await collectHealth(deps);
    expect(red.healthy).toBe(false);
    expect(problemCodes(red, TABLE)).toContain('iceberg-behind');
    expect(healthRecords(red).find((r) => r.dimensions?.Table === TABLE)?.values.icebergBehind).toBe(1);
    const plan = await cli(['plan', '--tables', TABLE, '--json'], env(), clock.now);
    const planned = (plan.json() as { tables: Array<{ table: string; batches: unknown[]; skip: unknown }> })
      .tables;
    expect(planned.find((t) => t.table === TABLE)).toMatchObject({
      batches: [],
      skip: { reason: 'failed', detail: expect.stringContaining('IcebergBehindError') },
    });
    const status = await cli(['status', '--json'], env(), clock.now);
    expect(status.code).toBe(1);
    expect(JSON.stringify(status.json())).toContain('iceberg-behind');

    const rewind = await cli(
      ['watermark', 'rewind', '--table', TABLE, '--reason', 'INC-9 catalog restored', '--actor', 'oncall'],
      env(),
      clock.now,
    );
    expect(rewind.code, rewind.stderr).toBe(0);
    expect((await deps.watermarks.get(TABLE)).cursor).toBe(olderEnd);
    const [audit] = await deps.watermarks.audit({ table: TABLE, limit: 1 });
    expect(audit).toMatchObject({
      action: 'rewind',
      oldCursor: passed,
      newCursor: olderEnd,
      actor: 'oncall',
    });

    const repaired = await nextCycle();
    expect(failedTables(repaired)).toEqual([]);
    expect((await verifyAll(deps)).problems).toEqual([]);
    const green = await collectHealth(deps);
    expect(green.problems.filter((p) => p.severity === 'critical')).toEqual([]);
    expect(green.healthy).toBe(true);
  });

  it('a switched catalog creates no empty twin: refused, naming where the history is; back on it, nothing lost', async () => {
    const deps = fed.rig.deps();
    const switched = fed.rig.deps({ catalog: createPathCatalog(deps.store, deps.warehouse) });
    const result = await nextCycle(switched);
    expect(failedTables(result)).toContain(TABLE);
    const w = await deps.watermarks.get(TABLE);
    expect(w.lastError?.name).toBe('IcebergBehindError');
    expect(w.lastError?.message).toContain('the path catalog has no Iceberg table');
    expect(w.lastError?.message).toContain(`the postgres:k2 catalog, table at ${w.iceberg?.location}`);
    expect(await switched.catalog.currentMetadataLocation(target)).toBeUndefined();

    const red = await collectHealth(switched);
    expect(red.healthy).toBe(false);
    expect(problemCodes(red, TABLE)).toContain('iceberg-behind');

    await nextCycle(deps);
    expect((await verifyAll(deps)).problems).toEqual([]);
    const green = await collectHealth(deps);
    expect(green.problems.filter((p) => p.severity === 'critical')).toEqual([]);
    expect(green.healthy).toBe(true);
  });
});

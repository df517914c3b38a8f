import { beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import { currentSnapshot, parseTableMetadata, serializeTableMetadata } from '../../src/iceberg/metadata.ts';
import { loadTable, MARKER_KEYS } from '../../src/iceberg/table.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { planCycle } from '../../src/pipeline/plan-cycle.ts';
import { useRig } from './fed-rig.ts';
import { CYCLE_MS, fakeClock, LEASE_SECONDS, MINUTE, pastStart, type Rig, tradeFeed } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * What planning trusts before it reconciles or plans a table: that the catalog points at this table's
 * own metadata (each half of that check on its own), and that a never-moved watermark leased by someone
 * else is left where it is.
 */
const TABLE = 'bronze_trades_binance';
const FRESH = 'bronze_trades_coinbase';
const config = parseConfig(
  { tables: defaultConfig().tables.filter((t) => t.name === TABLE || t.name === FRESH) },
  'two tables',
);
const target = { namespace: 'cold', name: TABLE };

describe("planning trusts only the table's own state", () => {
  const clock = fakeClock(pastStart(3));
  const setup = useRig({ name: 'own-metadata', clock, config });
  let feed: ReturnType<typeof tradeFeed>;
  const deps = (overrides: Parameters<Rig['deps']>[0] = {}) => setup.rig.deps({ config, ...overrides });
  const later = async (ms = LEASE_SECONDS * 1000 + MINUTE) => {
    clock.advance(ms);
    await feed();
  };
  /**
   * Points TABLE's catalog entry at a changed copy of its own current metadata, written beside it;
   * returns a function that points it back.
   */
  const pointAtCopy = async (change: (text: string) => string) => {
    const d = deps();
    const { metadataLocation } = await loadTable(d, target);
    const copy = metadataLocation.replace(/[^/]+$/, '99999-copy.metadata.json');
    const text = new TextDecoder().decode(await d.store.get(metadataLocation));
    await d.store.put(copy, new TextEncoder().encode(change(text)));
    await d.catalog.swapMetadataLocation(target, metadataLocation, copy);
    return () => d.catalog.swapMetadataLocation(target, copy, metadataLocation);
  };
  const planTable = async () => {
    const plan = await planCycle(deps(), { tables: [TABLE] });
    return {
      batches: plan.layers.flatMap((l) => l.tables).flatMap((t) => t.batches).length,
      skipped: plan.skipped.find((s) => s.table === TABLE),
    };
  };

  beforeAll(async () => {
    feed = tradeFeed(setup.rig.clickhouse, clock, {
      from: clock.now().getTime() - 2 * 3_600_000,
      seed: 61,
      rowsPerHour: 1_200,
    });
    await feed();
    await runCycle(deps(), { tables: [TABLE] });
  });

  /**
   * The plan refuses the table (failed, no batch, cursor and lease untouched) while the catalog points
   * at the foreign metadata; once it points back, the next cycle offloads with nothing lost.
   */
  const refusedUntilRestored = async (restore: () => Promise<void>, detail: RegExp) => {
    const before = await deps().watermarks.get(TABLE);
    const { batches, skipped } = await planTable();
    expect(batches).toBe(0);
    expect(skipped).toMatchObject({ reason: 'failed' });
    expect(skipped?.detail).toMatch(detail);
    const after = await deps().watermarks.get(TABLE);
    expect([after.cursor, after.lease]).toEqual([before.cursor, null]);

    await restore();
    await later();
    await runCycle(deps(), { tables: [TABLE] });
    expect((await verifyAll(deps())).problems).toEqual([]);
  };

  it('planning records where the table lives, so a run on another catalog is refused naming it', async () => {
    const d = deps();
    const { metadata } = await loadTable(d, target);
    expect((await d.watermarks.get(TABLE)).iceberg).toEqual({
      catalog: 'postgres:k2',
      location: metadata.location,
    });
  });

  it("metadata located elsewhere, though its markers are this table's: refused, nothing planned or moved", async () => {
    await later(CYCLE_MS);
    const restore = await pointAtCopy((text) => {
      const m = parseTableMetadata(text);
      return serializeTableMetadata({ ...m, location: `${m.location}-restored-elsewhere` });
    });
    await refusedUntilRestored(restore, /InvalidMetadataError: .*located at .*-restored-elsewhere/);
  });

  it("metadata in this table's place whose newest marker names another table (an hour ahead): refused, the cursor does not jump", async () => {
    await later(CYCLE_MS);
    const restore = await pointAtCopy((text) => {
      const m = parseTableMetadata(text);
      const snapshot = currentSnapshot(m);
      if (!snapshot) throw new Error('expected a committed snapshot');
      const end = snapshot.summary[MARKER_KEYS.windowEnd] as string;
      snapshot.summary[MARKER_KEYS.table] = 'bronze_trades_kraken';
      snapshot.summary[MARKER_KEYS.windowEnd] = new Date(Date.parse(end) + 3_600_000).toISOString();
      return serializeTableMetadata(m);
    });
    await refusedUntilRestored(restore, /InvalidMetadataError: .*markers of table bronze_trades_kraken/);
  });

  it('a never-moved watermark leased by another holder stays where it is; the plan skips it as leased', async () => {
    const d = deps();
    const initial = (await d.watermarks.get(FRESH)).cursor;
    const held = await d.watermarks.acquireLease(FRESH, 'maintain-elsewhere', LEASE_SECONDS);
    if (!held.acquired) throw new Error('expected the lease');

    const plan = await planCycle(d, { tables: [FRESH] });
    expect(plan.layers).toEqual([]);
    expect(plan.skipped.find((s) => s.table === FRESH)).toMatchObject({ reason: 'leased' });
    expect((await d.watermarks.get(FRESH)).cursor).toBe(initial);
    expect(await d.watermarks.audit({ table: FRESH })).toEqual([]);

    // Given back, the next plan starts the table at its oldest row, as a first offload does.
    await d.watermarks.releaseLease(FRESH, held.token);
    await planCycle(d, { tables: [FRESH] });
    const moved = await d.watermarks.get(FRESH);
    expect(Date.parse(moved.cursor)).toBeGreaterThan(Date.parse(initial));
    if (moved.lease) await d.watermarks.releaseLease(FRESH, moved.leaseToken as string);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { ancestry } from '../../src/iceberg/metadata.ts';
import { loadTable, MARKER_KEYS } from '../../src/iceberg/table.ts';
import type { BatchSpec } from '../../src/pipeline/events.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { planCycle } from '../../src/pipeline/plan-cycle.ts';
import { freshDatabase } from '../support/pg.ts';
import {
  type FakeClock,
  fakeClock,
  LEASE_SECONDS,
  MINUTE,
  openRig,
  pastStart,
  type Rig,
  tradeFeed,
} from './harness.ts';

export type RigHolder = { rig: Rig; databaseUrl: string };

/**
 * A rig on a fresh database and temp dir, opened by beforeAll and removed by afterAll. The returned
 * object is filled in by beforeAll; a suite's own beforeAll, registered after, can use it.
 */
export function useRig(options: { name: string; clock: FakeClock; config?: OffloadConfig }): RigHolder {
  const holder = {} as RigHolder;
  let db: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  beforeAll(async () => {
    db = await freshDatabase();
    holder.databaseUrl = db.url;
    holder.rig = await openRig({
      dir: await mkdtemp(join(tmpdir(), `k2-${options.name}-`)),
      databaseUrl: db.url,
      clock: options.clock,
      ...(options.config ? { config: options.config } : {}),
    });
  });
  afterAll(async () => {
    await holder.rig?.close();
    await db?.drop();
    if (holder.rig) await rm(holder.rig.dir, { recursive: true, force: true });
  });
  return holder;
}

export type FedRig = { clock: FakeClock; rig: Rig; feed: ReturnType<typeof tradeFeed>; databaseUrl: string };

/**
 * The common setup of a resilience suite, registered as its beforeAll/afterAll: a fake clock days in
 * the past, a rig on a fresh database, and `hours` of trades (some late) fed before the first cycle.
 * The returned object is filled in by beforeAll.
 */
export function useFedRig(options: {
  name: string;
  seed: number;
  rowsPerHour: number;
  hours: number;
  config?: OffloadConfig;
}): FedRig {
  const clock = fakeClock(pastStart(3));
  const fed = { clock } as FedRig;
  const holder = useRig({ name: options.name, clock, ...(options.config ? { config: options.config } : {}) });
  beforeAll(async () => {
    fed.rig = holder.rig;
    fed.databaseUrl = holder.databaseUrl;
    fed.feed = tradeFeed(fed.rig.clickhouse, clock, {
      from: clock.now().getTime() - options.hours * 3_600_000,
      seed: options.seed,
      rowsPerHour: options.rowsPerHour,
    });
    await fed.feed({ lateFraction: 0.05 });
  });
  return fed;
}

/**
 * The guard suites' setup: one bronze table on a fed rig, two hours of trades and one cycle before the
 * first test, and the steps those suites drive by hand (plan one table, move to the next cycle's time,
 * read the table's markers). `later()` moves past a lease by default: the last cycle's leases expire.
 */
export function useOneTableRig(options: { name: string; seed: number }) {
  const table = 'bronze_trades_binance';
  const config = parseConfig({ tables: defaultConfig().tables.filter((t) => t.name === table) }, 'one table');
  const target = { namespace: 'cold', name: table };
  const clock = fakeClock(pastStart(3));
  const setup = useRig({ name: options.name, clock, config });
  let feed: ReturnType<typeof tradeFeed>;
  const deps = (overrides: Parameters<Rig['deps']>[0] = {}) => setup.rig.deps({ config, ...overrides });
  beforeAll(async () => {
    feed = tradeFeed(setup.rig.clickhouse, clock, {
      from: clock.now().getTime() - 2 * 3_600_000,
      seed: options.seed,
      rowsPerHour: 1_200,
    });
    await feed();
    await runCycle(deps(), {});
  });
  return {
    table,
    config,
    target,
    clock,
    setup,
    deps,
    later: async (ms = LEASE_SECONDS * 1000 + MINUTE) => {
      clock.advance(ms);
      await feed();
    },
    planOne: async (input: Record<string, unknown> = {}, overrides: Parameters<Rig['deps']>[0] = {}) => {
      const plan = await planCycle(deps(overrides), { tables: [table], ...input });
      return (plan.layers[0]?.tables[0]?.batches ?? []) as BatchSpec[];
    },
    snapshotsOf: async (batchId: string) => {
      const { metadata } = await loadTable(deps(), target);
      return [...ancestry(metadata)].filter((s) => s.summary[MARKER_KEYS.batchId] === batchId);
    },
    currentMetadata: () => deps().catalog.currentMetadataLocation(target),
  };
}

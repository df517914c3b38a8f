import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { CANDLE_INTERVALS } from '../../src/config/defaults.ts';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import type { Catalog } from '../../src/iceberg/catalog.ts';
import { fileUri, LocalObjectStore } from '../../src/iceberg/local-store.ts';
import { createPostgresCatalog } from '../../src/iceberg/postgres-catalog.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import { createPostgresWatermarkStore } from '../../src/watermark/store.ts';

/**
 * The resilience suites' pipeline: chDB with the demo hot tier, a Postgres database given by URL, a
 * local warehouse, and one fake clock shared by the steps and the watermark store, so a test can move
 * past a lease's expiry (or through a day of cycles) without waiting. No vitest import: the crash
 * child process builds the very same deps from the same directory and database.
 */
export type FakeClock = { now: () => Date; set: (ms: number) => void; advance: (ms: number) => void };

export function fakeClock(startMs: number): FakeClock {
  let at = startMs;
  return {
    now: () => new Date(at),
    set: (ms) => {
      at = ms;
    },
    advance: (ms) => {
      at += ms;
    },
  };
}

export type Rig = {
  dir: string;
  databaseUrl: string;
  clickhouse: ClickHouseClient;
  pool: pg.Pool;
  clock: FakeClock;
  deps: (overrides?: Partial<PipelineDeps>) => PipelineDeps;
  /** Ends the Postgres pool and the chDB session (the data stay for the next process). */
  close: () => Promise<void>;
};

export const LEASE_SECONDS = 900;
export const MINUTE = 60_000;
export const CYCLE_MS = 15 * MINUTE;

/** A start instant well inside every TTL of the hot tier (bronze keeps 7 days), on a whole hour. */
export function pastStart(daysAgo = 3, realNow = Date.now()): number {
  return Math.floor((realNow - daysAgo * 86_400_000) / 3_600_000) * 3_600_000;
}

/** Opens (or reopens) a rig on `dir`; the chDB data dir is `<dir>/chdb`, the warehouse `<dir>/warehouse`. */
export async function openRig(options: {
  dir: string;
  databaseUrl: string;
  clock: FakeClock;
  config?: OffloadConfig;
  /** Default `<dir>/chdb`; a second process opens a copy of the first's. */
  chdbDir?: string;
}): Promise<Rig> {
  const { dir, databaseUrl, clock } = options;
  mkdirSync(join(dir, 'warehouse'), { recursive: true });
  // chDB's file() and icebergLocal() reach only below the working directory.
  process.chdir(dir);
  const clickhouse = openClickHouse({ dataDir: options.chdbDir ?? join(dir, 'chdb') });
  await createDemoSchema(clickhouse);
  await holdCandleMerges(clickhouse);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const watermarks = createPostgresWatermarkStore(pool, { clock: clock.now });
  await watermarks.migrate();
  const base: PipelineDeps = {
    config: options.config ?? defaultConfig(),
    clickhouse,
    watermarks,
    catalog: createPostgresCatalog(pool, { catalogName: 'k2' }),
    store: new LocalObjectStore(),
    warehouse: fileUri(join(dir, 'warehouse')),
    clock: clock.now,
    // The fake clock is the world's: ClickHouse stamps rows by it, Postgres times leases by it.
    sourceClock: async () => clock.now(),
    leaseSeconds: LEASE_SECONDS,
    faults: NO_FAULTS,
    metrics: () => {},
    log: () => {},
  };
  return {
    dir,
    databaseUrl,
    clickhouse,
    pool,
    clock,
    deps: (overrides = {}) => ({ ...base, ...overrides }),
    close: async () => {
      await pool.end();
      await clickhouse.close();
    },
  };
}

/**
 * Background merges of a SummingMergeTree sum the volume columns but keep one arbitrary row's
 * open/close/high/low, so after a merge ClickHouse itself no longer knows a candle's true values and
 * "equal to ClickHouse's re-aggregated candle" stops being a fixed target. Holding merges keeps every
 * partial row, the state the offload's re-aggregation is specified against. The table setting persists
 * in the data dir (a later process merges nothing either, even before it could stop merges itself).
 */
export async function holdCandleMerges(clickhouse: ClickHouseClient) {
  for (const c of CANDLE_INTERVALS) {
    const table = `k2.ohlcv_${c.suffix}`;
    await clickhouse.command({
      query: `ALTER TABLE ${table} MODIFY SETTING max_bytes_to_merge_at_max_space_in_pool = 1`,
    });
    await clickhouse.command({ query: `SYSTEM STOP MERGES ${table}` });
  }
}

/** A config with per-table changes (caps, lateness), validated like a config file. */
export function configWith(
  change: (table: OffloadConfig['tables'][number]) => Partial<OffloadConfig['tables'][number]>,
  base: OffloadConfig = defaultConfig(),
): OffloadConfig {
  return parseConfig({ tables: base.tables.map((t) => ({ ...t, ...change(t) })) }, 'test config');
}

/**
 * Trades arriving at `rowsPerHour` over `[previous call's now, now)` of the fake clock: call it after
 * every clock move, before any cycle, and every row is inserted before a cycle could have passed its
 * ingestion time (as in production, where a row's ingestion time is its insert time). Spans never
 * overlap: a trade's sequence number is its arrival instant, unique only within one span.
 */
export function tradeFeed(
  clickhouse: ClickHouseClient,
  clock: FakeClock,
  options: { from: number; seed: number; rowsPerHour: number; lateFraction?: number },
) {
  let next = options.from;
  let calls = 0;
  return async (override: { lateFraction?: number; rowsPerHour?: number } = {}): Promise<number> => {
    const end = clock.now().getTime();
    const span = end - next;
    const rows = Math.round(((override.rowsPerHour ?? options.rowsPerHour) * span) / 3_600_000);
    if (span < MINUTE) return 0;
    // No rows in this span is a fact too: a later call must not back-fill it.
    if (rows === 0) {
      next = end;
      return 0;
    }
    calls++;
    const fed = await generateTrades(clickhouse, {
      rows,
      spanHours: span / 3_600_000,
      end: new Date(end),
      lateFraction: override.lateFraction ?? options.lateFraction ?? 0,
      seed: options.seed * 1000 + calls,
    });
    next = end;
    return Object.values(fed.rows).reduce((n, r) => n + r, 0);
  };
}

/**
 * Everything a cycle could write, to compare before and after: watermarks (cursor, version, lease
 * token), the number of run history rows, each table's current Iceberg metadata, ClickHouse's tables.
 */
export async function stateOf(rig: Rig) {
  const deps = rig.deps();
  const watermarks = (await deps.watermarks.list()).map((w) => [w.table, w.cursor, w.version, w.leaseToken]);
  const history = (await deps.watermarks.history({ limit: 10_000 })).length;
  const metadata = await Promise.all(
    deps.config.tables.map((t) => deps.catalog.currentMetadataLocation(t.target)),
  );
  const result = await rig.clickhouse.query({
    query: `SELECT name, total_rows FROM system.tables WHERE database = 'k2' ORDER BY name`,
    format: 'JSONEachRow',
  });
  return { watermarks, history, metadata, clickhouse: await result.json() };
}

/**
 * A catalog whose metadata swap stops until `release()`: a holder stalled between its checks and its
 * commit. `reached` resolves once a swap is waiting there.
 */
export function gatedCatalog(catalog: Catalog) {
  let reachedSwap!: () => void;
  const reached = new Promise<void>((r) => {
    reachedSwap = r;
  });
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const gated: Catalog = {
    ...catalog,
    kind: catalog.kind,
    swapMetadataLocation: async (table, expected, next) => {
      reachedSwap();
      await gate;
      return catalog.swapMetadataLocation(table, expected, next);
    },
  };
  return { catalog: gated, reached, release };
}

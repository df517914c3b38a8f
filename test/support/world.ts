import { mkdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { defaultConfig } from '../../src/config/load.ts';
import type { OffloadConfig, TableConfig } from '../../src/config/schema.ts';
import type { TableIdent } from '../../src/iceberg/catalog.ts';
import { fileUri, LocalObjectStore } from '../../src/iceberg/local-store.ts';
import { createPostgresCatalog } from '../../src/iceberg/postgres-catalog.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import { createPostgresWatermarkStore } from '../../src/watermark/store.ts';
import { TEST_NOW } from './clock.ts';
import { freshDatabase } from './pg.ts';

/**
 * A complete local pipeline for one test file: chDB with the demo hot tier (one data dir per process,
 * under a temp dir that is also the working directory, since chDB's file() and icebergLocal() only
 * reach below it), a fresh Postgres database for watermarks and the Iceberg catalog, a local warehouse.
 * Its deps stand still at `now`: their own clock, ClickHouse's (window bounds) and Postgres's (leases);
 * a test that moves time on overrides `clock` and `sourceClock`.
 */
export type World = {
  dir: string;
  now: Date;
  clickhouse: ClickHouseClient;
  pool: pg.Pool;
  databaseUrl: string;
  deps: (overrides?: Partial<PipelineDeps>) => PipelineDeps;
  close: () => Promise<void>;
};

export async function openWorld(options: { config?: OffloadConfig } = {}): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'k2-world-'));
  mkdirSync(join(dir, 'warehouse'), { recursive: true });
  process.chdir(dir);
  const clickhouse = openClickHouse({ dataDir: join(dir, 'chdb') });
  await createDemoSchema(clickhouse);
  const db = await freshDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 10 });
  const now = TEST_NOW;
  const watermarks = createPostgresWatermarkStore(pool, { clock: () => now });
  await watermarks.migrate();
  const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
  const warehouse = fileUri(join(dir, 'warehouse'));
  const base: PipelineDeps = {
    config: options.config ?? defaultConfig(),
    clickhouse,
    watermarks,
    catalog,
    store: new LocalObjectStore(),
    warehouse,
    clock: () => now,
    sourceClock: async () => now,
    leaseSeconds: 900,
    faults: NO_FAULTS,
    metrics: () => {},
    log: () => {},
  };
  return {
    dir,
    now,
    clickhouse,
    pool,
    databaseUrl: db.url,
    deps: (overrides = {}) => ({ ...base, ...overrides }),
    close: async () => {
      await pool.end();
      await db.drop();
    },
  };
}

export async function rows<T = Record<string, string>>(
  client: ClickHouseClient,
  query: string,
): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' });
  return (await result.json()) as T[];
}

/** chDB's own Iceberg reader on the table's current metadata file, as the catalog records it. */
export async function icebergSource(deps: PipelineDeps, table: TableConfig): Promise<string | undefined> {
  const ident: TableIdent = { namespace: table.target.namespace, name: table.target.name };
  const location = await deps.catalog.currentMetadataLocation(ident);
  if (!location) return undefined;
  const root = new URL(location.slice(0, location.indexOf('/metadata/'))).pathname;
  const file = location.slice(location.indexOf('/metadata/') + 1);
  return `icebergLocal('${root}', SETTINGS iceberg_metadata_file_path = '${file}')`;
}

/** The rows of a table's natural key that ClickHouse has below `until`, and what Iceberg has, per key. */
export async function compareKeys(world: World, deps: PipelineDeps, table: TableConfig, until: string) {
  // Timestamps compared as UTC microseconds: ClickHouse prints DateTime64(3) and Iceberg's µs differently.
  const key = table.naturalKey
    .map((k) => {
      const type = table.columns.find((c) => c.name === k)?.type ?? '';
      return /DateTime/.test(type)
        ? `toString(toUnixTimestamp64Micro(toDateTime64(\`${k}\`, 6, 'UTC')))`
        : `toString(\`${k}\`)`;
    })
    .join(", '|', ");
  const cursor = `\`${table.cursor.column}\``;
  const hot = `${table.source.database}.${table.source.table}`;
  const source = await icebergSource(deps, table);
  const ch = await rows<{ k: string; n: string }>(
    world.clickhouse,
    `SELECT concat(${key}) AS k, toString(count()) AS n FROM ${table.reaggregate ? `(SELECT ${table.reaggregate.groupBy.join(', ')} FROM ${hot} GROUP BY ${table.reaggregate.groupBy.join(', ')})` : hot}
     WHERE ${cursor} < parseDateTime64BestEffort('${until}', 6, 'UTC') GROUP BY k`,
  );
  const ice = source
    ? await rows<{ k: string; n: string }>(
        world.clickhouse,
        `SELECT concat(${key}) AS k, toString(count()) AS n FROM ${source} GROUP BY k`,
      )
    : [];
  const iceMap = new Map(ice.map((r) => [r.k, Number(r.n)]));
  const chMap = new Map(ch.map((r) => [r.k, Number(r.n)]));
  const missing = [...chMap.keys()].filter((k) => !iceMap.has(k));
  const duplicated = [...iceMap].filter(([, n]) => n > 1).map(([k]) => k);
  const extra = [...iceMap.keys()].filter((k) => !chMap.has(k));
  return {
    clickhouse: chMap.size,
    iceberg: ice.reduce((n, r) => n + Number(r.n), 0),
    missing,
    duplicated,
    extra,
  };
}

/** A key comparison as tests assert on it: counts of missing, duplicated and extra keys of a table. */
export const mismatches = (table: string, diff: Awaited<ReturnType<typeof compareKeys>>) => ({
  table,
  missing: diff.missing.length,
  duplicated: diff.duplicated.length,
  extra: diff.extra.length,
});
export const exact = (table: string) => ({ table, missing: 0, duplicated: 0, extra: 0 });

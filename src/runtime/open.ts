import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GlueClient } from '@aws-sdk/client-glue';
import pg from 'pg';
import { assertReachable, openClickHouse } from '../clickhouse/client.ts';
import { loadConfig } from '../config/load.ts';
import type { OffloadConfig } from '../config/schema.ts';
import type { Catalog } from '../iceberg/catalog.ts';
import { createGlueCatalog } from '../iceberg/glue-catalog.ts';
import { createPathCatalog } from '../iceberg/path-catalog.ts';
import { createPostgresCatalog } from '../iceberg/postgres-catalog.ts';
import { createObjectStore } from '../iceberg/stores.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import { DEFAULT_LEASE_SECONDS, type PipelineDeps } from '../pipeline/deps.ts';
import { type Faults, NO_FAULTS } from '../pipeline/faults.ts';
import { startEmbeddedPostgres } from '../postgres/embedded.ts';
import { s3StagingFromEnv } from '../stage/targets.ts';
import { createPostgresWatermarkStore } from '../watermark/store.ts';
import { readSettings, type Settings } from './settings.ts';

export type Runtime = PipelineDeps & { settings: Settings; pool: pg.Pool; close: () => Promise<void> };

export type OpenOptions = {
  configPath?: string | undefined;
  config?: OffloadConfig;
  env?: NodeJS.ProcessEnv;
  faults?: Faults;
  clock?: () => Date;
  leaseSeconds?: number;
  metrics?: (records: EmfRecord[]) => void;
  log?: (line: Record<string, unknown>) => void;
};

/**
 * Builds the deps of a cycle from the environment: the configured servers where variables name them,
 * embedded ones (chDB, a Postgres started here) where they do not. Closing stops what was started.
 */
export async function openRuntime(options: OpenOptions = {}): Promise<Runtime> {
  const settings = readSettings(options.env ?? process.env);
  const config = options.config ?? (await loadConfig(options.configPath));
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    let databaseUrl = settings.databaseUrl;
    if (!databaseUrl) {
      await mkdir(settings.home, { recursive: true });
      const embedded = await startEmbeddedPostgres(join(settings.home, 'postgres'));
      closers.push(embedded.stop);
      databaseUrl = embedded.url;
    }
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
    pool.on('error', () => undefined);
    closers.push(() => pool.end());
    const watermarks = createPostgresWatermarkStore(pool, {
      schema: settings.pgSchema,
      ...(options.clock ? { clock: options.clock } : {}),
    });
    await watermarks.migrate();

    const clickhouse = openClickHouse({ url: settings.clickhouseUrl, dataDir: join(settings.home, 'chdb') });
    closers.push(() => clickhouse.close());
    await assertReachable(clickhouse);

    const s3 = settings.s3Endpoint
      ? { endpoint: settings.s3Endpoint, forcePathStyle: true, region: settings.region }
      : { region: settings.region };
    const store = createObjectStore(settings.warehouse, { s3 });
    const catalog = createCatalog(settings, pool, store);
    return {
      config,
      clickhouse,
      watermarks,
      catalog,
      store,
      warehouse: settings.warehouse,
      s3: {
        region: settings.region,
        ...(settings.s3Endpoint ? { endpoint: settings.s3Endpoint } : {}),
        staging: s3StagingFromEnv(options.env ?? process.env),
      },
      clock: options.clock ?? (() => new Date()),
      leaseSeconds: options.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
      faults: options.faults ?? NO_FAULTS,
      metrics: options.metrics ?? (() => {}),
      log: options.log ?? (() => {}),
      settings,
      pool,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

function createCatalog(
  settings: Settings,
  pool: pg.Pool,
  store: ReturnType<typeof createObjectStore>,
): Catalog {
  if (settings.catalog === 'path') return createPathCatalog(store, settings.warehouse);
  if (settings.catalog === 'glue')
    return createGlueCatalog(new GlueClient({ region: settings.region }), {
      databaseName: (namespace: string) => namespace,
    });
  return createPostgresCatalog(pool, { catalogName: 'k2' });
}

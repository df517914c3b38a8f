import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { assertReachable, openClickHouse } from '../clickhouse/client.ts';
import { loadConfig } from '../config/load.ts';
import type { OffloadConfig } from '../config/schema.ts';
import { InputError } from '../errors.ts';
import type { Catalog } from '../iceberg/catalog.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import { createPathCatalog } from '../iceberg/path-catalog.ts';
import { createPostgresCatalog } from '../iceberg/postgres-catalog.ts';
import { createObjectStore } from '../iceberg/stores.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import { DEFAULT_LEASE_SECONDS, type PipelineDeps } from '../pipeline/deps.ts';
import { type Faults, NO_FAULTS } from '../pipeline/faults.ts';
import { startEmbeddedPostgres } from '../postgres/embedded.ts';
import { s3StagingFromEnv } from '../stage/targets.ts';
import { createPostgresWatermarkStore } from '../watermark/store.ts';
import { HOME_NAME, lockHome } from './home.ts';
import { readSettings, type Settings } from './settings.ts';

export type Runtime = PipelineDeps & { settings: Settings; pool: pg.Pool; close: () => Promise<void> };

export type OpenOptions = {
  configPath?: string | undefined;
  config?: OffloadConfig;
  env?: NodeJS.ProcessEnv;
  faults?: Faults;
  clock?: () => Date;
  /** Tests that simulate time: the source's clock (default ClickHouse `now64()`) and the database's. */
  sourceClock?: () => Promise<Date>;
  databaseClock?: () => Date;
  leaseSeconds?: number;
  metrics?: (records: EmfRecord[]) => void;
  log?: (line: Record<string, unknown>) => void;
  /**
   * The CLI command opening the embedded engines, which serve one process at a time: a read-only one
   * waits for the holder (told through `onWait`), any other is refused naming it.
   */
  command?: { name: string; readOnly: boolean; onWait?: (message: string) => void };
  /** Create the embedded state folder when there is none (the demo); other commands refuse. */
  createHome?: boolean;
};

/**
 * Builds the deps of a cycle from the environment: the configured servers where variables name them,
 * embedded ones (chDB, a Postgres started here) where they do not. Closing stops what was started.
 */
export async function openRuntime(options: OpenOptions = {}): Promise<Runtime> {
  const settings = readSettings(options.env ?? process.env);
  const config = options.config ?? (await loadConfig(options.configPath));
  const closers: Array<() => Promise<void>> = [];
  // Closed once, however many ask: a signal's handler and the command it interrupts both close.
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const c of [...closers].reverse()) await c().catch(() => undefined);
    })();
    return closing;
  };
  try {
    const embedded = !settings.databaseUrl || !settings.clickhouseUrl;
    if (embedded && !settings.homeExists && !options.createHome)
      throw new InputError(
        `no k2-offload state in ${dirname(settings.home)} or any folder above it (no ${HOME_NAME} folder); run k2-offload demo to create one here, run from the folder that holds it, set K2_HOME to it, or set CLICKHOUSE_URL and DATABASE_URL to servers`,
        { home: settings.home },
      );
    if (embedded) await mkdir(settings.home, { recursive: true });
    if (embedded && options.command) {
      const { name, readOnly, onWait } = options.command;
      closers.push(await lockHome(settings.home, name, { wait: readOnly, ...(onWait ? { onWait } : {}) }));
    }
    let databaseUrl = settings.databaseUrl;
    if (!databaseUrl) {
      const embedded = await startEmbeddedPostgres(join(settings.home, 'postgres'));
      closers.push(embedded.stop);
      databaseUrl = embedded.url;
    }
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
    pool.on('error', () => undefined);
    closers.push(() => pool.end());
    const watermarks = createPostgresWatermarkStore(pool, {
      schema: settings.pgSchema,
      ...(options.databaseClock ? { clock: options.databaseClock } : {}),
    });
    await watermarks.migrate();

    const clickhouse = openClickHouse({ url: settings.clickhouseUrl, dataDir: join(settings.home, 'chdb') });
    closers.push(() => clickhouse.close());
    await assertReachable(clickhouse);

    const s3 = settings.s3Endpoint
      ? { endpoint: settings.s3Endpoint, forcePathStyle: true, region: settings.region }
      : { region: settings.region };
    const store = await createObjectStore(settings.warehouse, { s3 });
    const catalog = await createCatalog(settings, pool, store);
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
      ...(options.sourceClock ? { sourceClock: options.sourceClock } : {}),
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

async function createCatalog(settings: Settings, pool: pg.Pool, store: ObjectStore): Promise<Catalog> {
  if (settings.catalog === 'path') return createPathCatalog(store, settings.warehouse);
  if (settings.catalog === 'glue') {
    // The AWS SDK only for the Glue catalog: the CLI starts faster without it.
    const [{ GlueClient }, { createGlueCatalog }] = await Promise.all([
      import('@aws-sdk/client-glue'),
      import('../iceberg/glue-catalog.ts'),
    ]);
    return createGlueCatalog(new GlueClient({ region: settings.region }), {
      databaseName: (namespace: string) => namespace,
    });
  }
  return createPostgresCatalog(pool, { catalogName: settings.catalogName });
}

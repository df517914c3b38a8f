import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { OffloadConfig } from '../../config/schema.ts';
import { ConfigError, InputError } from '../../errors.ts';
import { localPath } from '../../iceberg/local-store.ts';
import { defaultTableLocation } from '../../iceberg/new-table.ts';
import { embeddedDataDirs } from '../../postgres/embedded.ts';
import type { Settings } from '../../runtime/settings.ts';
import { createPostgresWatermarkStore } from '../../watermark/store.ts';

/**
 * The demo runs on what it can throw away: chDB and Postgres under K2_HOME, a local warehouse. Named
 * servers (CLICKHOUSE_URL, DATABASE_URL), an S3 warehouse or Glue hold someone's data: only with --force.
 */
export function checkDemoTargets(settings: Settings, force: boolean): string[] {
  const named = [
    settings.clickhouseUrl ? 'CLICKHOUSE_URL' : undefined,
    settings.databaseUrl ? 'DATABASE_URL' : undefined,
    settings.warehouse.startsWith('s3://') ? 'WAREHOUSE (s3://)' : undefined,
    settings.catalog === 'glue' ? 'K2_CATALOG=glue' : undefined,
  ].filter((v): v is string => v !== undefined);
  if (named.length > 0 && !force)
    throw new InputError(
      `demo runs on the embedded components only, but ${named.join(', ')} ${named.length > 1 ? 'are' : 'is'} set; unset ${named.length > 1 ? 'them' : 'it'} to use embedded ClickHouse, Postgres and ./warehouse, or pass --force to seed demo trades into those servers`,
      { variables: named },
    );
  return named;
}

/**
 * Removes the demo's own state so that a rerun starts clean: the embedded engines' data under K2_HOME
 * and, in a local warehouse, the configured tables' folders (staged files live under them). Never anything on a
 * named server, and never a folder it did not create for one of the configured tables.
 */
export async function resetDemoState(settings: Settings, config: OffloadConfig): Promise<string[]> {
  const removed: string[] = [];
  const remove = async (path: string) => {
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  };
  if (!settings.clickhouseUrl) await remove(join(settings.home, 'chdb'));
  if (!settings.databaseUrl)
    for (const dir of await embeddedDataDirs(join(settings.home, 'postgres'))) await remove(dir);
  if (settings.warehouse.startsWith('file://'))
    for (const table of config.tables) {
      await remove(localPath(defaultTableLocation(settings.warehouse, table.target)));
    }
  return removed;
}

/**
 * The reset clears embedded state only. A named database that already holds offloads would point at
 * Iceberg tables the reset is about to delete: refuse before deleting anything.
 */
export async function assertNoNamedState(settings: Settings): Promise<void> {
  if (!settings.databaseUrl) return;
  const pool = new pg.Pool({ connectionString: settings.databaseUrl, max: 1 });
  pool.on('error', () => undefined);
  let used: string[] = [];
  try {
    const store = createPostgresWatermarkStore(pool, { schema: settings.pgSchema });
    used = (await store.list()).filter((w) => w.version > 0 || w.lastBatchId !== null).map((w) => w.table);
  } catch (error) {
    // A database never migrated holds no state; anything else (unreachable) is reported when opened.
    if (!(error instanceof ConfigError || error instanceof InputError)) throw error;
  } finally {
    await pool.end();
  }
  if (used.length > 0)
    throw new InputError(
      `the database in DATABASE_URL already holds offload state (${used.join(', ')}); the demo resets only its embedded state: use an empty database, unset DATABASE_URL, or pass --keep`,
      { tables: used },
    );
}

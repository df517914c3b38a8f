import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommitConflictError, InputError, isRetryable, UnavailableError } from '../../../src/errors.ts';
import { createPostgresCatalog } from '../../../src/iceberg/postgres-catalog.ts';
import { freshDatabase } from '../../support/pg.ts';

const loc = (table: string, v: number) => `s3://wh/cold/${table}/metadata/0000${v}-abc.metadata.json`;

describe('Postgres SQL catalog (Iceberg JDBC schema)', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await freshDatabase('k2cat');
    pool = new pg.Pool({ connectionString: db.url, max: 12 });
    // Dropping the database at the end terminates connections the pool is still closing.
    pool.on('error', () => {});
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('creates the JDBC catalog tables once, even when several processes start at the same time', async () => {
    const catalogs = Array.from({ length: 4 }, () => createPostgresCatalog(pool, { catalogName: 'k2' }));
    await Promise.all(catalogs.map((c) => c.ensureSchema()));
    await createPostgresCatalog(pool, { catalogName: 'k2' }).ensureSchema();

    const columns = await pool.query<{ table_name: string; column_name: string; is_nullable: string }>(
      `SELECT table_name, column_name, is_nullable FROM information_schema.columns
        WHERE table_name IN ('iceberg_tables', 'iceberg_namespace_properties')
        ORDER BY table_name, ordinal_position`,
    );
    expect(columns.rows.map((r) => `${r.table_name}.${r.column_name}:${r.is_nullable}`)).toEqual([
      'iceberg_namespace_properties.catalog_name:NO',
      'iceberg_namespace_properties.namespace:NO',
      'iceberg_namespace_properties.property_key:NO',
      'iceberg_namespace_properties.property_value:YES',
      'iceberg_tables.catalog_name:NO',
      'iceberg_tables.table_namespace:NO',
      'iceberg_tables.table_name:NO',
      'iceberg_tables.metadata_location:YES',
      'iceberg_tables.previous_metadata_location:YES',
    ]);
  });

  it('registers a table once; a second create is a conflict and keeps the first location', async () => {
    const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
    const t = { namespace: 'cold', name: 'bronze_trades_binance' };
    expect(await catalog.currentMetadataLocation(t)).toBeUndefined();
    await catalog.createTable(t, loc('binance', 1));
    const second = catalog.createTable(t, loc('binance', 9));
    await expect(second).rejects.toBeInstanceOf(CommitConflictError);
    const refused = (await second.catch((e: unknown) => e)) as CommitConflictError;
    expect(refused.message).toBe(
      `Table cold.bronze_trades_binance already exists in catalog "k2" (metadata at ${loc('binance', 1)}); load it and commit to it instead of creating it`,
    );
    expect(refused.details).toEqual({
      table: 'cold.bronze_trades_binance',
      catalogName: 'k2',
      current: loc('binance', 1),
    });
    expect(await catalog.currentMetadataLocation(t)).toBe(loc('binance', 1));
  });

  it('swaps the location only from the expected one, recording the previous location', async () => {
    const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
    const t = { namespace: 'cold', name: 'silver_trades' };
    await catalog.createTable(t, loc('silver', 1));
    await catalog.swapMetadataLocation(t, loc('silver', 1), loc('silver', 2));
    expect(await catalog.currentMetadataLocation(t)).toBe(loc('silver', 2));
    const row = await pool.query(
      `SELECT previous_metadata_location FROM iceberg_tables
        WHERE catalog_name = 'k2' AND table_namespace = 'cold' AND table_name = 'silver_trades'`,
    );
    expect(row.rows[0].previous_metadata_location).toBe(loc('silver', 1));

    const stale = await catalog
      .swapMetadataLocation(t, loc('silver', 1), loc('silver', 3))
      .catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(CommitConflictError);
    expect(isRetryable(stale)).toBe(true);
    expect((stale as Error).message).toBe(
      `Commit to cold.silver_trades lost a race: expected metadata ${loc('silver', 1)} but the catalog now points at ${loc('silver', 2)}; reload the table and retry`,
    );
    expect((stale as CommitConflictError).details).toEqual({
      table: 'cold.silver_trades',
      catalogName: 'k2',
      expected: loc('silver', 1),
      current: loc('silver', 2),
      next: loc('silver', 3),
    });
    expect(await catalog.currentMetadataLocation(t)).toBe(loc('silver', 2));
  });

  it('lets exactly one of two writers win when both swap from the same location at once', async () => {
    const t = { namespace: 'cold', name: 'gold_ohlcv_1m' };
    const writerA = createPostgresCatalog(pool, { catalogName: 'k2' });
    const writerB = createPostgresCatalog(pool, { catalogName: 'k2' });
    await writerA.createTable(t, loc('1m', 1));

    // Hold the row so both UPDATEs are queued on it before either runs: a true simultaneous commit.
    const blocker = await pool.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM iceberg_tables WHERE table_name = 'gold_ohlcv_1m' FOR UPDATE`);
    const a = writerA.swapMetadataLocation(t, loc('1m', 1), loc('1m', 2));
    const b = writerB.swapMetadataLocation(t, loc('1m', 1), loc('1m', 3));
    await waitForLockWaiters(pool, 2);
    await blocker.query('COMMIT');
    blocker.release();

    const results = await Promise.allSettled([a, b]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(CommitConflictError);
    const winner = results[0]?.status === 'fulfilled' ? loc('1m', 2) : loc('1m', 3);
    expect(await writerA.currentMetadataLocation(t)).toBe(winner);
  });

  it('lets exactly one of ten racing writers win', async () => {
    const t = { namespace: 'cold', name: 'gold_ohlcv_5m' };
    const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
    await catalog.createTable(t, loc('5m', 1));
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => catalog.swapMetadataLocation(t, loc('5m', 1), loc('5m', 10 + i))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CommitConflictError);
    }
  });

  it('refuses to commit to a table that does not exist, saying so', async () => {
    const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
    const missing = catalog.swapMetadataLocation(
      { namespace: 'cold', name: 'nope' },
      loc('x', 1),
      loc('x', 2),
    );
    await expect(missing).rejects.toBeInstanceOf(InputError);
    await expect(missing).rejects.toThrow(/cold\.nope: it does not exist in catalog "k2"/);
    await expect(missing).rejects.toMatchObject({ details: { table: 'cold.nope', catalogName: 'k2' } });
  });

  it('keeps namespaces and tables per catalog name, as pyiceberg and Spark read them', async () => {
    const k2 = createPostgresCatalog(pool, { catalogName: 'ns_test' });
    const other = createPostgresCatalog(pool, { catalogName: 'ns_other' });
    await k2.createNamespace('cold');
    await k2.createNamespace('cold');
    await k2.createNamespace('staging');
    await other.createNamespace('elsewhere');
    await k2.createTable({ namespace: 'cold', name: 'b' }, loc('b', 1));
    await k2.createTable({ namespace: 'cold', name: 'a' }, loc('a', 1));
    await k2.createTable({ namespace: 'staging', name: 'c' }, loc('c', 1));
    await other.createTable({ namespace: 'cold', name: 'a' }, loc('other-a', 1));

    expect(await k2.listNamespaces()).toEqual(['cold', 'staging']);
    expect(await k2.listTables('cold')).toEqual([
      { namespace: 'cold', name: 'a' },
      { namespace: 'cold', name: 'b' },
    ]);
    expect(await other.currentMetadataLocation({ namespace: 'cold', name: 'a' })).toBe(loc('other-a', 1));
    const marker = await pool.query(
      `SELECT property_key, property_value FROM iceberg_namespace_properties
        WHERE catalog_name = 'ns_test' AND namespace = 'cold'`,
    );
    expect(marker.rows).toEqual([{ property_key: 'exists', property_value: 'true' }]);

    await k2.dropTable?.({ namespace: 'staging', name: 'c' });
    expect(await k2.listTables('staging')).toEqual([]);
  });

  it('reports an unreachable Postgres as a retryable UnavailableError', async () => {
    const dead = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', max: 1 });
    const error = await createPostgresCatalog(dead, { catalogName: 'k2' })
      .currentMetadataLocation({ namespace: 'cold', name: 'x' })
      .catch((e: unknown) => e);
    await dead.end();
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(/ECONNREFUSED.*check DATABASE_URL/);
  });
});

/** Returns once `count` sessions wait on a row lock; the deadline only bounds a hang. */
async function waitForLockWaiters(pool: pg.Pool, count: number) {
  for (const deadline = Date.now() + 50_000; Date.now() < deadline; ) {
    const r = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if ((r.rows[0]?.n ?? 0) >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`expected ${count} sessions waiting on the row lock`);
}

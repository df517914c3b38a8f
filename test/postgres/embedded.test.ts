import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freshDatabase } from '../support/pg.ts';

describe('test Postgres', () => {
  const dbs: Array<{ drop: () => Promise<void> }> = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
  });

  it('gives each test file its own empty database on a real server', async () => {
    const a = await freshDatabase();
    const b = await freshDatabase();
    dbs.push(a, b);
    const ca = new pg.Client({ connectionString: a.url });
    const cb = new pg.Client({ connectionString: b.url });
    await Promise.all([ca.connect(), cb.connect()]);
    await ca.query('CREATE TABLE t (x int)');
    const seen = await cb.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 't'");
    expect(seen.rows[0].n).toBe(0);
    const version = await ca.query('SHOW server_version_num');
    expect(Number(version.rows[0].server_version_num)).toBeGreaterThanOrEqual(150000);
    await Promise.all([ca.end(), cb.end()]);
  });
});

import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthReport } from '../../src/pipeline/health.ts';
import { freshDatabase } from '../support/pg.ts';
import { cli } from './support.ts';

/** Components that do not answer, and bad input against real ones: a clear line, the exit code, no write. */
describe('k2-offload against unreachable or untouched components', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let env: NodeJS.ProcessEnv;
  const watermarkTable = async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ t: string | null }>(
        `SELECT to_regclass('k2_offload.watermarks')::text AS t`,
      );
      if (!rows[0]?.t) return { exists: false, rows: 0 };
      const count = await client.query<{ n: string }>(
        'SELECT count(*)::text AS n FROM k2_offload.watermarks',
      );
      return { exists: true, rows: Number(count.rows[0]?.n) };
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-cli-unreachable-'));
    db = await freshDatabase();
    env = { K2_HOME: join(dir, '.k2'), WAREHOUSE: join(dir, 'warehouse'), DATABASE_URL: db.url };
  });
  afterAll(() => db?.drop());

  it('unreachable Postgres: exit 1, names the server and what to check, nothing written', async () => {
    const r = await cli(['run'], { ...env, DATABASE_URL: 'postgres://127.0.0.1:1/x' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^k2-offload run: Postgres at 127\.0\.0\.1:1\/x is unavailable \(.+\); check DATABASE_URL and that the server is running and reachable, then retry\n$/,
    );
    expect(existsSync(join(dir, 'warehouse'))).toBe(false);
  });

  it('unreachable ClickHouse: exit 1, no watermark row, no Iceberg file', async () => {
    const r = await cli(['run', '--tables', 'bronze_trades_binance'], {
      ...env,
      CLICKHOUSE_URL: 'http://127.0.0.1:1',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach ClickHouse at http://127.0.0.1:1/');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect((await watermarkTable()).rows).toBe(0);
    expect(existsSync(join(dir, 'warehouse'))).toBe(false);
  });

  it('status with ClickHouse down: a report all the same, unhealthy, exit 1', async () => {
    const r = await cli(['status', '--json'], { ...env, CLICKHOUSE_URL: 'http://127.0.0.1:1' });
    expect(r.code).toBe(1);
    const report = r.json() as HealthReport;
    expect(report.healthy).toBe(false);
    expect(report.components).toEqual([expect.objectContaining({ name: 'clickhouse', ok: false })]);
  });

  it('status with a warehouse that is a file: the catalog component says so, unhealthy', async () => {
    const file = join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    const r = await cli(['status', '--json'], { ...env, WAREHOUSE: file });
    expect(r.code).toBe(1);
    const report = r.json() as HealthReport;
    expect(report.components.find((c) => c.name === 'catalog')).toMatchObject({
      ok: false,
      detail: expect.stringContaining(`warehouse ${file} is a file, not a folder`),
    });
  });

  it('unknown table and future --until against a real database: exit 2 and not even the schema is created', async () => {
    // A database of its own: the test above migrated the shared one before ClickHouse failed.
    const own = await freshDatabase();
    await db.drop();
    db = own;
    env = { ...env, DATABASE_URL: own.url };
    const unknown = await cli(['run', '--tables', 'gold_ohlcv_2m'], env);
    expect(unknown.code).toBe(2);
    const future = await cli(
      ['catch-up', '--table', 'silver_trades', '--until', '2026-11-22T04:00:00Z'],
      env,
      () => new Date('2026-11-22T03:00:00Z'),
    );
    expect(future.code).toBe(2);
    const set = await cli(
      ['watermark', 'set', '--table', 'silver_trades', '--to', '2099-01-01T00:00:00Z'],
      env,
    );
    expect(set.code).toBe(2);
    expect(set.stderr).toContain('is in the future');
    expect(await watermarkTable()).toEqual({ exists: false, rows: 0 });
    expect(existsSync(join(dir, 'warehouse'))).toBe(false);
  });
});

import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../src/audit/audit.ts';
import type { DemoReport } from '../../src/cli/commands/demo.ts';
import type { RunReport } from '../../src/cli/commands/run.ts';
import { testClockNotice } from '../../src/cli/context.ts';
import type { HealthReport } from '../../src/pipeline/health.ts';
import type { CyclePreview } from '../../src/pipeline/preview.ts';
import { TEST_NOW } from '../support/clock.ts';
import { freshDatabase } from '../support/pg.ts';
import { childEnv, spawnCli } from './support.ts';

const notice = `${testClockNotice(TEST_NOW.toISOString())}\n`;

async function metadataFiles(dir: string): Promise<string[]> {
  const all = await readdir(dir, { recursive: true });
  return all.filter((f) => f.endsWith('.metadata.json')).sort();
}

/**
 * The CLI as a user runs it (`bin/k2-offload.mjs`, its own process), on the embedded ClickHouse and a
 * local warehouse in a temp folder; Postgres is a fresh database of the test server (the demo's own
 * embedded Postgres would cost seconds per command, hence --force). Every command runs at one instant
 * (K2_TEST_NOW), so the demo's data and every later command's bounds are where the test says.
 */
describe('k2-offload end to end, as child processes', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let demo: { code: number; report: DemoReport; stderr: string };
  const run = (argv: string[]) => spawnCli(argv, { env, cwd: dir });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-cli-e2e-'));
    db = await freshDatabase();
    env = childEnv({
      K2_HOME: join(dir, '.k2'),
      WAREHOUSE: join(dir, 'warehouse'),
      DATABASE_URL: db.url,
      K2_TEST_NOW: TEST_NOW.toISOString(),
    });
    const r = await run(['demo', '--rows', '30000', '--hours', '3', '--force', '--json']);
    demo = {
      code: r.code,
      report: r.code === 0 ? (r.json() as DemoReport) : ({} as DemoReport),
      stderr: r.stderr,
    };
  }, 180_000);
  afterAll(() => db?.drop());

  it('demo: every table caught up, and the independent reader sees what ClickHouse has', () => {
    expect(demo.stderr).toBe(notice);
    expect(demo.code).toBe(0);
    const r = demo.report;
    expect(r.caughtUp).toBe(true);
    expect(r.auditOk).toBe(true);
    expect(r.tables).toHaveLength(10);
    for (const t of r.tables) {
      expect({ table: t.table, missing: t.missingKeys, duplicated: t.duplicateKeys }).toEqual({
        table: t.table,
        missing: 0,
        duplicated: 0,
      });
      expect(t.readerRows, t.table).toBe(t.clickhouseRows);
      // A 3-hour demo may hold no closed daily candle (it closes 2 h 5 min after its day ends).
      if (t.table !== 'ohlcv_1d') expect(t.snapshotId, t.table).not.toBeNull();
    }
    const bronze = r.tables.filter((t) => t.table.startsWith('bronze_'));
    // Everything generated up to the bound (now - 5 min lateness) is offloaded: about 3 h of 3 h 5 min.
    expect(bronze.reduce((n, t) => n + t.readerRows, 0)).toBeGreaterThan(28_000);
  });

  it('audit: zero missing and zero duplicate keys, per hour, exit 0', async () => {
    const r = await run(['audit', '--hours', '6', '--json']);
    expect(r.code).toBe(0);
    const report = r.json() as AuditReport;
    expect(report.ok).toBe(true);
    for (const t of report.tables) {
      expect(t.compared?.to, t.table).toBe(demo.report.tables.find((d) => d.table === t.table)?.cursor);
      expect(t.totals.missingKeys + t.totals.extraKeys + t.totals.duplicateKeys, t.table).toBe(0);
      expect(t.hours.every((h) => h.ok)).toBe(true);
    }
  });

  it('run right after: nothing new is written, and plan shows no batch', async () => {
    const before = await metadataFiles(join(dir, 'warehouse'));
    // At the demo's instant every table is at its bound, candles included.
    const r = await run(['run', '--json']);
    expect(r.code).toBe(0);
    const report = r.json() as RunReport;
    expect(report.rows).toBe(0);
    expect(report.tables.every((t) => t.status !== 'failed')).toBe(true);
    expect(await metadataFiles(join(dir, 'warehouse'))).toEqual(before);
    const plan = await run(['plan', '--json']);
    expect(plan.code).toBe(0);
    const preview = plan.json() as CyclePreview;
    expect(preview.tables.flatMap((t) => t.batches)).toEqual([]);
    expect(preview.tables.map((t) => t.skip?.reason)).not.toContain('leased');
  });

  it('status: healthy, every component reachable, exit 0', async () => {
    const r = await run(['status', '--json']);
    const report = r.json() as HealthReport;
    expect(report.components.map((c) => [c.name, c.ok])).toEqual([
      ['clickhouse', true],
      ['postgres', true],
      ['catalog', true],
    ]);
    expect(report.problems.filter((p) => p.severity === 'critical')).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('demo again on the same named database: refused before deleting anything, exit 2', async () => {
    const before = await metadataFiles(join(dir, 'warehouse'));
    const r = await run(['demo', '--rows', '100', '--force']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('the database in DATABASE_URL already holds offload state');
    expect(await metadataFiles(join(dir, 'warehouse'))).toEqual(before);
    expect((await run(['audit', '--json'])).code).toBe(0);
  });

  it('unreachable ClickHouse: one clear line, exit 1, nothing written', async () => {
    const before = await metadataFiles(join(dir, 'warehouse'));
    const r = await spawnCli(['run'], { env: { ...env, CLICKHOUSE_URL: 'http://127.0.0.1:1' }, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr.startsWith(notice)).toBe(true);
    expect(r.stderr.slice(notice.length)).toMatch(
      /^k2-offload run: cannot reach ClickHouse at http:\/\/127\.0\.0\.1:1\/: .*\n$/,
    );
    expect(await metadataFiles(join(dir, 'warehouse'))).toEqual(before);
  });
});

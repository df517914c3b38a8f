import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../src/audit/audit.ts';
import type { DemoReport } from '../../src/cli/commands/demo.ts';
import { testClockNotice } from '../../src/cli/context.ts';
import type { RepairResult } from '../../src/hourly/repair.ts';
import { TEST_NOW } from '../support/clock.ts';
import { freshDatabase } from '../support/pg.ts';
import { childEnv, embeddedSql, spawnCli } from './support.ts';

/** What every command prints on stderr while K2_TEST_NOW stops its clock. */
const notice = `${testClockNotice(TEST_NOW.toISOString())}\n`;

const TABLE = 'bronze_trades_binance';

/**
 * A warehouse that is not below the folder the commands run from (`WAREHOUSE=/data/x`): chDB's own
 * Iceberg reader, which the demo's check, audit and repair use, must still reach it.
 */
describe('k2-offload with a warehouse outside the working folder', () => {
  let base: string;
  let project: string;
  let warehouse: string;
  let env: NodeJS.ProcessEnv;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  const run = (argv: string[]) => spawnCli(argv, { env, cwd: project });

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'k2-outside-'));
    project = join(base, 'project');
    await mkdir(project);
    // A sibling temp folder: neither the working folder nor anything below it.
    warehouse = await mkdtemp(join(tmpdir(), 'k2-warehouse-'));
    db = await freshDatabase();
    env = childEnv({
      K2_HOME: join(project, '.k2'),
      WAREHOUSE: warehouse,
      DATABASE_URL: db.url,
      K2_TEST_NOW: TEST_NOW.toISOString(),
    });
  });
  afterAll(async () => {
    await db?.drop();
    await rm(base, { recursive: true, force: true });
    await rm(warehouse, { recursive: true, force: true });
  });

  it('demo, audit and repair read the Iceberg tables there', async () => {
    const demo = await run(['demo', '--rows', '3000', '--hours', '3', '--force', '--json']);
    expect(demo.stderr).toBe(notice);
    expect(demo.code).toBe(0);
    const report = demo.json() as DemoReport;
    expect(report.auditOk).toBe(true);
    expect(report.tables.find((t) => t.table === TABLE)?.readerRows).toBeGreaterThan(0);
    // The tables are in the warehouse given, and nothing of them in the working folder.
    expect(await readdir(join(warehouse, 'cold'))).toContain(TABLE);
    expect((await readdir(project)).sort()).toEqual(['.k2']);

    const audit = await run(['audit', '--hours', '4', '--table', TABLE, '--json']);
    expect(audit.stderr).toBe(notice);
    expect(audit.code).toBe(0);
    expect((audit.json() as AuditReport).ok).toBe(true);

    // A back-dated trade in a closed hour below the watermark, one the three-hour demo covered whole:
    // the per-hour check flags it and repair appends it, joining ClickHouse's rows with what the Iceberg
    // reader sees.
    const hourAgo = new Date(TEST_NOW.getTime() - 70 * 60_000).toISOString().replace('T', ' ').slice(0, 19);
    await embeddedSql(
      join(project, '.k2', 'chdb'),
      `INSERT INTO k2.${TABLE} (exchange_timestamp, sequence_number, symbol, price, quantity, quote_volume,
        event_time, kafka_offset, kafka_partition, ingestion_timestamp)
       VALUES ('${hourAgo}', 999999999, 'BTCUSDT', 100, 1, 100, '${hourAgo}', 999999999, 0, '${hourAgo}')`,
    );
    const repair = await run(['repair', '--table', TABLE, '--json']);
    expect(repair.stderr).toBe(notice);
    expect(repair.code).toBe(0);
    expect(repair.json() as RepairResult).toMatchObject({ status: 'repaired', addedRows: 1 });

    const after = await run(['audit', '--hours', '4', '--table', TABLE, '--json']);
    expect(after.code).toBe(0);
    expect((after.json() as AuditReport).ok).toBe(true);
  }, 300_000);
});

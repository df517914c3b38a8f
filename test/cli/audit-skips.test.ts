import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../src/audit/audit.ts';
import type { DemoReport } from '../../src/cli/commands/demo.ts';
import { testClockNotice } from '../../src/cli/context.ts';
import { TEST_NOW } from '../support/clock.ts';
import { freshDatabase } from '../support/pg.ts';
import { childEnv, embeddedSql, spawnCli } from './support.ts';

/** What every command prints on stderr while K2_TEST_NOW stops its clock. */
const notice = `${testClockNotice(TEST_NOW.toISOString())}\n`;

const TABLE = 'bronze_trades_binance';
const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 23);
const trade = (seq: number, ingested: number) =>
  `INSERT INTO k2.${TABLE} (exchange_timestamp, sequence_number, symbol, price, quantity, quote_volume,
     event_time, kafka_offset, kafka_partition, ingestion_timestamp)
   VALUES ('${at(ingested)}', ${seq}, 'BTCUSDT', 100, 1, 100, '${at(ingested)}', ${seq}, 0, '${at(ingested)}')`;

/**
 * The audit after a range was skipped on purpose (`watermark set --force --reason`): the skip is
 * reported as such, with who, when and why, and is no mismatch; a real gap still is, with its keys named.
 */
describe('k2-offload audit: audited skips and named keys', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let cursor: string;
  let skipped: number;
  const run = (argv: string[]) => spawnCli(argv, { env, cwd: dir });
  const chdb = () => join(dir, '.k2', 'chdb');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-audit-skips-'));
    db = await freshDatabase();
    env = childEnv({
      K2_HOME: join(dir, '.k2'),
      WAREHOUSE: join(dir, 'warehouse'),
      DATABASE_URL: db.url,
      K2_TEST_NOW: TEST_NOW.toISOString(),
    });
    const demo = await run(['demo', '--rows', '3000', '--hours', '3', '--force', '--json']);
    expect(demo.code).toBe(0);
    cursor = (demo.json() as DemoReport).tables.find((t) => t.table === TABLE)?.cursor as string;
  }, 180_000);
  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a forced watermark set shows as an audited skip (who, when, why), exit 0', async () => {
    await embeddedSql(chdb(), trade(888000001, Date.parse(cursor) + 20_000));
    const to = new Date(Date.parse(cursor) + 60_000).toISOString();
    const set = await run([
      'watermark',
      'set',
      '--table',
      TABLE,
      '--to',
      to,
      '--force',
      '--reason',
      'INC-7: replayed feed',
      '--actor',
      'alice',
      '--json',
    ]);
    expect(set.stderr).toBe(notice);
    expect(set.json()).toMatchObject({ changed: true });
    // Our trade, and whatever the demo generated in that minute above the watermark.
    skipped = (set.json() as { skippedRows: number }).skippedRows;
    expect(skipped).toBeGreaterThanOrEqual(1);

    const audit = await run(['audit', '--hours', '4', '--table', TABLE, '--json']);
    expect(audit.code).toBe(0);
    const [t] = (audit.json() as AuditReport).tables;
    expect(t?.ok).toBe(true);
    expect(t?.totals).toMatchObject({ missingKeys: 0, extraKeys: 0, skippedKeys: skipped });
    expect(t?.skips).toContainEqual(
      expect.objectContaining({ from: cursor, to, actor: 'alice', reason: 'INC-7: replayed feed' }),
    );

    const text = await run(['audit', '--hours', '4', '--table', TABLE, '--wide']);
    expect(text.code).toBe(0);
    expect(text.stdout).not.toContain('MISMATCH');
    expect(text.stdout).toContain('ranges skipped on purpose');
    expect(text.stdout).toMatch(
      new RegExp(`${cursor}\\s+${to}\\s+${skipped}\\s+alice\\s+INC-7: replayed feed`),
    );
  }, 120_000);

  it('a row lost below the watermark is a mismatch that names the missing key, exit 1', async () => {
    await embeddedSql(chdb(), trade(888000002, TEST_NOW.getTime() - 70 * 60_000));
    const audit = await run(['audit', '--hours', '4', '--table', TABLE, '--json']);
    expect(audit.code).toBe(1);
    const [t] = (audit.json() as AuditReport).tables;
    expect(t?.totals).toMatchObject({ missingKeys: 1, skippedKeys: skipped });
    const bad = t?.hours.filter((h) => !h.ok) ?? [];
    expect(bad).toHaveLength(1);
    expect(bad[0]?.samples?.missing).toEqual([expect.objectContaining({ sequence_number: '888000002' })]);

    const text = await run(['audit', '--hours', '4', '--table', TABLE, '--wide']);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('MISMATCH');
    expect(text.stdout).toMatch(/missing from Iceberg \(1 of 1\): .*sequence_number=888000002/);
  }, 120_000);
});

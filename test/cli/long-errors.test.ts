import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/cli/commands/run.ts';
import type { WatermarkView } from '../../src/cli/commands/watermark.ts';
import type { HealthReport } from '../../src/pipeline/health.ts';
import { freshDatabase } from '../support/pg.ts';
import { childEnv, spawnCli } from './support.ts';

const TABLE = 'bronze_trades_binance';
/** Lines wider than the terminal, less those that are one word (a path no terminal can break). */
const overlong = (text: string, width: number) =>
  text.split('\n').filter((l) => l.length > width && /\S\s+\S/.test(l.trim()));

/**
 * A table that fails with a long message (its what-to-do at the end): the run report and status keep
 * it whole in --json and print it whole, wrapped to the terminal, under their tables.
 */
describe('k2-offload: long errors are kept whole', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let env: NodeJS.ProcessEnv;
  let stored: string;
  const run = (argv: string[], vars: Record<string, string> = {}) =>
    spawnCli(argv, { env: { ...env, ...vars }, cwd: dir });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-long-errors-'));
    db = await freshDatabase();
    env = childEnv({ K2_HOME: join(dir, '.k2'), WAREHOUSE: join(dir, 'first'), DATABASE_URL: db.url });
    expect((await run(['demo', '--rows', '1000', '--hours', '1', '--seed-only', '--force'])).code).toBe(0);
    expect((await run(['run', '--tables', TABLE])).code).toBe(0);
    // The same catalog and watermarks, another warehouse: the table refuses to go on, and says why at length.
    env = { ...env, WAREHOUSE: join(dir, 'second') };
    const failed = await run(['run', '--tables', TABLE]);
    expect(failed.code).toBe(1);
    const shown = (await run(['watermark', 'show', '--table', TABLE, '--json'])).json() as WatermarkView;
    const last = shown.watermarks[0]?.lastError;
    stored = `${last?.name}: ${last?.message}`;
    // Long enough to have been cut before, with its what-to-do at the end.
    expect(stored.length).toBeGreaterThan(400);
    expect(stored).toMatch(/until the catalog points back at this table's own metadata under \S+$/);
  }, 180_000);
  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('run reports the whole error: in --json, and below its table wrapped to the terminal', async () => {
    const json = await run(['run', '--tables', TABLE, '--json']);
    expect(json.code).toBe(1);
    const report = json.json() as RunReport;
    expect(report.tables.find((t) => t.table === TABLE)?.error).toBe(stored);

    const narrow = await run(['run', '--tables', TABLE], { COLUMNS: '80' });
    expect(overlong(narrow.stdout, 80)).toEqual([]);
    expect(narrow.stdout.replace(/\s+/g, ' ')).toContain(`${TABLE}: ${stored}`.replace(/\s+/g, ' '));
  });

  it('status names the whole last error, in --json and on its problem line', async () => {
    const json = await run(['status', '--json']);
    const report = json.json() as HealthReport;
    const problem = report.problems.find((p) => p.table === TABLE && p.code === 'failures');
    expect(problem?.message).toContain(stored);
    const text = await run(['status'], { COLUMNS: '100' });
    // Wrapped to the terminal, every word of it there.
    expect(overlong(text.stdout, 100)).toEqual([]);
    expect(text.stdout.replace(/\s+/g, ' ')).toContain(stored.replace(/\s+/g, ' '));
  });
});
